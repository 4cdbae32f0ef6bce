/*
 * attention_avx512.c - blocked attention over the F16 KV cache, AVX-512.
 *
 * The same three steps as attention_block_avx2 (see attention_avx2.c for
 * the why), with 16-lane registers and 32 of them:
 *   1. scores: K tiles of SCORE_TILE keys converted to f32 and transposed to
 *      d-major in an L1 buffer (8x8 F16C transposes), then for each group of
 *      SCORE_ROWS query rows an outer-product accumulation
 *      acc[r][keys] += q[r][d] * kt[d][keys] - no horizontal sums;
 *      each row's maximum over its own keys folded in as the tile is stored;
 *   2. e^(s - max) and the sum per row over its own keys (a 16-wide version
 *      of the AVX2 vector exp); keys past a row's limit get 0;
 *   3. P x V: V tiles converted to f32 once (rows padded to a multiple of 16
 *      floats with zeros); each row group rounds its slice of the tile to
 *      f16 probabilities as the reference does, then register blocks of
 *      VALUE_ROWS rows x VALUE_VECS head vectors accumulate; a head that is
 *      not a multiple of 16 ends in a masked half vector.
 * Masks handle every tail, so any head size that is a multiple of 8 (up to
 * BLOCK_MAX_HD) takes this path; others use the scalar reference row by row.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) &&                 \
    defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum {
    SCORE_TILE = 64,   /* keys per K tile: 4 vectors */
    SCORE_ROWS = 5,    /* query rows per register block of a score tile (20 accumulators) */
    VALUE_TILE = 64,   /* keys per V tile */
    VALUE_ROWS = 5,    /* query rows per register block of P x V ... */
    VALUE_VECS = 4,    /* ... times head vectors of 16 (20 accumulators) */
    BLOCK_MAX_HD = 256, /* larger heads go row by row */
    ROW_BATCH = 64      /* rows per pass over K and V (bounds the per-row state on the stack) */
};

/* e^x for x <= 0 (inputs below -87 give ~0): the AVX2 file's exp8, 16 wide. */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

static inline __mmask16 first_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

static inline __m256 load_f16x8(const f16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* In place: s[j] = e^(s[j] - max) for j < n (n >= 1); returns 1 / the sum, as the reference
 * computes it (sum in double). Float partial sums go into the double every 64 keys. */
static float exp_and_inverse_sum(float *s, int n, float max)
{
    const __m512 vmax = _mm512_set1_ps(max);
    double sum = 0;
    for (int j0 = 0; j0 < n; j0 += 64) {
        __m512 vsum = _mm512_setzero_ps();
        for (int j = j0; j < j0 + 64 && j < n; j += 16) {
            __mmask16 m = first_lanes(n - j);
            __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), vmax)));
            _mm512_mask_storeu_ps(s + j, m, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        sum += _mm512_reduce_add_ps(vsum);
    }
    return (float)(1.0 / sum);
}

/* In place: p[j] = f16 rounding of e[j] * inv_sum for j < n: the probabilities the reference uses. */
static void normalize_round_f16(float *p, int n, float inv_sum)
{
    const __m512 inv = _mm512_set1_ps(inv_sum);
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = first_lanes(n - j);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + j), inv);
        x = _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm512_mask_storeu_ps(p + j, m, x);
    }
}

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
    for (int j0 = 0; j0 < SCORE_TILE; j0 += 8) {
        if (j0 >= n) { /* whole block of missing keys */
            for (int d = 0; d < hd; d++) _mm256_storeu_ps(kt + (size_t)d * SCORE_TILE + j0, _mm256_setzero_ps());
            continue;
        }
        for (int d = 0; d < hd; d += 8) {
            __m256 rows[8];
            for (int i = 0; i < 8; i++)
                rows[i] = j0 + i < n ? load_f16x8(k + (size_t)(j0 + i) * kv_stride + d) : _mm256_setzero_ps();
            store_transposed_8x8(rows, kt + (size_t)d * SCORE_TILE + j0, SCORE_TILE);
        }
    }
}

/* Scores of `rows` query rows against one transposed K tile (keys j0 + [0, n)): stores the
 * n columns and folds the scores of each row's own keys (j0 + j < n_keys[r]) into vmax[r]. */
ALWAYS_INLINE void score_tile(int rows, int hd, const float *q, const float *kt, float scale, float *s,
                              size_t s_stride, int n, const int *n_keys, int j0, __m512 *vmax)
{
    enum { V = SCORE_TILE / 16 };
    __m512 acc[SCORE_ROWS][V];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) acc[r][c] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m512 kv[V];
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) kv[c] = _mm512_loadu_ps(kt + (size_t)d * SCORE_TILE + 16 * c);
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m512 qb = _mm512_set1_ps(q[(size_t)r * hd + d]);
#pragma GCC unroll 8
            for (int c = 0; c < V; c++) acc[r][c] = _mm512_fmadd_ps(qb, kv[c], acc[r][c]);
        }
    }
    const __m512 vscale = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        int own = n_keys[r] - j0 < n ? n_keys[r] - j0 : n; /* this row's keys in the tile */
#pragma GCC unroll 8
        for (int c = 0; c < V; c++) {
            __m512 x = _mm512_mul_ps(acc[r][c], vscale);
            _mm512_mask_storeu_ps(s + (size_t)r * s_stride + 16 * c, first_lanes(n - 16 * c > 0 ? n - 16 * c : 0), x);
            vmax[r] = _mm512_mask_max_ps(vmax[r], first_lanes(own - 16 * c > 0 ? own - 16 * c : 0), vmax[r], x);
        }
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
                         size_t kv_stride, float scale, float *scores, size_t s_stride, float *kt, __m512 *vmax)
{
    for (int r = 0; r < n_q; r++) vmax[r] = _mm512_set1_ps(-INFINITY);
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

/* out rows += P[:, tile] x V tile, for `rows` rows and head vectors [c0, c0 + vecs) of 16 floats;
 * vt rows are `pitch` floats apart; the last vector of a head of hd floats may be half used. */
ALWAYS_INLINE void value_tile(int rows, int vecs, int hd, size_t pitch, int c0, const float *p, size_t p_stride,
                              const float *vt, int n, float *out)
{
    __m512 acc[VALUE_ROWS][VALUE_VECS];
    __mmask16 used[VALUE_VECS];
#pragma GCC unroll 8
    for (int c = 0; c < vecs; c++) used[c] = first_lanes(hd - 16 * (c0 + c));
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++)
            acc[r][c] = _mm512_maskz_loadu_ps(used[c], out + (size_t)r * hd + 16 * (c0 + c));
    for (int j = 0; j < n; j++) {
        __m512 vv[VALUE_VECS];
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++) vv[c] = _mm512_loadu_ps(vt + (size_t)j * pitch + 16 * (c0 + c));
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m512 pb = _mm512_set1_ps(p[(size_t)r * p_stride + j]);
#pragma GCC unroll 8
            for (int c = 0; c < vecs; c++) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
        for (int c = 0; c < vecs; c++)
            _mm512_mask_storeu_ps(out + (size_t)r * hd + 16 * (c0 + c), used[c], acc[r][c]);
}

/* value_tile with a compile-time slice width: vecs in 1..VALUE_VECS. */
ALWAYS_INLINE void value_slice(int rows, int vecs, int hd, size_t pitch, int c0, const float *p, size_t p_stride,
                               const float *vt, int n, float *out)
{
    switch (vecs) {
    case 1: value_tile(rows, 1, hd, pitch, c0, p, p_stride, vt, n, out); break;
    case 2: value_tile(rows, 2, hd, pitch, c0, p, p_stride, vt, n, out); break;
    case 3: value_tile(rows, 3, hd, pitch, c0, p, p_stride, vt, n, out); break;
    default: value_tile(rows, VALUE_VECS, hd, pitch, c0, p, p_stride, vt, n, out); break;
    }
}

/* One row group over one V tile, the head split in register-sized slices. */
static void value_tile_rows(int rows, int hd, size_t pitch, const float *p, size_t p_stride, const float *vt, int n,
                            float *out)
{
    const int n_vecs = (hd + 15) / 16;
    for (int c0 = 0; c0 < n_vecs; c0 += VALUE_VECS) {
        int vecs = n_vecs - c0 < VALUE_VECS ? n_vecs - c0 : VALUE_VECS;
        if (rows == VALUE_ROWS)
            value_slice(VALUE_ROWS, vecs, hd, pitch, c0, p, p_stride, vt, n, out);
        else
            for (int r = 0; r < rows; r++)
                value_slice(1, vecs, hd, pitch, c0, p + (size_t)r * p_stride, p_stride, vt, n, out + (size_t)r * hd);
    }
}

/* vt[j * pitch + d] = v_j[d] for the n keys of the tile, rows zero-padded to pitch. */
static void v_tile_convert(const f16_t *v, size_t kv_stride, int n, int hd, size_t pitch, float *vt)
{
    for (int j = 0; j < n; j++) {
        float *row = vt + (size_t)j * pitch;
        for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(row + d, load_f16x8(v + (size_t)j * kv_stride + d));
        if ((size_t)hd < pitch) _mm256_storeu_ps(row + hd, _mm256_setzero_ps());
    }
}

/* out = P x V, where probs holds e^(s - max) (0 past each row's limit) and becomes P, rounded to
 * f16 with inv_sum[r], one tile at a time just before use. */
static void block_values(int n_q, const int *n_keys, int n_max, int hd, const f16_t *v, size_t kv_stride,
                         float *probs, size_t p_stride, const float *inv_sum, float *out, float *vt)
{
    const size_t pitch = (size_t)(hd + 15) / 16 * 16;
    memset(out, 0, (size_t)n_q * hd * sizeof *out);
    for (int j0 = 0; j0 < n_max; j0 += VALUE_TILE) {
        int n = n_max - j0 < VALUE_TILE ? n_max - j0 : VALUE_TILE;
        v_tile_convert(v + (size_t)j0 * kv_stride, kv_stride, n, hd, pitch, vt);
        for (int r0 = 0; r0 < n_q; r0 += VALUE_ROWS) {
            int rows = n_q - r0 < VALUE_ROWS ? n_q - r0 : VALUE_ROWS;
            int group_keys = max_keys_of(n_keys + r0, rows) - j0;
            if (group_keys <= 0) continue;
            if (group_keys > n) group_keys = n;
            for (int r = r0; r < r0 + rows; r++)
                normalize_round_f16(probs + (size_t)r * p_stride + j0, group_keys, inv_sum[r]);
            value_tile_rows(rows, hd, pitch, probs + (size_t)r0 * p_stride + j0, p_stride, vt, group_keys,
                            out + (size_t)r0 * hd);
        }
    }
}

/* Up to ROW_BATCH rows: one pass over K, the exponentials row by row, one pass over V. */
static void attention_batch(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                            size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    _Alignas(64) float tile[BLOCK_MAX_HD * (SCORE_TILE > VALUE_TILE ? SCORE_TILE : VALUE_TILE)];
    __m512 vmax[ROW_BATCH];
    float inv_sum[ROW_BATCH];
    const int n_max = max_keys_of(n_keys, n_q);
    block_scores(n_q, n_keys, n_max, hd, q, k, kv_stride, scale, scores, scores_stride, tile, vmax);
    for (int r = 0; r < n_q; r++) {
        float *s = scores + (size_t)r * scores_stride;
        int n = n_keys[r] > 0 ? n_keys[r] : 0;
        inv_sum[r] = n ? exp_and_inverse_sum(s, n, _mm512_reduce_max_ps(vmax[r])) : 0;
        memset(s + n, 0, (size_t)(n_max - n) * sizeof *s); /* keys past this row's limit weigh nothing */
    }
    block_values(n_q, n_keys, n_max, hd, v, kv_stride, scores, scores_stride, inv_sum, out, tile);
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

void kernels_install_attention_avx512(kernel_table *t) { t->attention_block = attention_block_avx512; }

#else
void kernels_install_attention_avx512(kernel_table *t) { (void)t; }
#endif
