/*
 * sampler.c - turn a row of logits into the next token id.
 *
 * temperature <= 0 is greedy: the arg-max, the lowest id on ties, nothing
 * else applied. Otherwise the steps are, in order:
 *   1. repetition penalty on the distinct ids among the last repeat_last_n
 *      accepted ones (a positive logit is divided by the penalty, a negative
 *      one multiplied, so the token always becomes less likely);
 *   2. top-k: a size-k min-heap over the vocabulary keeps the k best logits
 *      in one pass (no sort of 150k entries);
 *   3. softmax with temperature over the survivors (unnormalised weights plus
 *      their total, so nothing is divided until the draw);
 *   4. top-p: the smallest set of the most probable tokens whose mass is at
 *      least top_p (never empty), found without sorting: one pass builds a
 *      mass histogram over the weights' float bit patterns (buckets 2^(1/16)
 *      wide), which tells which bucket the cut falls in; everything above it
 *      is kept and only that bucket goes through a weighted quickselect;
 *   5. min-p: drop tokens whose probability is below min_p times the largest;
 *   6. a draw from the remaining weights with xoshiro256** (seeded through
 *      splitmix64), so one seed always gives the same ids.
 * When only min-p filters (no top-k, no top-p), tokens that min-p will drop
 * are skipped before their exp() is computed.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MASS_BUCKETS 2048 /* top-p histogram: weights in [0, 1] by their top 13 bits */

typedef struct {
    float value; /* a logit, then an unnormalised probability */
    int32_t id;
} candidate;

struct sampler {
    engine_sampling params;
    int n_vocab;
    uint64_t rng[4];
    candidate *cand; /* n_vocab entries of scratch */
    double *bucket_mass; /* MASS_BUCKETS entries of scratch for top-p */
    int32_t *recent; /* ring buffer of the last repeat_last_n accepted ids */
    int32_t *recent_sorted;
    int recent_cap, recent_count, recent_next;
};

/* ---- random numbers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double random_unit(sampler *s) { return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53; }

/* ---- life cycle -------------------------------------------------------- */

sampler *sampler_new(const engine_sampling *params, int n_vocab)
{
    if (!params || n_vocab <= 0) return NULL;
    sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->params = *params;
    s->n_vocab = n_vocab;
    uint64_t seed_state = params->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed_state);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->bucket_mass = malloc(MASS_BUCKETS * sizeof *s->bucket_mass);
    s->recent_cap = params->repeat_last_n > 0 && params->repeat_penalty != 1.0f ? params->repeat_last_n : 0;
    if (s->recent_cap) {
        s->recent = malloc((size_t)s->recent_cap * sizeof *s->recent);
        s->recent_sorted = malloc((size_t)s->recent_cap * sizeof *s->recent_sorted);
    }
    if (!s->cand || !s->bucket_mass || (s->recent_cap && (!s->recent || !s->recent_sorted))) {
        sampler_free(s);
        return NULL;
    }
    return s;
}

void sampler_free(sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->bucket_mass);
    free(s->recent);
    free(s->recent_sorted);
    free(s);
}

void sampler_accept(sampler *s, int32_t id)
{
    if (!s || !s->recent_cap) return;
    s->recent[s->recent_next] = id;
    s->recent_next = (s->recent_next + 1) % s->recent_cap;
    if (s->recent_count < s->recent_cap) s->recent_count++;
}

/* ---- the steps --------------------------------------------------------- */

/* Largest value. Sixteen independent running maxima keep the loop free of a
 * long dependency chain (the compiler may vectorise it); NaN is never chosen. */
static float max_value(const float *x, int n)
{
    float lane[16];
    for (int j = 0; j < 16; j++) lane[j] = -INFINITY;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
    float max = -INFINITY;
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    for (int j = 0; j < 16; j++) max = lane[j] > max ? lane[j] : max;
    return max;
}

/* The lowest id holding the largest logit (0 when every logit is NaN). */
static int32_t argmax(const float *logits, int n)
{
    float max = max_value(logits, n);
    for (int i = 0; i < n; i++)
        if (logits[i] == max) return i;
    return 0;
}

static int compare_int32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Penalises each distinct recently accepted id once. */
static void apply_repetition_penalty(sampler *s, float *logits)
{
    if (!s->recent_count) return;
    float penalty = s->params.repeat_penalty;
    memcpy(s->recent_sorted, s->recent, (size_t)s->recent_count * sizeof *s->recent);
    qsort(s->recent_sorted, (size_t)s->recent_count, sizeof *s->recent_sorted, compare_int32);
    for (int i = 0; i < s->recent_count; i++) {
        int32_t id = s->recent_sorted[i];
        if ((i > 0 && id == s->recent_sorted[i - 1]) || id < 0 || id >= s->n_vocab) continue;
        logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
    }
}

/* True when a ranks below b: smaller logit, or the same logit and a larger id. */
static inline int ranks_below(candidate a, candidate b)
{
    return a.value < b.value || (a.value == b.value && a.id > b.id);
}

static void heap_sift_down(candidate *heap, int n, int i)
{
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_below(heap[l], heap[worst])) worst = l;
        if (r < n && ranks_below(heap[r], heap[worst])) worst = r;
        if (worst == i) return;
        candidate t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* Puts the k best logits into cand (in heap order, the worst at 0); returns k. */
static int select_top_k(candidate *cand, const float *logits, int n_vocab, int k)
{
    for (int i = 0; i < k; i++) cand[i] = (candidate){logits[i], i};
    for (int i = k / 2 - 1; i >= 0; i--) heap_sift_down(cand, k, i);
    for (int i = k; i < n_vocab; i++) {
        candidate c = {logits[i], i};
        if (ranks_below(cand[0], c)) {
            cand[0] = c;
            heap_sift_down(cand, k, 0);
        }
    }
    return k;
}

/* Copies every token whose logit is at least `floor` into cand; returns the count. */
static int collect_above(candidate *cand, const float *logits, int n_vocab, float floor)
{
    int n = 0;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] >= floor) cand[n++] = (candidate){logits[i], i};
    return n;
}

/* Sum of the weights, in four independent chains so the adds overlap. */
static double sum_weights(const candidate *c, int n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += c[i].value;
        s1 += c[i + 1].value;
        s2 += c[i + 2].value;
        s3 += c[i + 3].value;
    }
    for (; i < n; i++) s0 += c[i].value;
    return (s0 + s1) + (s2 + s3);
}

/* Replaces each logit by exp((logit - max) / T), so the best weighs 1; returns the total. */
static double softmax_weights(candidate *cand, int n, float max, float temperature)
{
    float inv_t = 1.0f / temperature;
    for (int i = 0; i < n; i++) cand[i].value = expf((cand[i].value - max) * inv_t);
    return sum_weights(cand, n);
}

static inline void swap_candidates(candidate *a, candidate *b)
{
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Sorts a small range by descending weight (insertion sort). */
static void sort_descending(candidate *a, int n)
{
    for (int i = 1; i < n; i++) {
        candidate c = a[i];
        int j = i;
        for (; j > 0 && a[j - 1].value < c.value; j--) a[j] = a[j - 1];
        a[j] = c;
    }
}

static float median_of_three(float a, float b, float c)
{
    if (a > b) { float t = a; a = b; b = t; }
    if (b > c) b = c;
    return a > b ? a : b;
}

/*
 * Moves the smallest set of heaviest candidates whose weights sum to at least
 * `target` to the front of a[0..n) and returns its size (at least one when
 * must_take_one). A quickselect on mass: partition around a pivot, then
 * either the answer lies in the heavier part, or that part is taken whole.
 * Invariant: a[0..lo) is taken with weight `taken`; the answer lies in [lo, hi).
 */
static int select_by_mass(candidate *a, int n, double target, int must_take_one)
{
    int lo = 0, hi = n;
    double taken = 0;
    while (hi - lo > 16) {
        float pivot = median_of_three(a[lo].value, a[lo + (hi - lo) / 2].value, a[hi - 1].value);
        int greater_end = lo, i = lo, less_start = hi; /* [lo,greater_end) > pivot, [less_start,hi) < pivot */
        double greater_mass = 0;
        while (i < less_start) {
            if (a[i].value > pivot) {
                greater_mass += a[i].value;
                swap_candidates(&a[i++], &a[greater_end++]);
            } else if (a[i].value < pivot) {
                swap_candidates(&a[i], &a[--less_start]);
            } else {
                i++;
            }
        }
        if (greater_end > lo && taken + greater_mass >= target) {
            hi = greater_end;
            continue;
        }
        taken += greater_mass;
        int n_equal = less_start - greater_end;
        double need = target - taken;
        if ((double)n_equal * pivot >= need) {
            int count = pivot > 0 ? (int)ceil(need / pivot) : n_equal;
            if (count < 1 && (must_take_one || greater_end == 0)) count = 1;
            if (count < 0) count = 0;
            if (count > n_equal) count = n_equal;
            return greater_end + count;
        }
        taken += (double)n_equal * pivot;
        lo = less_start;
    }
    sort_descending(a + lo, hi - lo);
    int end = lo;
    while (end < hi && ((end == 0 && must_take_one) || taken < target)) taken += a[end++].value;
    return end;
}

/* Histogram bucket of a weight in [0, 1]: the top bits of its IEEE pattern
 * (exponent and 4 mantissa bits), which order like the values themselves. */
static inline unsigned weight_bucket(float w)
{
    uint32_t bits;
    memcpy(&bits, &w, sizeof bits);
    unsigned b = bits >> 19;
    return b < MASS_BUCKETS ? b : MASS_BUCKETS - 1;
}

/* Top-p over n candidates with weights in [0, 1]; returns the new count.
 * One pass builds a mass histogram over buckets 2^(1/16) wide; everything
 * above the bucket where the cumulative mass crosses the target is kept
 * whole, and only that bucket goes through the exact selection. */
static int apply_top_p(sampler *s, candidate *cand, int n, double total, float top_p)
{
    double target = (double)top_p * total;
    double *mass = s->bucket_mass;
    memset(mass, 0, MASS_BUCKETS * sizeof *mass);
    for (int i = 0; i < n; i++) mass[weight_bucket(cand[i].value)] += cand[i].value;
    int crossing = MASS_BUCKETS - 1;
    double above = 0;
    while (crossing > 0 && above + mass[crossing] < target) above += mass[crossing--];
    /* [0, n_above) = buckets above the crossing one, then the crossing bucket */
    int n_above = 0;
    for (int i = 0; i < n; i++)
        if ((int)weight_bucket(cand[i].value) > crossing) swap_candidates(&cand[i], &cand[n_above++]);
    int n_cross = n_above;
    for (int i = n_above; i < n; i++)
        if ((int)weight_bucket(cand[i].value) == crossing) swap_candidates(&cand[i], &cand[n_cross++]);
    if (n_above > 0 && above >= target) return n_above; /* only by rounding */
    return n_above + select_by_mass(cand + n_above, n_cross - n_above, target - above, n_above == 0);
}

/* Keeps candidates with weight >= min_p * max; returns the new count. */
static int apply_min_p(candidate *cand, int n, float min_p)
{
    float max = 0;
    for (int i = 0; i < n; i++)
        if (cand[i].value > max) max = cand[i].value;
    float floor = min_p * max;
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (cand[i].value >= floor) cand[kept++] = cand[i];
    return kept;
}

/* Draws one candidate with probability weight / total. Whole blocks are
 * skipped by their sums, so the serial cumulative walk is only 64 long. */
static int32_t draw(sampler *s, const candidate *cand, int n)
{
    enum { BLOCK = 64 };
    double r = random_unit(s) * sum_weights(cand, n);
    double acc = 0;
    for (int start = 0; start < n; start += BLOCK) {
        int len = n - start < BLOCK ? n - start : BLOCK;
        double block = sum_weights(cand + start, len);
        if (acc + block <= r) {
            acc += block;
            continue;
        }
        for (int i = start; i < start + len; i++) {
            acc += cand[i].value;
            if (r < acc) return cand[i].id;
        }
    }
    for (int i = n - 1; i > 0; i--) /* rounding left r at the very end: last nonzero weight */
        if (cand[i].value > 0) return cand[i].id;
    return cand[0].id;
}

int32_t sampler_sample(sampler *s, float *logits)
{
    const engine_sampling *p = &s->params;
    if (s->recent_cap) apply_repetition_penalty(s, logits); /* greedy honours it too, as users expect */
    if (p->temperature <= 0) return argmax(logits, s->n_vocab);

    float max_logit = max_value(logits, s->n_vocab);
    if (!isfinite(max_logit)) return argmax(logits, s->n_vocab);
    int use_top_p = p->top_p < 1.0f, use_min_p = p->min_p > 0.0f;
    int n;
    if (p->top_k > 0 && p->top_k < s->n_vocab) {
        n = select_top_k(s->cand, logits, s->n_vocab, p->top_k);
    } else if (use_min_p && !use_top_p && p->min_p <= 1.0f) {
        /* exp((l - max) / T) < min_p  <=>  l < max + T * log(min_p) */
        n = collect_above(s->cand, logits, s->n_vocab, max_logit + p->temperature * logf(p->min_p));
    } else {
        n = collect_above(s->cand, logits, s->n_vocab, -INFINITY);
    }
    if (n == 0) return argmax(logits, s->n_vocab);
    double total = softmax_weights(s->cand, n, max_logit, p->temperature);
    if (use_top_p) n = apply_top_p(s, s->cand, n, total, p->top_p);
    if (use_min_p) n = apply_min_p(s->cand, n, p->min_p);
    return draw(s, s->cand, n);
}
