/*
 * greedy.h - greedy generation on a session, for the tests that compare what
 * sessions generate (test_session.c, test_window_cache.c). Include after test.h.
 */
#ifndef PRBOT_TESTS_GREEDY_H
#define PRBOT_TESTS_GREEDY_H

#include "engine.h"
#include "test.h"

static inline engine_sampling greedy(int max_tokens)
{
    engine_sampling sp;
    engine_sampling_defaults(&sp);
    sp.temperature = 0;
    sp.max_tokens = max_tokens;
    return sp;
}

/* Greedy continuation of prompt on session s into out; returns the count generated. */
static inline int run(engine_session *s, const int32_t *prompt, int n, int max_tokens, int32_t *out,
                      engine_stats *st)
{
    char err[512];
    engine_sampling sp = greedy(max_tokens);
    int rc = engine_generate(s, prompt, n, &sp, NULL, NULL, out, max_tokens, st, err, sizeof err);
    REQUIRE(rc == 0, "engine_generate: %s", err);
    return st->generated_tokens;
}

#endif
