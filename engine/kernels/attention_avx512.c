/*
 * attention_avx512.c - blocked attention over the F16 KV cache, AVX-512.
 *
 * The query rows of a block (GQA heads x a few tokens, at most ROW_BATCH per
 * pass) sit across the 16 lanes of one or two registers, so the softmax is
 * lane-wise and nothing is transposed but Q, once:
 *   1. scores: S^T[j][r] = scale * sum_d k_j[d] Q^T[d][r], key-major in the
 *      caller's scratch. A register block of KEY_BLOCK keys x the row vectors
 *      accumulates broadcast k_j[d] (keys converted 16 values at a time into
 *      a small L1 buffer, row-major) times the row vector Q^T[d]. Each lane's
 *      maximum over its own row's keys (j < n_keys[r]: one vector compare)
 *      is folded in as the block is stored.
 *   2. e^(s - max) lane-wise (a 16-wide vector exp, ~2 ulp), keys past a
 *      row's limit 0, summed per lane in double in key order as the reference
 *      sums. Two passes, no online rescaling: the reference rounds the
 *      full-softmax probabilities to f16, and that is kept exactly.
 *   3. P x V, VALUE_TILE keys at a time: the tile's probabilities are rounded
 *      to f16 in place (lane-wise), then register blocks of up to VALUE_ROWS
 *      rows x VALUE_VECS head vectors accumulate broadcast p[j][r] times v_j,
 *      converted from the cache as it is loaded (a converted copy would cost
 *      more in stores than the repeated conversions). A head that is not a
 *      multiple of 16 ends in a masked half vector.
 * Rows past 16 go in a second vector holding the LAST 16 rows (overlapping
 * the first unless there are 32; a shared row is computed twice, bitwise
 * alike), so a key's scores are n_q contiguous floats and no access of one
 * key spills into the next. Where the scratch has room, keys are whole
 * aligned vectors apart. Causal limits cost nothing extra: every row goes
 * over keys [0, largest limit) and lanes past their own limit get p = 0.
 * Any head size that is a multiple of 8 (up to BLOCK_MAX_HD) takes this
 * path; others use the scalar reference row by row.
 *
 * Decode (one token: a few GQA rows over the same keys) uses the three steps
 * of kernels.h instead: scores 16 keys at a time (one accumulator per row
 * and key, summed across lanes by a transpose; keys converted straight into
 * registers for heads of whole vectors, else once into an L1 buffer),
 * softmax lane-wise, and P x V in register blocks of 4 rows x 64 columns,
 * each value chunk converted once for all the rows. Keys are prefetched a
 * fixed distance ahead: the cache is read once per token, from memory.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) &&                 \
    defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "simd_x86.h"

enum {
    ROW_BATCH = 32,     /* rows per pass over K and V: two vectors of rows */
    MAX_ROW_VECS = ROW_BATCH / 16,
    KEY_BLOCK_1 = 24,   /* keys per score register block with one row vector (24 accumulators) ... */
    KEY_BLOCK_2 = 12,   /* ... and with two (24 accumulators) */
    VALUE_TILE = 64,    /* keys whose probabilities are rounded just before P x V uses them */
    VALUE_ROWS = 6,     /* query rows per register block of P x V ... */
    VALUE_VECS = 4,     /* ... times head vectors of 16 (24 accumulators; 28 would spill) */
    BLOCK_MAX_HD = 256  /* larger heads go row by row */
};

static inline __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* dst[0, hd) = the f16 row src converted (hd a multiple of 8). */
static inline void convert_row(const f16_t *src, int hd, float *dst)
{
    int d = 0;
    for (; d + 16 <= hd; d += 16)
        _mm512_storeu_ps(dst + d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + d))));
    if (d < hd) _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + d))));
}

/* What one pass over K and V needs to know about its rows. */
typedef struct {
    int n_q, hd, n_max, row_vecs;
    size_t pitch;                    /* floats between keys of S^T (>= n_q) */
    int interleave;                  /* keys one lane-wise pass must leave between a store and a load */
    int row0[MAX_ROW_VECS];          /* the row in lane 0 of each row vector */
    __mmask16 lanes[MAX_ROW_VECS];   /* lanes that are rows */
    __m512i limits[MAX_ROW_VECS];    /* n_keys per lane, 0 past the rows */
} row_batch;

/* A row_batch's lane layout in locals, so that the hot loops keep it in registers (stores through
 * float pointers could otherwise alias it, as the build does not assume strict aliasing). */
typedef struct {
    size_t pitch;
    int row0[MAX_ROW_VECS];
    __mmask16 lanes[MAX_ROW_VECS];
    __m512i limits[MAX_ROW_VECS];
} lane_layout;

ALWAYS_INLINE lane_layout lane_layout_of(int rv, const row_batch *b)
{
    lane_layout l;
    l.pitch = b->pitch;
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) {
        l.row0[v] = b->row0[v];
        l.lanes[v] = b->lanes[v];
        l.limits[v] = b->limits[v];
    }
    return l;
}

/* Lanes of row vector v whose row attends to key j. */
static inline __mmask16 rows_seeing(const lane_layout *l, int v, int j)
{
    return _mm512_cmpgt_epi32_mask(l->limits[v], _mm512_set1_epi32(j));
}

/* ------------------------------------------------------------------ scores */

/* Scores of keys [j0, j0 + n) (n <= kb; kf holds kb converted keys, hd floats apart) for every
 * row: stored key-major at st, each lane's max over its own keys folded into vmax. */
ALWAYS_INLINE void score_block(int rv, int kb, int hd, lane_layout l, const float *qt, const float *kf, float scale,
                               int j0, int n, float *st, __m512 *vmax)
{
    __m512 acc[KEY_BLOCK_1][MAX_ROW_VECS];
#pragma GCC unroll 24
    for (int i = 0; i < kb; i++)
#pragma GCC unroll 2
        for (int v = 0; v < rv; v++) acc[i][v] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m512 qv[MAX_ROW_VECS];
#pragma GCC unroll 2
        for (int v = 0; v < rv; v++) qv[v] = _mm512_load_ps(qt + (size_t)d * 16 * rv + 16 * v);
#pragma GCC unroll 24
        for (int i = 0; i < kb; i++) {
            __m512 kb_d = _mm512_set1_ps(kf[(size_t)i * hd + d]);
#pragma GCC unroll 2
            for (int v = 0; v < rv; v++) acc[i][v] = _mm512_fmadd_ps(kb_d, qv[v], acc[i][v]);
        }
    }
    const __m512 vscale = _mm512_set1_ps(scale);
#pragma GCC unroll 24
    for (int i = 0; i < kb; i++) {
        if (i >= n) break;
#pragma GCC unroll 2
        for (int v = 0; v < rv; v++) {
            __m512 x = _mm512_mul_ps(acc[i][v], vscale);
            _mm512_mask_storeu_ps(st + (size_t)(j0 + i) * l.pitch + l.row0[v], l.lanes[v], x);
            vmax[v] = _mm512_mask_max_ps(vmax[v], rows_seeing(&l, v, j0 + i), vmax[v], x);
        }
    }
}

/* kf[i * hd + d] = k_{j0+i}[d] for the n keys of a block of kb; missing keys are 0. The next
 * block is prefetched: the cache comes from L3 or memory. */
static void convert_keys(const f16_t *k, size_t kv_stride, int j0, int n, int kb, int hd, int n_max, float *kf)
{
    prefetch_kv_rows(k, kv_stride, j0 + kb, j0 + 2 * kb, n_max, hd);
    for (int i = 0; i < n; i++) convert_row(k + (size_t)(j0 + i) * kv_stride, hd, kf + (size_t)i * hd);
    if (n < kb) memset(kf + (size_t)n * hd, 0, (size_t)(kb - n) * hd * sizeof *kf);
}

/* All raw scaled scores S^T[j][r] for keys [0, n_max), and the per-row maxima. */
ALWAYS_INLINE void block_scores_rv(int rv, int kb, const row_batch *b, const float *qt, const f16_t *k,
                                   size_t kv_stride, float scale, float *st, float *kf, __m512 *vmax_out)
{
    const lane_layout l = lane_layout_of(rv, b);
    const int n_max = b->n_max, hd = b->hd;
    __m512 vmax[MAX_ROW_VECS];
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) vmax[v] = _mm512_set1_ps(-INFINITY);
    for (int j0 = 0; j0 < n_max; j0 += kb) {
        int n = n_max - j0 < kb ? n_max - j0 : kb;
        convert_keys(k, kv_stride, j0, n, kb, hd, n_max, kf);
        score_block(rv, kb, hd, l, qt, kf, scale, j0, n, st, vmax);
    }
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) vmax_out[v] = vmax[v];
}

static void block_scores(const row_batch *b, const float *qt, const f16_t *k, size_t kv_stride, float scale,
                         float *st, float *kf, __m512 *vmax)
{
    if (b->row_vecs == 1)
        block_scores_rv(1, KEY_BLOCK_1, b, qt, k, kv_stride, scale, st, kf, vmax);
    else
        block_scores_rv(2, KEY_BLOCK_2, b, qt, k, kv_stride, scale, st, kf, vmax);
}

/* ----------------------------------------------------------- exponentials */

/* e^(s - max) in place for keys [j0, end) stepping by `step` (see row_batch.interleave), added to
 * the per-lane double sums in key order, as the reference sums (so the sums match it whenever the
 * exponentials do). Both vectors of a key are loaded before either is stored: they may share rows. */
ALWAYS_INLINE void exp_keys(int rv, lane_layout l, float *st, int j0, int end, int step, const __m512 *vmax,
                            __m512d (*sum)[2])
{
    for (int j = j0; j < end; j += step) {
        float *key = st + (size_t)j * l.pitch;
        __m512 x[MAX_ROW_VECS];
#pragma GCC unroll 2
        for (int v = 0; v < rv; v++) x[v] = _mm512_maskz_loadu_ps(l.lanes[v], key + l.row0[v]);
#pragma GCC unroll 2
        for (int v = 0; v < rv; v++) {
            __m512 e = _mm512_maskz_mov_ps(rows_seeing(&l, v, j), exp16(_mm512_sub_ps(x[v], vmax[v])));
            _mm512_mask_storeu_ps(key + l.row0[v], l.lanes[v], e);
            __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1));
            sum[v][0] = _mm512_add_pd(sum[v][0], _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            sum[v][1] = _mm512_add_pd(sum[v][1], _mm512_cvtps_pd(hi));
        }
    }
}

/* block_exponentials for rv row vectors. */
ALWAYS_INLINE void block_exponentials_rv(int rv, const row_batch *b, float *st, const __m512 *vmax_in,
                                         __m512 *inv_sum)
{
    const lane_layout l = lane_layout_of(rv, b);
    __m512 vmax[MAX_ROW_VECS];
    __m512d sum[MAX_ROW_VECS][2];
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) {
        vmax[v] = vmax_in[v];
        sum[v][0] = sum[v][1] = _mm512_setzero_pd();
    }
    for (int c = 0; c < b->interleave; c++) exp_keys(rv, l, st, c, b->n_max, b->interleave, vmax, sum);
    const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) {
        __m256 inv[2];
        for (int h = 0; h < 2; h++)
            inv[h] = _mm512_cvtpd_ps(_mm512_maskz_div_pd(_mm512_cmp_pd_mask(sum[v][h], zero, _CMP_GT_OQ), one, sum[v][h]));
        inv_sum[v] = _mm512_insertf32x8(_mm512_castps256_ps512(inv[0]), inv[1], 1);
    }
}

/* In place: S^T[j][r] = e^(s - max_r) for j < n_keys[r], else 0; inv_sum[v] gets 1 / the sum
 * per lane (0 for a row with no keys). */
static void block_exponentials(const row_batch *b, float *st, const __m512 *vmax, __m512 *inv_sum)
{
    if (b->row_vecs == 1)
        block_exponentials_rv(1, b, st, vmax, inv_sum);
    else
        block_exponentials_rv(2, b, st, vmax, inv_sum);
}

/* ------------------------------------------------------------------ P x V */

/* out rows += P[tile] x V tile for `rows` rows and head vectors [c0, c0 + vecs) of 16 floats; v is
 * the tile's first cache row, converted 16 values at a time as it is used (a converted copy would
 * cost more in stores than the conversions); the last vector of the head may be half used. */
ALWAYS_INLINE void value_block(int rows, int vecs, int hd, size_t kv_stride, int c0, const float *p, size_t pitch,
                               const f16_t *v, int n, float *out)
{
    __m512 acc[VALUE_ROWS][VALUE_VECS];
    __mmask16 used[VALUE_VECS];
#pragma GCC unroll 4
    for (int c = 0; c < vecs; c++) used[c] = first_lanes(hd - 16 * (c0 + c));
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++)
            acc[r][c] = _mm512_maskz_loadu_ps(used[c], out + (size_t)r * hd + 16 * (c0 + c));
    for (int j = 0; j < n; j++) {
        __m512 vv[VALUE_VECS];
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++)
            vv[c] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(used[c] == 0xFFFF ? 0xFFFF : 0x00FF,
                                                             v + (size_t)j * kv_stride + 16 * (c0 + c)));
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            __m512 pb = _mm512_set1_ps(p[(size_t)j * pitch + r]);
#pragma GCC unroll 4
            for (int c = 0; c < vecs; c++) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int c = 0; c < vecs; c++)
            _mm512_mask_storeu_ps(out + (size_t)r * hd + 16 * (c0 + c), used[c], acc[r][c]);
}

/* value_block with compile-time widths: vecs in 1..VALUE_VECS. */
ALWAYS_INLINE void value_block_vecs(int rows, int vecs, int hd, size_t kv_stride, int c0, const float *p, size_t pitch,
                                    const f16_t *v, int n, float *out)
{
    switch (vecs) {
    case 1: value_block(rows, 1, hd, kv_stride, c0, p, pitch, v, n, out); break;
    case 2: value_block(rows, 2, hd, kv_stride, c0, p, pitch, v, n, out); break;
    case 3: value_block(rows, 3, hd, kv_stride, c0, p, pitch, v, n, out); break;
    default: value_block(rows, VALUE_VECS, hd, kv_stride, c0, p, pitch, v, n, out); break;
    }
}

/* One group of 1..VALUE_ROWS rows over one V tile, the head split in register-sized slices. */
static void value_rows(int rows, int hd, size_t kv_stride, const float *p, size_t pitch, const f16_t *v, int n,
                       float *out)
{
    const int n_vecs = (hd + 15) / 16;
    for (int c0 = 0; c0 < n_vecs; c0 += VALUE_VECS) {
        int vecs = n_vecs - c0 < VALUE_VECS ? n_vecs - c0 : VALUE_VECS;
        switch (rows) {
        case 1: value_block_vecs(1, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        case 2: value_block_vecs(2, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        case 3: value_block_vecs(3, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        case 4: value_block_vecs(4, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        case 5: value_block_vecs(5, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        default: value_block_vecs(VALUE_ROWS, vecs, hd, kv_stride, c0, p, pitch, v, n, out); break;
        }
    }
}

/* In place for keys [j0, j0 + n): the probabilities the reference uses, e * inv_sum rounded to
 * f16 (both vectors of a key loaded first, as they may share rows). */
ALWAYS_INLINE void round_probabilities_rv(int rv, const row_batch *b, float *st, int j0, int n,
                                          const __m512 *inv_sum_in)
{
    const lane_layout l = lane_layout_of(rv, b);
    const int step = b->interleave;
    __m512 inv_sum[MAX_ROW_VECS];
#pragma GCC unroll 2
    for (int v = 0; v < rv; v++) inv_sum[v] = inv_sum_in[v];
    for (int c = 0; c < step; c++)
        for (int j = j0 + c; j < j0 + n; j += step) {
            float *key = st + (size_t)j * l.pitch;
            __m512 x[MAX_ROW_VECS];
#pragma GCC unroll 2
            for (int v = 0; v < rv; v++) x[v] = _mm512_maskz_loadu_ps(l.lanes[v], key + l.row0[v]);
#pragma GCC unroll 2
            for (int v = 0; v < rv; v++) {
                __m512 p = _mm512_mul_ps(x[v], inv_sum[v]);
                p = _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                _mm512_mask_storeu_ps(key + l.row0[v], l.lanes[v], p);
            }
        }
}

static void round_probabilities(const row_batch *b, float *st, int j0, int n, const __m512 *inv_sum)
{
    if (b->row_vecs == 1)
        round_probabilities_rv(1, b, st, j0, n, inv_sum);
    else
        round_probabilities_rv(2, b, st, j0, n, inv_sum);
}

/* The largest limit among rows [r0, r0 + rows). */
static int max_keys_of(const int *n_keys, int rows)
{
    int m = 0;
    for (int i = 0; i < rows; i++)
        if (n_keys[i] > m) m = n_keys[i];
    return m;
}

/* out = P x V, where S^T holds e^(s - max) (0 past each row's limit) and becomes P one tile at a
 * time. Rows go in nearly equal groups of at most VALUE_ROWS. */
static void block_values(const row_batch *b, const int *n_keys, const f16_t *v, size_t kv_stride, float *st,
                         const __m512 *inv_sum, float *out)
{
    const int hd = b->hd, tile = VALUE_TILE;
    const int n_groups = (b->n_q + VALUE_ROWS - 1) / VALUE_ROWS;
    memset(out, 0, (size_t)b->n_q * hd * sizeof *out);
    for (int j0 = 0; j0 < b->n_max; j0 += tile) {
        int n = b->n_max - j0 < tile ? b->n_max - j0 : tile;
        prefetch_kv_rows(v, kv_stride, j0 + n, j0 + 2 * n, b->n_max, hd);
        round_probabilities(b, st, j0, n, inv_sum);
        for (int g = 0, r0 = 0; g < n_groups; g++) {
            int rows = b->n_q / n_groups + (g < b->n_q % n_groups);
            int group_keys = max_keys_of(n_keys + r0, rows) - j0;
            if (group_keys > n) group_keys = n;
            if (group_keys > 0)
                value_rows(rows, hd, kv_stride, st + (size_t)j0 * b->pitch + r0, b->pitch,
                           v + (size_t)j0 * kv_stride, group_keys, out + (size_t)r0 * hd);
            r0 += rows;
        }
    }
}

/* ------------------------------------------------------------------ batch */

/* qt[d * 16 * row_vecs + 16 * v + i] = q[row0[v] + i][d], lanes past the rows zero. */
static void transpose_queries(const row_batch *b, const float *q, float *qt)
{
    const int width = 16 * b->row_vecs, hd = b->hd;
    memset(qt, 0, (size_t)hd * width * sizeof *qt);
    for (int v = 0; v < b->row_vecs; v++)
        for (int i = 0; i < 16 && b->lanes[v] >> i & 1; i++) {
            const float *row = q + (size_t)(b->row0[v] + i) * hd;
            float *col = qt + 16 * v + i;
            for (int d = 0; d < hd; d++) col[(size_t)d * width] = row[d];
        }
}

/* Rows go across lanes: rows [0, 16) in the first vector and, past 16 rows, the last 16 rows in
 * the second (the two overlap unless there are 32; an overlapping row is computed twice,
 * identically), so every vector but a lone short one is full and the key's rows fit in pitch
 * floats. */
static void row_batch_init(row_batch *b, int n_q, const int *n_keys, int hd, size_t scratch_floats)
{
    b->n_q = n_q;
    b->hd = hd;
    b->n_max = max_keys_of(n_keys, n_q);
    b->row_vecs = (n_q + 15) / 16;
    /* aligned whole vectors per key when the scratch has room, else packed */
    b->pitch = (size_t)16 * b->row_vecs;
    if (b->pitch * (size_t)b->n_max > scratch_floats) b->pitch = (size_t)n_q;
    /* a short vector's 64-byte access reaches into the next keys: a store there would stall the
     * load that follows it, so lane-wise passes go over keys `interleave` apart */
    b->interleave = b->pitch < 16 ? (int)((16 + b->pitch - 1) / b->pitch) : 1;
    for (int v = 0; v < b->row_vecs; v++) {
        b->row0[v] = v == 0 ? 0 : n_q - 16;
        b->lanes[v] = first_lanes(n_q - b->row0[v]);
        int lim[16];
        for (int i = 0; i < 16; i++) lim[i] = b->lanes[v] >> i & 1 && n_keys[b->row0[v] + i] > 0 ? n_keys[b->row0[v] + i] : 0;
        b->limits[v] = _mm512_loadu_si512(lim);
    }
}

/* Up to ROW_BATCH rows: one pass over K, the exponentials, one pass over V. */
static void attention_batch(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                            size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    _Alignas(64) float qt[BLOCK_MAX_HD * ROW_BATCH];
    _Alignas(64) float kf[KEY_BLOCK_1 * BLOCK_MAX_HD];
    __m512 vmax[MAX_ROW_VECS] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, inv_sum[MAX_ROW_VECS] = {vmax[0], vmax[1]};
    row_batch b;
    row_batch_init(&b, n_q, n_keys, hd, (size_t)n_q * scores_stride);
    if (b.n_max == 0) {
        memset(out, 0, (size_t)n_q * hd * sizeof *out);
        return;
    }
    transpose_queries(&b, q, qt);
    block_scores(&b, qt, k, kv_stride, scale, scores, kf, vmax);
    block_exponentials(&b, scores, vmax, inv_sum);
    block_values(&b, n_keys, v, kv_stride, scores, inv_sum, out);
}

static void attention_block_avx512(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k,
                                   const f16_t *v, size_t kv_stride, float scale, float *scores, size_t scores_stride,
                                   float *out)
{
    if (hd % 8 || hd > BLOCK_MAX_HD) {
        attention_block_ref(n_q, n_keys, hd, q, k, v, kv_stride, scale, scores, scores_stride, out);
        return;
    }
    for (int r0 = 0; r0 < n_q; r0 += ROW_BATCH)
        attention_batch(n_q - r0 < ROW_BATCH ? n_q - r0 : ROW_BATCH, n_keys + r0, hd, q + (size_t)r0 * hd, k, v,
                        kv_stride, scale, scores + (size_t)r0 * scores_stride, scores_stride, out + (size_t)r0 * hd);
}

/* ---- decode: a few query rows over the same keys ------------------------- */

enum { ROWS_V = 4, ROWS_KEYS = 16, ROWS_PREFETCH = 64 /* keys ahead */ };

/* v[i] (16 vectors) -> one vector whose lane i is the sum of v[i]'s lanes. */
static inline __m512 sum16_transposed(__m512 v[16])
{
    static const int32_t a_lo[16] = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const int32_t b_lo[16] = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    static const int32_t c_lo[16] = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
    static const int32_t d_lo[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const int32_t *lo[4] = {a_lo, b_lo, c_lo, d_lo};
    const int shift[4] = {8, 4, 2, 1}; /* the hi index is lo + shift */
    UNROLL
    for (int level = 0; level < 4; level++) {
        const __m512i il = _mm512_loadu_si512(lo[level]), ih = _mm512_add_epi32(il, _mm512_set1_epi32(shift[level]));
        UNROLL
        for (int i = 0; i < 8 >> level; i++)
            v[i] = _mm512_add_ps(_mm512_permutex2var_ps(v[2 * i], il, v[2 * i + 1]),
                                 _mm512_permutex2var_ps(v[2 * i], ih, v[2 * i + 1]));
    }
    return v[0];
}

/* scores[r][j] = scale * q_r . k_j for 16 keys from j0 (nk valid) converted into kf. */
static void rows_scores16(int n_q, int hd, const float *q, const f16_t *k, size_t kv_stride, int j0, int nk, int n,
                          float scale, float *scores, size_t stride, float *kf)
{
    const int p0 = j0 + ROWS_PREFETCH;
    prefetch_kv_rows(k, kv_stride, p0, p0 + ROWS_KEYS, n, hd);
    for (int j = 0; j < ROWS_KEYS; j++) {
        if (j < nk) convert_row(k + (size_t)(j0 + j) * kv_stride, hd, kf + (size_t)j * hd);
        else memset(kf + (size_t)j * hd, 0, (size_t)hd * sizeof *kf);
    }
    for (int r = 0; r < n_q; r++) {
        const float *qr = q + (size_t)r * hd;
        __m512 acc[ROWS_KEYS];
        UNROLL
        for (int j = 0; j < ROWS_KEYS; j++) acc[j] = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16) {
            const __mmask16 m = first_lanes(hd - d);
            const __m512 qd = _mm512_maskz_loadu_ps(m, qr + d);
            UNROLL
            for (int j = 0; j < ROWS_KEYS; j++)
                acc[j] = _mm512_fmadd_ps(qd, _mm512_maskz_loadu_ps(m, kf + (size_t)j * hd + d), acc[j]);
        }
        __m512 sc = _mm512_mul_ps(sum16_transposed(acc), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(scores + (size_t)r * stride + j0, first_lanes(nk), sc);
    }
}

/* Keys converted straight into registers, for heads that are whole vectors:
 * one accumulator per (row, key) over the head's vectors, 16 accumulators
 * summed across lanes by one transpose. A pair of rows takes 8 keys (each
 * key chunk converted once for both rows), a single row 16. The sums are
 * the same, vector for vector, as rows_scores16's, so the scores are too;
 * this path avoids its store and reload of every converted key and the
 * spilled row pointers, which bound that loop from cache and from memory. */
ALWAYS_INLINE __m512 key_chunk(const f16_t *k, size_t kv_stride, int j, int nk, int d)
{
    return j < nk ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + (size_t)j * kv_stride + d)))
                  : _mm512_setzero_ps();
}

/* Lanes 0-7: row q0's scores of keys 0-7; lanes 8-15: row q1's (inlined
 * with nk = 8 for whole blocks, so no key is checked). */
ALWAYS_INLINE __m512 pair_scores8(const float *q0, const float *q1, int hd, const f16_t *k, size_t kv_stride, int nk)
{
    __m512 acc[16];
    UNROLL
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
        const __m512 a = _mm512_loadu_ps(q0 + d), b = _mm512_loadu_ps(q1 + d);
        UNROLL
        for (int j = 0; j < 8; j++) {
            const __m512 x = key_chunk(k, kv_stride, j, nk, d);
            acc[j] = _mm512_fmadd_ps(a, x, acc[j]);
            acc[8 + j] = _mm512_fmadd_ps(b, x, acc[8 + j]);
        }
    }
    return sum16_transposed(acc);
}

/* Row q's scores of keys 0-15. */
ALWAYS_INLINE __m512 row_scores16(const float *q, int hd, const f16_t *k, size_t kv_stride, int nk)
{
    __m512 acc[16];
    UNROLL
    for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
        const __m512 a = _mm512_loadu_ps(q + d);
        UNROLL
        for (int j = 0; j < 16; j++) acc[j] = _mm512_fmadd_ps(a, key_chunk(k, kv_stride, j, nk, d), acc[j]);
    }
    return sum16_transposed(acc);
}

/* 16 keys from j0 (nk valid) for every row: row pairs over both halves, then a last odd row. */
static void block_scores16(int n_q, int hd, const float *q, const f16_t *k, size_t kv_stride, int j0, int nk, int n,
                           const __m512 scale, float *scores, size_t stride)
{
    const int p0 = j0 + ROWS_PREFETCH;
    prefetch_kv_rows(k, kv_stride, p0, p0 + ROWS_KEYS, n, hd);
    const f16_t *kb = k + (size_t)j0 * kv_stride;
    int r = 0;
    for (; r + 2 <= n_q; r += 2) {
        const float *q0 = q + (size_t)r * hd, *q1 = q0 + hd;
        float *s0 = scores + (size_t)r * stride + j0, *s1 = s0 + stride;
        for (int h = 0; h < 2 && 8 * h < nk; h++) {
            const int valid = nk - 8 * h < 8 ? nk - 8 * h : 8;
            const f16_t *kh = kb + (size_t)(8 * h) * kv_stride;
            const __m512 sc = _mm512_mul_ps(valid == 8 ? pair_scores8(q0, q1, hd, kh, kv_stride, 8)
                                                       : pair_scores8(q0, q1, hd, kh, kv_stride, valid),
                                            scale);
            const __mmask16 keep = first_lanes(valid);
            _mm512_mask_storeu_ps(s0 + 8 * h, keep, sc);
            _mm512_mask_storeu_ps(s1 + 8 * h - 8, (__mmask16)(keep << 8), sc);
        }
    }
    if (r < n_q) {
        const float *qr = q + (size_t)r * hd;
        const __m512 sc = nk == 16 ? row_scores16(qr, hd, kb, kv_stride, 16) : row_scores16(qr, hd, kb, kv_stride, nk);
        _mm512_mask_storeu_ps(scores + (size_t)r * stride + j0, first_lanes(nk), _mm512_mul_ps(sc, scale));
    }
}

static void attention_scores_avx512(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride,
                                    float scale, float *scores, size_t s_stride)
{
    if (hd % 8 || hd > BLOCK_MAX_HD) { /* rows_scores16 masks a last half vector */
        attention_scores_ref(n_q, n, hd, q, k, kv_stride, scale, scores, s_stride);
        return;
    }
    prefetch_kv_rows(k, kv_stride, 0, ROWS_PREFETCH, n, hd);
    if (hd % 16 == 0) {
        for (int j0 = 0; j0 < n; j0 += ROWS_KEYS)
            block_scores16(n_q, hd, q, k, kv_stride, j0, n - j0 < ROWS_KEYS ? n - j0 : ROWS_KEYS, n,
                           _mm512_set1_ps(scale), scores, s_stride);
        return;
    }
    _Alignas(64) float kf[ROWS_KEYS * BLOCK_MAX_HD];
    for (int j0 = 0; j0 < n; j0 += ROWS_KEYS)
        rows_scores16(n_q, hd, q, k, kv_stride, j0, n - j0 < ROWS_KEYS ? n - j0 : ROWS_KEYS, n, scale, scores,
                      s_stride, kf);
}

/* In place: s[0, n) -> softmax probabilities rounded to f16 (sums in double every 64 keys). */
static void attention_softmax_avx512(int n, float *s)
{
    if (n <= 0) return;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, first_lanes(n - j), s + j));
    const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    double sum = 0;
    for (int j0 = 0; j0 < n; j0 += 64) {
        __m512 vsum = _mm512_setzero_ps();
        for (int j = j0; j < j0 + 64 && j < n; j += 16) {
            const __mmask16 m = first_lanes(n - j);
            __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), max)));
            _mm512_mask_storeu_ps(s + j, m, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        sum += _mm512_reduce_add_ps(vsum);
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = first_lanes(n - j);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv);
        p = _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm512_mask_storeu_ps(s + j, m, p);
    }
}

/* out[r][0, 16 * vecs) for `rows` rows: sum_j p[r][j] v_j over n keys; each v_j chunk is
 * converted once for all the rows. rows and vecs are constants where this is expanded. */
ALWAYS_INLINE void rows_values(const int rows, const int vecs, const float *p, size_t p_stride, const f16_t *v,
                               size_t kv_stride, int n, float *out, size_t out_stride)
{
    __m512 acc[ROWS_V][4];
    UNROLL
    for (int r = 0; r < rows; r++)
        UNROLL
        for (int c = 0; c < vecs; c++) acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        const f16_t *vj = v + (size_t)j * kv_stride;
        if (j + ROWS_PREFETCH < n)
            UNROLL
            for (int c = 0; c < vecs; c += 2)
                _mm_prefetch((const char *)(vj + (size_t)ROWS_PREFETCH * kv_stride + 16 * c), _MM_HINT_T0);
        __m512 x[4];
        UNROLL
        for (int c = 0; c < vecs; c++) x[c] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vj + 16 * c)));
        UNROLL
        for (int r = 0; r < rows; r++) {
            const __m512 pj = _mm512_set1_ps(p[(size_t)r * p_stride + j]);
            UNROLL
            for (int c = 0; c < vecs; c++) acc[r][c] = _mm512_fmadd_ps(pj, x[c], acc[r][c]);
        }
    }
    UNROLL
    for (int r = 0; r < rows; r++)
        UNROLL
        for (int c = 0; c < vecs; c++) _mm512_storeu_ps(out + (size_t)r * out_stride + 16 * c, acc[r][c]);
}

/* The last 8 columns of a head whose size is 8 more than a multiple of 16 (8, 24, 40, ...). */
static void values_last8(int n_q, int n, const float *p, size_t p_stride, const f16_t *v, size_t kv_stride,
                         float *out, size_t out_stride)
{
    for (int r = 0; r < n_q; r++) {
        __m256 acc = _mm256_setzero_ps();
        for (int j = 0; j < n; j++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(p[(size_t)r * p_stride + j]),
                                  _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + (size_t)j * kv_stride))), acc);
        _mm256_storeu_ps(out + (size_t)r * out_stride, acc);
    }
}

/* Up to 4 rows (ROWS_V) x up to 64 columns per pass over the keys (n_cols a multiple of 8). */
static void attention_values_avx512(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                                    size_t kv_stride, float *out, size_t out_stride)
{
    if (n_cols % 8) {
        attention_values_ref(n_q, n, n_cols, p, p_stride, v, kv_stride, out, out_stride);
        return;
    }
    if (n_cols % 16) {
        n_cols -= 8;
        values_last8(n_q, n, p, p_stride, v + n_cols, kv_stride, out + n_cols, out_stride);
    }
    for (int r0 = 0; r0 < n_q; r0 += ROWS_V) {
        const int rows = n_q - r0 < ROWS_V ? n_q - r0 : ROWS_V;
        const float *pr = p + (size_t)r0 * p_stride;
        float *o = out + (size_t)r0 * out_stride;
        for (int c0 = 0; c0 < n_cols; c0 += 64) {
            const int vecs = n_cols - c0 >= 64 ? 4 : (n_cols - c0) / 16;
#define ROWS_VALUES_CASE(R, V)                                                                                    \
    if (rows == R && vecs == V) {                                                                                 \
        rows_values(R, V, pr, p_stride, v + c0, kv_stride, n, o + c0, out_stride);                                \
        continue;                                                                                                 \
    }
#define ROWS_VALUES_R(R) ROWS_VALUES_CASE(R, 4) ROWS_VALUES_CASE(R, 3) ROWS_VALUES_CASE(R, 2) ROWS_VALUES_CASE(R, 1)
            ROWS_VALUES_R(1) ROWS_VALUES_R(2) ROWS_VALUES_R(3) ROWS_VALUES_R(4)
#undef ROWS_VALUES_R
#undef ROWS_VALUES_CASE
        }
    }
}

void kernels_install_attention_avx512(kernel_table *t)
{
    t->attention_block = attention_block_avx512;
    t->attention_scores = attention_scores_avx512;
    t->attention_softmax = attention_softmax_avx512;
    t->attention_values = attention_values_avx512;
}

#else
void kernels_install_attention_avx512(kernel_table *t) { (void)t; }
#endif
