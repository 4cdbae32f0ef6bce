/*
 * engine.c - the public engine API (engine.h) over the GGUF file, model,
 * tokenizer, chat templates, sampler and thread pool.
 *
 * An engine owns what every session shares and never changes after
 * engine_open: the mapped file, the (repacked) weights, the tokenizer and
 * the thread pool. A session owns a model_state (KV cache and scratch), the
 * ids of the tokens its cache holds, and the generation under way.
 *
 * Generation is a small state machine so that a caller can run it a step at
 * a time: engine_start keeps the longest prefix the cache shares with the new
 * prompt (as far as the model can rewind) and creates the sampler; each
 * engine_step then either evaluates one prefill chunk or samples one token,
 * streams its complete UTF-8 text and evaluates it. It stops on
 * end-of-generation, the token limit, the time budget, a full context, or
 * the caller's say-so. engine_generate is that loop run to the end. Under a
 * grammar (engine/grammar.h) each token is sampled from a row whose tokens
 * that cannot continue the grammar were set to -inf, and a grammar with
 * nothing left to add ends the generation.
 *
 * Speculation (sp.speculate > 0) is prompt lookup: a review quotes its diff,
 * so the next tokens are often a copy of earlier ones. After a token is
 * chosen, the latest earlier occurrence of the last SPEC_NGRAM_MAX tokens
 * (down to SPEC_NGRAM_MIN) in the cache's history proposes the tokens that
 * followed it as a draft; the token and the draft are evaluated in one
 * batch, which reads the weights once for all of them, and the rows are
 * then sampled in order exactly as plain decoding would sample them, one
 * draw per row. Drafted tokens are generated while the sampler picks them;
 * the first pick that differs is kept as the next token (it was drawn from
 * the right row) and the cache is rewound past the rejected draft. Every
 * stop rewinds to where plain decoding would have left the cache. Shorter
 * n-grams than two match too often by chance to be worth a batch. How far a
 * rewind can go is the model's to say; the draft never exceeds what a
 * batch holds, which a sliding-window ring cache can always take back.
 * A batch costs several one-token steps, so after a draft that was wholly
 * rejected the next drafts wait for 2, 4, ... tokens (up to
 * 2^SPEC_BACKOFF_SHIFT): text that is not a copy costs little, and a copy
 * still gets found soon. Which tokens are drafted never changes the output.
 * The output equals plain decoding's only where the batch path computes each
 * row bit for bit as the one-token path does; that holds for some weight
 * types and kernels and not for others (float weights, and the real models'
 * attention), where a near-tie can go the other way, so speculation is
 * opt-in (tests/test_spec.c checks both the rows and the output). To
 * extend: a better drafter (a draft model, several candidates) only has to
 * fill the draft array in spec_draft.
 *
 * The pool runs one parallel region at a time, so evaluation on two sessions
 * of one model at once would interleave their work on the same workers: an
 * atomic flag on the engine turns such a call into an error instead.
 */
#include "engine.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "chat.h"
#include "errors.h"
#include "gguf.h"
#include "grammar.h"
#include "kernels/kernels.h"
#include "model.h"
#include "quant.h"
#include "sampler.h"
#include "think.h"
#include "threads.h"
#include "tokenizer.h"
#include "unicode.h"

#define DEFAULT_N_CTX_CAP 4096
#define DEFAULT_N_BATCH 512
#define SPEC_NGRAM_MAX 3 /* longest suffix looked up for a draft */
#define SPEC_NGRAM_MIN 2 /* shortest */
#define SPEC_BACKOFF_SHIFT 4 /* at most 2^4 tokens decoded plainly after rejected drafts */

struct engine {
    gguf_file *file;
    tokenizer *tok;
    model model;
    int model_loaded;
    thread_pool *pool;
    engine_info info;
    char name[128];
    char file_type[16];
    int n_batch;
    int strip_think; /* the chat template knows <think> blocks: keep them out of generated text */
    atomic_int busy; /* a session is evaluating on the pool */
    pthread_mutex_t grammar_lock; /* the first session to need grammar_vocab builds it */
    grammar_vocab *grammar_vocab;
};

typedef enum { GEN_NONE, GEN_PREFILL, GEN_DECODE, GEN_DONE } gen_phase;

struct engine_session {
    engine *e;
    model_state *state;
    int n_ctx;
    int32_t *tokens; /* [n_ctx]: the ids at cache positions [0, model_state_pos) */
    engine_progress_cb progress;
    void *progress_user;
    /* the generation under way */
    gen_phase phase;
    int32_t *prompt; /* [n_ctx] */
    int n_prompt, n_prefilled; /* prompt tokens in the cache so far */
    engine_sampling sp;
    sampler *smp;
    grammar_matcher *gm; /* when sp.grammar is set */
    tokenizer_stream stream;
    think_filter think;
    engine_stats stats;
    double t0, t1;
    /* speculation: the token picked from a batch row but not yet generated,
     * and the rows of the last batch */
    int32_t pending;
    int has_pending;
    int spec_wait, spec_misses; /* back-off: plain steps before the next draft, drafts rejected in a row */
    float *spec_logits;
    int spec_rows;
};

void engine_set_progress(engine_session *s, engine_progress_cb cb, void *user)
{
    s->progress = cb;
    s->progress_user = user;
}

void engine_sampling_defaults(engine_sampling *s)
{
    memset(s, 0, sizeof *s);
    s->temperature = 0.8f;
    s->top_k = 40;
    s->top_p = 0.95f;
    s->min_p = 0.05f;
    s->repeat_penalty = 1.0f;
    s->repeat_last_n = 64;
    s->seed = 0;
    s->max_tokens = 256;
}

/* Name of the weight type that holds most bytes, e.g. "Q4_K". */
static void dominant_type(const gguf_file *f, char *out, size_t cap)
{
    uint64_t bytes[QT_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].type < QT_COUNT) bytes[f->tensors[i].type] += f->tensors[i].nbytes;
    int best = 0;
    for (int t = 1; t < QT_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    const quant_traits *tr = quant_traits_of((uint32_t)best);
    snprintf(out, cap, "%s", tr && tr->name ? tr->name : "?");
}

static void fill_name(engine *e, const char *path)
{
    gguf_str name;
    if (gguf_get_str(e->file, "general.name", &name) == 0 && name.len > 0) {
        snprintf(e->name, sizeof e->name, "%.*s", (int)(name.len < 127 ? name.len : 127), name.ptr);
        return;
    }
    const char *slash = strrchr(path, '/');
    snprintf(e->name, sizeof e->name, "%s", slash ? slash + 1 : path);
}

static int choose_n_ctx(const engine_params *p, int n_ctx_train)
{
    if (p && p->n_ctx > 0) return p->n_ctx;
    return n_ctx_train < DEFAULT_N_CTX_CAP ? n_ctx_train : DEFAULT_N_CTX_CAP;
}

static int open_model(engine *e, const engine_params *params, char *err, size_t errlen)
{
    if (model_load(&e->model, e->file, err, errlen)) return -1;
    e->model_loaded = 1;
    if (e->model.n_vocab != tokenizer_n_vocab(e->tok)) {
        err_set(err, errlen, "%s: the model has %d token embeddings but the vocabulary has %d tokens",
                e->file->path, e->model.n_vocab, tokenizer_n_vocab(e->tok));
        return -1;
    }
    int n_threads = params && params->n_threads > 0 ? params->n_threads : threads_available();
    if (!(e->pool = threads_new(n_threads))) {
        err_set(err, errlen, "cannot start %d threads", n_threads);
        return -1;
    }
    if (model_pack_weights(&e->model, e->pool, err, errlen)) return -1;
    int n_ctx = choose_n_ctx(params, e->model.n_ctx_train);
    e->n_batch = params && params->n_batch > 0 ? params->n_batch : DEFAULT_N_BATCH;
    e->info.n_threads = threads_count(e->pool);
    e->info.n_ctx = n_ctx;
    e->info.n_ctx_train = e->model.n_ctx_train;
    e->info.n_layer = e->model.n_layer;
    e->info.n_embd = e->model.n_embd;
    e->info.weight_bytes = e->model.weight_bytes;
    e->info.layer_macs = e->model.layer_macs;
    e->info.kv_bytes_per_position =
        (uint64_t)e->model.n_layer * e->model.n_head_kv * e->model.head_dim * 2 * sizeof(f16_t); /* K and V */
    e->info.arch = e->model.arch->name;
    return 0;
}

int engine_open(engine **out, const char *model_path, const engine_params *params, char *err, size_t errlen)
{
    *out = NULL;
    kernels_init();
    /* Our pool already splits every product across the threads we may use;
     * OpenBLAS spawning its own on top would oversubscribe the runner. */
    openblas_set_num_threads(1);
    engine *e = calloc(1, sizeof *e);
    if (!e) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&e->grammar_lock, NULL);
    if (gguf_open(&e->file, model_path, err, errlen) || tokenizer_load(&e->tok, e->file, err, errlen)) goto fail;
    fill_name(e, model_path);
    dominant_type(e->file, e->file_type, sizeof e->file_type);
    e->info.name = e->name;
    e->info.file_type = e->file_type;
    e->info.file_bytes = e->file->size;
    e->info.n_vocab = tokenizer_n_vocab(e->tok);
    e->info.bos = tokenizer_bos(e->tok);
    e->info.eos = tokenizer_eos(e->tok);
    e->info.add_bos = tokenizer_add_bos(e->tok);
    e->info.has_chat_template = gguf_kv_find(e->file, "tokenizer.chat_template") != NULL;
    gguf_str tmpl;
    if (gguf_get_str(e->file, "tokenizer.chat_template", &tmpl) == 0) {
        chat_template_kind kind = chat_template_detect(tmpl.ptr, (size_t)tmpl.len);
        e->strip_think = kind == CHAT_QWEN3 || kind == CHAT_QWEN3_INSTRUCT;
    }
    e->info.arch = "";
    if (!(params && params->vocab_only) && open_model(e, params, err, errlen)) goto fail;
    *out = e;
    return 0;
fail:
    engine_close(e);
    return -1;
}

void engine_close(engine *e)
{
    if (!e) return;
    grammar_vocab_free(e->grammar_vocab);
    pthread_mutex_destroy(&e->grammar_lock);
    if (e->model_loaded) model_free(&e->model);
    threads_free(e->pool);
    tokenizer_free(e->tok);
    gguf_close(e->file);
    free(e);
}

const engine_info *engine_get_info(const engine *e) { return &e->info; }

int engine_tokenize(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t *out, int cap)
{
    return tokenizer_encode(e->tok, text, len, add_bos, parse_special, out, cap);
}

int engine_tokenize_alloc(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t **out)
{
    /* A token covers at least one byte, except BOS and a leading space some
     * tokenizers add: one pass nearly always suffices. */
    int cap = len < (size_t)INT32_MAX - 64 ? (int)len + 8 : INT32_MAX - 56;
    for (int pass = 0; pass < 2; pass++) {
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) break;
        int n = engine_tokenize(e, text, len, add_bos, parse_special, ids, cap);
        if (n >= 0 && n <= cap) {
            *out = ids;
            return n;
        }
        free(ids);
        if (n < 0) break;
        cap = n;
    }
    *out = NULL;
    return -1;
}

size_t engine_utf8_len(const char *s, size_t len) { return len ? utf8_valid_len(s, len) : 0; }

/* Control tokens ("<|im_start|>", "<start_of_turn>", "<|eot_id|>") have texts
 * that tokenizing with parse_special turns into the token itself. Text the
 * caller does not trust (a pull request's diff in a review prompt) must not
 * become one, or it could end the user's turn and speak as the system or
 * the assistant. Each occurrence gets U+200B ZERO WIDTH SPACE after its
 * first byte: the model still reads the characters, as ordinary text.
 * One pass over the text; at each position only the control texts that
 * start with its byte are compared. */
char *engine_defuse_control_tokens(engine *e, const char *text)
{
    static const char zwsp[] = "\xE2\x80\x8B";
    size_t len = strlen(text), n_ctl = 0, cap_ctl = 0;
    char **ctl = NULL; /* control token texts, each at least 2 bytes */
    unsigned char first[256] = {0};
    char *out = NULL;
    int n_vocab = tokenizer_n_vocab(e->tok);
    for (int32_t id = 0; id < n_vocab; id++) {
        if (tokenizer_token_type(e->tok, id) != TOKEN_CONTROL) continue;
        char piece[256];
        int n = tokenizer_piece(e->tok, id, 1, piece, sizeof piece);
        if (n < 2 || n >= (int)sizeof piece) continue; /* one byte cannot be broken; longer ones do not exist */
        if (n_ctl == cap_ctl) {
            size_t cap = cap_ctl ? cap_ctl * 2 : 64;
            char **grown = realloc(ctl, cap * sizeof *grown);
            if (!grown) goto done;
            ctl = grown;
            cap_ctl = cap;
        }
        if (!(ctl[n_ctl] = strndup(piece, (size_t)n))) goto done;
        first[(unsigned char)piece[0]] = 1;
        n_ctl++;
    }
    /* at most one zero-width space after each byte */
    out = malloc(len * 4 + 1);
    if (!out) goto done;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        out[o++] = text[i];
        if (!first[(unsigned char)text[i]]) continue;
        for (size_t k = 0; k < n_ctl; k++) {
            size_t n = strlen(ctl[k]);
            if (ctl[k][0] == text[i] && n <= len - i && !memcmp(text + i, ctl[k], n)) {
                memcpy(out + o, zwsp, 3);
                o += 3;
                break;
            }
        }
    }
    out[o] = 0;
done:
    for (size_t k = 0; k < n_ctl; k++) free(ctl[k]);
    free(ctl);
    return out;
}

int engine_token_piece(engine *e, int32_t id, char *buf, int cap)
{
    return tokenizer_piece(e->tok, id, 0, buf, cap);
}

/* Every token's bytes and what a grammar may do with it. */
static int build_grammar_vocab(engine *e, char *err, size_t errlen)
{
    int n = tokenizer_n_vocab(e->tok), rc = -1;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)tokenizer_piece(e->tok, i, 0, NULL, 0);
    char *blob = malloc(total ? total : 1);
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    uint32_t *lens = malloc((size_t)n * sizeof *lens);
    uint8_t *kinds = malloc((size_t)n);
    if (blob && pieces && lens && kinds && total <= INT_MAX) {
        size_t pos = 0;
        for (int i = 0; i < n; i++) {
            int type = tokenizer_token_type(e->tok, i);
            pieces[i] = blob + pos;
            lens[i] = (uint32_t)tokenizer_piece(e->tok, i, 0, blob + pos, (int)(total - pos));
            pos += lens[i];
            kinds[i] = tokenizer_is_eog(e->tok, i)                        ? GRAMMAR_TOKEN_END
                       : type == TOKEN_NORMAL || type == TOKEN_BYTE ? GRAMMAR_TOKEN_TEXT
                                                                    : GRAMMAR_TOKEN_NEVER;
        }
        rc = grammar_vocab_new(&e->grammar_vocab, n, pieces, lens, kinds, err, errlen);
    } else {
        err_set(err, errlen, "out of memory building the grammar's vocabulary");
    }
    free(blob);
    free(pieces);
    free(lens);
    free(kinds);
    return rc;
}

int engine_grammar_vocab(engine *e, const grammar_vocab **out, char *err, size_t errlen)
{
    pthread_mutex_lock(&e->grammar_lock);
    int rc = e->grammar_vocab ? 0 : build_grammar_vocab(e, err, errlen);
    pthread_mutex_unlock(&e->grammar_lock);
    *out = e->grammar_vocab;
    return rc;
}

int engine_chat_format(engine *e, const engine_chat_msg *msgs, int n_msgs, int add_assistant, char **out, char *err,
                       size_t errlen)
{
    gguf_str tmpl = {0};
    int has = gguf_get_str(e->file, "tokenizer.chat_template", &tmpl) == 0;
    const char *text = has ? tmpl.ptr : NULL;
    size_t len = has ? (size_t)tmpl.len : 0;
    char bos[64] = "";
    int32_t bos_id = tokenizer_bos(e->tok);
    /* a tokenizer that adds BOS itself gets the text without it, so the prompt has one */
    if (bos_id >= 0 && !tokenizer_add_bos(e->tok)) {
        int n = tokenizer_piece(e->tok, bos_id, 1, bos, sizeof bos - 1);
        bos[n >= 0 && n < (int)sizeof bos ? n : 0] = 0;
    }
    if (chat_template_render(text, len, msgs, n_msgs, add_assistant, bos, out)) {
        err_set(err, errlen, "cannot format the chat with the %s template",
                chat_template_name(chat_template_detect(text, len)));
        return -1;
    }
    return 0;
}

int engine_token_is_eog(engine *e, int32_t id) { return tokenizer_is_eog(e->tok, id); }

/* ---- sessions ------------------------------------------------------------ */

int engine_session_new(engine_session **out, engine *e, int n_ctx, char *err, size_t errlen)
{
    *out = NULL;
    if (!e->pool) {
        err_set(err, errlen, "%s: opened vocabulary-only, cannot evaluate", e->file->path);
        return -1;
    }
    if (n_ctx <= 0) n_ctx = e->info.n_ctx;
    engine_session *s = calloc(1, sizeof *s);
    if (s) {
        s->e = e;
        s->n_ctx = n_ctx;
        s->tokens = malloc((size_t)n_ctx * sizeof *s->tokens);
        s->prompt = malloc((size_t)n_ctx * sizeof *s->prompt);
    }
    if (!s || !s->tokens || !s->prompt) {
        engine_session_free(s);
        err_set(err, errlen, "out of memory for a session of %d tokens", n_ctx);
        return -1;
    }
    int n_batch = e->n_batch < n_ctx ? e->n_batch : n_ctx;
    if (model_state_new(&s->state, &e->model, n_ctx, n_batch, e->pool, err, errlen)) {
        engine_session_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void engine_session_free(engine_session *s)
{
    if (!s) return;
    sampler_free(s->smp);
    grammar_matcher_free(s->gm);
    model_state_free(s->state);
    free(s->tokens);
    free(s->prompt);
    free(s->spec_logits);
    free(s);
}

engine *engine_session_model(const engine_session *s) { return s->e; }
int engine_session_n_ctx(const engine_session *s) { return s->n_ctx; }
int engine_session_n_past(const engine_session *s) { return model_state_pos(s->state); }

void engine_reset(engine_session *s) { model_state_reset(s->state); }

int engine_eval(engine_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen)
{
    int idle = 0;
    if (!atomic_compare_exchange_strong(&s->e->busy, &idle, 1)) {
        err_set(err, errlen, "another session of this model is evaluating (sessions of one model take turns)");
        return -1;
    }
    int pos0 = model_state_pos(s->state);
    int rc = model_forward(s->state, tokens, n, logits, err, errlen);
    atomic_store(&s->e->busy, 0);
    /* memmove: speculation evaluates a draft already written in place */
    if (rc == 0) memmove(s->tokens + pos0, tokens, (size_t)n * sizeof *tokens);
    return rc;
}

const float *engine_last_logits(const engine_session *s) { return model_state_logits(s->state); }

/* ---- generation ---------------------------------------------------------- */

int engine_session_common_prefix(const engine_session *s, const int32_t *tokens, int n)
{
    int n_past = model_state_pos(s->state), k = 0;
    while (k < n_past && k < n - 1 && s->tokens[k] == tokens[k]) k++;
    return k;
}

/* Rows of one speculation batch: the token and its draft. A rejected draft
 * is taken back by a rewind of at most a batch, which every cache can do. */
static int spec_rows(const engine_session *s, const engine_sampling *sp)
{
    int n_batch = s->e->n_batch < s->n_ctx ? s->e->n_batch : s->n_ctx;
    if (sp->speculate <= 0 || n_batch < 2) return 0;
    return sp->speculate < n_batch - 1 ? sp->speculate + 1 : n_batch;
}

int engine_start(engine_session *s, const int32_t *prompt, int n_prompt, const engine_sampling *sp, char *err,
                 size_t errlen)
{
    memset(&s->stats, 0, sizeof s->stats);
    s->phase = GEN_NONE;
    sampler_free(s->smp);
    s->smp = NULL;
    grammar_matcher_free(s->gm);
    s->gm = NULL;
    if (n_prompt <= 0) {
        err_set(err, errlen, "the prompt is empty (0 tokens)");
        return -1;
    }
    if (n_prompt >= s->n_ctx) {
        err_set(err, errlen, "prompt of %d tokens does not fit the context of %d tokens", n_prompt, s->n_ctx);
        return -1;
    }
    const grammar_vocab *gv;
    if (sp->grammar && (engine_grammar_vocab(s->e, &gv, err, errlen) ||
                        grammar_matcher_new(&s->gm, sp->grammar, gv, err, errlen)))
        return -1;
    if (!(s->smp = sampler_new(sp, s->e->model.n_vocab))) {
        err_set(err, errlen, "out of memory creating the sampler");
        return -1;
    }
    if (sp->speculate < 0) {
        err_set(err, errlen, "speculate must be 0 (off) or a number of draft tokens, not %d", sp->speculate);
        return -1;
    }
    int rows = spec_rows(s, sp);
    if (rows > s->spec_rows) {
        float *grown = realloc(s->spec_logits, (size_t)rows * s->e->model.n_vocab * sizeof *grown);
        if (!grown) {
            err_set(err, errlen, "out of memory for %d rows of speculation logits", rows);
            return -1;
        }
        s->spec_logits = grown;
        s->spec_rows = rows;
    }
    s->has_pending = 0;
    s->spec_wait = s->spec_misses = 0;
    memcpy(s->prompt, prompt, (size_t)n_prompt * sizeof *prompt);
    s->n_prompt = n_prompt;
    s->n_prefilled = model_state_rewind(s->state, engine_session_common_prefix(s, prompt, n_prompt));
    s->sp = *sp;
    s->stats.prompt_tokens = n_prompt;
    s->stats.cached_tokens = s->n_prefilled;
    s->stats.stop_reason = "max_tokens";
    tokenizer_stream_init(&s->stream);
    think_filter_init(&s->think);
    s->t0 = s->t1 = engine_now_s();
    s->phase = GEN_PREFILL;
    return 0;
}

/* Hands text[0, n) to the callback, without <think> blocks when the model writes them;
 * returns the callback's verdict (non-zero = stop). */
static int emit(engine_session *s, int32_t id, const char *text, size_t n, engine_token_cb cb, void *user)
{
    if (!cb) return 0;
    if (!s->e->strip_think) return cb(id, text, user);
    char small[256 + 16], *answer = n + 16 <= sizeof small ? small : malloc(n + 16);
    if (!answer) return 1;
    size_t len = think_filter_feed(&s->think, text, n, answer, n + 16);
    if (id < 0) len += think_filter_flush(&s->think, answer + len, n + 16 - len);
    int stop = id < 0 && len == 0 ? 0 : cb(id, answer, user);
    if (answer != small) free(answer);
    return stop;
}

static void finish(engine_session *s, engine_token_cb cb, void *user)
{
    char text[64];
    int n = tokenizer_stream_flush(&s->stream, text, sizeof text);
    if (n > 0 || s->e->strip_think) emit(s, -1, text, n > 0 ? (size_t)n : 0, cb, user);
    double t2 = engine_now_s();
    engine_stats *st = &s->stats;
    st->prefill_s = s->t1 - s->t0;
    st->decode_s = t2 - s->t1;
    int n_evaluated = st->prompt_tokens - st->cached_tokens;
    st->prefill_tokens_per_s = st->prefill_s > 0 ? n_evaluated / st->prefill_s : 0;
    st->decode_tokens_per_s = st->decode_s > 0 && st->generated_tokens > 1 ? (st->generated_tokens - 1) / st->decode_s : 0;
    sampler_free(s->smp);
    s->smp = NULL;
    grammar_matcher_free(s->gm);
    s->gm = NULL;
    s->phase = GEN_DONE;
}

static int prefill_step(engine_session *s, char *err, size_t errlen)
{
    int left = s->n_prompt - s->n_prefilled;
    int chunk = left < s->e->n_batch ? left : s->e->n_batch;
    if (engine_eval(s, s->prompt + s->n_prefilled, chunk, NULL, err, errlen)) return -1;
    s->n_prefilled += chunk;
    if (s->progress) s->progress(s->n_prefilled, s->n_prompt, engine_now_s() - s->t0, s->progress_user);
    if (s->n_prefilled == s->n_prompt) {
        s->t1 = engine_now_s();
        for (int i = 0; i < s->n_prompt; i++) sampler_accept(s->smp, s->prompt[i]);
        s->phase = GEN_DECODE;
    }
    return 0;
}

/* Picks the next token from a row of logits (masked by the grammar, which
 * then takes the token); returns 1 with *id, 0 when the grammar is complete,
 * -1 on error. */
static int choose(engine_session *s, float *logits, int32_t *id, char *err, size_t errlen)
{
    engine_stats *st = &s->stats;
    if (s->gm) {
        double t = engine_now_s();
        int allowed = grammar_matcher_mask(s->gm, logits, err, errlen);
        st->grammar_s += engine_now_s() - t;
        if (allowed < 0) return -1;
        if (allowed == 0) {
            st->stop_reason = "grammar";
            return 0;
        }
    }
    *id = sampler_sample(s->smp, logits);
    if (s->gm && grammar_matcher_accept_token(s->gm, *id, err, errlen)) return -1; /* only NaN logits pick a masked one */
    return 1;
}

/* Generates a chosen token: ends on end-of-generation, else counts it,
 * streams its text and checks the limits, with n_past the tokens the cache
 * holds before it. Returns 1 to go on, 0 when done, -1 on error. */
static int take(engine_session *s, int32_t id, int n_past, engine_token_cb cb, void *user, char *err, size_t errlen)
{
    engine_stats *st = &s->stats;
    if (tokenizer_is_eog(s->e->tok, id)) {
        st->stop_reason = "eos";
        return 0;
    }
    sampler_accept(s->smp, id);
    st->generated_tokens++;
    /* a piece can be of any length, and each of its bytes and of the
     * held-back ones may come out as a 3-byte U+FFFD */
    char small[256], *text = small;
    size_t cap = 3 * ((size_t)tokenizer_piece(s->e->tok, id, 0, NULL, 0) + sizeof s->stream.pending) + 1;
    if (cap > INT_MAX || (cap > sizeof small && !(text = malloc(cap)))) {
        err_set(err, errlen, "out of memory streaming token %d", (int)id);
        return -1;
    }
    int n = tokenizer_stream_feed(s->e->tok, &s->stream, id, text, (int)cap);
    int stop = emit(s, id, text, n > 0 ? (size_t)n : 0, cb, user);
    if (text != small) free(text);
    if (stop) {
        st->stop_reason = "callback";
        return 0;
    }
    if (st->generated_tokens >= s->sp.max_tokens) return 0;
    if (s->sp.time_budget_s > 0 && engine_now_s() - s->t0 >= s->sp.time_budget_s) {
        st->stop_reason = "time_budget";
        return 0;
    }
    if (n_past >= s->n_ctx) {
        st->stop_reason = "context_full";
        return 0;
    }
    return 1;
}

/* The tokens that followed the latest earlier occurrence of the last n
 * tokens of h[0, len), longest n first, up to cap into draft; returns how
 * many. The newest match is the likeliest to continue the same way (the
 * same hunk, the same line being quoted). */
static int spec_draft(const int32_t *h, int len, int cap, int32_t *draft)
{
    for (int n = SPEC_NGRAM_MAX; n >= SPEC_NGRAM_MIN; n--) {
        if (len <= n) continue;
        const int32_t *tail = h + len - n;
        for (int end = len - 2; end >= n - 1; end--) { /* h[end - n + 1, end] against the tail */
            if (h[end] != tail[n - 1] || memcmp(h + end - n + 1, tail, (size_t)n * sizeof *h)) continue;
            int k = 0;
            while (k < cap && end + 1 + k < len) draft[k] = h[end + 1 + k], k++;
            return k;
        }
    }
    return 0;
}

/* Evaluates id with a draft after it and generates the drafted tokens the
 * sampler picks from the rows; the first pick that differs becomes the
 * pending token. Returns as decode_step. */
static int speculate(engine_session *s, int32_t id, int n_draft, engine_token_cb cb, void *user, char *err,
                     size_t errlen)
{
    int pos0 = model_state_pos(s->state), n = n_draft + 1, V = s->e->model.n_vocab;
    int32_t *batch = s->tokens + pos0; /* id and its draft, where engine_eval writes them anyway */
    engine_stats *st = &s->stats;
    if (engine_eval(s, batch, n, s->spec_logits, err, errlen)) return -1;
    st->drafted_tokens += n_draft;
    int rc = 1, j = 0;
    for (;; j++) { /* row j: what follows id and d_1..d_j */
        int32_t next;
        rc = choose(s, s->spec_logits + (size_t)j * V, &next, err, errlen);
        if (rc <= 0) break;
        if (j == n_draft || next != batch[j + 1]) {
            s->pending = next;
            s->has_pending = 1;
            break;
        }
        st->accepted_tokens++;
        if ((rc = take(s, next, pos0 + j + 1, cb, user, err, errlen)) <= 0) break;
    }
    if (j > 0) {
        s->spec_misses = 0;
    } else {
        if (s->spec_misses < SPEC_BACKOFF_SHIFT) s->spec_misses++;
        s->spec_wait = 1 << s->spec_misses;
    }
    /* keep id and d_1..d_j: the tokens plain decoding would have evaluated */
    int keep = pos0 + 1 + j;
    if (model_state_rewind(s->state, keep) != keep) {
        err_set(err, errlen, "cannot take back a draft of %d tokens at position %d", n_draft, pos0);
        return -1;
    }
    return rc;
}

/* Chooses one token, streams it and evaluates it (with a draft when
 * speculating); returns 1 to go on, 0 when done, -1 on error. */
static int decode_step(engine_session *s, engine_token_cb cb, void *user, char *err, size_t errlen)
{
    engine_stats *st = &s->stats;
    if (st->generated_tokens >= s->sp.max_tokens) return 0;
    int32_t id = s->pending;
    int pos = model_state_pos(s->state), rc;
    if (!s->has_pending && (rc = choose(s, model_state_logits(s->state), &id, err, errlen)) <= 0) return rc;
    s->has_pending = 0;
    if ((rc = take(s, id, pos, cb, user, err, errlen)) <= 0) return rc;
    /* a draft no longer than the tokens still wanted and the room left */
    int cap = spec_rows(s, &s->sp) - 1, left = s->sp.max_tokens - st->generated_tokens;
    if (cap > left) cap = left;
    if (cap > s->n_ctx - pos - 1) cap = s->n_ctx - pos - 1;
    if (s->spec_wait > 0) s->spec_wait--, cap = 0;
    s->tokens[pos] = id; /* the history the draft is looked up in ends with id */
    int n_draft = cap > 0 ? spec_draft(s->tokens, pos + 1, cap, s->tokens + pos + 1) : 0;
    if (n_draft > 0) return speculate(s, id, n_draft, cb, user, err, errlen);
    return engine_eval(s, &id, 1, NULL, err, errlen) ? -1 : 1;
}

int engine_step(engine_session *s, engine_token_cb cb, void *user, char *err, size_t errlen)
{
    int rc;
    switch (s->phase) {
    case GEN_PREFILL:
        rc = prefill_step(s, err, errlen);
        if (rc < 0) finish(s, cb, user);
        return rc < 0 ? -1 : 1;
    case GEN_DECODE:
        rc = decode_step(s, cb, user, err, errlen);
        if (rc <= 0) finish(s, cb, user);
        return rc;
    case GEN_DONE:
        return 0;
    default:
        err_set(err, errlen, "engine_step before engine_start");
        return -1;
    }
}

void engine_session_stats(const engine_session *s, engine_stats *stats) { *stats = s->stats; }

typedef struct {
    engine_token_cb cb;
    void *user;
    int32_t *out;
    int cap, n;
} collect_ctx;

static int collect_token(int32_t id, const char *text, void *user)
{
    collect_ctx *c = user;
    if (id >= 0 && c->out && c->n < c->cap) c->out[c->n++] = id;
    return c->cb ? c->cb(id, text, c->user) : 0;
}

int engine_generate(engine_session *s, const int32_t *prompt, int n_prompt, const engine_sampling *sp,
                    engine_token_cb cb, void *user, int32_t *out_tokens, int out_cap, engine_stats *stats, char *err,
                    size_t errlen)
{
    collect_ctx c = {cb, user, out_tokens, out_cap, 0};
    int rc = engine_start(s, prompt, n_prompt, sp, err, errlen);
    if (rc == 0) do
            rc = engine_step(s, collect_token, &c, err, errlen);
        while (rc == 1);
    *stats = s->stats;
    return rc < 0 ? -1 : 0;
}
