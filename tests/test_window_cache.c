/*
 * test_window_cache.c - the ring KV cache of sliding-window layers, as a session sees it.
 *
 * tiny-gemma3-F16 slides 5 of its 6 layers over a 16-position window. With
 * 16-token prefill chunks a sliding layer keeps a ring of 16 + 16 - 1 = 31
 * positions, so after ~70 positions most of what it once held is gone. A
 * session reusing the prefix its cache shares with the next prompt
 * (model_state_rewind) may keep it only when the window before the cut is
 * still in the ring; either way it must generate exactly what a fresh session
 * given the whole prompt generates. And the ring is what keeps memory flat: a
 * longer context adds rows to the global layer's cache only.
 */
#include <string.h>

#include "model.h"
#include "engine.h"
#include "test.h"
#include "greedy.h"

#define MODEL "models/tiny-gemma3-F16.gguf"
#define STEP_BATCH 16 /* ring: window 16 + 16 - 1 = 31 positions */
#define N_GEN 40

static const char *text = "<start_of_turn>user\nWhat does this change break?\n+    free(item);\n"
                          "+    return item->next;<end_of_turn>\n<start_of_turn>model\n";

/* What a fresh session generates for prompt, against what session s generates reusing its cache. */
static void expect_same_as_fresh(engine *e, engine_session *s, const int32_t *prompt, int n, int want_cached,
                                 const char *what)
{
    char err[512];
    engine_session *fresh = NULL;
    REQUIRE(engine_session_new(&fresh, e, 0, err, sizeof err) == 0, "%s", err);
    int32_t want[8], got[8];
    engine_stats st;
    int n_want = run(fresh, prompt, n, 8, want, &st);
    int n_got = run(s, prompt, n, 8, got, &st);
    EXPECT(st.cached_tokens == want_cached, "%s: reused %d positions, want %d", what, st.cached_tokens, want_cached);
    EXPECT(n_got == n_want && memcmp(got, want, sizeof *got * (size_t)n_got) == 0,
           "%s: generated other tokens than a fresh session", what);
    engine_session_free(fresh);
}

static void test_rewind_keeps_only_what_the_ring_holds(void)
{
    char err[512];
    engine *e = NULL;
    engine_params p = {.n_threads = 2, .n_batch = STEP_BATCH};
    REQUIRE(engine_open(&e, test_data_path(MODEL), &p, err, sizeof err) == 0, "%s", err);
    engine_session *s = NULL;
    REQUIRE(engine_session_new(&s, e, 0, err, sizeof err) == 0, "%s", err);
    int32_t prompt[256], gen[N_GEN], next[256];
    int n = engine_tokenize(e, text, strlen(text), engine_get_info(e)->add_bos, 1, prompt, 200);
    REQUIRE(n > 20 && n < 100, "%d tokens", n);
    engine_stats st;
    int n_gen = run(s, prompt, n, N_GEN, gen, &st);
    REQUIRE(n_gen == N_GEN, "generated %d (%s)", n_gen, st.stop_reason);
    int held = n + N_GEN - 1; /* the cache holds the prompt and all generated tokens but the last */
    memcpy(next, prompt, (size_t)n * sizeof *prompt);
    memcpy(next + n, gen, (size_t)N_GEN * sizeof *gen);

    /* cut 5 positions back: the window before the cut is within the last 31 written */
    expect_same_as_fresh(e, s, next, held - 5 + 1, held - 5, "cut near the end");
    /* now the cache holds held - 5 + 8 - 1 positions; cutting 30 back needs positions
     * the ring has overwritten, so nothing is reused */
    int holds = held - 5 + 8 - 1;
    next[holds - 30] ^= 1; /* the prompts part 30 positions back */
    expect_same_as_fresh(e, s, next, holds - 30 + 3, 0, "cut past the ring");
    engine_session_free(s);
    engine_close(e);
}

static void test_sliding_layers_do_not_grow_with_the_context(void)
{
    char err[512];
    gguf_file *f = NULL;
    REQUIRE(gguf_open(&f, test_data_path(MODEL), err, sizeof err) == 0, "%s", err);
    model m;
    REQUIRE(model_load(&m, f, err, sizeof err) == 0, "%s", err);
    thread_pool *pool = threads_new(1);
    model_state *small = NULL, *big = NULL;
    REQUIRE(pool && model_state_new(&small, &m, 256, STEP_BATCH, pool, err, sizeof err) == 0, "%s", err);
    REQUIRE(model_state_new(&big, &m, 4096, STEP_BATCH, pool, err, sizeof err) == 0, "%s", err);
    int global = 0;
    for (int il = 0; il < m.n_layer; il++) global += m.layers[il].window == 0;
    EXPECT(global == 1 && m.n_layer == 6, "%d global layers of %d, want 1 of 6", global, m.n_layer);
    /* K and V, F16: what 3840 more positions cost the global layers, and nothing more */
    uint64_t per_position = (uint64_t)global * m.n_head_kv * m.head_dim * 2 * 2;
    uint64_t grown = model_state_kv_bytes(big) - model_state_kv_bytes(small);
    EXPECT(grown == per_position * (4096 - 256), "4096 positions take %llu bytes more than 256, want %llu",
           (unsigned long long)grown, (unsigned long long)(per_position * (4096 - 256)));
    model_state_free(small);
    model_state_free(big);
    threads_free(pool);
    model_free(&m);
    gguf_close(f);
}

int main(void)
{
    TEST_RUN(test_rewind_keeps_only_what_the_ring_holds);
    TEST_RUN(test_sliding_layers_do_not_grow_with_the_context);
    return test_exit_code();
}
