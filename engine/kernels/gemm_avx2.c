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
/* An empty asm the value must pass through: keeps a running sum a chain of
 * adds (unrolled, GCC rebalances it into a tree whose products all stay live
 * at once and spill). */
#define KEEP_CHAIN(v) __asm__("" : "+x"(v))
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

/* ---- row panels ----------------------------------------------------------- */

#define PANEL_R 16 /* weight rows per panel: two ymm of 8 int32 lanes (one row each) */
#define PANEL_H 2  /* ymm per panel */

/* 16 bytes at row[r] + off for r < 8 -> t[k] lane r = bytes 4k..4k+3 of row r. */
ALWAYS_INLINE void transpose_rows8x16(const uint8_t *const row[8], size_t off, __m256i t[4])
{
    __m256i z[4];
    UNROLL
    for (int j = 0; j < 4; j++)
        z[j] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(row[j] + off))),
                                       _mm_loadu_si128((const __m128i *)(row[j + 4] + off)), 1);
    /* z[j] 128-bit lane l = row j + 4l; a 4x4 dword transpose inside each lane */
    __m256i a0 = _mm256_unpacklo_epi32(z[0], z[1]), a1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i a2 = _mm256_unpacklo_epi32(z[2], z[3]), a3 = _mm256_unpackhi_epi32(z[2], z[3]);
    t[0] = _mm256_unpacklo_epi64(a0, a2);
    t[1] = _mm256_unpackhi_epi64(a0, a2);
    t[2] = _mm256_unpacklo_epi64(a1, a3);
    t[3] = _mm256_unpackhi_epi64(a1, a3);
}

/* The low (high) 16 bits of each int32 lane as 8 f16 -> 8 floats. */
static inline __m256 f16_lanes_low(__m256i v)
{
    v = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}
static inline __m256 f16_lanes_high(__m256i v) { return f16_lanes_low(_mm256_srli_epi32(v, 16)); }

/* Byte j of each int32 lane (unsigned) as the int16 pair (b, b): a madd operand scaling both halves. */
static inline __m256i byte_pair(__m256i v, int j)
{
    __m256i b = _mm256_and_si256(_mm256_srli_epi32(v, 8 * j), _mm256_set1_epi32(0xFF));
    return _mm256_or_si256(b, _mm256_slli_epi32(b, 16));
}

/* Bytes 2j and 2j + 1 of each int32 lane (unsigned) as two int16. */
static inline __m256i byte_pair_widened(__m256i v, int j)
{
    __m256i x = j ? _mm256_srli_epi32(v, 16) : v;
    return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xFF)),
                           _mm256_and_si256(_mm256_slli_epi32(x, 8), _mm256_set1_epi32(0xFF0000)));
}

/* y[0..16) (or its first `keep` floats) = (add ? y : 0) + the panel's two halves. */
static inline void store_panel(float *y, __m256 v0, __m256 v1, int add, int keep)
{
    if (keep == PANEL_R) {
        if (add) v0 = _mm256_add_ps(v0, _mm256_loadu_ps(y)), v1 = _mm256_add_ps(v1, _mm256_loadu_ps(y + 8));
        _mm256_storeu_ps(y, v0);
        _mm256_storeu_ps(y + 8, v1);
        return;
    }
    float v[PANEL_R];
    _mm256_storeu_ps(v, v0);
    _mm256_storeu_ps(v + 8, v1);
    for (int r = 0; r < keep; r++) y[r] = add ? y[r] + v[r] : v[r];
}

/* ---- k-quants: row panels ------------------------------------------------- */

enum { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

static inline size_t kq_size(const int fmt)
{
    return fmt == KQ_Q4_K ? sizeof(block_q4_K) : fmt == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

/* Weight groups (4 bytes each) whose maddubs pairs can be summed in int16
 * before one madd widens them: 4-bit 0..15 x 127 x 2 x 8 groups = 30480,
 * 5-bit 4 groups = 31496, 6-bit 2 groups = 32004, all below 32767. */
static inline int kq_groups_per_madd(const int fmt) { return fmt == KQ_Q4_K ? 8 : fmt == KQ_Q5_K ? 4 : 2; }

/* int16 pairs of the correction (kq_panel.pair) per row. */
static inline int kq_pairs(const int fmt) { return fmt == KQ_Q6_K ? 8 : 4; }

/* One super-block of a 16-row panel, unpacked once and shared by every
 * token: u[c][k][h] lane r = unsigned weights 32c + 4k .. 32c + 4k + 3 of row
 * 8h + r (Q6_K: q + 32); sc[s][h] lane r = that row's integer scale of
 * sub-block s as an int16 pair (Q4_K/Q5_K: 8 sub-blocks of 32, Q6_K: 16 of
 * 16); pair[k][h] lane r = two int16 weights against two sums of
 * activations (Q4_K/Q5_K: min_2k, min_2k+1 against sub-blocks 2k, 2k + 1,
 * k < 4; Q6_K: scale_2k, scale_2k+1 against bsums[2k], bsums[2k + 1]); d
 * (and dmin) the rows' float scales. */
typedef struct {
    __m256i u[8][8][PANEL_H];
    __m256i sc[16][PANEL_H];
    __m256i pair[8][PANEL_H];
    __m256 d[PANEL_H], dmin[PANEL_H];
} kq_panel;

/* Q4_K and Q5_K (same d, dmin, scales; Q5_K adds a fifth bit from qh); rows[r] = row r's block. */
ALWAYS_INLINE void kq_unpack_k4(const int fmt, const uint8_t *const rows[8], int h, kq_panel *p)
{
    __m256i t[4];
    transpose_rows8x16(rows, 0, t); /* d | dmin << 16, then the 12 scale bytes */
    p->d[h] = f16_lanes_low(t[0]);
    p->dmin[h] = f16_lanes_high(t[0]);
    /* the 6-bit scale/min unpacking of unpack_scales_k4, 8 rows at once */
    const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), m4 = _mm256_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm256_set1_epi32(0x30303030);
    __m256i sc_lo = _mm256_and_si256(t[1], m6);
    __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(t[3], m4), _mm256_and_si256(_mm256_srli_epi32(t[1], 2), hi2));
    __m256i mn_lo = _mm256_and_si256(t[2], m6);
    __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(t[3], 4), m4),
                                    _mm256_and_si256(_mm256_srli_epi32(t[2], 2), hi2));
    for (int j = 0; j < 4; j++) {
        p->sc[j][h] = byte_pair(sc_lo, j);
        p->sc[4 + j][h] = byte_pair(sc_hi, j);
    }
    for (int j = 0; j < 2; j++) {
        p->pair[j][h] = byte_pair_widened(mn_lo, j);
        p->pair[2 + j][h] = byte_pair_widened(mn_hi, j);
    }
    /* qs[32j + l]: low nibble = element 64j + l, high nibble = element 64j + 32 + l */
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const size_t qs = fmt == KQ_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    for (int j = 0; j < 4; j++)
        for (int half = 0; half < 2; half++) {
            transpose_rows8x16(rows, qs + 32 * j + 16 * half, t);
            for (int k = 0; k < 4; k++) {
                p->u[2 * j][4 * half + k][h] = _mm256_and_si256(t[k], low4);
                p->u[2 * j + 1][4 * half + k][h] = _mm256_and_si256(_mm256_srli_epi16(t[k], 4), low4);
            }
        }
    if (fmt != KQ_Q5_K) return;
    /* bit c of qh[l] is the fifth bit of element 32c + l: move it to bit 4 */
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    for (int half = 0; half < 2; half++) {
        transpose_rows8x16(rows, offsetof(block_q5_K, qh) + 16 * half, t);
        for (int k = 0; k < 4; k++)
            for (int c = 0; c < 8; c++) {
                __m256i bit = c <= 4 ? _mm256_slli_epi16(t[k], 4 - c) : _mm256_srli_epi16(t[k], c - 4);
                p->u[c][4 * half + k][h] = _mm256_or_si256(p->u[c][4 * half + k][h], _mm256_and_si256(bit, bit4));
            }
    }
}

static inline void kq_unpack_q6_K(const uint8_t *const rows[8], int h, kq_panel *p)
{
    f16_t d[8];
    for (int r = 0; r < 8; r++) memcpy(&d[r], rows[r] + offsetof(block_q6_K, d), sizeof d[r]);
    p->d[h] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d));
    __m256i t[4];
    transpose_rows8x16(rows, offsetof(block_q6_K, scales), t);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    for (int g = 0; g < 4; g++) {
        /* t[g] lane r = int8 scales 4g..4g+3 of row r */
        __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(t[g], 8), 8); /* words: s0, s2 */
        __m256i odd = _mm256_srai_epi16(t[g], 8);                         /* words: s1, s3 */
        p->pair[2 * g][h] = _mm256_blend_epi16(even, _mm256_slli_epi32(odd, 16), 0xAA);
        p->pair[2 * g + 1][h] = _mm256_blend_epi16(_mm256_srli_epi32(even, 16), odd, 0xAA);
        for (int b = 0; b < 4; b++) {
            __m256i s = _mm256_srai_epi32(_mm256_slli_epi32(t[g], 24 - 8 * b), 24);
            p->sc[4 * g + b][h] = _mm256_or_si256(_mm256_and_si256(s, low16), _mm256_slli_epi32(s, 16));
        }
    }
    /* half hh, group g (elements 128hh + 32g + l): low 4 bits in ql[64hh + 32(g & 1) + l]
     * (nibble g >> 1), high 2 bits at bit 2g of qh[32hh + l] */
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    for (int hh = 0; hh < 2; hh++)
        for (int part = 0; part < 2; part++) {
            __m256i qa[4], qb[4], qh[4];
            const size_t ql = offsetof(block_q6_K, ql) + 64 * hh + 16 * part;
            transpose_rows8x16(rows, ql, qa);
            transpose_rows8x16(rows, ql + 32, qb);
            transpose_rows8x16(rows, offsetof(block_q6_K, qh) + 32 * hh + 16 * part, qh);
            for (int k = 0; k < 4; k++) {
                const int e = 4 * part + k;
                __m256i a_hi = _mm256_srli_epi16(qa[k], 4), b_hi = _mm256_srli_epi16(qb[k], 4);
                p->u[4 * hh + 0][e][h] = _mm256_or_si256(_mm256_and_si256(qa[k], low4),
                                                         _mm256_and_si256(_mm256_slli_epi16(qh[k], 4), bits45));
                p->u[4 * hh + 1][e][h] = _mm256_or_si256(_mm256_and_si256(qb[k], low4),
                                                         _mm256_and_si256(_mm256_slli_epi16(qh[k], 2), bits45));
                p->u[4 * hh + 2][e][h] = _mm256_or_si256(_mm256_and_si256(a_hi, low4), _mm256_and_si256(qh[k], bits45));
                p->u[4 * hh + 3][e][h] = _mm256_or_si256(_mm256_and_si256(b_hi, low4),
                                                         _mm256_and_si256(_mm256_srli_epi16(qh[k], 2), bits45));
            }
        }
}

/* Super-block i of the panel's 16 rows (row[r] = start of row r). */
ALWAYS_INLINE void kq_unpack(const int fmt, const uint8_t *const row[PANEL_R], int i, kq_panel *p)
{
    const size_t at = (size_t)i * kq_size(fmt);
    for (int h = 0; h < PANEL_H; h++) {
        const uint8_t *blk[8];
        for (int r = 0; r < 8; r++) blk[r] = row[8 * h + r] + at;
        if (fmt == KQ_Q6_K) kq_unpack_q6_K(blk, h, p);
        else kq_unpack_k4(fmt, blk, h, p);
    }
}

#define KQ_TOKENS 4 /* tokens per pass over an unpacked super-block */

/* y[t] (16 rows, tokens t < na, ys floats apart) = (add ? y[t] : 0) + the
 * super-block's contribution of tokens a[t]. Per sub-block, maddubs of the
 * rows' unsigned weights against a broadcast of the token's 4 matching bytes
 * gives int16 pairs, summed in int16 as far as they cannot overflow, then
 * madd by the rows' scale pairs into an exact int32 sum. Q4_K: d_a * (d *
 * sum_s sc_s * dot_s - dmin * sum_s min_s * bsum_s); Q6_K: d_a * d * sum_s
 * sc_s * (dot_s - 32 * bsum_s), dot_s of the unsigned Q6_K weights including
 * the +32. */
ALWAYS_INLINE void kq_tokens(const int fmt, const int na, const kq_panel *p, const block_q8_K *const a[],
                             float *y, size_t ys, int add, int keep)
{
    const int g16 = kq_groups_per_madd(fmt);
    __m256i acc[KQ_TOKENS][PANEL_H], corr[KQ_TOKENS][PANEL_H];
    UNROLL
    for (int j = 0; j < na; j++)
        UNROLL
        for (int h = 0; h < PANEL_H; h++) acc[j][h] = corr[j][h] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++)
        for (int k0 = 0; k0 < 8; k0 += g16) {
            __m256i s16[KQ_TOKENS][PANEL_H];
            UNROLL
            for (int j = 0; j < na; j++)
                UNROLL
                for (int h = 0; h < PANEL_H; h++) s16[j][h] = _mm256_setzero_si256();
            UNROLL
            for (int k = k0; k < k0 + g16; k++) {
                UNROLL
                for (int j = 0; j < na; j++) {
                    const __m256i q = _mm256_set1_epi32((int)read_u32((const uint8_t *)a[j]->qs + 32 * c + 4 * k));
                    UNROLL
                    for (int h = 0; h < PANEL_H; h++) {
                        s16[j][h] = _mm256_add_epi16(s16[j][h], _mm256_maddubs_epi16(p->u[c][k][h], q));
                        KEEP_CHAIN(s16[j][h]);
                    }
                }
            }
            const int s = fmt == KQ_Q6_K ? 2 * c + k0 / 4 : c;
            UNROLL
            for (int j = 0; j < na; j++)
                UNROLL
                for (int h = 0; h < PANEL_H; h++)
                    acc[j][h] = _mm256_add_epi32(acc[j][h], _mm256_madd_epi16(s16[j][h], p->sc[s][h]));
        }
    UNROLL
    for (int j = 0; j < na; j++) {
        /* the activation sums the pairs weigh, as int16 pairs: Q6_K's bsums as they are, Q4_K/Q5_K's per 32 */
        int32_t sums[8];
        if (fmt == KQ_Q6_K) memcpy(sums, a[j]->bsums, sizeof sums);
        else _mm_storeu_si128((__m128i *)sums, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[j]->bsums),
                                                              _mm_loadu_si128((const __m128i *)a[j]->bsums + 1)));
        UNROLL
        for (int k = 0; k < kq_pairs(fmt); k++) {
            const __m256i b = _mm256_set1_epi32(sums[k]);
            UNROLL
            for (int h = 0; h < PANEL_H; h++) corr[j][h] = _mm256_add_epi32(corr[j][h], _mm256_madd_epi16(p->pair[k][h], b));
        }
    }
    UNROLL
    for (int j = 0; j < na; j++) {
        const __m256 da = _mm256_set1_ps(a[j]->d);
        __m256 v[PANEL_H];
        UNROLL
        for (int h = 0; h < PANEL_H; h++) {
            if (fmt == KQ_Q6_K) {
                v[h] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[j][h], _mm256_slli_epi32(corr[j][h], 5))),
                                     _mm256_mul_ps(p->d[h], da));
            } else {
                v[h] = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[j][h]), _mm256_mul_ps(p->d[h], da));
                v[h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr[j][h]), _mm256_mul_ps(p->dmin[h], da), v[h]);
            }
        }
        store_panel(y + (size_t)j * ys, v[0], v[1], add, keep);
    }
}

/* Rows in panels of 16 (the last one repeats its last row and stores only
 * the real ones): each super-block of a panel is unpacked once, then every
 * token (KQ_TOKENS at a time, then singly) adds its part into y. */
ALWAYS_INLINE void kq_panel_gemm(const int fmt, int n, const void *w, size_t ws, int n_rows, const void *act,
                                 size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK_K;
    kq_panel p;
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_R) {
        const int keep = n_rows - r0 < PANEL_R ? n_rows - r0 : PANEL_R;
        const uint8_t *row[PANEL_R];
        for (int r = 0; r < PANEL_R; r++) row[r] = (const uint8_t *)w + (size_t)(r0 + (r < keep ? r : keep - 1)) * ws;
        for (int i = 0; i < nb; i++) {
            kq_unpack(fmt, row, i, &p);
            int t = 0;
            for (; t + KQ_TOKENS <= n_act; t += KQ_TOKENS) {
                const block_q8_K *a[KQ_TOKENS];
                for (int j = 0; j < KQ_TOKENS; j++) a[j] = (const block_q8_K *)((const uint8_t *)act + (size_t)(t + j) * as) + i;
                kq_tokens(fmt, KQ_TOKENS, &p, a, y + (size_t)t * ys + r0, ys, i > 0, keep);
            }
            for (; t < n_act; t++) {
                const block_q8_K *a[1] = {(const block_q8_K *)((const uint8_t *)act + (size_t)t * as) + i};
                kq_tokens(fmt, 1, &p, a, y + (size_t)t * ys + r0, ys, i > 0, keep);
            }
        }
    }
}

static void gemm_q4_K_avx2(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y, size_t ys)
{
    kq_panel_gemm(KQ_Q4_K, n, w, ws, nr, a, as, na, y, ys);
}

static void gemm_q5_K_avx2(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y, size_t ys)
{
    kq_panel_gemm(KQ_Q5_K, n, w, ws, nr, a, as, na, y, ys);
}

static void gemm_q6_K_avx2(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y, size_t ys)
{
    kq_panel_gemm(KQ_Q6_K, n, w, ws, nr, a, as, na, y, ys);
}

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
