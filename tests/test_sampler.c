/*
 * test_sampler.c - the sampler against distributions computed here by hand.
 *
 * Statistical tests draw 20000 times from a small fixed distribution and
 * compare frequencies with the exact probabilities, computed in this file
 * from the definitions (softmax of logit / T, nucleus by a full sort, min-p
 * relative to the top probability). With 20000 draws one standard deviation
 * of a frequency is at most 0.0035, so the 0.015 tolerance is over 4 sigma,
 * while each test's numbers are chosen so that the plausible wrong rules
 * (absolute min-p, nucleus cut one token short, double penalty for repeats,
 * dividing negative logits) move some frequency by 0.03 or more. The seed is
 * fixed, so the outcome is the same on every run.
 */
#include <math.h>

#include "../engine/sampler.h"
#include "test.h"

#define N_DRAWS 20000
#define TOLERANCE 0.015

static engine_sampling params_base(void)
{
    engine_sampling p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 1234;
    return p;
}

/* Deterministic pseudo-random floats in [-scale, scale) for test inputs. */
static float test_random(uint64_t *state, float scale)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((float)(*state >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * scale;
}

static int reference_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Draws n_draws ids (fresh copy of the logits each time) and counts them. */
static void draw_counts_n(const engine_sampling *p, const float *logits, int n_vocab, int *counts, int n_draws)
{
    sampler *s = sampler_new(p, n_vocab);
    REQUIRE(s, "sampler_new failed");
    float *row = malloc((size_t)n_vocab * sizeof *row);
    REQUIRE(row, "out of memory");
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n_draws; i++) {
        memcpy(row, logits, (size_t)n_vocab * sizeof *row);
        int32_t id = sampler_sample(s, row);
        if (id < 0 || id >= n_vocab) {
            EXPECT(0, "id %d out of range", id);
            break;
        }
        counts[id]++;
    }
    free(row);
    sampler_free(s);
}

static void draw_counts(const engine_sampling *p, const float *logits, int n_vocab, int *counts)
{
    draw_counts_n(p, logits, n_vocab, counts, N_DRAWS);
}

/* Checks frequencies against `want` (probabilities summing to 1). */
static void expect_frequencies(const int *counts, const double *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        double got = (double)counts[i] / N_DRAWS;
        if (want[i] == 0) EXPECT(counts[i] == 0, "%s: token %d drawn %d times, must never be", what, i, counts[i]);
        else EXPECT(fabs(got - want[i]) < TOLERANCE, "%s: token %d frequency %.4f, want %.4f", what, i, got, want[i]);
    }
}

static void softmax_reference(const float *logits, int n, double temperature, double *out)
{
    double max = logits[reference_argmax(logits, n)], total = 0;
    for (int i = 0; i < n; i++) total += out[i] = exp((logits[i] - max) / temperature);
    for (int i = 0; i < n; i++) out[i] /= total;
}

static void greedy_picks_argmax_lowest_on_ties(void)
{
    engine_sampling p = params_base();
    p.temperature = 0;
    sampler *s = sampler_new(&p, 8);
    REQUIRE(s, "sampler_new failed");
    float a[8] = {0.1f, -2, 3.5f, 0.7f, 3.4f, -1, 0, 2};
    EXPECT(sampler_sample(s, a) == 2, "argmax of a");
    float b[8] = {-5, -1, -3, -1, -2, -1, -9, -4};
    EXPECT(sampler_sample(s, b) == 1, "tie between 1, 3, 5 must pick 1");
    float c[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    EXPECT(sampler_sample(s, c) == 7, "argmax at the last id");
    sampler_free(s);
}

static void same_seed_same_ids_other_seed_differs(void)
{
    enum { V = 1000, STEPS = 300 };
    static float logits[V], row[V];
    uint64_t st = 7;
    for (int i = 0; i < V; i++) logits[i] = test_random(&st, 3.0f);
    int32_t ids[3][STEPS];
    uint64_t seeds[3] = {42, 42, 43};
    for (int run = 0; run < 3; run++) {
        engine_sampling p = params_base();
        p.seed = seeds[run];
        p.top_p = 0.95f;
        p.repeat_penalty = 1.1f;
        sampler *s = sampler_new(&p, V);
        REQUIRE(s, "sampler_new failed");
        for (int t = 0; t < STEPS; t++) {
            memcpy(row, logits, sizeof row);
            ids[run][t] = sampler_sample(s, row);
            sampler_accept(s, ids[run][t]);
        }
        sampler_free(s);
    }
    EXPECT(memcmp(ids[0], ids[1], sizeof ids[0]) == 0, "seed 42 twice gave different ids");
    int same = 0;
    for (int t = 0; t < STEPS; t++) same += ids[0][t] == ids[2][t];
    EXPECT(same < STEPS / 2, "seeds 42 and 43 agree on %d of %d ids", same, STEPS);
}

static void top_k_one_equals_greedy(void)
{
    enum { V = 5000 };
    static float logits[V];
    engine_sampling p = params_base();
    p.top_k = 1;
    p.temperature = 1.5f;
    sampler *s = sampler_new(&p, V);
    REQUIRE(s, "sampler_new failed");
    uint64_t st = 99;
    for (int row = 0; row < 50; row++) {
        for (int i = 0; i < V; i++) logits[i] = test_random(&st, 4.0f);
        if (row == 0) logits[4000] = logits[123] = 10; /* a tie: the lower id wins */
        int want = reference_argmax(logits, V);
        int got = sampler_sample(s, logits);
        if (got != want) {
            EXPECT(0, "row %d: top-k 1 picked %d, argmax is %d", row, got, want);
            break;
        }
    }
    sampler_free(s);
}

static void top_p_tiny_equals_greedy(void)
{
    enum { V = 5000 };
    static float logits[V];
    engine_sampling p = params_base();
    p.top_p = 1e-6f;
    sampler *s = sampler_new(&p, V);
    REQUIRE(s, "sampler_new failed");
    uint64_t st = 5;
    for (int row = 0; row < 50; row++) {
        for (int i = 0; i < V; i++) logits[i] = test_random(&st, row % 2 ? 0.5f : 6.0f);
        int want = reference_argmax(logits, V);
        int got = sampler_sample(s, logits);
        if (got != want) {
            EXPECT(0, "row %d: top-p 1e-6 picked %d, argmax is %d", row, got, want);
            break;
        }
    }
    sampler_free(s);
}

static void temperature_frequencies_match_softmax(void)
{
    float logits[4] = {1.0f, 2.0f, 0.5f, -1.0f};
    double temps[3] = {0.7, 1.0, 1.8};
    for (int t = 0; t < 3; t++) {
        engine_sampling p = params_base();
        p.temperature = (float)temps[t];
        int counts[4];
        double want[4];
        draw_counts(&p, logits, 4, counts);
        softmax_reference(logits, 4, temps[t], want);
        char what[32];
        snprintf(what, sizeof what, "T=%.1f", temps[t]);
        expect_frequencies(counts, want, 4, what);
    }
}

static void top_k_keeps_the_k_best(void)
{
    float logits[5] = {0.2f, 1.5f, -0.3f, 1.1f, 0.9f};
    engine_sampling p = params_base();
    p.top_k = 2;
    int counts[5];
    draw_counts(&p, logits, 5, counts);
    double e1 = exp(1.5), e3 = exp(1.1);
    double want[5] = {0, e1 / (e1 + e3), 0, e3 / (e1 + e3), 0};
    expect_frequencies(counts, want, 5, "top-k 2");
}

/* Probabilities 0.5, 0.3, 0.12, 0.05, 0.03 as logits. */
static void fixed_distribution(float *logits)
{
    const double probs[5] = {0.5, 0.3, 0.12, 0.05, 0.03};
    for (int i = 0; i < 5; i++) logits[i] = (float)log(probs[i]);
}

static void top_p_keeps_the_nucleus(void)
{
    float logits[5];
    fixed_distribution(logits);
    engine_sampling p = params_base();
    int counts[5];
    /* cumulative 0.5, 0.8, 0.92: p = 0.75 needs two tokens, p = 0.85 three */
    p.top_p = 0.75f;
    draw_counts(&p, logits, 5, counts);
    double want2[5] = {0.5 / 0.8, 0.3 / 0.8, 0, 0, 0};
    expect_frequencies(counts, want2, 5, "top-p 0.75");
    p.top_p = 0.85f;
    draw_counts(&p, logits, 5, counts);
    double want3[5] = {0.5 / 0.92, 0.3 / 0.92, 0.12 / 0.92, 0, 0};
    expect_frequencies(counts, want3, 5, "top-p 0.85");
}

static void min_p_removes_low_tokens(void)
{
    float logits[5];
    fixed_distribution(logits);
    engine_sampling p = params_base();
    int counts[5];
    /* min-p 0.2 keeps p >= 0.2 * 0.5 = 0.1: tokens 0, 1, 2 (an absolute 0.2 would drop token 2) */
    p.min_p = 0.2f;
    double want[5] = {0.5 / 0.92, 0.3 / 0.92, 0.12 / 0.92, 0, 0};
    draw_counts(&p, logits, 5, counts);
    expect_frequencies(counts, want, 5, "min-p 0.2");
    p.top_p = 0.99f; /* the nucleus is all five, then min-p drops two */
    draw_counts(&p, logits, 5, counts);
    expect_frequencies(counts, want, 5, "min-p 0.2 after top-p 0.99");
    p.top_p = 1.0f;
    p.top_k = 4;
    draw_counts(&p, logits, 5, counts);
    expect_frequencies(counts, want, 5, "min-p 0.2 after top-k 4");
}

static int compare_desc_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Weight of the smallest member of the reference nucleus: a full sort, then a cumulative walk. */
static double reference_nucleus_floor(const float *logits, int n, double top_p)
{
    double *probs = malloc((size_t)n * sizeof *probs);
    if (!probs) return 2;
    softmax_reference(logits, n, 1.0, probs);
    qsort(probs, (size_t)n, sizeof *probs, compare_desc_double);
    double cum = 0, floor = probs[0];
    for (int i = 0; i < n && cum < top_p; i++) {
        cum += probs[i];
        floor = probs[i];
    }
    free(probs);
    return floor;
}

static void top_p_matches_full_sort_on_flat_distribution(void)
{
    enum { V = 300 };
    float logits[V];
    uint64_t st = 11;
    for (int i = 0; i < V; i++) logits[i] = test_random(&st, 1.0f);
    double floor = reference_nucleus_floor(logits, V, 0.5);
    double probs[V];
    softmax_reference(logits, V, 1.0, probs);
    engine_sampling p = params_base();
    p.top_p = 0.5f;
    int counts[V];
    draw_counts(&p, logits, V, counts);
    int in_nucleus = 0, missing = 0, outside = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] >= floor) {
            in_nucleus++;
            missing += counts[i] == 0;
        } else {
            outside += counts[i];
        }
    }
    EXPECT(outside == 0, "%d draws outside the %d-token nucleus", outside, in_nucleus);
    EXPECT(missing == 0, "%d of the %d nucleus tokens never drawn", missing, in_nucleus);
    EXPECT(in_nucleus > 50, "test setup: nucleus of %d tokens is too small to test selection", in_nucleus);
}

static void top_p_large_vocab_long_tail(void)
{
    /* One strong token and a long tail below pmax/1000 that holds most of the mass. */
    enum { V = 50000 };
    static float logits[V];
    static int counts[V];
    logits[0] = 0;
    for (int i = 1; i < V; i++) logits[i] = -8.0f - (float)i * 1e-5f;
    double floor = reference_nucleus_floor(logits, V, 0.5);
    static double probs[V];
    softmax_reference(logits, V, 1.0, probs);
    double mass = 0;
    for (int i = 0; i < V; i++)
        if (probs[i] >= floor) mass += probs[i];
    engine_sampling p = params_base();
    p.top_p = 0.5f;
    enum { DRAWS = 2000 }; /* fewer draws: sd 0.011, so 0.045 is 4 sigma */
    draw_counts_n(&p, logits, V, counts, DRAWS);
    int outside = 0;
    for (int i = 0; i < V; i++)
        if (probs[i] < floor) outside += counts[i];
    EXPECT(outside == 0, "%d draws outside the nucleus", outside);
    /* the top token has ~0.21 of the nucleus; a sampler that ignored top-p would give it ~0.106 */
    double got0 = (double)counts[0] / DRAWS, want0 = probs[0] / mass;
    EXPECT(fabs(got0 - want0) < 0.045, "top token frequency %.4f, want %.4f", got0, want0);
}

static void repetition_penalty_lowers_repeated_tokens(void)
{
    float logits[4] = {1.0f, 1.2f, -0.5f, 0.3f};
    engine_sampling p = params_base();
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 8;
    sampler *s = sampler_new(&p, 4);
    REQUIRE(s, "sampler_new failed");
    sampler_accept(s, 0);
    sampler_accept(s, 0); /* a repeat is penalised once, not twice */
    sampler_accept(s, 2);
    int counts[4] = {0};
    for (int i = 0; i < N_DRAWS; i++) {
        float row[4];
        memcpy(row, logits, sizeof row);
        counts[sampler_sample(s, row)]++;
    }
    sampler_free(s);
    /* positive logits are divided by the penalty, negative ones multiplied */
    float penalised[4] = {1.0f / 1.5f, 1.2f, -0.5f * 1.5f, 0.3f};
    double want[4];
    softmax_reference(penalised, 4, 1.0, want);
    expect_frequencies(counts, want, 4, "penalty 1.5");
}

static void repetition_penalty_window(void)
{
    float logits[4] = {2.0f, 1.9f, 0.0f, -1.0f};
    engine_sampling p = params_base();
    p.top_k = 1; /* deterministic: the best logit after the penalty */
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 2;
    sampler *s = sampler_new(&p, 4);
    REQUIRE(s, "sampler_new failed");
    float row[4];
    memcpy(row, logits, sizeof row);
    EXPECT(sampler_sample(s, row) == 0, "no penalty yet: token 0");
    sampler_accept(s, 0);
    memcpy(row, logits, sizeof row);
    EXPECT(sampler_sample(s, row) == 1, "token 0 penalised to 1.33: token 1");
    sampler_accept(s, 1);
    sampler_accept(s, 3); /* window of 2 is now {1, 3}: token 0 is free again */
    memcpy(row, logits, sizeof row);
    EXPECT(sampler_sample(s, row) == 0, "token 0 left the window");
    sampler_free(s);
}

int main(void)
{
    TEST_RUN(greedy_picks_argmax_lowest_on_ties);
    TEST_RUN(same_seed_same_ids_other_seed_differs);
    TEST_RUN(top_k_one_equals_greedy);
    TEST_RUN(top_p_tiny_equals_greedy);
    TEST_RUN(temperature_frequencies_match_softmax);
    TEST_RUN(top_k_keeps_the_k_best);
    TEST_RUN(top_p_keeps_the_nucleus);
    TEST_RUN(min_p_removes_low_tokens);
    TEST_RUN(top_p_matches_full_sort_on_flat_distribution);
    TEST_RUN(top_p_large_vocab_long_tail);
    TEST_RUN(repetition_penalty_lowers_repeated_tokens);
    TEST_RUN(repetition_penalty_window);
    return test_exit_code();
}
