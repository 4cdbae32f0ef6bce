/*
 * gemm_avx512.c - prefill matrix-matrix products with AVX-512 (+VNNI).
 *
 * gemm[type](n, w, ..., act, ..., y) computes every dot product of n_rows
 * weight rows with n_act activation rows. The vec_dot loop it replaces
 * unpacks each weight block once per token; here the output is cut into
 * tiles of TILE_R rows x TILE_A tokens, and for each block the tile's weight
 * rows are unpacked into registers once and multiplied by all TILE_A
 * activation rows, each product accumulating in its own register. Partial
 * tiles at the edges reuse the last valid row/token (the extra results are
 * simply not stored), so one kernel handles every shape.
 *
 * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL; VNNI only):
 * weights are made unsigned (u = q + offset: 8 for Q4_0, 16 for Q5_0, 128 for
 * Q8_0/IQ4_NL via xor 0x80), so vpdpbusd does unsigned x signed bytes; the
 * offset is removed exactly by starting the integer sum from -offset *
 * sum(activation bytes), computed once per token and block and shared by all
 * rows. Most of the output goes through row panels: 16 weight rows x 4..16
 * tokens, where block i of the 16 rows is transposed on the fly so that one
 * zmm holds weights 4e..4e+3 of every row (one int32 lane per row). Eight
 * vpdpbusd against broadcasts of a token's matching 4 activation bytes then
 * give the 16 rows' whole block dots, and one convert + multiply + FMA applies
 * d_w * d_a for all 16 rows: ~11 vector ops per 512 multiply-adds, where a
 * row-per-zmm layout needs a convert, multiply and FMA per 64. The transpose
 * is paid once per block and panel and shared by its tokens. The last
 * n_rows % 16 rows and n_act % 4 tokens go to 4 x 4 tiles where one zmm holds
 * two blocks of one row.
 *
 * K-quants (Q4_K, Q5_K, Q6_K) with VNNI also use 16-row panels: each
 * super-block of the panel is unpacked and transposed once (64 zmm of
 * unsigned weights, Q6_K as q + 32, plus per-sub-block scale vectors) and then
 * serves every token of the call. Per sub-block, vpdpbusd against broadcast
 * activation bytes gives the 16 rows' integer dots; vpmulld by the rows' integer
 * sub-block scales adds them into an exact int32 super-block sum. The Q4_K/Q5_K
 * min terms and the Q6_K -32 offset come from the activation bsums (vpdpwssd
 * of int16 pairs against bsum pairs), so the float work (convert, scale by
 * d_w * d_a, add into y) happens once per super-block and token. Rows past the
 * last multiple of 16 use the tiles below.
 *
 * K-quant tiles (for edge rows): one zmm holds 64 elements (two sub-blocks);
 * maddubs gives int16 pairs and vpdpwssd applies the integer sub-block
 * scales, so the super-block's sum stays an exact int32. The Q4_K/Q5_K min terms and the Q6_K -32 offset are a
 * small integer matrix product (per-row 16 int16 coefficients x per-token 16
 * bsums) done once per tile and super-block with madd + hadd, kept in a
 * separate float tile.
 *
 * AVX-512 without VNNI installs nothing here: the AVX2 row panels
 * (gemm_avx2.c) measured faster than zmm tiles built on maddubs + madd.
 *
 * Integer parts are exact; only the float summation order differs from the
 * scalar reference (tests/test_gemm.c). Compiled with the AVX-512 flags on
 * x86_64 only; elsewhere the installer is empty.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)

#include <immintrin.h>
#include <string.h>

#include "panels.h"
#include "simd_x86.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* fully unroll the small tile loops so every accumulator stays in a register */
#define UNROLL _Pragma("GCC unroll 16")
#define TILE_R 4 /* weight rows per tile */
#define TILE_A 4 /* activation rows (tokens) per tile; the reductions below assume 4 */

typedef void (*tile_fn)(int n, const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_A], float out[TILE_A][TILE_R]);

/* ---- shared helpers ------------------------------------------------------ */

/* 4 zmm -> one xmm of their 4 horizontal sums. */
static inline __m128 hsum4_f32x16(__m512 v0, __m512 v1, __m512 v2, __m512 v3)
{
    __m256 s0 = _mm256_add_ps(_mm512_castps512_ps256(v0), _mm512_extractf32x8_ps(v0, 1));
    __m256 s1 = _mm256_add_ps(_mm512_castps512_ps256(v1), _mm512_extractf32x8_ps(v1, 1));
    __m256 s2 = _mm256_add_ps(_mm512_castps512_ps256(v2), _mm512_extractf32x8_ps(v2, 1));
    __m256 s3 = _mm256_add_ps(_mm512_castps512_ps256(v3), _mm512_extractf32x8_ps(v3, 1));
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* out[a][r] = sum of acc[r][a] - corr[r][a] (corr may be zero). */
ALWAYS_INLINE void store_tile(__m512 acc[TILE_R][TILE_A], const __m128 corr[TILE_R], float out[TILE_A][TILE_R])
{
    UNROLL
    for (int r = 0; r < TILE_R; r++) {
        float v[4];
        _mm_storeu_ps(v, _mm_sub_ps(hsum4_f32x16(acc[r][0], acc[r][1], acc[r][2], acc[r][3]), corr[r]));
        UNROLL
        for (int a = 0; a < TILE_A; a++) out[a][r] = v[a];
    }
}

/* Walks the output in tiles; edge tiles repeat the last row/token and drop the extras. */
static void gemm_tiles(tile_fn tile, int n, const void *w, size_t w_stride, int n_rows, const void *act,
                       size_t act_stride, int n_act, float *y, size_t y_stride)
{
    for (int r0 = 0; r0 < n_rows; r0 += TILE_R) {
        const uint8_t *wr[TILE_R];
        const int nr = n_rows - r0 < TILE_R ? n_rows - r0 : TILE_R;
        for (int r = 0; r < TILE_R; r++) wr[r] = (const uint8_t *)w + (size_t)(r0 + (r < nr ? r : nr - 1)) * w_stride;
        for (int a0 = 0; a0 < n_act; a0 += TILE_A) {
            const uint8_t *ar[TILE_A];
            const int na = n_act - a0 < TILE_A ? n_act - a0 : TILE_A;
            for (int a = 0; a < TILE_A; a++)
                ar[a] = (const uint8_t *)act + (size_t)(a0 + (a < na ? a : na - 1)) * act_stride;
            float out[TILE_A][TILE_R];
            tile(n, wr, ar, out);
            for (int a = 0; a < na; a++)
                for (int r = 0; r < nr; r++) y[(size_t)(a0 + a) * y_stride + r0 + r] = out[a][r];
        }
    }
}

/* ---- 32-element formats (VNNI) -------------------------------------------- */

enum { B32_Q4_0, B32_Q4_1, B32_Q5_0, B32_Q5_1, B32_Q8_0, B32_IQ4_NL };

static const size_t b32_size[] = {sizeof(block_q4_0), sizeof(block_q4_1), sizeof(block_q5_0),
                                  sizeof(block_q5_1), sizeof(block_q8_0), sizeof(block_iq4_nl)};

/* Amount added to each weight to make it unsigned. */
static inline int b32_offset(const int fmt)
{
    switch (fmt) {
    case B32_Q4_0: return 8;
    case B32_Q5_0: return 16;
    case B32_Q8_0:
    case B32_IQ4_NL: return 128;
    default: return 0;
    }
}

static inline int b32_has_min(const int fmt) { return fmt == B32_Q4_1 || fmt == B32_Q5_1; }

/* Offsets of d, m, qh and qs in each block type. */
static inline size_t b32_qs_at(const int fmt)
{
    switch (fmt) {
    case B32_Q4_0: return offsetof(block_q4_0, qs);
    case B32_Q4_1: return offsetof(block_q4_1, qs);
    case B32_Q5_0: return offsetof(block_q5_0, qs);
    case B32_Q5_1: return offsetof(block_q5_1, qs);
    case B32_Q8_0: return offsetof(block_q8_0, qs);
    default: return offsetof(block_iq4_nl, qs);
    }
}

static inline size_t b32_qh_at(const int fmt) { return fmt == B32_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }

static inline f16_t read_f16(const uint8_t *p)
{
    f16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

static inline uint32_t read_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 16 packed bytes of b0 and b1 -> 64 bytes: lo(b0) hi(b0) lo(b1) hi(b1) nibbles. */
static inline __m512i nibbles_two(const uint8_t *qs0, const uint8_t *qs1)
{
    __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs0));
    b = _mm512_mask_broadcast_i32x4(b, 0xFF00, _mm_loadu_si128((const __m128i *)qs1));
    b = _mm512_srlv_epi64(b, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(b, _mm512_set1_epi8(0x0F));
}

/* Blocks i and i+1 (only i when !two) of one weight row as 64 unsigned bytes. */
ALWAYS_INLINE __m512i b32_weights(const int fmt, const uint8_t *b0, const int two)
{
    const uint8_t *b1 = two ? b0 + b32_size[fmt] : b0; /* duplicate, masked off below */
    const __mmask64 keep = two ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
    __m512i u;
    if (fmt == B32_Q8_0) {
        u = _mm512_xor_si512(load_two_256(b0 + b32_qs_at(fmt), b1 + b32_qs_at(fmt)), _mm512_set1_epi8((char)0x80));
    } else {
        u = nibbles_two(b0 + b32_qs_at(fmt), b1 + b32_qs_at(fmt));
        if (fmt == B32_IQ4_NL) {
            const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_values));
            u = _mm512_xor_si512(_mm512_shuffle_epi8(table, u), _mm512_set1_epi8((char)0x80));
        } else if (fmt == B32_Q5_0 || fmt == B32_Q5_1) {
            uint64_t bits = read_u32(b0 + b32_qh_at(fmt)) | (uint64_t)read_u32(b1 + b32_qh_at(fmt)) << 32;
            u = _mm512_or_si512(u, _mm512_maskz_mov_epi8((__mmask64)bits, _mm512_set1_epi8(0x10)));
        }
    }
    return _mm512_maskz_mov_epi8(keep, u);
}

/* [x0 x8 | x1 x8] from two f16 (x1 = 0 when !two). */
static inline __m512 f16_pair_spread(f16_t h0, f16_t h1)
{
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_castps128_ps512(f));
}

/* [x0, 0 x7, x1, 0 x7]: the per-block min term placed so the lane sum adds it once. */
static inline __m512 f16_pair_lanes0_8(f16_t h0, f16_t h1)
{
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
    return _mm512_maskz_permutexvar_ps(0x0101, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
                                       _mm512_castps128_ps512(f));
}

/* One step over blocks i, i+1 (or i alone) for the whole tile. */
ALWAYS_INLINE void b32_step(const int fmt, const int two, int i, const uint8_t *const w[TILE_R],
                            const uint8_t *const a[TILE_A], __m512 acc[TILE_R][TILE_A])
{
    const size_t bs = b32_size[fmt];
    const __m512i offset = _mm512_set1_epi8((char)b32_offset(fmt));
    __m512i u[TILE_R];
    __m512 dw[TILE_R], mw[TILE_R];
    UNROLL
    for (int r = 0; r < TILE_R; r++) {
        const uint8_t *b0 = w[r] + (size_t)i * bs;
        u[r] = b32_weights(fmt, b0, two);
        const f16_t d1 = two ? read_f16(b0 + bs) : 0;
        dw[r] = f16_pair_spread(read_f16(b0), d1);
        if (b32_has_min(fmt)) mw[r] = f16_pair_lanes0_8(read_f16(b0 + 2), two ? read_f16(b0 + bs + 2) : 0);
    }
    UNROLL
    for (int t = 0; t < TILE_A; t++) {
        const block_q8_32 *y0 = (const block_q8_32 *)a[t] + i, *y1 = two ? y0 + 1 : y0;
        __m512i q = two ? load_two_256(y0->qs, y1->qs) : _mm512_zextsi256_si512(load256(y0->qs));
        __m512 da = _mm512_set1_ps(y0->d);
        da = _mm512_mask_blend_ps(0xFF00, da, two ? _mm512_set1_ps(y1->d) : _mm512_setzero_ps());
        __m512i start = _mm512_setzero_si512();
        if (b32_offset(fmt)) start = _mm512_sub_epi32(start, _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, q));
        __m512 sa = _mm512_setzero_ps();
        if (b32_has_min(fmt)) {
            sa = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(y0->s), two ? _mm512_set1_ps(y1->s) : _mm512_setzero_ps());
        }
        UNROLL
        for (int r = 0; r < TILE_R; r++) {
            __m512i sumi = _mm512_dpbusd_epi32(start, u[r], q);
            acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_mul_ps(dw[r], da), acc[r][t]);
            if (b32_has_min(fmt)) acc[r][t] = _mm512_fmadd_ps(mw[r], sa, acc[r][t]);
        }
    }
}

ALWAYS_INLINE void b32_tile(const int fmt, int n, const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_A],
                            float out[TILE_A][TILE_R])
{
    const int nb = n / QK32;
    __m512 acc[TILE_R][TILE_A];
    __m128 zero[TILE_R];
    UNROLL
    for (int r = 0; r < TILE_R; r++) {
        zero[r] = _mm_setzero_ps();
        UNROLL
        for (int t = 0; t < TILE_A; t++) acc[r][t] = _mm512_setzero_ps();
    }
    int i = 0;
    for (; i + 1 < nb; i += 2) b32_step(fmt, 1, i, w, a, acc);
    if (i < nb) b32_step(fmt, 0, i, w, a, acc);
    store_tile(acc, zero, out);
}

/* The 4 x 4 tiles stay for the edges the row panels below leave over. */
#define B32_TILE(name, fmt)                                                                                        \
    static void tile_##name(int n, const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_A],                 \
                            float out[TILE_A][TILE_R])                                                            \
    {                                                                                                              \
        b32_tile(fmt, n, w, a, out);                                                                               \
    }

B32_TILE(q4_0_vnni, B32_Q4_0)
B32_TILE(q4_1_vnni, B32_Q4_1)
B32_TILE(q5_0_vnni, B32_Q5_0)
B32_TILE(q5_1_vnni, B32_Q5_1)
B32_TILE(q8_0_vnni, B32_Q8_0)
B32_TILE(iq4_nl_vnni, B32_IQ4_NL)

/* ---- 32-element formats: row panels (VNNI) --------------------------------- */

#define PANEL_R 16      /* weight rows per panel: one int32 / f32 lane each */
#define PANEL_A 16      /* tokens per activation group */
#define PANEL_CHUNK 128 /* blocks per pass over the panels: a group's activations for a pass stay in L2 */

/* The activation rows of one group of tokens (a partial group repeats its last). */
typedef struct {
    const uint8_t *tok[PANEL_A];
} panel_acts;

/* 16 bytes at p + r * stride for r < 16 -> t[k] lane r = bytes 4k..4k+3 of row r. */
ALWAYS_INLINE void transpose_rows16x16(const uint8_t *p, size_t stride, __m512i t[4])
{
    __m512i z[4];
    /* explicit lane numbers: immediates must be constants even at -O0/-O1 (test-asan) */
    UNROLL
    for (int j = 0; j < 4; j++) {
        const uint8_t *r = p + (size_t)j * stride;
        z[j] = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)r));
        z[j] = _mm512_inserti32x4(z[j], _mm_loadu_si128((const __m128i *)(r + 4 * stride)), 1);
        z[j] = _mm512_inserti32x4(z[j], _mm_loadu_si128((const __m128i *)(r + 8 * stride)), 2);
        z[j] = _mm512_inserti32x4(z[j], _mm_loadu_si128((const __m128i *)(r + 12 * stride)), 3);
    }
    /* z[j] lane l = row j + 4l; a 4x4 dword transpose inside each 128-bit lane */
    __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    t[0] = _mm512_unpacklo_epi64(a0, a2);
    t[1] = _mm512_unpackhi_epi64(a0, a2);
    t[2] = _mm512_unpacklo_epi64(a1, a3);
    t[3] = _mm512_unpackhi_epi64(a1, a3);
}

/* Adds 16 to byte b of lane r of u (elements 4e + b) when bit 4e + b of that row's qh is set. */
ALWAYS_INLINE __m512i add_fifth_bits(__m512i u, __m512i qh, int e)
{
    const char src = (char)(e / 2);
    const __m512i pick = _mm512_set4_epi32(0x0C0C0C0C + src * 0x01010101, 0x08080808 + src * 0x01010101,
                                           0x04040404 + src * 0x01010101, src * 0x01010101);
    const __m512i bits = _mm512_set1_epi32((e & 1) ? (int)0x80402010u : 0x08040201);
    __mmask64 m = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, pick), bits);
    return _mm512_mask_add_epi8(u, m, u, _mm512_set1_epi8(0x10));
}

/* raw[k] lane r = qs bytes 4k..4k+3 of row r (k < 4, or < 8 for Q8_0) and qh
 * lane r = row r's fifth bits -> u[e] lane r = unsigned weights 4e..4e+3 of row r. */
ALWAYS_INLINE void panel_unsigned(const int fmt, const __m512i raw[8], __m512i qh, __m512i u[8])
{
    if (fmt == B32_Q8_0) {
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        UNROLL
        for (int k = 0; k < 8; k++) u[k] = _mm512_xor_si512(raw[k], flip);
        return;
    }
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    UNROLL
    for (int k = 0; k < 4; k++) {
        u[k] = _mm512_and_si512(raw[k], low4);
        u[4 + k] = _mm512_and_si512(_mm512_srli_epi16(raw[k], 4), low4);
    }
    if (fmt == B32_IQ4_NL) {
        const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_values));
        UNROLL
        for (int e = 0; e < 8; e++) u[e] = _mm512_xor_si512(_mm512_shuffle_epi8(table, u[e]), _mm512_set1_epi8((char)0x80));
    } else if (fmt == B32_Q5_0 || fmt == B32_Q5_1) {
        UNROLL
        for (int e = 0; e < 8; e++) u[e] = add_fifth_bits(u[e], qh, e);
    }
}

/* Block i of 16 GGUF rows (blk = row 0's block, rows ws apart), transposed on
 * the fly: u[e] lane r = unsigned weights 4e..4e+3 of row r; dw (and mw) =
 * the rows' scales (mins). */
ALWAYS_INLINE void panel_weights(const int fmt, const uint8_t *blk, size_t ws, __m512i row_offsets, __m512i u[8],
                                 __m512 *dw, __m512 *mw)
{
    const __m512i head = _mm512_i32gather_epi32(row_offsets, blk, 1); /* d | m << 16 */
    *dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head));
    if (b32_has_min(fmt)) *mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16)));
    __m512i raw[8], qh = _mm512_setzero_si512();
    transpose_rows16x16(blk + b32_qs_at(fmt), ws, raw);
    if (fmt == B32_Q8_0) transpose_rows16x16(blk + b32_qs_at(fmt) + 16, ws, raw + 4);
    if (fmt == B32_Q5_0 || fmt == B32_Q5_1) qh = _mm512_i32gather_epi32(row_offsets, blk + b32_qh_at(fmt), 1);
    panel_unsigned(fmt, raw, qh, u);
}

/* The same from a record of the load-time panel layout (panels.h): plain loads. */
ALWAYS_INLINE void panel_weights_packed(const int fmt, const uint8_t *rec, __m512i u[8], __m512 *dw, __m512 *mw)
{
    const int has_qh = fmt == B32_Q5_0 || fmt == B32_Q5_1;
    *dw = _mm512_cvtph_ps(load256(rec));
    if (b32_has_min(fmt)) *mw = _mm512_cvtph_ps(load256(rec + panel_field_at(offsetof(block_q4_1, m))));
    const __m512i qh = has_qh ? load512(rec + panel_field_at(b32_qh_at(fmt))) : _mm512_setzero_si512();
    const uint8_t *qs = rec + panel_field_at(b32_qs_at(fmt));
    __m512i raw[8];
    UNROLL
    for (int k = 0; k < 8; k++)
        if (k < 4 || fmt == B32_Q8_0) raw[k] = _mm512_loadu_si512(qs + 64 * k);
    panel_unsigned(fmt, raw, qh, u);
}

/* The panel's 16 rows x na tokens (group tokens t0..t0+na-1) over blocks
 * [i0, i0 + nblk); y = output of token t0, row 0; add: accumulate into y;
 * keep: the rows to store. packed: w0 is the panel's first record, else row
 * 0 of 16 GGUF rows ws bytes apart. */
ALWAYS_INLINE void panel_tile(const int fmt, const int packed, const int na, const uint8_t *w0, size_t ws,
                              __m512i row_offsets, const panel_acts *pa, int i0, int nblk, int t0, float *y,
                              size_t ys, int add, __mmask16 keep)
{
    const size_t bs = b32_size[fmt];
    __m512 acc[PANEL_A];
    UNROLL
    for (int t = 0; t < na; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nblk; b++) {
        __m512i u[8];
        __m512 dw, mw = _mm512_setzero_ps();
        if (packed && na == 1) prefetch_ahead(w0 + (size_t)(i0 + b) * PANEL_R * bs, PANEL_R * bs); /* decode */
        if (packed) panel_weights_packed(fmt, w0 + (size_t)(i0 + b) * PANEL_R * bs, u, &dw, &mw);
        else panel_weights(fmt, w0 + (size_t)(i0 + b) * bs, ws, row_offsets, u, &dw, &mw);
        /* four tokens at a time, their dot-product chains interleaved */
        UNROLL
        for (int t4 = 0; t4 < na; t4 += 4) {
            const int nj = na - t4 < 4 ? na - t4 : 4; /* 1 for the single-token (decode) panel */
            const block_q8_32 *ya[4];
            const uint8_t *q[4];
            __m512i sumi[4];
            UNROLL
            for (int j = 0; j < nj; j++) {
                const int t = t0 + t4 + j;
                ya[j] = (const block_q8_32 *)pa->tok[t] + i0 + b;
                q[j] = (const uint8_t *)ya[j]->qs;
                /* unsigned weights u = w + offset: start from -offset * sum(a) */
                sumi[j] = _mm512_set1_epi32(-b32_offset(fmt) * ya[j]->sum);
            }
            UNROLL
            for (int e = 0; e < 8; e++)
                UNROLL
                for (int j = 0; j < nj; j++)
                    sumi[j] = _mm512_dpbusd_epi32(sumi[j], u[e], _mm512_set1_epi32((int)read_u32(q[j] + 4 * e)));
            UNROLL
            for (int j = 0; j < nj; j++) {
                __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(ya[j]->d));
                acc[t4 + j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[j]), scale, acc[t4 + j]);
                if (b32_has_min(fmt)) acc[t4 + j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(ya[j]->s), acc[t4 + j]);
            }
        }
    }
    UNROLL
    for (int t = 0; t < na; t++) {
        float *yt = y + (size_t)t * ys;
        _mm512_mask_storeu_ps(yt, keep, add ? _mm512_add_ps(_mm512_maskz_loadu_ps(keep, yt), acc[t]) : acc[t]);
    }
}

typedef void (*panel_fn)(const uint8_t *w0, size_t ws, __m512i row_offsets, const panel_acts *pa, int i0, int nblk,
                         int t0, float *y, size_t ys, int add, __mmask16 keep);
typedef struct {
    panel_fn t16, t8, t4, t1; /* 16, 8, 4 and 1 tokens */
} panel_tiles;
typedef struct {
    panel_tiles rows, packed; /* GGUF rows transposed on the fly; load-time panels */
    tile_fn fallback;
} panel_kernels;

/* One row panel against the g tokens of the group (16, or fewer in the last group). */
static void panel_group(const panel_tiles *tl, int g, const uint8_t *w0, size_t ws, __m512i row_offsets,
                        const panel_acts *pa, int i0, int nblk, float *y, size_t ys, __mmask16 keep)
{
    const int add = i0 > 0;
    if (g == PANEL_A) {
        tl->t16(w0, ws, row_offsets, pa, i0, nblk, 0, y, ys, add, keep);
        return;
    }
    int t0 = 0;
    if (g - t0 >= 8) tl->t8(w0, ws, row_offsets, pa, i0, nblk, t0, y, ys, add, keep), t0 += 8;
    if (g - t0 >= 4) tl->t4(w0, ws, row_offsets, pa, i0, nblk, t0, y + (size_t)t0 * ys, ys, add, keep), t0 += 4;
    for (; t0 < g; t0++) tl->t1(w0, ws, row_offsets, pa, i0, nblk, t0, y + (size_t)t0 * ys, ys, add, keep);
}

/* Tokens in groups of 16 (8 + 4 + singles for the last group, so one token,
 * the decode case, is a panel too); for each group and 128-block chunk every
 * panel of 16 rows is visited. Nothing is computed per call beyond pointers:
 * the offset correction of unsigned weights comes with each activation block
 * (block_q8_32.sum), so decode can split a matrix into many calls for free.
 * packed: w is the panel form (panels.h) and rows start at panel row0 / 16;
 * else n_rows GGUF rows ws bytes apart, rows past the last 16 to the tiles. */
static void panel_gemm(const panel_kernels *k, int packed, int n, const void *w, size_t ws, int row0, int n_rows,
                       const void *act, size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK32, rows16 = packed ? n_rows : n_rows / PANEL_R * PANEL_R;
    if (!packed && (nb == 0 || rows16 == 0 || ws > (size_t)INT32_MAX / PANEL_R)) {
        gemm_tiles(k->fallback, n, w, ws, n_rows, act, as, n_act, y, ys);
        return;
    }
    const __m512i row_index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i row_offsets = _mm512_mullo_epi32(row_index, _mm512_set1_epi32((int)ws));
    const size_t panel_bytes = (size_t)nb * ws * PANEL_R; /* packed: ws is the block size */
    const uint8_t *base = packed ? (const uint8_t *)w + (size_t)(row0 / PANEL_R) * panel_bytes : w;
    panel_acts pa;
    for (int a0 = 0; a0 < n_act; a0 += PANEL_A) {
        const int g = n_act - a0 < PANEL_A ? n_act - a0 : PANEL_A;
        for (int t = 0; t < PANEL_A; t++) pa.tok[t] = (const uint8_t *)act + (size_t)(a0 + (t < g ? t : g - 1)) * as;
        for (int i0 = 0; i0 < nb; i0 += PANEL_CHUNK) {
            const int nblk = nb - i0 < PANEL_CHUNK ? nb - i0 : PANEL_CHUNK;
            for (int r0 = 0; r0 < rows16; r0 += PANEL_R) {
                const int left = rows16 - r0;
                const __mmask16 keep = left >= PANEL_R ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                const uint8_t *w0 = packed ? base + (size_t)(r0 / PANEL_R) * panel_bytes : base + (size_t)r0 * ws;
                panel_group(packed ? &k->packed : &k->rows, g, w0, ws, row_offsets, &pa, i0, nblk,
                            y + (size_t)a0 * ys + r0, ys, keep);
            }
        }
    }
    if (rows16 < n_rows)
        gemm_tiles(k->fallback, n, (const uint8_t *)w + (size_t)rows16 * ws, ws, n_rows - rows16, act, as, n_act,
                   y + rows16, ys);
}

#define PANEL_TILE(name, fmt, packed, na, suffix)                                                                  \
    static void panel##na##suffix##_##name(const uint8_t *w0, size_t ws, __m512i ro, const panel_acts *pa, int i0, \
                                           int nblk, int t0, float *y, size_t ys, int add, __mmask16 keep)        \
    {                                                                                                              \
        panel_tile(fmt, packed, na, w0, ws, ro, pa, i0, nblk, t0, y, ys, add, keep);                               \
    }

#define PANEL_GEMM(name, fmt)                                                                                      \
    PANEL_TILE(name, fmt, 0, 16, )                                                                                 \
    PANEL_TILE(name, fmt, 0, 8, )                                                                                  \
    PANEL_TILE(name, fmt, 0, 4, )                                                                                  \
    PANEL_TILE(name, fmt, 0, 1, )                                                                                  \
    PANEL_TILE(name, fmt, 1, 16, p)                                                                                \
    PANEL_TILE(name, fmt, 1, 8, p)                                                                                 \
    PANEL_TILE(name, fmt, 1, 4, p)                                                                                 \
    PANEL_TILE(name, fmt, 1, 1, p)                                                                                 \
    static const panel_kernels panels_##name = {{panel16_##name, panel8_##name, panel4_##name, panel1_##name},     \
                                                {panel16p_##name, panel8p_##name, panel4p_##name, panel1p_##name}, \
                                                tile_##name};                                                      \
    static void gemm_panel_##name(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na,       \
                                  float *y, size_t ys)                                                             \
    {                                                                                                              \
        panel_gemm(&panels_##name, 0, n, w, ws, 0, nr, a, as, na, y, ys);                                          \
    }                                                                                                              \
    static void gemm_packed_##name(int n, const void *panels, int row0, int nr, const void *a, size_t as, int na,  \
                                   float *y, size_t ys)                                                            \
    {                                                                                                              \
        panel_gemm(&panels_##name, 1, n, panels, b32_size[fmt], row0, nr, a, as, na, y, ys);                       \
    }

PANEL_GEMM(q4_0_vnni, B32_Q4_0)
PANEL_GEMM(q4_1_vnni, B32_Q4_1)
PANEL_GEMM(q5_0_vnni, B32_Q5_0)
PANEL_GEMM(q5_1_vnni, B32_Q5_1)
PANEL_GEMM(q8_0_vnni, B32_Q8_0)
PANEL_GEMM(iq4_nl_vnni, B32_IQ4_NL)

/* ---- k-quants ------------------------------------------------------------- */

enum { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

static inline size_t kq_size(const int fmt)
{
    return fmt == KQ_Q4_K ? sizeof(block_q4_K) : fmt == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

/* int16 index vector for vpermw: 16 lanes of word a, then 16 lanes of word b. */
static inline __m512i halves_of_words(int a, int b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}

/* int16 index vector: 8 lanes each of words k, k+1, k+2, k+3. */
static inline __m512i quarters_of_words(int k)
{
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16((short)(k + 1)), _mm_set1_epi16((short)k))),
        _mm256_set_m128i(_mm_set1_epi16((short)(k + 3)), _mm_set1_epi16((short)(k + 2))), 1);
}

/* Per row and super-block: float scale, correction coefficient, int16 scales and correction weights. */
typedef struct {
    float d;       /* multiplies the scaled integer sum */
    float coef;    /* multiplies the correction sum (dmin, or 32 * d for Q6_K) */
    __m512i sc16;  /* sub-block scales as int16 in the low lanes */
    __m256i corr;  /* 16 int16 correction weights against the 16 bsums */
} kq_row;

ALWAYS_INLINE kq_row kq_row_setup(const int fmt, const uint8_t *blk)
{
    kq_row k;
    if (fmt == KQ_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        k.d = _cvtsh_ss(b->d);
        k.coef = 32.0f * k.d;
        k.corr = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        k.sc16 = _mm512_castsi256_si512(k.corr);
    } else {
        const block_q4_K *b = (const block_q4_K *)blk; /* Q5_K starts with the same d, dmin, scales */
        uint32_t sc[2], mn[2];
        unpack_scales_k4(b->scales, sc, mn);
        k.d = _cvtsh_ss(b->d);
        k.coef = _cvtsh_ss(b->dmin);
        k.sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc[1], (int)sc[0])));
        __m128i mins8 = _mm_set_epi32(0, 0, (int)mn[1], (int)mn[0]);
        k.corr = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8)); /* m0 m0 m1 m1 ... */
    }
    return k;
}

/* Quarter q (64 elements) of a super-block's weights as unsigned bytes, matching kq_act_quarter. */
ALWAYS_INLINE __m512i kq_weights(const int fmt, const uint8_t *blk, int q)
{
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    if (fmt == KQ_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        const int half = q >> 1;
        __m512i l = load512(b->ql + 64 * half);
        __m512i h = _mm512_broadcast_i64x4(load256(b->qh + 32 * half));
        const __m512i bits45 = _mm512_set1_epi8(0x30);
        if ((q & 1) == 0)
            return _mm512_or_si512(_mm512_and_si512(l, low4),
                                   _mm512_and_si512(_mm512_sllv_epi16(h, halves_of_words(4, 2)), bits45));
        return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                               _mm512_and_si512(_mm512_srlv_epi16(h, halves_of_words(0, 2)), bits45));
    }
    const uint8_t *qs = fmt == KQ_Q4_K ? ((const block_q4_K *)blk)->qs : ((const block_q5_K *)blk)->qs;
    const int jj = q >> 1;
    __m512i v = load512(qs + 64 * jj);
    __m512i u = (q & 1) ? _mm512_and_si512(_mm512_srli_epi16(v, 4), low4) : _mm512_and_si512(v, low4);
    if (fmt == KQ_Q5_K) {
        /* bit 2j of qh[l] is the fifth bit of element 64j+l, bit 2j+1 that of 64j+32+l */
        __m512i qh = _mm512_broadcast_i64x4(load256(((const block_q5_K *)blk)->qh));
        __m512i h = _mm512_srlv_epi16(qh, jj ? halves_of_words(4, 6) : halves_of_words(0, 2));
        h = (q & 1) ? _mm512_slli_epi16(h, 3) : _mm512_slli_epi16(h, 4);
        u = _mm512_or_si512(u, _mm512_and_si512(h, _mm512_set1_epi8(0x10)));
    }
    return u;
}

/* int16 scale vector for quarter q (one word per maddubs pair). */
ALWAYS_INLINE __m512i kq_scales(const int fmt, const kq_row *k, int q)
{
    if (fmt == KQ_Q6_K) return _mm512_permutexvar_epi16(quarters_of_words(4 * q), k->sc16);
    static const int sub[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
    return _mm512_permutexvar_epi16(halves_of_words(sub[q][0], sub[q][1]), k->sc16);
}

/* Activations matching quarter q. */
ALWAYS_INLINE __m512i kq_act_quarter(const int fmt, const int8_t *q8, int q)
{
    if (fmt == KQ_Q6_K) return load512(q8 + 64 * q);
    const int base = 128 * (q >> 1) + 32 * (q & 1);
    return load_two_256(q8 + base, q8 + base + 64);
}

/* corr_acc[r] (lanes = tokens) += coef_r * d_a * sum(corr_r . bsums_a) */
ALWAYS_INLINE void kq_correction(const kq_row k[TILE_R], const block_q8_K *const y[TILE_A], __m128 corr_acc[TILE_R])
{
    __m256i bs[TILE_A];
    UNROLL
    for (int t = 0; t < TILE_A; t++) bs[t] = load256(y[t]->bsums);
    const __m128 da = _mm_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d);
    UNROLL
    for (int r = 0; r < TILE_R; r++) {
        __m256i p0 = _mm256_madd_epi16(k[r].corr, bs[0]), p1 = _mm256_madd_epi16(k[r].corr, bs[1]);
        __m256i p2 = _mm256_madd_epi16(k[r].corr, bs[2]), p3 = _mm256_madd_epi16(k[r].corr, bs[3]);
        __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
        __m128i m = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        corr_acc[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(m), _mm_mul_ps(_mm_set1_ps(k[r].coef), da), corr_acc[r]);
    }
}

ALWAYS_INLINE void kq_tile(const int fmt, int n, const uint8_t *const w[TILE_R],
                           const uint8_t *const a[TILE_A], float out[TILE_A][TILE_R])
{
    const int nb = n / QK_K;
    const size_t bs = kq_size(fmt);
    __m512 acc[TILE_R][TILE_A];
    __m128 corr_acc[TILE_R];
    UNROLL
    for (int r = 0; r < TILE_R; r++) {
        corr_acc[r] = _mm_setzero_ps();
        UNROLL
        for (int t = 0; t < TILE_A; t++) acc[r][t] = _mm512_setzero_ps();
    }
    for (int i = 0; i < nb; i++) {
        const block_q8_K *y[TILE_A];
        UNROLL
        for (int t = 0; t < TILE_A; t++) y[t] = (const block_q8_K *)a[t] + i;
        kq_row k[TILE_R];
        UNROLL
        for (int r = 0; r < TILE_R; r++) k[r] = kq_row_setup(fmt, w[r] + (size_t)i * bs);
        kq_correction(k, y, corr_acc);
        __m512i sumi[TILE_R][TILE_A];
        UNROLL
        for (int r = 0; r < TILE_R; r++)
            UNROLL
            for (int t = 0; t < TILE_A; t++) sumi[r][t] = _mm512_setzero_si512();
        UNROLL
        for (int q = 0; q < 4; q++) {
            __m512i u[TILE_R], s[TILE_R];
            UNROLL
            for (int r = 0; r < TILE_R; r++) {
                u[r] = kq_weights(fmt, w[r] + (size_t)i * bs, q);
                s[r] = kq_scales(fmt, &k[r], q);
            }
            UNROLL
            for (int t = 0; t < TILE_A; t++) {
                __m512i x = kq_act_quarter(fmt, y[t]->qs, q);
                UNROLL
                for (int r = 0; r < TILE_R; r++) {
                    __m512i p = _mm512_maddubs_epi16(u[r], x);
                    sumi[r][t] = _mm512_dpwssd_epi32(sumi[r][t], p, s[r]);
                }
            }
        }
        UNROLL
        for (int r = 0; r < TILE_R; r++)
            UNROLL
            for (int t = 0; t < TILE_A; t++)
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r][t]), _mm512_set1_ps(k[r].d * y[t]->d), acc[r][t]);
    }
    store_tile(acc, corr_acc, out);
}

#define KQ_TILE(name, fmt)                                                                                         \
    static void tile_##name(int n, const uint8_t *const w[TILE_R], const uint8_t *const a[TILE_A],                 \
                            float out[TILE_A][TILE_R])                                                            \
    {                                                                                                              \
        kq_tile(fmt, n, w, a, out);                                                                                \
    }

KQ_TILE(q4_K_vnni, KQ_Q4_K)
KQ_TILE(q5_K_vnni, KQ_Q5_K)
KQ_TILE(q6_K_vnni, KQ_Q6_K)

/* ---- k-quants: row panels (VNNI) ------------------------------------------- */

/* One super-block of a 16-row panel, unpacked once and shared by every token:
 * u[c][k] lane r = unsigned weights 32c + 4k .. 32c + 4k + 3 of row r (Q6_K:
 * q + 32), sc[s] lane r = row r's integer scale of sub-block s (8 of 32 for
 * Q4_K, 16 of 16 for Q6_K), pair[k] lane r = two int16 weights against the
 * activation's bsums[2k], bsums[2k + 1] (Q4_K: min_k twice; Q6_K: scale_2k,
 * scale_2k+1), d (and dmin) the rows' float scales. */
typedef struct {
    __m512i u[8][8];
    __m512i sc[16];
    __m512i pair[8];
    __m512 d, dmin;
} kq_panel;

/* 8 unsigned bytes of lane r (held as two dwords lo, hi) -> sc[j] lane r = byte j. */
static inline void spread_bytes8(__m512i lo, __m512i hi, __m512i sc[8])
{
    const __m512i byte = _mm512_set1_epi32(0xFF);
    for (int j = 0; j < 4; j++) {
        sc[j] = _mm512_and_si512(_mm512_srli_epi32(lo, 8 * j), byte);
        sc[4 + j] = _mm512_and_si512(_mm512_srli_epi32(hi, 8 * j), byte);
    }
}

/* Q4_K and Q5_K (same d, dmin, scales; Q5_K adds a fifth bit from qh). */
ALWAYS_INLINE void kq_panel_k4(const int fmt, const uint8_t *blk, size_t ws, kq_panel *p)
{
    __m512i t[4];
    transpose_rows16x16(blk, ws, t); /* d | dmin << 16, then the 12 scale bytes */
    p->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(t[0]));
    p->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(t[0], 16)));
    /* the 6-bit scale/min unpacking of unpack_scales_k4, 16 rows at once */
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm512_set1_epi32(0x30303030);
    __m512i sc_lo = _mm512_and_si512(t[1], m6);
    __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(t[3], m4), _mm512_and_si512(_mm512_srli_epi32(t[1], 2), hi2));
    __m512i mn_lo = _mm512_and_si512(t[2], m6);
    __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(t[3], 4), m4),
                                    _mm512_and_si512(_mm512_srli_epi32(t[2], 2), hi2));
    spread_bytes8(sc_lo, sc_hi, p->sc);
    spread_bytes8(mn_lo, mn_hi, p->pair);
    for (int j = 0; j < 8; j++) p->pair[j] = _mm512_or_si512(p->pair[j], _mm512_slli_epi32(p->pair[j], 16));
    /* qs[32j + l]: low nibble = element 64j + l, high nibble = element 64j + 32 + l */
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const uint8_t *qs = blk + (fmt == KQ_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs));
    for (int j = 0; j < 4; j++)
        for (int h = 0; h < 2; h++) {
            transpose_rows16x16(qs + 32 * j + 16 * h, ws, t);
            for (int k = 0; k < 4; k++) {
                p->u[2 * j][4 * h + k] = _mm512_and_si512(t[k], low4);
                p->u[2 * j + 1][4 * h + k] = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), low4);
            }
        }
    if (fmt != KQ_Q5_K) return;
    /* bit c of qh[l] is the fifth bit of element 32c + l: move it to bit 4 */
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    for (int h = 0; h < 2; h++) {
        transpose_rows16x16(blk + offsetof(block_q5_K, qh) + 16 * h, ws, t);
        for (int k = 0; k < 4; k++)
            for (int c = 0; c < 8; c++) {
                __m512i bit = c <= 4 ? _mm512_slli_epi16(t[k], 4 - c) : _mm512_srli_epi16(t[k], c - 4);
                p->u[c][4 * h + k] = _mm512_or_si512(p->u[c][4 * h + k], _mm512_and_si512(bit, bit4));
            }
    }
}

static inline void kq_panel_q6_K(const uint8_t *blk, size_t ws, __m512i row_offsets, kq_panel *p)
{
    /* d is the block's last 2 bytes: gather the dword ending there */
    const __m512i tail = _mm512_i32gather_epi32(row_offsets, blk + offsetof(block_q6_K, d) - 2, 1);
    p->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(tail, 16)));
    __m512i t[4];
    transpose_rows16x16(blk + offsetof(block_q6_K, scales), ws, t);
    for (int g = 0; g < 4; g++) {
        /* t[g] lane r = int8 scales 4g..4g+3 of row r */
        __m512i even = _mm512_srai_epi16(_mm512_slli_epi16(t[g], 8), 8); /* words: s0, s2 */
        __m512i odd = _mm512_srai_epi16(t[g], 8);                         /* words: s1, s3 */
        p->pair[2 * g] = _mm512_mask_blend_epi16(0xAAAAAAAA, even, _mm512_slli_epi32(odd, 16));
        p->pair[2 * g + 1] = _mm512_mask_blend_epi16(0xAAAAAAAA, _mm512_srli_epi32(even, 16), odd);
        for (int b = 0; b < 4; b++) p->sc[4 * g + b] = _mm512_srai_epi32(_mm512_slli_epi32(t[g], 24 - 8 * b), 24);
    }
    /* half h, group g (elements 128h + 32g + l): low 4 bits in ql[64h + 32(g & 1) + l]
     * (nibble g >> 1), high 2 bits at bit 2g of qh[32h + l] */
    const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; h++)
        for (int part = 0; part < 2; part++) {
            __m512i qa[4], qb[4], qh[4];
            const uint8_t *ql = blk + offsetof(block_q6_K, ql) + 64 * h + 16 * part;
            transpose_rows16x16(ql, ws, qa);
            transpose_rows16x16(ql + 32, ws, qb);
            transpose_rows16x16(blk + offsetof(block_q6_K, qh) + 32 * h + 16 * part, ws, qh);
            for (int k = 0; k < 4; k++) {
                const int e = 4 * part + k;
                __m512i a_hi = _mm512_srli_epi16(qa[k], 4), b_hi = _mm512_srli_epi16(qb[k], 4);
                p->u[4 * h + 0][e] = _mm512_or_si512(_mm512_and_si512(qa[k], low4),
                                                     _mm512_and_si512(_mm512_slli_epi16(qh[k], 4), bits45));
                p->u[4 * h + 1][e] = _mm512_or_si512(_mm512_and_si512(qb[k], low4),
                                                     _mm512_and_si512(_mm512_slli_epi16(qh[k], 2), bits45));
                p->u[4 * h + 2][e] = _mm512_or_si512(_mm512_and_si512(a_hi, low4), _mm512_and_si512(qh[k], bits45));
                p->u[4 * h + 3][e] = _mm512_or_si512(_mm512_and_si512(b_hi, low4),
                                                     _mm512_and_si512(_mm512_srli_epi16(qh[k], 2), bits45));
            }
        }
}

/* y[t] (16 rows, tokens t = 0..na-1, ys floats apart) = (add ? y[t] : 0) + the
 * super-block's contribution of tokens a[t]. Q4_K: d_a * (d * sum_s sc_s * dot_s
 * - dmin * sum_s min_s * bsum_s); Q6_K: d_a * d * sum_s sc_s * (dot_s - 32 * bsum_s),
 * where dot_s of the unsigned Q6_K weights includes the +32. All sums exact int32. */
ALWAYS_INLINE void kq_panel_tokens(const int fmt, const int na, const kq_panel *p, const block_q8_K *const a[4],
                                   float *y, size_t ys, int add)
{
    __m512i isum[4], icorr[4];
    UNROLL
    for (int j = 0; j < na; j++) isum[j] = icorr[j] = _mm512_setzero_si512();
    UNROLL
    for (int c = 0; c < 8; c++) {
        __m512i s0[4], s1[4];
        UNROLL
        for (int j = 0; j < na; j++) s0[j] = s1[j] = _mm512_setzero_si512();
        UNROLL
        for (int k = 0; k < 4; k++)
            UNROLL
            for (int j = 0; j < na; j++) {
                const uint8_t *q = (const uint8_t *)a[j]->qs + 32 * c;
                s0[j] = _mm512_dpbusd_epi32(s0[j], p->u[c][k], _mm512_set1_epi32((int)read_u32(q + 4 * k)));
                s1[j] = _mm512_dpbusd_epi32(s1[j], p->u[c][4 + k], _mm512_set1_epi32((int)read_u32(q + 16 + 4 * k)));
            }
        UNROLL
        for (int j = 0; j < na; j++) {
            if (fmt == KQ_Q6_K)
                isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(_mm512_mullo_epi32(s0[j], p->sc[2 * c]),
                                                                     _mm512_mullo_epi32(s1[j], p->sc[2 * c + 1])));
            else
                isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(_mm512_add_epi32(s0[j], s1[j]), p->sc[c]));
        }
    }
    UNROLL
    for (int k = 0; k < 8; k++)
        UNROLL
        for (int j = 0; j < na; j++)
            icorr[j] = _mm512_dpwssd_epi32(icorr[j], p->pair[k],
                                           _mm512_set1_epi32((int)read_u32((const uint8_t *)a[j]->bsums + 4 * k)));
    UNROLL
    for (int j = 0; j < na; j++) {
        const __m512 da = _mm512_set1_ps(a[j]->d);
        __m512 v;
        if (fmt == KQ_Q6_K) {
            v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[j], _mm512_slli_epi32(icorr[j], 5))),
                              _mm512_mul_ps(p->d, da));
        } else {
            v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(p->d, da));
            v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(icorr[j]), _mm512_mul_ps(p->dmin, da), v);
        }
        float *yt = y + (size_t)j * ys;
        _mm512_storeu_ps(yt, add ? _mm512_add_ps(_mm512_loadu_ps(yt), v) : v);
    }
}

/* Rows in panels of 16: for each super-block the panel is unpacked once, then
 * every token (4 at a time, then singly) adds its part into y. The last
 * n_rows % 16 rows go to the 4 x 4 tiles. */
ALWAYS_INLINE void kq_panel_gemm(const int fmt, tile_fn fallback, int n, const void *w, size_t ws, int n_rows,
                                 const void *act, size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK_K, rows16 = n_rows / PANEL_R * PANEL_R;
    if (nb == 0 || rows16 == 0 || ws > (size_t)INT32_MAX / PANEL_R) {
        gemm_tiles(fallback, n, w, ws, n_rows, act, as, n_act, y, ys);
        return;
    }
    const __m512i row_index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i row_offsets = _mm512_mullo_epi32(row_index, _mm512_set1_epi32((int)ws));
    kq_panel p;
    for (int r0 = 0; r0 < rows16; r0 += PANEL_R) {
        for (int i = 0; i < nb; i++) {
            const uint8_t *blk = (const uint8_t *)w + (size_t)r0 * ws + (size_t)i * kq_size(fmt);
            if (fmt == KQ_Q6_K) kq_panel_q6_K(blk, ws, row_offsets, &p);
            else kq_panel_k4(fmt, blk, ws, &p);
            int t = 0;
            for (; t + 4 <= n_act; t += 4) {
                const block_q8_K *a[4];
                for (int j = 0; j < 4; j++) a[j] = (const block_q8_K *)((const uint8_t *)act + (size_t)(t + j) * as) + i;
                kq_panel_tokens(fmt, 4, &p, a, y + (size_t)t * ys + r0, ys, i > 0);
            }
            for (; t < n_act; t++) {
                const block_q8_K *a[4];
                a[0] = a[1] = a[2] = a[3] = (const block_q8_K *)((const uint8_t *)act + (size_t)t * as) + i;
                kq_panel_tokens(fmt, 1, &p, a, y + (size_t)t * ys + r0, ys, i > 0);
            }
        }
    }
    if (rows16 < n_rows)
        gemm_tiles(fallback, n, (const uint8_t *)w + (size_t)rows16 * ws, ws, n_rows - rows16, act, as, n_act,
                   y + rows16, ys);
}

static void gemm_panel_q4_K_vnni(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y,
                                 size_t ys)
{
    kq_panel_gemm(KQ_Q4_K, tile_q4_K_vnni, n, w, ws, nr, a, as, na, y, ys);
}

static void gemm_panel_q5_K_vnni(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y,
                                 size_t ys)
{
    kq_panel_gemm(KQ_Q5_K, tile_q5_K_vnni, n, w, ws, nr, a, as, na, y, ys);
}

static void gemm_panel_q6_K_vnni(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na, float *y,
                                 size_t ys)
{
    kq_panel_gemm(KQ_Q6_K, tile_q6_K_vnni, n, w, ws, nr, a, as, na, y, ys);
}

void kernels_install_gemm_avx512(kernel_table *t, int vnni)
{
    /* Without VNNI every type keeps its AVX2 row-panel kernel: measured here
     * (Qwen2.5-Coder-1.5B Q4_K_M prefill, 2 threads) 187 tok/s against 142 for
     * the AVX-512 k-quant tiles that used to serve this level. */
    if (!vnni) return;
    t->gemm[QT_Q4_K] = gemm_panel_q4_K_vnni;
    t->gemm[QT_Q5_K] = gemm_panel_q5_K_vnni;
    t->gemm[QT_Q6_K] = gemm_panel_q6_K_vnni;
    t->gemm[QT_Q4_0] = gemm_panel_q4_0_vnni;
    t->gemm[QT_Q4_1] = gemm_panel_q4_1_vnni;
    t->gemm[QT_Q5_0] = gemm_panel_q5_0_vnni;
    t->gemm[QT_Q5_1] = gemm_panel_q5_1_vnni;
    t->gemm[QT_Q8_0] = gemm_panel_q8_0_vnni;
    t->gemm[QT_IQ4_NL] = gemm_panel_iq4_nl_vnni;
    /* weights repacked at load (panels.h): decode and prefill without transposes */
    t->gemm_panels[QT_Q4_0] = gemm_packed_q4_0_vnni;
    t->gemm_panels[QT_Q4_1] = gemm_packed_q4_1_vnni;
    t->gemm_panels[QT_Q5_0] = gemm_packed_q5_0_vnni;
    t->gemm_panels[QT_Q5_1] = gemm_packed_q5_1_vnni;
    t->gemm_panels[QT_Q8_0] = gemm_packed_q8_0_vnni;
    t->gemm_panels[QT_IQ4_NL] = gemm_packed_iq4_nl_vnni;
}

#else

void kernels_install_gemm_avx512(kernel_table *t, int vnni)
{
    (void)t;
    (void)vnni;
}

#endif
