/*
 * test_spec.c - prompt-lookup speculation (engine_sampling.speculate) against
 * plain decoding.
 *
 * Speculation evaluates a token and its draft in one batch and samples the
 * rows as plain decoding samples its one row. Its output equals plain
 * decoding's exactly when the batch path computes every row bit for bit as
 * the one-token path does; where it does not (some weight types, some
 * kernels), a near-tie may come out differently, which is why speculation is
 * opt-in. So each model's case first measures whether the batch rows equal
 * the one-token rows on this CPU: where they do, any difference in output is
 * a bug in the speculation and fails; where they do not, the case is skipped
 * with the measured difference (docs/PERFORMANCE.md reports the divergence
 * on real reviews).
 *
 * The prompts repeat text, so drafts are found and accepted: every case
 * also requires that some drafted tokens were generated, or it would only
 * compare plain decoding with itself. Stops are checked at every position
 * of a generation (token limit, the callback as a stop string does), with
 * the cache left where plain decoding leaves it: a session continuing after
 * a speculative generation must generate what a fresh session does.
 */
#include <math.h>
#include <string.h>

#include "../bot/findings.h"
#include "../bot/json_schema.h"
#include "engine.h"
#include "grammar.h"
#include "test.h"

#define N_GEN 48
#define DRAFT 8

/* Code that repeats itself, as a diff quoted in a review does. */
static const char *text =
    "static int add(int a, int b) { return a + b; }\n"
    "static int sub(int a, int b) { return a - b; }\n"
    "+static int add(int a, int b) { return a + b; }\n"
    "+static int sub(int a, int b) { return a - b; }\n"
    "static int add(int a, int b) {";

typedef struct {
    int32_t ids[N_GEN + 8];
    int n;
    int stop_at; /* 0: never; else stop after this many tokens (a stop string) */
} capture;

static int on_token(int32_t id, const char *piece, void *user)
{
    (void)piece;
    capture *c = user;
    if (id < 0) return 0;
    if (c->n < (int)(sizeof c->ids / sizeof c->ids[0])) c->ids[c->n] = id;
    c->n++;
    return c->stop_at && c->n >= c->stop_at;
}

typedef struct {
    capture out;
    engine_stats st;
    int n_past;
} outcome;

static engine *open_model_batch(const char *rel, int n_batch)
{
    char err[512];
    engine *e = NULL;
    engine_params p = {.n_threads = 2, .n_batch = n_batch};
    if (engine_open(&e, test_data_path(rel), &p, err, sizeof err)) SKIP("%s: %s", rel, err);
    return e;
}

static engine *open_model(const char *rel) { return open_model_batch(rel, 0); }

static int tokenize(engine *e, const char *t, int32_t *ids, int cap)
{
    int n = engine_tokenize(e, t, strlen(t), engine_get_info(e)->add_bos, 0, ids, cap);
    REQUIRE(n > 8 && n <= cap, "%d prompt tokens", n);
    return n;
}

/* One generation on session s (whatever its cache holds). */
static outcome generate_on(engine_session *s, const int32_t *prompt, int n, const engine_sampling *sp, int stop_at)
{
    char err[512];
    outcome o;
    memset(&o, 0, sizeof o);
    o.out.stop_at = stop_at;
    REQUIRE(engine_generate(s, prompt, n, sp, on_token, &o.out, NULL, 0, &o.st, err, sizeof err) == 0,
            "engine_generate: %s", err);
    o.n_past = engine_session_n_past(s);
    return o;
}

static outcome generate_ctx(engine *e, int n_ctx, const int32_t *prompt, int n, const engine_sampling *sp,
                            int stop_at)
{
    char err[512];
    engine_session *s = NULL;
    REQUIRE(engine_session_new(&s, e, n_ctx, err, sizeof err) == 0, "%s", err);
    outcome o = generate_on(s, prompt, n, sp, stop_at);
    engine_session_free(s);
    return o;
}

static outcome generate(engine *e, const int32_t *prompt, int n, const engine_sampling *sp, int stop_at)
{
    return generate_ctx(e, 512, prompt, n, sp, stop_at);
}

/* The largest difference between the rows of tokens [n - k, n) evaluated
 * one at a time and evaluated as one batch after the same prefix. */
static double batch_vs_decode(engine *e, const int32_t *ids, int n, int k)
{
    char err[512];
    int V = engine_get_info(e)->n_vocab;
    engine_session *s = NULL;
    REQUIRE(engine_session_new(&s, e, 512, err, sizeof err) == 0, "%s", err);
    float *one = malloc((size_t)k * V * sizeof *one), *batch = malloc((size_t)k * V * sizeof *batch);
    REQUIRE(one && batch, "out of memory");
    REQUIRE(engine_eval(s, ids, n - k, NULL, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < k; i++) {
        REQUIRE(engine_eval(s, ids + n - k + i, 1, NULL, err, sizeof err) == 0, "%s", err);
        memcpy(one + (size_t)i * V, engine_last_logits(s), (size_t)V * sizeof *one);
    }
    engine_reset(s);
    REQUIRE(engine_eval(s, ids, n - k, NULL, err, sizeof err) == 0, "%s", err);
    REQUIRE(engine_eval(s, ids + n - k, k, batch, err, sizeof err) == 0, "%s", err);
    double worst = 0;
    for (size_t i = 0; i < (size_t)k * V; i++) {
        double d = fabs((double)one[i] - batch[i]);
        if (d > worst || d != d) worst = d != d ? INFINITY : d;
    }
    free(one);
    free(batch);
    engine_session_free(s);
    return worst;
}

/* Skips the current case when the batch path is not row-exact on this model and CPU. */
static void require_row_exact(engine *e, const int32_t *ids, int n, const char *rel)
{
    double d = batch_vs_decode(e, ids, n, DRAFT + 1);
    if (d != 0) {
        engine_close(e);
        SKIP("%s (%s): batch rows differ from one-token rows by up to %.3g, speculation is not exact here", rel,
             engine_isa(), d);
    }
}

/* Model rel with the prompt `text` tokenized into prompt[256]; the case is
 * skipped unless the batch path is row-exact there. */
static engine *open_exact(const char *rel, int n_batch, int32_t *prompt, int *n)
{
    engine *e = open_model_batch(rel, n_batch);
    *n = tokenize(e, text, prompt, 256);
    require_row_exact(e, prompt, *n, rel);
    return e;
}

static engine_sampling sampling(float temperature, int speculate)
{
    engine_sampling sp;
    engine_sampling_defaults(&sp);
    sp.temperature = temperature;
    sp.seed = 1234;
    sp.max_tokens = N_GEN;
    sp.speculate = speculate;
    return sp;
}

static void expect_same(const outcome *plain, const outcome *spec, const char *what)
{
    EXPECT(plain->out.n == spec->out.n, "%s: %d tokens, plain decoding %d", what, spec->out.n, plain->out.n);
    int n = plain->out.n < spec->out.n ? plain->out.n : spec->out.n;
    if (n > N_GEN + 8) n = N_GEN + 8;
    for (int i = 0; i < n; i++)
        if (plain->out.ids[i] != spec->out.ids[i]) {
            EXPECT(0, "%s: token %d is %d, plain decoding %d", what, i, spec->out.ids[i], plain->out.ids[i]);
            break;
        }
    EXPECT(!strcmp(plain->st.stop_reason, spec->st.stop_reason), "%s: stopped on %s, plain decoding on %s", what,
           spec->st.stop_reason, plain->st.stop_reason);
    EXPECT(plain->n_past == spec->n_past, "%s: cache holds %d positions, plain decoding's %d", what, spec->n_past,
           plain->n_past);
    EXPECT(plain->st.generated_tokens == spec->st.generated_tokens, "%s: generated_tokens %d, plain %d", what,
           spec->st.generated_tokens, plain->st.generated_tokens);
}

/* Plain and speculative generation with the same settings on fresh
 * sessions of n_ctx positions, expected the same; the speculative one. */
static outcome both(engine *e, int n_ctx, const int32_t *prompt, int n, engine_sampling sp, int stop_at,
                    const char *what)
{
    engine_sampling spec_sp = sp;
    sp.speculate = 0;
    spec_sp.speculate = DRAFT;
    outcome plain = generate_ctx(e, n_ctx, prompt, n, &sp, stop_at);
    outcome spec = generate_ctx(e, n_ctx, prompt, n, &spec_sp, stop_at);
    expect_same(&plain, &spec, what);
    EXPECT(plain.st.drafted_tokens == 0, "%s: plain decoding drafted %d tokens", what, plain.st.drafted_tokens);
    EXPECT(spec.st.accepted_tokens <= spec.st.drafted_tokens, "%s: accepted %d of %d drafted", what,
           spec.st.accepted_tokens, spec.st.drafted_tokens);
    return spec;
}

/* A grammar that forces text the prompt holds, repeated: the drafts are
 * right by construction, and it ends inside one. */
static const char *repeating = "root ::= \"return a + b; }\\nstatic int add(int a, int b) { return a + b; }\"";

/* Greedy and sampled generations with and without speculation on one model,
 * and greedy under a grammar whose drafts must be accepted. */
static void same_output(const char *rel, int n_batch)
{
    char err[512];
    int32_t prompt[256];
    int n;
    engine *e = open_exact(rel, n_batch, prompt, &n);
    grammar *g = NULL;
    REQUIRE(grammar_parse(&g, repeating, strlen(repeating), err, sizeof err) == 0, "%s", err);
    static const struct {
        float temperature;
        int grammar;
        const char *what;
    } runs[] = {{0, 0, "greedy"}, {0.8f, 0, "sampled"}, {0, 1, "greedy, repeating grammar"}};
    for (int r = 0; r < 3; r++) {
        engine_sampling sp = sampling(runs[r].temperature, 0);
        sp.grammar = runs[r].grammar ? g : NULL;
        outcome spec = both(e, 512, prompt, n, sp, 0, runs[r].what);
        if (runs[r].grammar)
            EXPECT(spec.st.accepted_tokens > 0, "%s: no drafted token accepted (%d drafted)", runs[r].what,
                   spec.st.drafted_tokens);
    }
    grammar_free(g);
    engine_close(e);
}

#define SAME_OUTPUT(name, rel)                                                                                    \
    static void name(void) { same_output(rel, 0); }
SAME_OUTPUT(test_same_output_llama_q4_0, "models/tiny-llama-Q4_0.gguf")
SAME_OUTPUT(test_same_output_llama_q8_0, "models/tiny-llama-Q8_0.gguf")
SAME_OUTPUT(test_same_output_llama_q4_k_m, "models/tiny-llama-Q4_K_M.gguf")
SAME_OUTPUT(test_same_output_qwen2_q8_0, "models/tiny-qwen2-Q8_0.gguf")
SAME_OUTPUT(test_same_output_gemma3_q4_k_m, "models/tiny-gemma3-Q4_K_M.gguf")
SAME_OUTPUT(test_same_output_stories, "models/stories260K.gguf")

/* Batches of 4: drafts of 3, and a sliding-window ring of only window + 3
 * positions, which a rejected draft's rewind must still take back. */
static void test_same_output_gemma3_small_ring(void) { same_output("models/tiny-gemma3-Q4_K_M.gguf", 4); }

#define STOP_MODEL "models/tiny-llama-Q8_0.gguf"

/* A generation stopped after every possible token (the token limit, and
 * the callback as a stop string does) ends, and leaves the cache, as plain
 * decoding does; some of those stops fall inside an accepted draft. */
static void test_stops_inside_drafts(void)
{
    int32_t prompt[256];
    int n;
    engine *e = open_exact(STOP_MODEL, 0, prompt, &n);
    engine_sampling full = sampling(0, DRAFT);
    outcome whole = generate(e, prompt, n, &full, 0);
    REQUIRE(whole.st.accepted_tokens > 0, "no drafted token accepted");
    for (int limit = 1; limit <= whole.out.n && !test_cur_failed; limit++) {
        engine_sampling sp = sampling(0, 0);
        char what[64];
        snprintf(what, sizeof what, "stop after %d", limit);
        both(e, 512, prompt, n, sp, limit, what);
        sp.max_tokens = limit;
        snprintf(what, sizeof what, "max_tokens %d", limit);
        both(e, 512, prompt, n, sp, 0, what);
    }
    engine_close(e);
}

/* A context that fills up inside a draft, and a grammar that completes
 * inside one (the output repeats itself, so after the end the draft goes
 * on with what followed the first copy, which the grammar refuses). */
static void test_context_full_and_grammar_end_inside_drafts(void)
{
    char err[512];
    int32_t prompt[256];
    int n;
    engine *e = open_exact(STOP_MODEL, 0, prompt, &n);
    for (int room = 1; room <= 24 && !test_cur_failed; room++) {
        char what[64];
        snprintf(what, sizeof what, "context of prompt + %d", room);
        outcome spec = both(e, n + room, prompt, n, sampling(0, 0), 0, what);
        EXPECT(!strcmp(spec.st.stop_reason, "context_full"), "%s: stopped on %s", what, spec.st.stop_reason);
    }
    /* later copies are drafted from the first (as the model tokenized it) */
    static const char forced[] = "root ::= \" return a + b; } return a + b; } return a + b; } return a + b; }\"";
    grammar *g = NULL;
    REQUIRE(grammar_parse(&g, forced, strlen(forced), err, sizeof err) == 0, "%s", err);
    engine_sampling sp = sampling(0, 0);
    sp.grammar = g;
    sp.max_tokens = 200;
    outcome spec = both(e, 512, prompt, n, sp, 0, "grammar complete inside a draft");
    EXPECT(!strcmp(spec.st.stop_reason, "grammar"), "stopped on %s", spec.st.stop_reason);
    EXPECT(spec.st.accepted_tokens > 0, "no drafted token accepted (%d drafted)", spec.st.drafted_tokens);
    grammar_free(g);
    engine_close(e);
}

/* After a generation with rejected drafts, the same session continuing with
 * prompt + output (reusing its cache) generates what a fresh session does:
 * the rewinds left no rejected token's position behind. */
static void test_rewind_then_continue(void)
{
    char err[512];
    int32_t prompt[512];
    int n;
    engine *e = open_exact(STOP_MODEL, 0, prompt, &n);
    engine_session *s = NULL, *fresh = NULL;
    REQUIRE(engine_session_new(&s, e, 512, err, sizeof err) == 0, "%s", err);
    REQUIRE(engine_session_new(&fresh, e, 512, err, sizeof err) == 0, "%s", err);
    engine_sampling spec_sp = sampling(0, DRAFT), plain_sp = sampling(0, 0);
    outcome first = generate_on(s, prompt, n, &spec_sp, 0);
    REQUIRE(first.st.drafted_tokens > first.st.accepted_tokens, "no draft was rejected (%d drafted, %d accepted)",
            first.st.drafted_tokens, first.st.accepted_tokens);
    memcpy(prompt + n, first.out.ids, (size_t)first.out.n * sizeof *prompt);
    int n2 = n + first.out.n;
    outcome again = generate_on(s, prompt, n2, &plain_sp, 0);
    outcome want = generate_on(fresh, prompt, n2, &plain_sp, 0);
    EXPECT(again.st.cached_tokens == n2 - 1, "reused %d positions, want %d", again.st.cached_tokens, n2 - 1);
    expect_same(&want, &again, "continuing");
    engine_session_free(s);
    engine_session_free(fresh);
    engine_close(e);
}

/* Under the review's findings grammar and sampling (greedy with a
 * repetition penalty), the output is the same. */
static void test_findings_grammar(void)
{
    char err[512];
    int32_t prompt[256];
    int n;
    engine *e = open_exact(STOP_MODEL, 0, prompt, &n);
    const char *paths[] = {"src/add.c"};
    int lo[] = {1}, hi[] = {40};
    json_t *schema = findings_schema(paths, lo, hi, 1, 3, 1);
    REQUIRE(schema, "findings_schema failed");
    char *text_g = NULL;
    int rc = json_schema_to_grammar(schema, JSON_SCHEMA_DEFAULT_SPACE, &text_g, err, sizeof err);
    json_decref(schema);
    REQUIRE(rc >= 0, "%s", err);
    grammar *g = NULL;
    rc = grammar_parse(&g, text_g, strlen(text_g), err, sizeof err);
    free(text_g);
    REQUIRE(rc == 0, "%s", err);
    engine_sampling sp = sampling(0, 0);
    sp.grammar = g;
    sp.repeat_penalty = 1.1f;
    sp.max_tokens = 200;
    outcome spec = both(e, 512, prompt, n, sp, 0, "findings grammar");
    EXPECT(spec.st.drafted_tokens > 0, "nothing drafted");
    grammar_free(g);
    engine_close(e);
}

static void test_negative_speculate_is_refused(void)
{
    char err[512];
    engine *e = open_model(STOP_MODEL);
    engine_session *s = NULL;
    REQUIRE(engine_session_new(&s, e, 64, err, sizeof err) == 0, "%s", err);
    int32_t prompt[256];
    int n = tokenize(e, text, prompt, 256);
    (void)n;
    engine_sampling sp = sampling(0, -1);
    err[0] = 0;
    EXPECT(engine_start(s, prompt, 16, &sp, err, sizeof err) == -1, "engine_start accepted speculate -1");
    EXPECT(strstr(err, "speculate") != NULL, "error does not name the setting: %s", err);
    engine_session_free(s);
    engine_close(e);
}

int main(void)
{
    TEST_RUN(test_same_output_llama_q4_0);
    TEST_RUN(test_same_output_llama_q8_0);
    TEST_RUN(test_same_output_llama_q4_k_m);
    TEST_RUN(test_same_output_qwen2_q8_0);
    TEST_RUN(test_same_output_gemma3_q4_k_m);
    TEST_RUN(test_same_output_stories);
    TEST_RUN(test_same_output_gemma3_small_ring);
    TEST_RUN(test_stops_inside_drafts);
    TEST_RUN(test_context_full_and_grammar_end_inside_drafts);
    TEST_RUN(test_rewind_then_continue);
    TEST_RUN(test_findings_grammar);
    TEST_RUN(test_negative_speculate_is_refused);
    return test_exit_code();
}
