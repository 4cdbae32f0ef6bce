/*
 * cli_engine.c - the engine's own subcommands: generate, chat, logits, tokenize.
 *
 * These are the CLI contract of DESIGN.md that tests and benchmarks drive:
 * each parses its flags with the small option table below, opens the model
 * through engine.h, and writes machine-readable output to stdout (or a file)
 * and diagnostics to stderr.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "../engine/grammar.h"
#include "backend.h"
#include "cli_options.h"
#include "commands.h"
#include "errors.h"
#include "json_schema.h"
#include "textbuf.h"

/* Opens the model for subcommand `cmd`; on failure says why on stderr and returns NULL. */
static engine *open_engine(const char *cmd, const char *model_path, const engine_params *params)
{
    char err[512];
    engine *e;
    if (engine_open(&e, model_path, params, err, sizeof err)) {
        fprintf(stderr, "prbot %s: %s\n", cmd, err);
        return NULL;
    }
    return e;
}

/* A session of e for subcommand `cmd`; on failure says why on stderr and returns NULL. */
static engine_session *open_session(const char *cmd, engine *e)
{
    char err[512];
    engine_session *s;
    if (engine_session_new(&s, e, 0, err, sizeof err)) {
        fprintf(stderr, "prbot %s: %s\n", cmd, err);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------- generate */

typedef struct {
    const char *model, *prompt, *system, *grammar_file, *schema_file;
    int chat, json, threads, n_ctx;
    engine_sampling sampling;
} generate_options;

static const char generate_usage[] =
    "usage: prbot generate --model PATH --prompt TEXT [options]\n"
    "\n"
    "Generates a continuation of TEXT (streamed to stdout).\n"
    "\n"
    "  --model PATH        GGUF model file (required)\n"
    "  --prompt TEXT       prompt text; special tokens like <|im_start|> are parsed\n"
    "  --chat              wrap the prompt as a user message in the model's chat template\n"
    "  --system TEXT       system message (implies --chat)\n"
    "  --temp T            temperature, 0 = greedy (default 0.8)\n"
    "  --top-k K           keep the K most likely tokens, 0 = off (default 40)\n"
    "  --top-p P           nucleus sampling, 1 = off (default 0.95)\n"
    "  --min-p P           drop tokens below P x the top probability, 0 = off (default 0.05)\n"
    "  --repeat-penalty R  penalise the last 64 tokens, 1 = off (default 1)\n"
    "  --seed S            random seed (default 0)\n"
    "  --max-tokens N      tokens to generate at most (default 256)\n"
    "  --speculate N       draft up to N tokens by prompt lookup and verify them in one batch\n"
    "                      (default 0 = off; faster where the output repeats the prompt, and\n"
    "                      the same output only where the batch arithmetic is row-exact)\n"
    "  --threads N         threads (default: CPUs this process may use)\n"
    "  --ctx N             context size in tokens (default: min(model's, 4096))\n"
    "  --grammar FILE      only output the GBNF grammar in FILE accepts (engine/grammar.h)\n"
    "  --json-schema FILE  only output JSON that the schema in FILE allows (bot/json_schema.h)\n"
    "  --json              print one JSON object at the end instead of streaming text\n";

static int parse_generate(int argc, char **argv, generate_options *o)
{
    memset(o, 0, sizeof *o);
    engine_sampling_defaults(&o->sampling);
    const cli_option opts[] = {
        {"--model", CLI_STRING, &o->model},
        {"--prompt", CLI_STRING, &o->prompt},
        {"--system", CLI_STRING, &o->system},
        {"--chat", CLI_FLAG, &o->chat},
        {"--json", CLI_FLAG, &o->json},
        {"--temp", CLI_FLOAT, &o->sampling.temperature},
        {"--top-k", CLI_INT, &o->sampling.top_k},
        {"--top-p", CLI_FLOAT, &o->sampling.top_p},
        {"--min-p", CLI_FLOAT, &o->sampling.min_p},
        {"--repeat-penalty", CLI_FLOAT, &o->sampling.repeat_penalty},
        {"--seed", CLI_U64, &o->sampling.seed},
        {"--max-tokens", CLI_INT, &o->sampling.max_tokens},
        {"--speculate", CLI_INT, &o->sampling.speculate},
        {"--threads", CLI_INT, &o->threads},
        {"--ctx", CLI_INT, &o->n_ctx},
        {"--grammar", CLI_STRING, &o->grammar_file},
        {"--json-schema", CLI_STRING, &o->schema_file},
        {NULL, 0, NULL},
    };
    int rc = cli_parse("generate", argc, argv, opts, generate_usage, NULL);
    if (rc) return rc;
    if (!o->model || !o->prompt) {
        fprintf(stderr, "prbot generate: --model and --prompt are required (see prbot generate --help)\n");
        return 2;
    }
    if (o->grammar_file && o->schema_file) {
        fprintf(stderr, "prbot generate: give --grammar or --json-schema, not both\n");
        return 2;
    }
    if (o->system) o->chat = 1;
    return 0;
}

/* Compiles --grammar FILE or --json-schema FILE into *out (NULL if neither). */
static int load_grammar(const generate_options *o, grammar **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *path = o->grammar_file ? o->grammar_file : o->schema_file;
    if (!path) return 0;
    size_t len;
    char *text = textbuf_read_file(path, &len), *converted = NULL;
    if (!text) {
        err_set(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (o->schema_file) {
        rc = json_schema_text_to_grammar(text, len, JSON_SCHEMA_DEFAULT_SPACE, &converted, err, errlen);
        free(text);
        text = converted;
        if (!rc) len = strlen(text);
    }
    if (!rc) rc = grammar_parse(out, text, len, err, errlen);
    if (rc) err_append(err, errlen, " (%s)", path);
    free(text);
    return rc;
}

/* The prompt text as the model should see it (chat-formatted if asked). */
static char *build_prompt(engine *e, const generate_options *o, char *err, size_t errlen)
{
    if (!o->chat) return strdup(o->prompt);
    engine_chat_msg msgs[2];
    int n = 0;
    if (o->system) msgs[n++] = (engine_chat_msg){"system", o->system};
    msgs[n++] = (engine_chat_msg){"user", o->prompt};
    char *text = NULL;
    if (engine_chat_format(e, msgs, n, 1, &text, err, errlen)) return NULL;
    return text;
}

typedef struct {
    int stream;
    textbuf text;
} text_sink;

static int on_token(int32_t id, const char *text, void *user)
{
    text_sink *sink = user;
    size_t n = strlen(text);
    if (sink->stream) {
        fputs(text, stdout);
        fflush(stdout);
    }
    textbuf_add(&sink->text, text, n);
    return sink->text.failed;
}

static void print_generate_json(const int32_t *prompt, int n_prompt, const int32_t *gen, int n_gen, const char *text,
                                const engine_stats *st)
{
    json_t *o = json_object(), *p = json_array(), *g = json_array();
    for (int i = 0; i < n_prompt; i++) json_array_append_new(p, json_integer(prompt[i]));
    for (int i = 0; i < n_gen; i++) json_array_append_new(g, json_integer(gen[i]));
    json_object_set_new(o, "prompt_tokens", p);
    json_object_set_new(o, "n_prompt_tokens", json_integer(n_prompt));
    json_object_set_new(o, "tokens", g);
    json_object_set_new(o, "text", json_stringn(text, strlen(text)));
    json_object_set_new(o, "prefill_tokens_per_s", json_real(st->prefill_tokens_per_s));
    json_object_set_new(o, "decode_tokens_per_s", json_real(st->decode_tokens_per_s));
    json_object_set_new(o, "stop_reason", json_string(st->stop_reason));
    json_object_set_new(o, "grammar_s", json_real(st->grammar_s));
    json_object_set_new(o, "drafted_tokens", json_integer(st->drafted_tokens));
    json_object_set_new(o, "accepted_tokens", json_integer(st->accepted_tokens));
    json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    fputc('\n', stdout);
    json_decref(o);
}

int cmd_generate(int argc, char **argv)
{
    generate_options o;
    int rc = parse_generate(argc, argv, &o);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    engine_params params = {.n_threads = o.threads, .n_ctx = o.n_ctx};
    engine *e = open_engine("generate", o.model, &params);
    if (!e) return 1;
    engine_session *ses = open_session("generate", e);
    if (!ses) {
        engine_close(e);
        return 1;
    }
    char err[512];
    int32_t *prompt = NULL, *gen = NULL;
    text_sink sink = {.stream = !o.json};
    grammar *g = NULL;
    char *text = NULL;
    rc = 1;
    if (load_grammar(&o, &g, err, sizeof err)) goto done;
    o.sampling.grammar = g;
    if (!(text = build_prompt(e, &o, err, sizeof err))) goto done;
    int n_prompt = engine_tokenize_alloc(e, text, strlen(text), engine_get_info(e)->add_bos, 1, &prompt);
    if (n_prompt < 0) {
        err_set(err, sizeof err, "out of memory tokenizing the prompt");
        goto done;
    }
    int cap = o.sampling.max_tokens > 0 ? o.sampling.max_tokens : 1;
    if (!(gen = malloc((size_t)cap * sizeof *gen))) goto done;
    engine_stats st;
    if (engine_generate(ses, prompt, n_prompt, &o.sampling, on_token, &sink, gen, cap, &st, err, sizeof err))
        goto done;
    if (o.json)
        print_generate_json(prompt, n_prompt, gen, st.generated_tokens, sink.text.data ? sink.text.data : "", &st);
    else
        fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "prbot: %d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s (%s)\n", st.prompt_tokens,
            st.prefill_tokens_per_s, st.generated_tokens, st.decode_tokens_per_s, st.stop_reason);
    if (g && st.generated_tokens > 0)
        fprintf(stderr, "prbot: grammar masking %.3f ms per token\n", st.grammar_s * 1e3 / st.generated_tokens);
    if (o.sampling.speculate > 0)
        fprintf(stderr, "prbot: speculation: %d tokens drafted, %d accepted\n", st.drafted_tokens, st.accepted_tokens);
    rc = 0;
done:
    if (rc) fprintf(stderr, "prbot generate: %s\n", err);
    grammar_free(g);
    free(text);
    free(prompt);
    free(gen);
    textbuf_free(&sink.text);
    engine_session_free(ses);
    engine_close(e);
    return rc;
}

/* ----------------------------------------------------------------- chat */

static const char chat_usage[] =
    "usage: prbot chat --model PATH [--system TEXT] [--temp T] [--max-tokens N] [--threads N]\n"
    "                  [--speculate N]\n"
    "       prbot chat --server URL [--model NAME] [--system TEXT]\n"
    "\n"
    "Interactive chat on standard input: one user message per line, empty line or EOF ends.\n"
    "With --server the model runs on a server (prbot serve, Ollama) through its /api/chat,\n"
    "and --model names one of its models (default: the server's own default).\n";

static int on_server_text(const char *text, void *user)
{
    text_sink *sink = user;
    return text ? on_token(0, text, sink) : 0;
}

/* The conversation loop of `chat --server`: the whole conversation goes with each turn. */
static int chat_with_server(const char *url, const char *model, const char *system)
{
    engine_chat_msg msgs[64];
    char *owned[64];
    int n_msgs = 0, n_owned = 0, rc = 0;
    if (system) msgs[n_msgs++] = (engine_chat_msg){"system", system};
    char line[8192], err[1024];
    while (n_msgs + 2 < 64 && (isatty(0) ? fputs("> ", stderr) : 0, fgets(line, sizeof line, stdin))) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) break;
        owned[n_owned] = strdup(line);
        msgs[n_msgs++] = (engine_chat_msg){"user", owned[n_owned++]};
        text_sink sink = {.stream = 1};
        if (ollama_chat(url, model, msgs, n_msgs, on_server_text, &sink, err, sizeof err)) {
            fprintf(stderr, "prbot chat: %s\n", err);
            textbuf_free(&sink.text);
            rc = 1;
            break;
        }
        fputc('\n', stdout);
        fflush(stdout);
        owned[n_owned] = sink.text.data ? sink.text.data : strdup("");
        msgs[n_msgs++] = (engine_chat_msg){"assistant", owned[n_owned++]};
    }
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    const char *model_path = NULL, *system = NULL, *server_url = NULL;
    int threads = 0;
    engine_sampling s;
    engine_sampling_defaults(&s);
    const cli_option opts[] = {
        {"--model", CLI_STRING, &model_path}, {"--system", CLI_STRING, &system},
        {"--temp", CLI_FLOAT, &s.temperature}, {"--max-tokens", CLI_INT, &s.max_tokens},
        {"--speculate", CLI_INT, &s.speculate},
        {"--threads", CLI_INT, &threads},      {"--server", CLI_STRING, &server_url},
        {NULL, 0, NULL},
    };
    int rc = cli_parse("chat", argc, argv, opts, chat_usage, NULL);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (server_url) return chat_with_server(server_url, model_path, system);
    if (!model_path) {
        fprintf(stderr, "prbot chat: --model is required\n");
        return 2;
    }
    engine_params params = {.n_threads = threads};
    engine *e = open_engine("chat", model_path, &params);
    if (!e) return 1;
    engine_session *ses = open_session("chat", e);
    if (!ses) {
        engine_close(e);
        return 1;
    }
    char err[512];
    /* The conversation is re-rendered each turn, always template-exact; the
     * session's cache already holds all of it but the new turn, which is all
     * that gets prefilled. */
    engine_chat_msg msgs[64];
    char *owned[64];
    int n_msgs = 0, n_owned = 0;
    if (system) msgs[n_msgs++] = (engine_chat_msg){"system", system};
    char line[8192];
    rc = 0;
    while (n_msgs + 2 < 64 && (isatty(0) ? fputs("> ", stderr) : 0, fgets(line, sizeof line, stdin))) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) break;
        owned[n_owned] = strdup(line);
        msgs[n_msgs++] = (engine_chat_msg){"user", owned[n_owned++]};
        char *text = NULL;
        int32_t *ids = NULL;
        text_sink sink = {.stream = 1};
        engine_stats st;
        int n = -1;
        if (engine_chat_format(e, msgs, n_msgs, 1, &text, err, sizeof err) == 0)
            n = engine_tokenize_alloc(e, text, strlen(text), engine_get_info(e)->add_bos, 1, &ids);
        if (n < 0 || engine_generate(ses, ids, n, &s, on_token, &sink, NULL, 0, &st, err, sizeof err)) {
            fprintf(stderr, "prbot chat: %s\n", err);
            free(text);
            free(ids);
            textbuf_free(&sink.text);
            rc = 1;
            break;
        }
        fputc('\n', stdout);
        owned[n_owned] = sink.text.data ? sink.text.data : strdup("");
        msgs[n_msgs++] = (engine_chat_msg){"assistant", owned[n_owned++]};
        free(text);
        free(ids);
    }
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    engine_session_free(ses);
    engine_close(e);
    return rc;
}

/* --------------------------------------------------------------- logits */

static const char logits_usage[] =
    "usage: prbot logits --model PATH (--prompt TEXT | --tokens 1,2,3) --out FILE [--threads N]\n"
    "\n"
    "Evaluates the prompt in one batch and writes little-endian float32 logits,\n"
    "[n_tokens][n_vocab], to FILE. --prompt adds BOS per the model and parses\n"
    "special tokens; --tokens takes ids as they are.\n";

/* Parses "1,2,3" into a malloc'ed array; returns the count or -1. */
static int parse_token_list(const char *s, int32_t **out)
{
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *out = malloc((size_t)cap * sizeof **out);
    if (!*out) return -1;
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) return -1;
        (*out)[n++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

static int write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err_set(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        err_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cmd_logits(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *tokens_arg = NULL, *out_path = NULL;
    int threads = 0;
    const cli_option opts[] = {
        {"--model", CLI_STRING, &model_path}, {"--prompt", CLI_STRING, &prompt},
        {"--tokens", CLI_STRING, &tokens_arg}, {"--out", CLI_STRING, &out_path},
        {"--threads", CLI_INT, &threads},      {NULL, 0, NULL},
    };
    int rc = cli_parse("logits", argc, argv, opts, logits_usage, NULL);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!model_path || !out_path || !prompt == !tokens_arg) {
        fprintf(stderr, "prbot logits: needs --model, --out and exactly one of --prompt or --tokens\n");
        return 2;
    }
    engine_params params = {.n_threads = threads};
    engine *e = open_engine("logits", model_path, &params);
    if (!e) return 1;
    engine_session *ses = open_session("logits", e);
    if (!ses) {
        engine_close(e);
        return 1;
    }
    char err[512];
    int32_t *ids = NULL;
    float *logits = NULL;
    int n = tokens_arg ? parse_token_list(tokens_arg, &ids)
                       : engine_tokenize_alloc(e, prompt, strlen(prompt), engine_get_info(e)->add_bos, 1, &ids);
    rc = 1;
    if (n <= 0) {
        err_set(err, sizeof err, tokens_arg ? "--tokens must be comma-separated non-negative ids, e.g. 1,2,3"
                                             : "the prompt gives no tokens");
        goto done;
    }
    size_t n_vocab = (size_t)engine_get_info(e)->n_vocab;
    if (!(logits = malloc((size_t)n * n_vocab * sizeof *logits))) {
        err_set(err, sizeof err, "out of memory for %d x %zu logits", n, n_vocab);
        goto done;
    }
    if (engine_eval(ses, ids, n, logits, err, sizeof err) ||
        write_file_atomic(out_path, logits, (size_t)n * n_vocab * sizeof *logits, err, sizeof err))
        goto done;
    fprintf(stderr, "prbot logits: %d tokens x %zu logits written to %s\n", n, n_vocab, out_path);
    rc = 0;
done:
    if (rc) fprintf(stderr, "prbot logits: %s\n", err);
    free(ids);
    free(logits);
    engine_session_free(ses);
    engine_close(e);
    return rc;
}

/* ------------------------------------------------------------- tokenize */

static const char tokenize_usage[] =
    "usage: prbot tokenize --model PATH [--raw] (TEXT | --stdin)\n"
    "\n"
    "Prints the token ids of TEXT, space separated. By default BOS is added when\n"
    "the model's metadata says so and special tokens are parsed; --raw adds\n"
    "nothing and treats the text as plain text. --stdin reads the exact bytes.\n";

static char *read_all_stdin(size_t *len)
{
    textbuf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) textbuf_add(&b, chunk, got);
    *len = b.len;
    if (!b.data && !b.failed) return strdup("");
    return textbuf_take(&b);
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL;
    int raw = 0, use_stdin = 0;
    const cli_option opts[] = {
        {"--model", CLI_STRING, &model_path}, {"--raw", CLI_FLAG, &raw}, {"--stdin", CLI_FLAG, &use_stdin},
        {NULL, 0, NULL},
    };
    int rc = cli_parse("tokenize", argc, argv, opts, tokenize_usage, &text);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!model_path || !text == !use_stdin) {
        fprintf(stderr, "prbot tokenize: needs --model and either TEXT or --stdin\n");
        return 2;
    }
    engine_params params = {.vocab_only = 1};
    engine *e = open_engine("tokenize", model_path, &params);
    if (!e) return 1;
    size_t len = 0;
    char *input = use_stdin ? read_all_stdin(&len) : NULL;
    if (!use_stdin) len = strlen(text);
    int32_t *ids = NULL;
    int n = (use_stdin && !input) ? -1
                                   : engine_tokenize_alloc(e, use_stdin ? input : text, len,
                                                   raw ? 0 : engine_get_info(e)->add_bos, !raw, &ids);
    if (n < 0) {
        fprintf(stderr, "prbot tokenize: out of memory\n");
        rc = 1;
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(input);
    free(ids);
    engine_close(e);
    return rc;
}
