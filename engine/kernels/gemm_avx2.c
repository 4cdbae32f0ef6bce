/*
 * gemm_avx2.c - prefill matrix-matrix products with AVX2 + FMA + F16C.
 *
 * Same idea as gemm_avx512.c, sized for 16 ymm registers: the output is cut
 * into tiles of a few weight rows x 4 tokens; each weight block is unpacked
 * into registers once per tile and multiplied by the 4 activation rows, every
 * (row, token) product accumulating in its own register. Edge tiles repeat
 * the last row/token and drop the extra results.
 *
 * 32-element formats (Q4_0, Q5_0, Q8_0, IQ4_NL; 2 rows x 4 tokens): one block
 * per ymm. Weights are signed bytes w; maddubs needs one unsigned operand, so
 * the product is |w| x (a with w's sign), computed as in the vec_dot kernels,
 * then madd to int32 and one FMA per block with d_w * d_a.
 *
 * K-quants (Q4_K, Q5_K, Q6_K; 1 row x 4 tokens): 32 elements per ymm,
 * maddubs + madd with the sub-block's int16 scale, an exact int32 sum per
 * super-block, then one FMA. The Q4_K/Q5_K mins and the Q6_K -32 offset are
 * integer dot products of per-row coefficients with the tokens' bsums, done
 * with madd + hadd for all 4 tokens at once.
 *
 * Integer parts are exact; only the float summation order differs from the
 * scalar reference (tests/test_gemm.c). Compiled with -mavx2 -mfma -mf16c on
 * x86_64 only; elsewhere the installer is empty.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#include "simd_x86.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* fully unroll the small tile loops so every accumulator stays in a register */
#define UNROLL _Pragma("GCC unroll 16")
#define TILE_A 4 /* tokens per tile; the reductions below assume 4 */
#define MAX_TILE_R 2

typedef void (*tile_fn)(int n, const uint8_t *const *w, const uint8_t *const a[TILE_A], float out[TILE_A][MAX_TILE_R]);

static inline uint32_t read_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 4 ymm -> one xmm of their 4 horizontal sums. */
static inline __m128 hsum4_f32x8(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Walks the output in tiles of tile_r rows x TILE_A tokens. */
static void gemm_tiles(tile_fn tile, int tile_r, int n, const void *w, size_t w_stride, int n_rows, const void *act,
                       size_t act_stride, int n_act, float *y, size_t y_stride)
{
    for (int r0 = 0; r0 < n_rows; r0 += tile_r) {
        const uint8_t *wr[MAX_TILE_R];
        const int nr = n_rows - r0 < tile_r ? n_rows - r0 : tile_r;
        for (int r = 0; r < tile_r; r++) wr[r] = (const uint8_t *)w + (size_t)(r0 + (r < nr ? r : nr - 1)) * w_stride;
        for (int a0 = 0; a0 < n_act; a0 += TILE_A) {
            const uint8_t *ar[TILE_A];
            const int na = n_act - a0 < TILE_A ? n_act - a0 : TILE_A;
            for (int a = 0; a < TILE_A; a++)
                ar[a] = (const uint8_t *)act + (size_t)(a0 + (a < na ? a : na - 1)) * act_stride;
            float out[TILE_A][MAX_TILE_R];
            tile(n, wr, ar, out);
            for (int a = 0; a < na; a++)
                for (int r = 0; r < nr; r++) y[(size_t)(a0 + a) * y_stride + r0 + r] = out[a][r];
        }
    }
}

/* ---- 32-element signed formats: 2 rows x 4 tokens ------------------------- */

enum { B32_Q4_0, B32_Q5_0, B32_Q8_0, B32_IQ4_NL };
#define B32_R 2

static const size_t b32_size[] = {sizeof(block_q4_0), sizeof(block_q5_0), sizeof(block_q8_0), sizeof(block_iq4_nl)};

/* One block's 32 weights as signed bytes. */
ALWAYS_INLINE __m256i b32_signed(const int fmt, const uint8_t *blk)
{
    switch (fmt) {
    case B32_Q4_0: return _mm256_sub_epi8(unpack_nibbles_32(((const block_q4_0 *)blk)->qs), _mm256_set1_epi8(8));
    case B32_Q5_0: {
        const block_q5_0 *b = (const block_q5_0 *)blk;
        __m256i high_clear = _mm256_andnot_si256(bits_to_byte_mask(read_u32(b->qh)), _mm256_set1_epi8((char)0xF0));
        return _mm256_or_si256(unpack_nibbles_32(b->qs), high_clear); /* nibble | bit4 << 4, minus 16 */
    }
    case B32_Q8_0: return load256(((const block_q8_0 *)blk)->qs);
    default: {
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4nl_values));
        return _mm256_shuffle_epi8(table, unpack_nibbles_32(((const block_iq4_nl *)blk)->qs));
    }
    }
}

/* Every block struct of these formats starts with its f16 scale. */
static inline float block_d(const uint8_t *blk)
{
    f16_t h;
    memcpy(&h, blk, sizeof h);
    return _cvtsh_ss(h);
}

ALWAYS_INLINE void b32_tile(const int fmt, int n, const uint8_t *const *w, const uint8_t *const a[TILE_A],
                            float out[TILE_A][MAX_TILE_R])
{
    const int nb = n / QK32;
    const size_t bs = b32_size[fmt];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[B32_R][TILE_A];
    UNROLL
    for (int r = 0; r < B32_R; r++)
        UNROLL
        for (int t = 0; t < TILE_A; t++) acc[r][t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256i wabs[B32_R], wsgn[B32_R];
        float dw[B32_R];
        UNROLL
        for (int r = 0; r < B32_R; r++) {
            const uint8_t *blk = w[r] + (size_t)i * bs;
            wsgn[r] = b32_signed(fmt, blk);
            wabs[r] = _mm256_sign_epi8(wsgn[r], wsgn[r]);
            dw[r] = block_d(blk);
        }
        UNROLL
        for (int t = 0; t < TILE_A; t++) {
            const block_q8_32 *y = (const block_q8_32 *)a[t] + i;
            const __m256i q = load256(y->qs);
            UNROLL
            for (int r = 0; r < B32_R; r++) {
                __m256i p = _mm256_maddubs_epi16(wabs[r], _mm256_sign_epi8(q, wsgn[r]));
                __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[r][t] = _mm256_fmadd_ps(s, _mm256_set1_ps(dw[r] * y->d), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < B32_R; r++) {
        float v[4];
        _mm_storeu_ps(v, hsum4_f32x8(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
        UNROLL
        for (int t = 0; t < TILE_A; t++) out[t][r] = v[t];
    }
}

#define B32_GEMM(name, fmt)                                                                                        \
    static void tile_##name(int n, const uint8_t *const *w, const uint8_t *const a[TILE_A],                        \
                            float out[TILE_A][MAX_TILE_R])                                                         \
    {                                                                                                              \
        b32_tile(fmt, n, w, a, out);                                                                               \
    }                                                                                                              \
    static void gemm_##name(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y,   \
                            size_t ys)                                                                             \
    {                                                                                                              \
        gemm_tiles(tile_##name, B32_R, n, w, ws, nr, a, as, na, y, ys);                                            \
    }

B32_GEMM(q4_0_avx2, B32_Q4_0)
B32_GEMM(q5_0_avx2, B32_Q5_0)
B32_GEMM(q8_0_avx2, B32_Q8_0)
B32_GEMM(iq4_nl_avx2, B32_IQ4_NL)

/* ---- k-quants: 1 row x 4 tokens ------------------------------------------- */

enum { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

/* The 12-byte 6-bit scale/min field of Q4_K/Q5_K -> 8 scale bytes and 8 min bytes. */
static inline void unpack_scales_k4_bytes(const uint8_t *packed, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t s[2], m[2];
    unpack_scales_k4(packed, s, m);
    memcpy(sc, s, 8);
    memcpy(mn, m, 8);
}

/* Chunk c (elements 32c..32c+31) of a super-block as unsigned bytes. */
ALWAYS_INLINE __m256i kq_weights(const int fmt, const uint8_t *blk, int c)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    if (fmt == KQ_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        const int half = c >> 2, k = c & 3;
        __m256i l = load256(b->ql + 64 * half + 32 * (k & 1)), h = load256(b->qh + 32 * half);
        __m256i lo = (k & 2) ? _mm256_and_si256(_mm256_srli_epi16(l, 4), low4) : _mm256_and_si256(l, low4);
        __m256i hi = k == 0 ? _mm256_slli_epi16(h, 4) : k == 1 ? _mm256_slli_epi16(h, 2) : k == 2 ? h : _mm256_srli_epi16(h, 2);
        return _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
    }
    const uint8_t *qs = fmt == KQ_Q4_K ? ((const block_q4_K *)blk)->qs : ((const block_q5_K *)blk)->qs;
    __m256i v = load256(qs + 32 * (c >> 1));
    __m256i u = (c & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), low4) : _mm256_and_si256(v, low4);
    if (fmt == KQ_Q5_K) {
        /* bit c of qh[l] is the fifth bit of element 32c + l */
        __m256i qh = load256(((const block_q5_K *)blk)->qh);
        __m256i h = c >= 4 ? _mm256_srli_epi16(qh, c - 4) : _mm256_slli_epi16(qh, 4 - c);
        u = _mm256_or_si256(u, _mm256_and_si256(h, _mm256_set1_epi8(0x10)));
    }
    return u;
}

ALWAYS_INLINE void kq_tile(const int fmt, int n, const uint8_t *const *w, const uint8_t *const a[TILE_A],
                           float out[TILE_A][MAX_TILE_R])
{
    const int nb = n / QK_K;
    const size_t bs = fmt == KQ_Q4_K ? sizeof(block_q4_K) : fmt == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
    __m256 acc[TILE_A];
    __m128 corr_acc = _mm_setzero_ps();
    UNROLL
    for (int t = 0; t < TILE_A; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const uint8_t *blk = w[0] + (size_t)i * bs;
        const block_q8_K *y[TILE_A];
        UNROLL
        for (int t = 0; t < TILE_A; t++) y[t] = (const block_q8_K *)a[t] + i;
        float d, coef;
        __m256i corr;     /* 16 int16 coefficients against the 16 bsums */
        __m128i scales8;  /* Q6_K: 16 int8 scales */
        uint8_t sc[8];    /* Q4_K/Q5_K: 8 scales */
        if (fmt == KQ_Q6_K) {
            const block_q6_K *b = (const block_q6_K *)blk;
            d = _cvtsh_ss(b->d);
            coef = 32.0f * d;
            scales8 = _mm_loadu_si128((const __m128i *)b->scales);
            corr = _mm256_cvtepi8_epi16(scales8);
        } else {
            const block_q4_K *b = (const block_q4_K *)blk; /* Q5_K starts with the same d, dmin, scales */
            uint8_t mn[8];
            unpack_scales_k4_bytes(b->scales, sc, mn);
            d = _cvtsh_ss(b->d);
            coef = _cvtsh_ss(b->dmin);
            __m128i mins8 = _mm_loadl_epi64((const __m128i *)mn);
            corr = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8)); /* m0 m0 m1 m1 ... */
            scales8 = _mm_setzero_si128();
        }
        {   /* corr_acc[t] += coef * d_t * (corr . bsums_t) */
            __m256i p0 = _mm256_madd_epi16(corr, load256(y[0]->bsums)), p1 = _mm256_madd_epi16(corr, load256(y[1]->bsums));
            __m256i p2 = _mm256_madd_epi16(corr, load256(y[2]->bsums)), p3 = _mm256_madd_epi16(corr, load256(y[3]->bsums));
            __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
            __m128i m = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            __m128 da = _mm_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d);
            corr_acc = _mm_fmadd_ps(_mm_cvtepi32_ps(m), _mm_mul_ps(_mm_set1_ps(coef), da), corr_acc);
        }
        __m256i sumi[TILE_A];
        UNROLL
        for (int t = 0; t < TILE_A; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 8; c++) {
            const __m256i u = kq_weights(fmt, blk, c);
            const __m256i s = fmt == KQ_Q6_K ? _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
                                                   scales8, _mm_loadu_si128((const __m128i *)scale_pair_shuffle[c])))
                                             : _mm256_set1_epi16(sc[c]);
            UNROLL
            for (int t = 0; t < TILE_A; t++) {
                __m256i p = _mm256_maddubs_epi16(u, load256(y[t]->qs + 32 * c));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, s));
            }
        }
        UNROLL
        for (int t = 0; t < TILE_A; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), _mm256_set1_ps(d * y[t]->d), acc[t]);
    }
    float v[4];
    _mm_storeu_ps(v, _mm_sub_ps(hsum4_f32x8(acc[0], acc[1], acc[2], acc[3]), corr_acc));
    UNROLL
    for (int t = 0; t < TILE_A; t++) out[t][0] = v[t];
}

#define KQ_GEMM(name, fmt)                                                                                         \
    static void tile_##name(int n, const uint8_t *const *w, const uint8_t *const a[TILE_A],                        \
                            float out[TILE_A][MAX_TILE_R])                                                         \
    {                                                                                                              \
        kq_tile(fmt, n, w, a, out);                                                                                \
    }                                                                                                              \
    static void gemm_##name(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y,   \
                            size_t ys)                                                                             \
    {                                                                                                              \
        gemm_tiles(tile_##name, 1, n, w, ws, nr, a, as, na, y, ys);                                                \
    }

KQ_GEMM(q4_K_avx2, KQ_Q4_K)
KQ_GEMM(q5_K_avx2, KQ_Q5_K)
KQ_GEMM(q6_K_avx2, KQ_Q6_K)

void kernels_install_gemm_avx2(kernel_table *t)
{
    t->gemm[QT_Q4_0] = gemm_q4_0_avx2;
    t->gemm[QT_Q5_0] = gemm_q5_0_avx2;
    t->gemm[QT_Q8_0] = gemm_q8_0_avx2;
    t->gemm[QT_IQ4_NL] = gemm_iq4_nl_avx2;
    t->gemm[QT_Q4_K] = gemm_q4_K_avx2;
    t->gemm[QT_Q5_K] = gemm_q5_K_avx2;
    t->gemm[QT_Q6_K] = gemm_q6_K_avx2;
}

#else

void kernels_install_gemm_avx2(kernel_table *t) { (void)t; }

#endif
