/*
 * attention_avx2.c - attention over the F16 KV cache, AVX2 + F16C.
 *
 * Decode runs the three steps of kernels.h one call each, as the scalar
 * reference does: scores (8-wide f16->f32 dot products), softmax (a
 * vectorised exp: Cody-Waite range reduction to |r| <= ln2/2 and a degree-6
 * polynomial, ~2 ulp; each probability rounded through f16, what the
 * reference does), and the weighted sum of values, 64 columns at a time.
 *
 * `attention_block_avx2` serves a block of query rows (GQA heads x a few
 * tokens) with one pass over K and one over V, instead of one per row:
 *   1. scores: K is taken in tiles of SCORE_TILE keys, converted to f32 and
 *      transposed to d-major (keys contiguous) in an L1 buffer, so a tile of
 *      S = Q x K^T is an outer-product accumulation - broadcast q[r][d] times
 *      the key vector of dimension d - with no horizontal sums; every row
 *      group reuses the converted tile.
 *      Each row's maximum over its own keys is folded in as the tile is
 *      stored.
 *   2. e^(s - max) and the sum per row over its own keys [0, n_keys[r]);
 *      keys past a row's limit get 0. Two passes, no online rescaling: the
 *      reference rounds the full-softmax probabilities to f16.
 *   3. P x V: V is taken in tiles converted to f32 once; each row group
 *      first turns its slice of the tile into probabilities rounded to f16
 *      (while it is in L1), then register blocks of rows x head slices
 *      accumulate broadcast p[r][j] times v_j.
 * More than ROW_BATCH rows are done in batches (the per-row state is on the
 * stack).
 * Causal limits: a row group stops at the largest limit among its rows; the
 * keys of that tile beyond a row's own limit get probability 0.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "simd_x86.h"

enum {
    SCORE_TILE = 32,    /* keys per K tile: 4 vectors */
    SCORE_ROWS = 3,     /* query rows per register block of a score tile (12 accumulators) */
    VALUE_TILE = 64,    /* keys per V tile */
    VALUE_ROWS = 3,     /* query rows per register block of P x V ... */
    VALUE_VECS = 4,     /* ... times head vectors of 8 (12 accumulators) */
    BLOCK_MAX_HD = 256, /* larger heads take the per-row path */
    ROW_BATCH = 64      /* rows per pass over K and V (bounds the per-row state on the stack) */
};

static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load_f16x8(const f16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static inline __m256 round_through_f16(__m256 x)
{
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* In place: s[j] = e^(s[j] - max) for j < n (n >= 1); returns 1 / the sum (summed in double
 * every 64 keys, as the reference sums in double). */
static float exp_and_inverse_sum(float *s, int n, float max)
{
    const __m256 vmax = _mm256_set1_ps(max);
    double sum = 0;
    int j = 0;
    while (j + 8 <= n) {
        __m256 vsum = _mm256_setzero_ps();
        for (int end = j + 64 < n ? j + 64 : n; j + 8 <= end; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vmax));
            _mm256_storeu_ps(s + j, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        sum += hsum_f32x8(vsum);
    }
    for (; j < n; j++) {
        s[j] = expf(s[j] - max);
        sum += s[j];
    }
    return (float)(1.0 / sum);
}

/* In place: p[j] = f16 rounding of e[j] * inv_sum for j < n: the probabilities the reference uses. */
static void normalize_round_f16(float *p, int n, float inv_sum)
{
    const __m256 inv = _mm256_set1_ps(inv_sum);
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(p + j, round_through_f16(_mm256_mul_ps(_mm256_loadu_ps(p + j), inv)));
    for (; j < n; j++) p[j] = f16_to_f32(f32_to_f16(p[j] * inv_sum));
}

/* Decode reads each cache row once, from memory: keys in blocks that every
 * query row goes over while the block is in L1 (with the rows outside, one
 * pass over the keys per row, K would be read from memory n_q times), with
 * the rows a fixed distance ahead asked for. */
enum { DECODE_KEYS = 16, DECODE_PREFETCH = 64 /* keys ahead */ };

/* v[8] -> one vector whose lane i is the sum of v[i]'s lanes. */
static inline __m256 sum8_transposed(const __m256 v[8])
{
    const __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
    const __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
    const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d); /* halves: keys 0-3 | 4-7 of each */
    return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

/* Row q's scores of the 8 keys from k (nk valid; inlined with nk = 8 for whole
 * blocks): one accumulator per key over the head's vectors, the 8 summed across
 * lanes together (one horizontal sum per key took ~7 of its ~25 operations). */
ALWAYS_INLINE __m256 row_scores8(const float *q, int hd, const f16_t *k, size_t kv_stride, int nk)
{
    __m256 acc[8];
    UNROLL
    for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
        const __m256 a = _mm256_loadu_ps(q + d);
        UNROLL
        for (int j = 0; j < 8; j++)
            if (j < nk) acc[j] = _mm256_fmadd_ps(a, load_f16x8(k + (size_t)j * kv_stride + d), acc[j]);
    }
    return sum8_transposed(acc);
}

static void attention_scores_avx2(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride,
                                  float scale, float *scores, size_t s_stride)
{
    if (hd % 8) {
        attention_scores_ref(n_q, n, hd, q, k, kv_stride, scale, scores, s_stride);
        return;
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int j0 = 0; j0 < n; j0 += DECODE_KEYS) {
        const int j1 = j0 + DECODE_KEYS < n ? j0 + DECODE_KEYS : n;
        prefetch_kv_rows(k, kv_stride, j0 + DECODE_PREFETCH, j1 + DECODE_PREFETCH, n, hd);
        for (int r = 0; r < n_q; r++)
            for (int j = j0; j < j1; j += 8) {
                const f16_t *kj = k + (size_t)j * kv_stride;
                float *out = scores + (size_t)r * s_stride + j;
                const float *qr = q + (size_t)r * hd;
                if (j1 - j >= 8) {
                    _mm256_storeu_ps(out, _mm256_mul_ps(row_scores8(qr, hd, kj, kv_stride, 8), vscale));
                } else {
                    float part[8];
                    _mm256_storeu_ps(part, _mm256_mul_ps(row_scores8(qr, hd, kj, kv_stride, j1 - j), vscale));
                    memcpy(out, part, (size_t)(j1 - j) * sizeof *part);
                }
            }
    }
}

static void attention_softmax_avx2(int n, float *s)
{
    if (n <= 0) return;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
    float max = hmax8(vmax);
    for (; j < n; j++)
        if (s[j] > max) max = s[j];
    normalize_round_f16(s, n, exp_and_inverse_sum(s, n, max));
}

/* out[r][c] for one row and up to 64 columns (a multiple of 8): 8 accumulators of 8 lanes.
 * Expanded with cols = 64 for whole chunks and unrolled, so the accumulators stay in
 * registers (otherwise they go through the stack for every key, and those stores,
 * not the values, bound the loop, from cache and from memory alike). */
ALWAYS_INLINE void values_row_chunk(int n, const int cols, const float *p, const f16_t *v, size_t kv_stride,
                                    float *out)
{
    __m256 acc[8];
    UNROLL
    for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const f16_t *vj = v + (size_t)j * kv_stride;
        if (j + DECODE_PREFETCH < n)
            UNROLL
            for (int a = 0; a < cols; a += 32)
                _mm_prefetch((const char *)(vj + (size_t)DECODE_PREFETCH * kv_stride + a), _MM_HINT_T0);
        __m256 pj = _mm256_set1_ps(p[j]);
        UNROLL
        for (int a = 0; a < cols / 8; a++) acc[a] = _mm256_fmadd_ps(pj, load_f16x8(vj + 8 * a), acc[a]);
    }
    UNROLL
    for (int a = 0; a < cols / 8; a++) _mm256_storeu_ps(out + 8 * a, acc[a]);
}

static void attention_values_avx2(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                                  size_t kv_stride, float *out, size_t out_stride)
{
    if (n_cols % 8) {
        attention_values_ref(n_q, n, n_cols, p, p_stride, v, kv_stride, out, out_stride);
        return;
    }
    for (int r = 0; r < n_q; r++)
        for (int c0 = 0; c0 < n_cols; c0 += 64) {
            const float *pr = p + (size_t)r * p_stride;
            float *o = out + (size_t)r * out_stride + c0;
            if (n_cols - c0 >= 64) values_row_chunk(n, 64, pr, v + c0, kv_stride, o);
            else values_row_chunk(n, n_cols - c0, pr, v + c0, kv_stride, o);
        }
}

/* ---- blocked version ---- */

/* Stores the 8x8 matrix whose rows are r[0..8) transposed: dst[i * pitch + c] = r[c][i]. */
ALWAYS_INLINE void store_transposed_8x8(__m256 r[8], float *dst, size_t pitch)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * pitch, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * pitch, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * pitch, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * pitch, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * pitch, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * pitch, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * pitch, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * pitch, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* kt[d * SCORE_TILE + j] = k_j[d] for the n (<= SCORE_TILE) keys of the tile; missing keys are 0. */
static void k_tile_transpose(const f16_t *k, size_t kv_stride, int n, int hd, float *kt)
{
    for (int j0 = 0; j0 < SCORE_TILE; j0 += 8)
        for (int d = 0; d < hd; d += 8) {
            __m256 rows[8];
            for (int i = 0; i < 8; i++)
                rows[i] = j0 + i < n ? load_f16x8(k + (size_t)(j0 + i) * kv_stride + d) : _mm256_setzero_ps();
            store_transposed_8x8(rows, kt + (size_t)d * SCORE_TILE + j0, SCORE_TILE);
        }
}

/* Lanes i < n of x, the others -inf. */
static inline __m256 first_lanes_or_minus_inf(__m256 x, int n)
{
    if (n >= 8) return x;
    __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(keep));
}

/* Scores of `rows` query rows against one transposed K tile (keys j0 + [0, n)): stores the
 * n columns and folds the scores of each row's own keys (j0 + j < n_keys[r]) into vmax[r]. */
ALWAYS_INLINE void score_tile(int rows, int hd, const float *q, const float *kt, float scale, float *s,
                              size_t s_stride, int n, const int *n_keys, int j0, __m256 *vmax)
{
    enum { V = SCORE_TILE / 8 };
    __m256 acc[SCORE_ROWS][V];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) acc[r][c] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m256 kv[V];
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) kv[c] = _mm256_loadu_ps(kt + (size_t)d * SCORE_TILE + 8 * c);
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m256 qb = _mm256_broadcast_ss(q + (size_t)r * hd + d);
#pragma GCC unroll 8
            for (int c = 0; c < V; c++) acc[r][c] = _mm256_fmadd_ps(qb, kv[c], acc[r][c]);
        }
    }
    const __m256 vscale = _mm256_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        float *dst = s + (size_t)r * s_stride;
        int own = n_keys[r] - j0 < n ? n_keys[r] - j0 : n; /* this row's keys in the tile */
        float tmp[SCORE_TILE];
        float *to = n == SCORE_TILE ? dst : tmp;
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) {
            __m256 x = _mm256_mul_ps(acc[r][c], vscale);
            _mm256_storeu_ps(to + 8 * c, x);
            if (own > 8 * c) vmax[r] = _mm256_max_ps(vmax[r], first_lanes_or_minus_inf(x, own - 8 * c));
        }
        /* tmp was filled through `to` by the stores above (cppcheck cannot see intrinsics write) */
        // cppcheck-suppress uninitvar
        if (to != dst) memcpy(dst, tmp, (size_t)n * sizeof *dst);
    }
}

static int max_keys_of(const int *n_keys, int n)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (n_keys[i] > m) m = n_keys[i];
    return m;
}

/* Raw scaled scores of every row for keys [0, n_max) (row groups stop after their last key). */
static void block_scores(int n_q, const int *n_keys, int n_max, int hd, const float *q, const f16_t *k,
                         size_t kv_stride, float scale, float *scores, size_t s_stride, float *kt, __m256 *vmax)
{
    for (int r = 0; r < n_q; r++) vmax[r] = _mm256_set1_ps(-INFINITY);
    for (int j0 = 0; j0 < n_max; j0 += SCORE_TILE) {
        int n = n_max - j0 < SCORE_TILE ? n_max - j0 : SCORE_TILE;
        k_tile_transpose(k + (size_t)j0 * kv_stride, kv_stride, n, hd, kt);
        for (int r0 = 0; r0 < n_q; r0 += SCORE_ROWS) {
            int rows = n_q - r0 < SCORE_ROWS ? n_q - r0 : SCORE_ROWS;
            if (max_keys_of(n_keys + r0, rows) <= j0) continue;
            const float *qr = q + (size_t)r0 * hd;
            float *sr = scores + (size_t)r0 * s_stride + j0;
            if (rows == SCORE_ROWS)
                score_tile(SCORE_ROWS, hd, qr, kt, scale, sr, s_stride, n, n_keys + r0, j0, vmax + r0);
            else
                for (int r = r0; r < r0 + rows; r++)
                    score_tile(1, hd, q + (size_t)r * hd, kt, scale, scores + (size_t)r * s_stride + j0, s_stride, n,
                               n_keys + r, j0, vmax + r);
        }
    }
}

/* out rows += P[:, tile] x V tile, for `rows` rows and head vectors [c0, c0 + vecs). */
ALWAYS_INLINE void value_tile(int rows, int vecs, int hd, int c0, const float *p, size_t p_stride, const float *vt,
                              int n, float *out)
{
    __m256 acc[VALUE_ROWS][VALUE_VECS];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++) acc[r][c] = _mm256_loadu_ps(out + (size_t)r * hd + 8 * (c0 + c));
    for (int j = 0; j < n; j++) {
        __m256 vv[VALUE_VECS];
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++) vv[c] = _mm256_loadu_ps(vt + (size_t)j * hd + 8 * (c0 + c));
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m256 pb = _mm256_broadcast_ss(p + (size_t)r * p_stride + j);
#pragma GCC unroll 8
            for (int c = 0; c < vecs; c++) acc[r][c] = _mm256_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++) _mm256_storeu_ps(out + (size_t)r * hd + 8 * (c0 + c), acc[r][c]);
}

/* value_tile with a compile-time slice width: vecs in 1..VALUE_VECS. */
ALWAYS_INLINE void value_slice(int rows, int vecs, int hd, int c0, const float *p, size_t p_stride, const float *vt,
                               int n, float *out)
{
    switch (vecs) {
    case 1: value_tile(rows, 1, hd, c0, p, p_stride, vt, n, out); break;
    case 2: value_tile(rows, 2, hd, c0, p, p_stride, vt, n, out); break;
    case 3: value_tile(rows, 3, hd, c0, p, p_stride, vt, n, out); break;
    default: value_tile(rows, VALUE_VECS, hd, c0, p, p_stride, vt, n, out); break;
    }
}

/* One row group over one V tile, the head split in register-sized slices. */
static void value_tile_rows(int rows, int hd, const float *p, size_t p_stride, const float *vt, int n, float *out)
{
    const int n_vecs = hd / 8;
    for (int c0 = 0; c0 < n_vecs; c0 += VALUE_VECS) {
        int vecs = n_vecs - c0 < VALUE_VECS ? n_vecs - c0 : VALUE_VECS;
        if (rows == VALUE_ROWS)
            value_slice(VALUE_ROWS, vecs, hd, c0, p, p_stride, vt, n, out);
        else
            for (int r = 0; r < rows; r++)
                value_slice(1, vecs, hd, c0, p + (size_t)r * p_stride, p_stride, vt, n, out + (size_t)r * hd);
    }
}

/* out = P x V, where probs holds e^(s - max) (0 past each row's limit) and becomes P, rounded to
 * f16 with inv_sum[r], one tile at a time just before use. */
static void block_values(int n_q, const int *n_keys, int n_max, int hd, const f16_t *v, size_t kv_stride,
                         float *probs, size_t p_stride, const float *inv_sum, float *out, float *vt)
{
    memset(out, 0, (size_t)n_q * hd * sizeof *out);
    for (int j0 = 0; j0 < n_max; j0 += VALUE_TILE) {
        int n = n_max - j0 < VALUE_TILE ? n_max - j0 : VALUE_TILE;
        for (int j = 0; j < n; j++)
            for (int d = 0; d < hd; d += 8)
                _mm256_storeu_ps(vt + (size_t)j * hd + d, load_f16x8(v + (size_t)(j0 + j) * kv_stride + d));
        for (int r0 = 0; r0 < n_q; r0 += VALUE_ROWS) {
            int rows = n_q - r0 < VALUE_ROWS ? n_q - r0 : VALUE_ROWS;
            int group_keys = max_keys_of(n_keys + r0, rows) - j0;
            if (group_keys <= 0) continue;
            if (group_keys > n) group_keys = n;
            for (int r = r0; r < r0 + rows; r++)
                normalize_round_f16(probs + (size_t)r * p_stride + j0, group_keys, inv_sum[r]);
            value_tile_rows(rows, hd, probs + (size_t)r0 * p_stride + j0, p_stride, vt, group_keys,
                            out + (size_t)r0 * hd);
        }
    }
}

/* Up to ROW_BATCH rows: one pass over K, the exponentials row by row, one pass over V. */
static void attention_batch(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                            size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    _Alignas(64) float tile[BLOCK_MAX_HD * (SCORE_TILE > VALUE_TILE ? SCORE_TILE : VALUE_TILE)];
    __m256 vmax[ROW_BATCH];
    float inv_sum[ROW_BATCH];
    const int n_max = max_keys_of(n_keys, n_q);
    block_scores(n_q, n_keys, n_max, hd, q, k, kv_stride, scale, scores, scores_stride, tile, vmax);
    for (int r = 0; r < n_q; r++) {
        float *s = scores + (size_t)r * scores_stride;
        int n = n_keys[r] > 0 ? n_keys[r] : 0;
        inv_sum[r] = n ? exp_and_inverse_sum(s, n, hmax8(vmax[r])) : 0;
        memset(s + n, 0, (size_t)(n_max - n) * sizeof *s); /* keys past this row's limit weigh nothing */
    }
    block_values(n_q, n_keys, n_max, hd, v, kv_stride, scores, scores_stride, inv_sum, out, tile);
}

static void attention_block_avx2(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                                 size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    if (hd % 8 || hd > BLOCK_MAX_HD) {
        for (int r = 0; r < n_q; r++) { /* row by row, through the decode steps */
            float *s = scores + (size_t)r * scores_stride;
            int n = n_keys[r] > 0 ? n_keys[r] : 0;
            attention_scores_avx2(1, n, hd, q + (size_t)r * hd, k, kv_stride, scale, s, (size_t)n);
            attention_softmax_avx2(n, s);
            attention_values_avx2(1, n, hd, s, (size_t)n, v, kv_stride, out + (size_t)r * hd, (size_t)hd);
        }
        return;
    }
    for (int r0 = 0; r0 < n_q; r0 += ROW_BATCH)
        attention_batch(n_q - r0 < ROW_BATCH ? n_q - r0 : ROW_BATCH, n_keys + r0, hd, q + (size_t)r0 * hd, k, v,
                        kv_stride, scale, scores + (size_t)r0 * scores_stride, scores_stride, out + (size_t)r0 * hd);
}

void kernels_install_attention_avx2(kernel_table *t)
{
    t->attention_scores = attention_scores_avx2;
    t->attention_softmax = attention_softmax_avx2;
    t->attention_values = attention_values_avx2;
    t->attention_block = attention_block_avx2;
}

#else
void kernels_install_attention_avx2(kernel_table *t) { (void)t; }
#endif
