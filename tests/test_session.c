/*
 * test_session.c - one loaded model, several sessions (engine.h).
 *
 * On stories260K (a trained model whose greedy continuation has no near-tie
 * in its first 45 tokens): a session reuses the prefix its cache shares with
 * the next prompt and generates what a fresh session generates; sessions of
 * one model stepped in turn never see each other's tokens; a generation
 * abandoned half way leaves a session that works; errors are errors.
 */
#include <string.h>

#include "engine.h"
#include "test.h"
#include "greedy.h"

#define MODEL "models/stories260K.gguf"
#define N_GEN 24

static const char *story = "Once upon a time, there was a little girl named Lily.";
static const char *other = "The dog ran to the park and saw a big red ball.";

static engine *open_model(void)
{
    char err[512];
    engine *e = NULL;
    engine_params p = {.n_threads = 2};
    if (engine_open(&e, test_data_path(MODEL), &p, err, sizeof err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err);
        return NULL;
    }
    return e;
}

/* The model and two sessions of n_ctx positions (0 = the default); leaves the test on failure. */
static engine *open_two(int n_ctx, engine_session **a, engine_session **b)
{
    engine *e = open_model();
    REQUIRE(e, "no model");
    char err[512];
    *a = *b = NULL;
    REQUIRE(engine_session_new(a, e, n_ctx, err, sizeof err) == 0, "%s", err);
    REQUIRE(engine_session_new(b, e, n_ctx, err, sizeof err) == 0, "%s", err);
    return e;
}

static int tokenize(engine *e, const char *text, int32_t *ids, int cap)
{
    return engine_tokenize(e, text, strlen(text), engine_get_info(e)->add_bos, 0, ids, cap);
}

/* A session answering a prompt that starts with everything its cache holds
 * (the last prompt and what it generated) prefills only the new tokens, and
 * continues exactly as a fresh session given the whole prompt does. */
static void test_prefix_reused(void)
{
    engine_session *s, *fresh;
    engine *e = open_two(0, &s, &fresh);
    int32_t prompt[256], gen[N_GEN], longer[256], want[N_GEN], got[N_GEN];
    int n = tokenize(e, story, prompt, 256);
    REQUIRE(n > 4 && n < 100, "%d tokens", n);
    engine_stats st;
    int n_gen = run(s, prompt, n, N_GEN, gen, &st);
    REQUIRE(n_gen == N_GEN, "generated %d (%s)", n_gen, st.stop_reason);
    EXPECT(st.cached_tokens == 0 && st.prompt_tokens == n, "first call: %d cached of %d", st.cached_tokens,
           st.prompt_tokens);
    /* The session's cache holds the prompt and all generated tokens but the last. */
    EXPECT(engine_session_n_past(s) == n + N_GEN - 1, "n_past %d, want %d", engine_session_n_past(s),
           n + N_GEN - 1);

    /* The next prompt: the old one, 10 of its generated tokens, then 3 of another text's. */
    memcpy(longer, prompt, (size_t)n * sizeof *prompt);
    memcpy(longer + n, gen, 10 * sizeof *gen);
    int32_t extra[64];
    int n_extra = tokenize(e, other, extra, 64);
    REQUIRE(n_extra > 4, "%d tokens", n_extra);
    memcpy(longer + n + 10, extra + 1, 3 * sizeof *extra); /* past BOS */
    int n_longer = n + 13;
    run(fresh, longer, n_longer, N_GEN, want, &st);
    EXPECT(st.cached_tokens == 0, "fresh session reused %d tokens", st.cached_tokens);
    int n_got = run(s, longer, n_longer, N_GEN, got, &st);
    EXPECT(st.cached_tokens == n + 10, "reused %d tokens, want %d", st.cached_tokens, n + 10);
    EXPECT(st.prompt_tokens == n_longer, "prompt_tokens %d", st.prompt_tokens);
    EXPECT(n_got == N_GEN, "generated %d", n_got);
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i]) {
            EXPECT(0, "token %d: %d with the reused prefix, %d from scratch", i, got[i], want[i]);
            break;
        }

    /* The same prompt again: everything but its last token is reused. */
    run(s, longer, n_longer, 4, got, &st);
    EXPECT(st.cached_tokens == n_longer - 1, "same prompt: reused %d of %d", st.cached_tokens, n_longer);
    /* A prompt sharing nothing (another first token) prefills from scratch. */
    run(s, extra + 1, n_extra - 1, 4, got, &st);
    EXPECT(st.cached_tokens == 0, "unrelated prompt: reused %d", st.cached_tokens);
    engine_session_free(s);
    engine_session_free(fresh);
    engine_close(e);
}

typedef struct {
    int32_t ids[N_GEN];
    int n;
} collected;

static int collect(int32_t id, const char *text, void *user)
{
    (void)text;
    collected *c = user;
    if (id >= 0 && c->n < N_GEN) c->ids[c->n++] = id;
    return 0;
}

/* Two sessions of one model, stepped alternately (what the server's scheduler
 * does), each generate exactly what they generate alone. */
static void test_sessions_interleave(void)
{
    engine_session *a, *b;
    engine *e = open_two(256, &a, &b);
    char err[512];
    REQUIRE(engine_session_n_ctx(a) == 256, "n_ctx %d", engine_session_n_ctx(a));
    int32_t pa[128], pb[128], want_a[N_GEN], want_b[N_GEN];
    int na = tokenize(e, story, pa, 128), nb = tokenize(e, other, pb, 128);
    engine_stats st;
    int n_want_a = run(a, pa, na, N_GEN, want_a, &st);
    int n_want_b = run(b, pb, nb, N_GEN, want_b, &st);
    engine_reset(a);
    engine_reset(b);

    engine_sampling sp = greedy(N_GEN);
    collected ca = {0}, cb = {0};
    REQUIRE(engine_start(a, pa, na, &sp, err, sizeof err) == 0, "%s", err);
    REQUIRE(engine_start(b, pb, nb, &sp, err, sizeof err) == 0, "%s", err);
    int ra = 1, rb = 1, steps = 0;
    while ((ra == 1 || rb == 1) && steps++ < 4 * N_GEN) {
        if (ra == 1) ra = engine_step(a, collect, &ca, err, sizeof err);
        if (rb == 1) rb = engine_step(b, collect, &cb, err, sizeof err);
    }
    EXPECT(ra == 0 && rb == 0, "steps ended %d %d: %s", ra, rb, err);
    EXPECT(ca.n == n_want_a && memcmp(ca.ids, want_a, sizeof *want_a * (size_t)ca.n) == 0,
           "session a: %d tokens, differ from its run alone", ca.n);
    EXPECT(cb.n == n_want_b && memcmp(cb.ids, want_b, sizeof *want_b * (size_t)cb.n) == 0,
           "session b: %d tokens, differ from its run alone", cb.n);
    EXPECT(engine_step(a, collect, &ca, err, sizeof err) == 0, "a finished generation steps again");
    engine_session_free(a);
    engine_session_free(b);
    engine_close(e);
}

/* A generation abandoned after a few steps (a client that left) leaves the
 * session usable: the next one reuses what was evaluated and is correct. */
static void test_abandoned_generation(void)
{
    engine_session *s, *fresh;
    engine *e = open_two(0, &s, &fresh);
    char err[512];
    int32_t p[128], want[N_GEN], got[N_GEN];
    int n = tokenize(e, story, p, 128);
    engine_sampling sp = greedy(N_GEN);
    collected c = {0};
    REQUIRE(engine_start(s, p, n, &sp, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 5; i++) REQUIRE(engine_step(s, collect, &c, err, sizeof err) == 1, "step %d: %s", i, err);
    engine_stats st;
    run(fresh, p, n, N_GEN, want, &st);
    int n_got = run(s, p, n, N_GEN, got, &st);
    EXPECT(st.cached_tokens == n - 1, "reused %d of %d", st.cached_tokens, n);
    EXPECT(n_got == st.generated_tokens && memcmp(got, want, sizeof *got * (size_t)n_got) == 0,
           "after an abandoned generation the tokens differ");
    engine_session_free(s);
    engine_session_free(fresh);
    engine_close(e);
}

static void test_errors(void)
{
    engine *e = open_model();
    REQUIRE(e, "no model");
    char err[512] = "";
    engine_session *s = NULL;
    REQUIRE(engine_session_new(&s, e, 32, err, sizeof err) == 0, "%s", err);
    engine_sampling sp = greedy(4);
    int32_t ids[64] = {1};
    EXPECT(engine_start(s, ids, 0, &sp, err, sizeof err) < 0 && strstr(err, "empty"), "empty prompt: '%s'", err);
    EXPECT(engine_start(s, ids, 40, &sp, err, sizeof err) < 0 && strstr(err, "does not fit"), "too long: '%s'", err);
    EXPECT(engine_step(s, NULL, NULL, err, sizeof err) < 0, "step without a start succeeded");
    /* A full context stops generation with its reason, never an error. */
    engine_stats st;
    for (int i = 1; i < 30; i++) ids[i] = 100 + i;
    sp.max_tokens = 100;
    EXPECT(engine_generate(s, ids, 30, &sp, NULL, NULL, NULL, 0, &st, err, sizeof err) == 0, "%s", err);
    EXPECT(!strcmp(st.stop_reason, "context_full") || !strcmp(st.stop_reason, "eos"), "stop %s", st.stop_reason);
    engine_session_free(s);

    engine_params vocab = {.vocab_only = 1};
    engine *v = NULL;
    REQUIRE(engine_open(&v, test_data_path(MODEL), &vocab, err, sizeof err) == 0, "%s", err);
    EXPECT(engine_session_new(&s, v, 0, err, sizeof err) < 0 && strstr(err, "vocabulary-only"), "'%s'", err);
    engine_close(v);
    engine_close(e);
}

int main(void)
{
    TEST_RUN(test_prefix_reused);
    TEST_RUN(test_sessions_interleave);
    TEST_RUN(test_abandoned_generation);
    TEST_RUN(test_errors);
    return test_exit_code();
}
