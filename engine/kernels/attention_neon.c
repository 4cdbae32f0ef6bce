/*
 * attention_neon.c - attention over the F16 KV cache, AArch64 NEON.
 *
 * How it works. Two register-blocked kernels do the arithmetic, and both the
 * decode steps of kernels.h and attention_block are drivers over them:
 *   - score tiles: up to ROW_GROUP query rows x 4 keys. Each key row is
 *     widened from f16 four lanes at a time (FCVTL) and met by every row of
 *     the group, one 4-lane accumulator per (row, key); the four keys'
 *     accumulators are then summed across lanes together (two FADDP), so a
 *     score is (l0 + l1) + (l2 + l3) of its own accumulator whatever tile,
 *     row group or thread computed it.
 *   - value tiles: up to ROW_GROUP rows x 4 vectors of head columns, added
 *     into `out`: for every key in order, each column gets p[r][j] v_j[c]
 *     with one fused multiply-add. A column's chain of operations is the same
 *     in every tile shape, so how columns are split (by tile, by thread)
 *     never changes a bit.
 * Both drivers go over the keys in tiles of KEY_TILE, row groups inside: the
 * K (then V) rows of a tile are read from memory once and serve every row of
 * the block (the GQA heads of a KV head, times tokens in prefill) from L1.
 * The softmax between them is the reference's: max, e^(s - max) summed in
 * double every 64 keys, probabilities rounded to f16 (FCVTN, ties to even);
 * its exp is simd_neon.h's, the x86 one lane for lane (~2 ulp), which is
 * why a probability can land one f16 step from the reference's, what
 * tests/test_attention.c allows for every SIMD level.
 *
 * attention_block: the scores of every row for keys up to its group's largest
 * limit, each row's softmax over its own keys (the rest of its scratch row
 * zeroed), then P x V with the same limits: exactly attention_ref per row, in
 * one pass over K and one over V.
 *
 * Why this shape and not the AVX2 one (K tiles transposed to f32 in a buffer,
 * outer products): on AArch64 widening f16 costs one instruction per four
 * values, as cheap as the load, so the tiles read the cache directly; no
 * buffer means no bound on the head size, and one score kernel and one value
 * kernel serve decode and prefill alike. Heads whose size is not a multiple
 * of 4 go to the scalar reference.
 *
 * How to extend it: a wider register block is a new (rows, vectors) pair in
 * score_rows / value_rows (NEON has 32 vector registers; a block uses
 * rows x 4 accumulators plus its loads). Anything that changes a lane's
 * order of operations must stay the same for every tile shape, or the
 * split-equals-whole checks in tests/test_attention.c fail. On other
 * architectures the installer is empty.
 */
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "simd_neon.h"

enum {
    KEY_TILE = 64, /* keys whose K or V rows every row group uses while they are in L1 */
    ROW_GROUP = 4, /* query rows per register block (16 accumulators) */
    TILE_KEYS = 4, /* keys per score block */
    TILE_VECS = 4  /* head vectors (of 4 columns) per value block */
};

/* the largest of limits[0, rows) (at least 0); n when there are no limits */
static int group_keys(const int *limits, int rows, int n)
{
    if (!limits) return n;
    int m = 0;
    for (int r = 0; r < rows; r++)
        if (limits[r] > m) m = limits[r];
    return m;
}

/* The drivers' walk: key tile j0 (of n keys), row group r0 (of n_q rows). Sets *rows to the
 * group's rows and returns how many keys of the tile the group needs (<= 0: none), the group
 * stopping at the largest of its rows' limits (NULL: every row sees n keys). */
static int tile_keys(const int *limits, int n_q, int n, int r0, int j0, int *rows)
{
    *rows = n_q - r0 < ROW_GROUP ? n_q - r0 : ROW_GROUP;
    const int keys = group_keys(limits ? limits + r0 : NULL, *rows, n) - j0;
    return keys < KEY_TILE ? keys : KEY_TILE;
}

/* scores[r][j] = scale * q_r . k_j for `rows` rows and the nk (<= TILE_KEYS) keys at k. */
NEON_INLINE void score_tile(const int rows, int nk, int hd, const float *q, const f16_t *k, size_t kv_stride,
                            float scale, float *s, size_t s_stride)
{
    float32x4_t acc[ROW_GROUP][TILE_KEYS];
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int j = 0; j < TILE_KEYS; j++) acc[r][j] = vdupq_n_f32(0);
    for (int d = 0; d < hd; d += 4) {
        float32x4_t kv[TILE_KEYS];
#pragma GCC unroll 4
        for (int j = 0; j < TILE_KEYS; j++)
            kv[j] = j < nk ? load_f16x4(k + (size_t)j * kv_stride + d) : vdupq_n_f32(0);
#pragma GCC unroll 4
        for (int r = 0; r < rows; r++) {
            const float32x4_t qv = vld1q_f32(q + (size_t)r * hd + d);
#pragma GCC unroll 4
            for (int j = 0; j < TILE_KEYS; j++) acc[r][j] = vfmaq_f32(acc[r][j], qv, kv[j]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++) {
        /* lane j: (l0 + l1) + (l2 + l3) of key j's accumulator */
        const float32x4_t sums = vpaddq_f32(vpaddq_f32(acc[r][0], acc[r][1]), vpaddq_f32(acc[r][2], acc[r][3]));
        const float32x4_t x = vmulq_n_f32(sums, scale);
        float *dst = s + (size_t)r * s_stride;
        if (nk == TILE_KEYS) {
            vst1q_f32(dst, x);
        } else {
            float part[TILE_KEYS];
            vst1q_f32(part, x);
            memcpy(dst, part, (size_t)nk * sizeof *part);
        }
    }
}

/* score_tile with the row count a constant (1..ROW_GROUP), and nk too for whole blocks */
NEON_INLINE void score_block(const int rows, int nk, int hd, const float *q, const f16_t *k, size_t kv_stride,
                             float scale, float *s, size_t s_stride)
{
    if (nk == TILE_KEYS) score_tile(rows, TILE_KEYS, hd, q, k, kv_stride, scale, s, s_stride);
    else score_tile(rows, nk, hd, q, k, kv_stride, scale, s, s_stride);
}

/* Scores of `rows` (<= ROW_GROUP) rows against the n keys at k. */
static void score_rows(int rows, int n, int hd, const float *q, const f16_t *k, size_t kv_stride, float scale,
                       float *s, size_t s_stride)
{
    for (int j = 0; j < n; j += TILE_KEYS) {
        const int nk = n - j < TILE_KEYS ? n - j : TILE_KEYS;
        const f16_t *kj = k + (size_t)j * kv_stride;
        switch (rows) {
        case 1: score_block(1, nk, hd, q, kj, kv_stride, scale, s + j, s_stride); break;
        case 2: score_block(2, nk, hd, q, kj, kv_stride, scale, s + j, s_stride); break;
        case 3: score_block(3, nk, hd, q, kj, kv_stride, scale, s + j, s_stride); break;
        default: score_block(ROW_GROUP, nk, hd, q, kj, kv_stride, scale, s + j, s_stride); break;
        }
    }
}

/* Scaled scores of n_q rows for keys [0, n); a row group stops at the largest of its
 * rows' limits (NULL: every row sees n keys). */
static void scores_by_tiles(int n_q, const int *limits, int n, int hd, const float *q, const f16_t *k,
                            size_t kv_stride, float scale, float *scores, size_t s_stride)
{
    for (int j0 = 0; j0 < n; j0 += KEY_TILE)
        for (int r0 = 0, rows; r0 < n_q; r0 += rows) {
            const int keys = tile_keys(limits, n_q, n, r0, j0, &rows);
            if (keys > 0)
                score_rows(rows, keys, hd, q + (size_t)r0 * hd, k + (size_t)j0 * kv_stride, kv_stride, scale,
                           scores + (size_t)r0 * s_stride + j0, s_stride);
        }
}

/* out[r][4c + lane] += sum_j p[r][j] v_j[4c + lane] for `rows` rows, `vecs` vectors of
 * columns and the n keys at v, keys in order. */
NEON_INLINE void value_tile(const int rows, const int vecs, int n, const float *p, size_t p_stride, const f16_t *v,
                            size_t kv_stride, float *out, size_t out_stride)
{
    float32x4_t acc[ROW_GROUP][TILE_VECS];
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++) acc[r][c] = vld1q_f32(out + (size_t)r * out_stride + 4 * c);
    for (int j = 0; j < n; j++) {
        const f16_t *vj = v + (size_t)j * kv_stride;
        float32x4_t vv[TILE_VECS];
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++) vv[c] = load_f16x4(vj + 4 * c);
#pragma GCC unroll 4
        for (int r = 0; r < rows; r++) {
            const float pj = p[(size_t)r * p_stride + j];
#pragma GCC unroll 4
            for (int c = 0; c < vecs; c++) acc[r][c] = vfmaq_n_f32(acc[r][c], vv[c], pj);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++) vst1q_f32(out + (size_t)r * out_stride + 4 * c, acc[r][c]);
}

/* value_tile with the row count a constant (1..ROW_GROUP) */
NEON_INLINE void value_block(int rows, const int vecs, int n, const float *p, size_t p_stride, const f16_t *v,
                             size_t kv_stride, float *out, size_t out_stride)
{
    switch (rows) {
    case 1: value_tile(1, vecs, n, p, p_stride, v, kv_stride, out, out_stride); break;
    case 2: value_tile(2, vecs, n, p, p_stride, v, kv_stride, out, out_stride); break;
    case 3: value_tile(3, vecs, n, p, p_stride, v, kv_stride, out, out_stride); break;
    default: value_tile(ROW_GROUP, vecs, n, p, p_stride, v, kv_stride, out, out_stride); break;
    }
}

/* out rows += P x V for `rows` (<= ROW_GROUP) rows, n keys and n_cols (a multiple of 4) columns. */
static void value_rows(int rows, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                       size_t kv_stride, float *out, size_t out_stride)
{
    int c = 0;
    for (; c + 4 * TILE_VECS <= n_cols; c += 4 * TILE_VECS)
        value_block(rows, TILE_VECS, n, p, p_stride, v + c, kv_stride, out + c, out_stride);
    for (; c < n_cols; c += 4) value_block(rows, 1, n, p, p_stride, v + c, kv_stride, out + c, out_stride);
}

/* out rows (n_cols columns, a multiple of 4) = P x V over keys [0, n); a row group stops at
 * the largest of its rows' limits (NULL: n), keys past a row's own limit having p = 0. */
static void values_by_tiles(int n_q, const int *limits, int n, int n_cols, const float *p, size_t p_stride,
                            const f16_t *v, size_t kv_stride, float *out, size_t out_stride)
{
    for (int r = 0; r < n_q; r++) memset(out + (size_t)r * out_stride, 0, (size_t)n_cols * sizeof *out);
    for (int j0 = 0; j0 < n; j0 += KEY_TILE)
        for (int r0 = 0, rows; r0 < n_q; r0 += rows) {
            const int keys = tile_keys(limits, n_q, n, r0, j0, &rows);
            if (keys > 0)
                value_rows(rows, keys, n_cols, p + (size_t)r0 * p_stride + j0, p_stride, v + (size_t)j0 * kv_stride,
                           kv_stride, out + (size_t)r0 * out_stride, out_stride);
        }
}

/* In place: s[j] = e^(s[j] - max) for j < n (n >= 1); returns 1 / the sum (summed in double
 * every 64 keys, as the reference sums in double). */
static float exp_and_inverse_sum(float *s, int n, float max)
{
    const float32x4_t vmax = vdupq_n_f32(max);
    double sum = 0;
    int j = 0;
    while (j + 4 <= n) {
        float32x4_t vsum = vdupq_n_f32(0);
        for (int end = j + 64 < n ? j + 64 : n; j + 4 <= end; j += 4) {
            const float32x4_t e = exp4(vsubq_f32(vld1q_f32(s + j), vmax));
            vst1q_f32(s + j, e);
            vsum = vaddq_f32(vsum, e);
        }
        sum += vaddvq_f32(vsum);
    }
    for (; j < n; j++) {
        s[j] = expf(s[j] - max);
        sum += s[j];
    }
    return (float)(1.0 / sum);
}

static void attention_softmax_neon(int n, float *s)
{
    if (n <= 0) return;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int j = 0;
    for (; j + 4 <= n; j += 4) vmax = vmaxnmq_f32(vmax, vld1q_f32(s + j)); /* NaN-skipping, as the reference's > */
    float max = vmaxnmvq_f32(vmax);
    for (; j < n; j++)
        if (s[j] > max) max = s[j];
    const float inv_sum = exp_and_inverse_sum(s, n, max);
    j = 0;
    for (; j + 4 <= n; j += 4) vst1q_f32(s + j, round_through_f16x4(vmulq_n_f32(vld1q_f32(s + j), inv_sum)));
    for (; j < n; j++) s[j] = f16_to_f32(f32_to_f16(s[j] * inv_sum));
}

static void attention_scores_neon(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride,
                                  float scale, float *scores, size_t s_stride)
{
    if (hd % 4) attention_scores_ref(n_q, n, hd, q, k, kv_stride, scale, scores, s_stride);
    else scores_by_tiles(n_q, NULL, n, hd, q, k, kv_stride, scale, scores, s_stride);
}

static void attention_values_neon(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                                  size_t kv_stride, float *out, size_t out_stride)
{
    if (n_cols % 4) attention_values_ref(n_q, n, n_cols, p, p_stride, v, kv_stride, out, out_stride);
    else values_by_tiles(n_q, NULL, n, n_cols, p, p_stride, v, kv_stride, out, out_stride);
}

static void attention_block_neon(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                                 size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    if (hd % 4) {
        attention_block_ref(n_q, n_keys, hd, q, k, v, kv_stride, scale, scores, scores_stride, out);
        return;
    }
    const int n_max = group_keys(n_keys, n_q, 0);
    scores_by_tiles(n_q, n_keys, n_max, hd, q, k, kv_stride, scale, scores, scores_stride);
    for (int r = 0; r < n_q; r++) {
        float *s = scores + (size_t)r * scores_stride;
        const int n = n_keys[r] > 0 ? n_keys[r] : 0;
        attention_softmax_neon(n, s);
        memset(s + n, 0, (size_t)(n_max - n) * sizeof *s); /* keys past this row's limit weigh nothing */
    }
    values_by_tiles(n_q, n_keys, n_max, hd, scores, scores_stride, v, kv_stride, out, (size_t)hd);
}

void kernels_install_attention_neon(kernel_table *t)
{
    t->attention_scores = attention_scores_neon;
    t->attention_softmax = attention_softmax_neon;
    t->attention_values = attention_values_neon;
    t->attention_block = attention_block_neon;
}

#else
void kernels_install_attention_neon(kernel_table *t) { (void)t; }
#endif
