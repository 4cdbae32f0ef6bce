/*
 * gemm_neon.c - quantized matrix products on the load-time row panels with
 * NEON: SDOT (the dot-product extension, "neondot") for decode and prefill,
 * SMMLA (the int8 matrix-multiply extension, "neoni8mm") for prefill.
 *
 * How it works. panels.h stores every field of a 16-row panel in groups of 4
 * bytes per row, so one 16-byte load gives the same 4 weights of 4 rows: lane
 * r of the vector is row 4q + r (q = 0..3 for the panel's four row quads).
 * That is what SDOT by element wants: vdotq_laneq_s32(s, w, a, k) adds to
 * each lane of s its row's 4 weights times the token's 4 activation bytes in
 * lane k of a, so one instruction does 16 multiply-adds for 4 rows without a
 * broadcast or a horizontal sum. SMMLA multiplies a 2x8 int8 matrix by an
 * 8x2 one into 2x2 int32: two rows' 8 consecutive weights (two 4-byte groups
 * of the panel zipped together) against two tokens' 8 activation bytes, 32
 * multiply-adds per instruction; an unzip at the end of a block turns the
 * 2x2 tiles back into 4 rows per token.
 *
 * A record (one block of 16 rows, panels.h) is first unpacked into signed
 * int8 vectors, one per 4-byte group and row quad (Q4_0 q - 8, Q5_0 q - 16,
 * Q6_K q - 32, IQ4_NL the grid value; Q4_1/Q5_1/Q4_K/Q5_K keep 0..31 and
 * their minimum goes in separately), with the rows' scales as float (and,
 * for the k-quants, int32 sub-block scales and mins). The integer dots are
 * exact in int32 (no 16-bit intermediate sums, unlike the maddubs kernels on
 * x86), the k-quant sub-block scales are applied in int32, and the float
 * scales are applied per block (32-element formats) or super-block
 * (k-quants) and token, in the same operations whatever the number of
 * tokens and whichever instruction made the integer sum. So a row's result
 * for a token is bit for bit the same in decode (n_act = 1), in prefill, on
 * the SDOT level and on the I8MM level, as on x86 (tests/test_spec.c relies
 * on batch rows equal to one-token rows); it differs from the scalar
 * reference only in float summation order (tests/test_gemm.c).
 *
 * Prefill unpacks a record once for a group of tokens and runs 4 tokens per
 * pass over it (SDOT: each weight vector serves 4 tokens; SMMLA: 2 token
 * pairs), then 2, then a last one (SMMLA pairs it with itself and keeps one
 * half). The 32-element formats unpack 32 blocks of a panel at a time into
 * a scratch that stays in L1 and keep each pass's float sums in registers
 * along it; the k-quants unpack one super-block record (5.7 KB) and add each
 * token's part into y. Decode unpacks each record on its own and keeps the
 * panel's 16 sums in registers along the row.
 *
 * Plain NEON without SDOT keeps the row-by-row dot products of neon_dots.h:
 * emulating SDOT by element with widening multiplies takes a lane broadcast,
 * two multiplies and two pairwise adds per SDOT, and every AArch64 server
 * core of the last years (and GitHub's ARM runners) has SDOT.
 *
 * The SDOT code is compiled for armv8.2-a+dotprod and the SMMLA passes for
 * +i8mm (target pragmas below), so the file builds for plain armv8-a; the
 * installer runs only after kernels.c saw the extensions in HWCAP/HWCAP2.
 * Only the SMMLA passes (p32_pass_mm_*, kq_tokens_mm_*) are compiled with
 * +i8mm, so nothing the SDOT level runs can contain an I8MM instruction.
 *
 * A new type with a panel layout: its record unpacking into w[group][quad]
 * (p32_unpack or kq_unpack), its scales, one PANEL_GEMM line per level, and
 * its entries in the installer; tests/test_gemm.c checks it on both levels
 * (tests/test_aarch64.sh runs that under qemu). On other architectures the
 * installer is empty.
 */
#include "kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

#include "panels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")
#define QUADS (PANEL_ROWS / 4) /* 4-row vectors per panel */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

/* ---- what every kernel shares ---------------------------------------------- */

/* 4 f16 values at p (any alignment) as floats. */
ALWAYS_INLINE float32x4_t f16x4(const uint8_t *p) { return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p))); }

/* The 16 floats at y (only the first `keep` are real rows); zero when !add. */
ALWAYS_INLINE void rows_load(const float *y, int add, int keep, float32x4_t v[QUADS])
{
    float part[PANEL_ROWS] = {0};
    if (add && keep == PANEL_ROWS) {
        UNROLL
        for (int q = 0; q < QUADS; q++) v[q] = vld1q_f32(y + 4 * q);
        return;
    }
    if (add) memcpy(part, y, sizeof(float) * (size_t)keep);
    UNROLL
    for (int q = 0; q < QUADS; q++) v[q] = vld1q_f32(part + 4 * q);
}

/* The first `keep` of the 16 floats in v -> y. */
ALWAYS_INLINE void rows_store(float *y, const float32x4_t v[QUADS], int keep)
{
    if (keep == PANEL_ROWS) {
        UNROLL
        for (int q = 0; q < QUADS; q++) vst1q_f32(y + 4 * q, v[q]);
        return;
    }
    float part[PANEL_ROWS];
    UNROLL
    for (int q = 0; q < QUADS; q++) vst1q_f32(part + 4 * q, v[q]);
    memcpy(y, part, sizeof(float) * (size_t)keep);
}

/* s + the 4 groups w0..w3 of 4 rows against the 4 activation groups of a. */
ALWAYS_INLINE int32x4_t sdot4(int32x4_t s, int8x16_t w0, int8x16_t w1, int8x16_t w2, int8x16_t w3, int8x16_t a)
{
    s = vdotq_laneq_s32(s, w0, a, 0);
    s = vdotq_laneq_s32(s, w1, a, 1);
    s = vdotq_laneq_s32(s, w2, a, 2);
    return vdotq_laneq_s32(s, w3, a, 3);
}

/* For SMMLA: groups 2j, 2j + 1 of a quad (w[2j], w[2j + 1]) become rows 4q,
 * 4q + 1 (in w[2j]) and 4q + 2, 4q + 3 (in w[2j + 1]), each with its 8
 * weights side by side: a 2x8 matrix. */
ALWAYS_INLINE void zip_groups(int8x16_t *even, int8x16_t *odd)
{
    const int32x4_t a = vreinterpretq_s32_s8(*even), b = vreinterpretq_s32_s8(*odd);
    *even = vreinterpretq_s8_s32(vzip1q_s32(a, b));
    *odd = vreinterpretq_s8_s32(vzip2q_s32(a, b));
}

/* Two tokens' 16 activation bytes as two 2x8 matrices: bytes 0..7 of both, then 8..15 of both. */
ALWAYS_INLINE void zip_tokens(const int8_t *a0, const int8_t *a1, int8x16_t *lo, int8x16_t *hi)
{
    const int64x2_t x = vreinterpretq_s64_s8(vld1q_s8(a0)), y = vreinterpretq_s64_s8(vld1q_s8(a1));
    *lo = vreinterpretq_s8_s64(vzip1q_s64(x, y));
    *hi = vreinterpretq_s8_s64(vzip2q_s64(x, y));
}

/* Tokens per prefill pass over an unpacked record. */
#define PASS_TOKENS 4

/* ---- 32-element formats ---------------------------------------------------- */

enum { P32_Q4_0, P32_Q4_1, P32_Q5_0, P32_Q5_1, P32_Q8_0, P32_IQ4_NL };

/* Where a format's fields sit in its block (0: it has none) and the offset its 4/5-bit weights carry. */
typedef struct {
    size_t block, qs, qh, m;
    int offset;
} p32_format;

static const p32_format p32_formats[] = {
    [P32_Q4_0] = {sizeof(block_q4_0), offsetof(block_q4_0, qs), 0, 0, 8},
    [P32_Q4_1] = {sizeof(block_q4_1), offsetof(block_q4_1, qs), 0, offsetof(block_q4_1, m), 0},
    [P32_Q5_0] = {sizeof(block_q5_0), offsetof(block_q5_0, qs), offsetof(block_q5_0, qh), 0, 16},
    [P32_Q5_1] = {sizeof(block_q5_1), offsetof(block_q5_1, qs), offsetof(block_q5_1, qh), offsetof(block_q5_1, m), 0},
    [P32_Q8_0] = {sizeof(block_q8_0), offsetof(block_q8_0, qs), 0, 0, 0},
    [P32_IQ4_NL] = {sizeof(block_iq4_nl), offsetof(block_iq4_nl, qs), 0, 0, 0},
};

/* One record unpacked: w[g][q] lane r = weights 4g..4g+3 of row 4q + r (after
 * zip_groups for SMMLA); d, m the rows' scales and minimums. */
typedef struct {
    int8x16_t w[8][QUADS];
    float32x4_t d[QUADS], m[QUADS];
} p32_rec;

/* Weights 4g..4g+3 of rows 4q..4q+3 as signed bytes. qs bytes 4k..4k+3 of a
 * row hold weights 4k.. in their low nibbles and 16 + 4k.. in their high ones;
 * the fifth bit of weight j is bit j of the row's qh word. */
ALWAYS_INLINE int8x16_t p32_weights(const int fmt, const uint8_t *rec, int g, int q)
{
    const p32_format f = p32_formats[fmt];
    const uint8_t *qs = rec + panel_field_at(f.qs);
    if (fmt == P32_Q8_0) return vld1q_s8((const int8_t *)qs + 64 * g + 16 * q);
    const uint8x16_t raw = vld1q_u8(qs + 64 * (g % 4) + 16 * q);
    uint8x16_t v = g < 4 ? vandq_u8(raw, vdupq_n_u8(0x0f)) : vshrq_n_u8(raw, 4);
    if (f.qh) {
        /* byte b of lane r: bit 4g + b of row r's qh = byte g / 2 of the lane, bit 4 (g & 1) + b */
        static const uint32_t lane_byte[4] = {0, 0x04040404, 0x08080808, 0x0c0c0c0c};
        const uint8x16_t qh = vld1q_u8(rec + panel_field_at(f.qh) + 16 * q);
        const uint8x16_t pick = vaddq_u8(vreinterpretq_u8_u32(vld1q_u32(lane_byte)), vdupq_n_u8((uint8_t)(g / 2)));
        const uint8x16_t bit = vreinterpretq_u8_u32(vdupq_n_u32(0x08040201u << (4 * (g & 1))));
        v = vorrq_u8(v, vandq_u8(vtstq_u8(vqtbl1q_u8(qh, pick), bit), vdupq_n_u8(0x10)));
    }
    int8x16_t w = fmt == P32_IQ4_NL ? vqtbl1q_s8(vld1q_s8(iq4nl_values), v) : vreinterpretq_s8_u8(v);
    return f.offset ? vsubq_s8(w, vdupq_n_s8((int8_t)f.offset)) : w;
}

ALWAYS_INLINE void p32_unpack(const int fmt, const int mm, const uint8_t *rec, p32_rec *u)
{
    const p32_format f = p32_formats[fmt];
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        u->d[q] = f16x4(rec + 8 * q);
        u->m[q] = f.m ? f16x4(rec + panel_field_at(f.m) + 8 * q) : vdupq_n_f32(0);
        UNROLL
        for (int g = 0; g < 8; g++) u->w[g][q] = p32_weights(fmt, rec, g, q);
        if (mm)
            UNROLL
            for (int g = 0; g < 8; g += 2) zip_groups(&u->w[g][q], &u->w[g + 1][q]);
    }
}

/* acc += the block's exact integer dot s of 4 rows times d_w d_a (+ m_w s_a). */
ALWAYS_INLINE float32x4_t p32_scale(const int fmt, float32x4_t acc, int32x4_t s, float32x4_t d, float32x4_t m,
                                    const block_q8_32 *a)
{
    acc = vfmaq_f32(acc, vcvtq_f32_s32(s), vmulq_n_f32(d, a->d));
    return p32_formats[fmt].m ? vfmaq_n_f32(acc, m, a->s) : acc;
}

/* acc[t][q] += the unpacked block's contribution of tokens a[t], t < na, by SDOT. */
ALWAYS_INLINE void p32_block_sdot(const int fmt, const int na, const p32_rec *u, const block_q8_32 *const a[],
                                  float32x4_t acc[][QUADS])
{
    int8x16_t lo[PASS_TOKENS], hi[PASS_TOKENS];
    UNROLL
    for (int t = 0; t < na; t++) lo[t] = vld1q_s8(a[t]->qs), hi[t] = vld1q_s8(a[t]->qs + 16);
    UNROLL
    for (int q = 0; q < QUADS; q++)
        UNROLL
        for (int t = 0; t < na; t++) {
            int32x4_t s = sdot4(vdupq_n_s32(0), u->w[0][q], u->w[1][q], u->w[2][q], u->w[3][q], lo[t]);
            s = sdot4(s, u->w[4][q], u->w[5][q], u->w[6][q], u->w[7][q], hi[t]);
            acc[t][q] = p32_scale(fmt, acc[t][q], s, u->d[q], u->m[q], a[t]);
        }
}

#define P32_GROUP 64 /* tokens whose activations stay in cache while the call's panels pass */
#define P32_CHUNK 32 /* blocks of a panel unpacked at once (20 KB, in L1) */

/* y[t] (16 rows, t < nout, ys floats apart) = (add ? y[t] : 0) + blocks
 * [0, nblk) of the unpacked chunk against tokens a[t] (pointing at the
 * chunk's first block), SDOT; the float sums stay in registers. */
ALWAYS_INLINE void p32_pass_sdot(const int fmt, const int na, const p32_rec *chunk, int nblk,
                                 const block_q8_32 *const a[], float *y, size_t ys, int add, int keep)
{
    float32x4_t acc[PASS_TOKENS][QUADS];
    UNROLL
    for (int t = 0; t < na; t++) rows_load(y + (size_t)t * ys, add, keep, acc[t]);
    for (int b = 0; b < nblk; b++) {
        const block_q8_32 *ab[PASS_TOKENS];
        UNROLL
        for (int t = 0; t < na; t++) ab[t] = a[t] + b;
        p32_block_sdot(fmt, na, &chunk[b], ab, acc);
    }
    UNROLL
    for (int t = 0; t < na; t++) rows_store(y + (size_t)t * ys, acc[t], keep);
}

/* ---- k-quants (Q4_K, Q5_K, Q6_K) -------------------------------------------- */

enum { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

static inline size_t kq_block(const int fmt)
{
    return fmt == KQ_Q4_K ? sizeof(block_q4_K) : fmt == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
}
/* Sub-blocks per super-block: 8 of 32 weights with 6-bit scales and mins, Q6_K 16 of 16 with int8 scales. */
static inline int kq_subs(const int fmt) { return fmt == KQ_Q6_K ? 16 : 8; }

/* One super-block record unpacked: w[G][q] lane r = weights 4G..4G+3 of row
 * 4q + r (after zip_groups for SMMLA); sc, mn the rows' integer sub-block
 * scales and mins (Q4_K/Q5_K); d, dmin their float scales. */
typedef struct {
    int8x16_t w[64][QUADS];
    int32x4_t sc[16][QUADS], mn[8][QUADS];
    float32x4_t d[QUADS], dmin[QUADS];
} kq_rec;

/* Weights 32c + 4k .. 32c + 4k + 3 of rows 4q..4q+3 as signed bytes.
 * Q4_K/Q5_K: qs byte 32j + l holds element 64j + l in its low nibble and
 * 64j + 32 + l in its high one; bit c of qh byte l is the fifth bit of
 * element 32c + l. Q6_K (q - 32): element 128h + 32g + l has its low 4 bits
 * in ql byte 64h + 32(g & 1) + l (nibble g >> 1) and its high 2 bits at bit
 * 2g of qh byte 32h + l. */
ALWAYS_INLINE int8x16_t kq_weights(const int fmt, const uint8_t *rec, int c, int k, int q)
{
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    if (fmt == KQ_Q6_K) {
        const int h = c / 4, g = c % 4;
        const uint8x16_t ql = vld1q_u8(rec + panel_field_at(offsetof(block_q6_K, ql)) + 64 * (16 * h + 8 * (g & 1) + k) + 16 * q);
        const uint8x16_t qh = vld1q_u8(rec + panel_field_at(offsetof(block_q6_K, qh)) + 64 * (8 * h + k) + 16 * q);
        const uint8x16_t low = g >> 1 ? vshrq_n_u8(ql, 4) : vandq_u8(ql, low4);
        const uint8x16_t high = vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(4 - 2 * g))), vdupq_n_u8(0x30));
        return vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(low, high)), vdupq_n_s8(32));
    }
    const size_t qs_at = fmt == KQ_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const uint8x16_t qs = vld1q_u8(rec + panel_field_at(qs_at) + 64 * (8 * (c / 2) + k) + 16 * q);
    uint8x16_t u = c & 1 ? vshrq_n_u8(qs, 4) : vandq_u8(qs, low4);
    if (fmt == KQ_Q5_K) {
        const uint8x16_t qh = vld1q_u8(rec + panel_field_at(offsetof(block_q5_K, qh)) + 64 * k + 16 * q);
        u = vorrq_u8(u, vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(4 - c))), vdupq_n_u8(0x10))); /* bit c -> 4 */
    }
    return vreinterpretq_s8_u8(u);
}

/* Byte b of each int32 lane, zero-extended. */
ALWAYS_INLINE int32x4_t lane_byte(uint32x4_t v, int b)
{
    return vreinterpretq_s32_u32(vandq_u32(vshlq_u32(v, vdupq_n_s32(-8 * b)), vdupq_n_u32(0xff)));
}

/* The scales of rows 4q..4q+3. Q4_K/Q5_K: the 12 bytes of 6-bit scales and
 * mins as 3 groups, unpacked as k4_scale_min in quant.c does, 4 rows at once. */
ALWAYS_INLINE void kq_scales(const int fmt, const uint8_t *rec, int q, kq_rec *u)
{
    if (fmt == KQ_Q6_K) {
        u->d[q] = f16x4(rec + panel_field_at(offsetof(block_q6_K, d)) + 8 * q);
        UNROLL
        for (int g = 0; g < 4; g++) { /* int8 scales 4g..4g+3, sign-extended from the top byte */
            const int32x4_t t = vld1q_s32((const int32_t *)(rec + panel_field_at(offsetof(block_q6_K, scales)) + 64 * g + 16 * q));
            UNROLL
            for (int b = 0; b < 4; b++) u->sc[4 * g + b][q] = vshrq_n_s32(vshlq_s32(t, vdupq_n_s32(24 - 8 * b)), 24);
        }
        return;
    }
    u->d[q] = f16x4(rec + panel_field_at(offsetof(block_q4_K, d)) + 8 * q); /* Q5_K alike */
    u->dmin[q] = f16x4(rec + panel_field_at(offsetof(block_q4_K, dmin)) + 8 * q);
    const uint8_t *packed = rec + panel_field_at(offsetof(block_q4_K, scales)) + 16 * q;
    const uint32x4_t t0 = vld1q_u32((const uint32_t *)packed), t1 = vld1q_u32((const uint32_t *)(packed + 64)),
                     t2 = vld1q_u32((const uint32_t *)(packed + 128));
    const uint32x4_t m6 = vdupq_n_u32(0x3f3f3f3f), m4 = vdupq_n_u32(0x0f0f0f0f), hi2 = vdupq_n_u32(0x30303030);
    const uint32x4_t sc_lo = vandq_u32(t0, m6), mn_lo = vandq_u32(t1, m6);
    const uint32x4_t sc_hi = vorrq_u32(vandq_u32(t2, m4), vandq_u32(vshrq_n_u32(t0, 2), hi2));
    const uint32x4_t mn_hi = vorrq_u32(vandq_u32(vshrq_n_u32(t2, 4), m4), vandq_u32(vshrq_n_u32(t1, 2), hi2));
    UNROLL
    for (int j = 0; j < 4; j++) {
        u->sc[j][q] = lane_byte(sc_lo, j), u->sc[4 + j][q] = lane_byte(sc_hi, j);
        u->mn[j][q] = lane_byte(mn_lo, j), u->mn[4 + j][q] = lane_byte(mn_hi, j);
    }
}

ALWAYS_INLINE void kq_unpack(const int fmt, const int mm, const uint8_t *rec, kq_rec *u)
{
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        kq_scales(fmt, rec, q, u);
        for (int c = 0; c < 8; c++) {
            UNROLL
            for (int k = 0; k < 8; k++) u->w[8 * c + k][q] = kq_weights(fmt, rec, c, k, q);
            if (mm)
                UNROLL
                for (int k = 0; k < 8; k += 2) zip_groups(&u->w[8 * c + k][q], &u->w[8 * c + k + 1][q]);
        }
    }
}

/* acc[t][q] lane r = sum_s sc_s * dot_s of row 4q + r against token a[t], t < na, exact, by SDOT. */
ALWAYS_INLINE void kq_sums_sdot(const int fmt, const int na, const kq_rec *u, const block_q8_K *const a[],
                                int32x4_t acc[][QUADS])
{
    const int per_sub = 64 / kq_subs(fmt); /* groups of 4 weights per sub-block: 8 or 4 */
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        UNROLL
        for (int t = 0; t < na; t++) acc[t][q] = vdupq_n_s32(0);
        for (int s = 0; s < kq_subs(fmt); s++)
            UNROLL
            for (int t = 0; t < na; t++) {
                int32x4_t x = vdupq_n_s32(0);
                UNROLL
                for (int v = 0; v < per_sub; v += 4) {
                    const int G = s * per_sub + v;
                    x = sdot4(x, u->w[G][q], u->w[G + 1][q], u->w[G + 2][q], u->w[G + 3][q], vld1q_s8(a[t]->qs + 4 * G));
                }
                acc[t][q] = vmlaq_s32(acc[t][q], x, u->sc[s][q]);
            }
    }
}

/* v += the super-block's part for one token: Q4_K/Q5_K d_a (d acc - dmin
 * sum_s min_s bsum_s), Q6_K d_a d acc (its weights are q - 32 already). */
ALWAYS_INLINE void kq_scale_into(const int fmt, const kq_rec *u, const block_q8_K *a, const int32x4_t acc[QUADS],
                                 float32x4_t v[QUADS])
{
    int32_t bsum[8] = {0};
    if (fmt != KQ_Q6_K)
        for (int s = 0; s < 8; s++) bsum[s] = a->bsums[2 * s] + a->bsums[2 * s + 1];
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        v[q] = vfmaq_f32(v[q], vcvtq_f32_s32(acc[q]), vmulq_n_f32(u->d[q], a->d));
        if (fmt == KQ_Q6_K) continue;
        int32x4_t corr = vdupq_n_s32(0);
        UNROLL
        for (int s = 0; s < 8; s++) corr = vmlaq_n_s32(corr, u->mn[s][q], bsum[s]);
        v[q] = vfmsq_f32(v[q], vcvtq_f32_s32(corr), vmulq_n_f32(u->dmin[q], a->d));
    }
}

/* y[t] (16 rows, t < nout) = (add ? y[t] : 0) + the unpacked super-block's part for token a[t]. */
ALWAYS_INLINE void kq_finish(const int fmt, const kq_rec *u, const block_q8_K *const a[], int32x4_t acc[][QUADS],
                             int nout, float *y, size_t ys, int add, int keep)
{
    for (int t = 0; t < nout; t++) {
        float32x4_t v[QUADS];
        rows_load(y + (size_t)t * ys, add, keep, v);
        kq_scale_into(fmt, u, a[t], acc[t], v);
        rows_store(y + (size_t)t * ys, v, keep);
    }
}

ALWAYS_INLINE void kq_tokens_sdot(const int fmt, const int na, const kq_rec *u, const block_q8_K *const a[], float *y,
                                  size_t ys, int add, int keep)
{
    int32x4_t acc[PASS_TOKENS][QUADS];
    kq_sums_sdot(fmt, na, u, a, acc);
    kq_finish(fmt, u, a, acc, na, y, ys, add, keep);
}

#pragma GCC pop_options

/* ---- the SMMLA passes -------------------------------------------------------- */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")

/* acc[t][q] += the unpacked (zipped) block's contribution of tokens a[t], t <
 * 2 np, by SMMLA on token pairs: the 2x2 tile of rows 4q + 2h, 4q + 2h + 1 and
 * tokens 2p, 2p + 1 is unzipped back into 4 rows per token. */
ALWAYS_INLINE void p32_block_mm(const int fmt, const int np, const p32_rec *u, const block_q8_32 *const a[],
                                float32x4_t acc[][QUADS])
{
    int8x16_t b[PASS_TOKENS / 2][4];
    UNROLL
    for (int p = 0; p < np; p++) {
        zip_tokens(a[2 * p]->qs, a[2 * p + 1]->qs, &b[p][0], &b[p][1]);
        zip_tokens(a[2 * p]->qs + 16, a[2 * p + 1]->qs + 16, &b[p][2], &b[p][3]);
    }
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        int32x4_t tile[PASS_TOKENS / 2][2];
        UNROLL
        for (int p = 0; p < np; p++) tile[p][0] = tile[p][1] = vdupq_n_s32(0);
        UNROLL
        for (int j = 0; j < 4; j++)
            UNROLL
            for (int h = 0; h < 2; h++)
                UNROLL
                for (int p = 0; p < np; p++) tile[p][h] = vmmlaq_s32(tile[p][h], u->w[2 * j + h][q], b[p][j]);
        UNROLL
        for (int p = 0; p < np; p++) {
            acc[2 * p][q] = p32_scale(fmt, acc[2 * p][q], vuzp1q_s32(tile[p][0], tile[p][1]), u->d[q], u->m[q], a[2 * p]);
            acc[2 * p + 1][q] =
                p32_scale(fmt, acc[2 * p + 1][q], vuzp2q_s32(tile[p][0], tile[p][1]), u->d[q], u->m[q], a[2 * p + 1]);
        }
    }
}

/* p32_pass_sdot by SMMLA on na tokens (even), storing the first nout (a
 * token paired with itself keeps one half). */
ALWAYS_INLINE void p32_pass_mm(const int fmt, const int na, const p32_rec *chunk, int nblk,
                               const block_q8_32 *const a[], int nout, float *y, size_t ys, int add, int keep)
{
    float32x4_t acc[PASS_TOKENS][QUADS];
    UNROLL
    for (int t = 0; t < na; t++) {
        if (t < nout) rows_load(y + (size_t)t * ys, add, keep, acc[t]);
        else acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = vdupq_n_f32(0);
    }
    for (int b = 0; b < nblk; b++) {
        const block_q8_32 *ab[PASS_TOKENS];
        UNROLL
        for (int t = 0; t < na; t++) ab[t] = a[t] + b;
        p32_block_mm(fmt, na / 2, &chunk[b], ab, acc);
    }
    for (int t = 0; t < nout; t++) rows_store(y + (size_t)t * ys, acc[t], keep);
}

/* kq_sums_sdot by SMMLA on np token pairs; the sub-block scales are zipped to the tiles' row order. */
ALWAYS_INLINE void kq_sums_mm(const int fmt, const int np, const kq_rec *u, const block_q8_K *const a[],
                              int32x4_t acc[][QUADS])
{
    const int per_sub = 32 / kq_subs(fmt); /* 8-byte chunks per sub-block: 4 or 2 */
    int8x16_t b[PASS_TOKENS / 2][32];
    UNROLL
    for (int p = 0; p < np; p++)
        for (int j = 0; j < 16; j++) zip_tokens(a[2 * p]->qs + 16 * j, a[2 * p + 1]->qs + 16 * j, &b[p][2 * j], &b[p][2 * j + 1]);
    UNROLL
    for (int q = 0; q < QUADS; q++) {
        int32x4_t tile[PASS_TOKENS / 2][2];
        UNROLL
        for (int h = 0; h < 2; h++) {
            UNROLL
            for (int p = 0; p < np; p++) tile[p][h] = vdupq_n_s32(0);
            for (int s = 0; s < kq_subs(fmt); s++) {
                int32x4_t x[PASS_TOKENS / 2];
                UNROLL
                for (int p = 0; p < np; p++) x[p] = vdupq_n_s32(0);
                UNROLL
                for (int c = 0; c < per_sub; c++) {
                    const int j = s * per_sub + c;
                    UNROLL
                    for (int p = 0; p < np; p++) x[p] = vmmlaq_s32(x[p], u->w[2 * j + h][q], b[p][j]);
                }
                const int32x4_t sc = h ? vzip2q_s32(u->sc[s][q], u->sc[s][q]) : vzip1q_s32(u->sc[s][q], u->sc[s][q]);
                UNROLL
                for (int p = 0; p < np; p++) tile[p][h] = vmlaq_s32(tile[p][h], x[p], sc);
            }
        }
        UNROLL
        for (int p = 0; p < np; p++) {
            acc[2 * p][q] = vuzp1q_s32(tile[p][0], tile[p][1]);
            acc[2 * p + 1][q] = vuzp2q_s32(tile[p][0], tile[p][1]);
        }
    }
}

/* The SMMLA passes, one function per format (called, not inlined, from the
 * SDOT-level drivers), for 2 (np = 1) or 4 (np = 2) tokens. */
#define P32_PASS_MM(name, fmt)                                                                                       \
    static void p32_pass_mm_##name(int np, const p32_rec *chunk, int nblk, const block_q8_32 *const a[], int nout,  \
                                   float *y, size_t ys, int add, int keep)                                        \
    {                                                                                                              \
        if (np == 2) p32_pass_mm(fmt, 4, chunk, nblk, a, nout, y, ys, add, keep);                                  \
        else p32_pass_mm(fmt, 2, chunk, nblk, a, nout, y, ys, add, keep);                                          \
    }
P32_PASS_MM(q4_0, P32_Q4_0)
P32_PASS_MM(q4_1, P32_Q4_1)
P32_PASS_MM(q5_0, P32_Q5_0)
P32_PASS_MM(q5_1, P32_Q5_1)
P32_PASS_MM(q8_0, P32_Q8_0)
P32_PASS_MM(iq4_nl, P32_IQ4_NL)

#define KQ_TOKENS_MM(name, fmt)                                                                                     \
    static void kq_tokens_mm_##name(int np, const kq_rec *u, const block_q8_K *const a[], int nout, float *y,       \
                                    size_t ys, int add, int keep)                                                  \
    {                                                                                                              \
        int32x4_t acc[PASS_TOKENS][QUADS];                                                                         \
        if (np == 2) kq_sums_mm(fmt, 2, u, a, acc);                                                                \
        else kq_sums_mm(fmt, 1, u, a, acc);                                                                        \
        kq_finish(fmt, u, a, acc, nout, y, ys, add, keep);                                                         \
    }
KQ_TOKENS_MM(q4_K, KQ_Q4_K)
KQ_TOKENS_MM(q5_K, KQ_Q5_K)
KQ_TOKENS_MM(q6_K, KQ_Q6_K)

#pragma GCC pop_options

/* ---- drivers (SDOT level; mm = 1 hands the prefill passes to SMMLA) ---------- */

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

typedef void (*p32_pass_mm_fn)(int, const p32_rec *, int, const block_q8_32 *const[], int, float *, size_t, int, int);
static const p32_pass_mm_fn p32_mm_passes[] = {
    [P32_Q4_0] = p32_pass_mm_q4_0, [P32_Q4_1] = p32_pass_mm_q4_1, [P32_Q5_0] = p32_pass_mm_q5_0,
    [P32_Q5_1] = p32_pass_mm_q5_1, [P32_Q8_0] = p32_pass_mm_q8_0, [P32_IQ4_NL] = p32_pass_mm_iq4_nl,
};
typedef void (*kq_tokens_mm_fn)(int, const kq_rec *, const block_q8_K *const[], int, float *, size_t, int, int);
static const kq_tokens_mm_fn kq_mm_tokens[] = {
    [KQ_Q4_K] = kq_tokens_mm_q4_K, [KQ_Q5_K] = kq_tokens_mm_q5_K, [KQ_Q6_K] = kq_tokens_mm_q6_K};

/* Prefill, 32-element formats: for each group of tokens, each panel, each
 * chunk of its blocks: the chunk is unpacked once, then every token of the
 * group runs along it, 4, then 2, then 1 at a time. */
ALWAYS_INLINE void p32_prefill(const int fmt, const int mm, int nb, const uint8_t *base, int n_rows, const void *act,
                               size_t as, int n_act, float *y, size_t ys)
{
    const size_t rec_bytes = PANEL_ROWS * p32_formats[fmt].block, panel_bytes = (size_t)nb * rec_bytes;
    p32_rec chunk[P32_CHUNK];
    for (int a0 = 0; a0 < n_act; a0 += P32_GROUP) {
        const int g = n_act - a0 < P32_GROUP ? n_act - a0 : P32_GROUP;
        for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
            const int keep = n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS;
            for (int b0 = 0; b0 < nb; b0 += P32_CHUNK) {
                const int nblk = nb - b0 < P32_CHUNK ? nb - b0 : P32_CHUNK;
                const uint8_t *rec = base + (size_t)(r0 / PANEL_ROWS) * panel_bytes + (size_t)b0 * rec_bytes;
                for (int b = 0; b < nblk; b++) p32_unpack(fmt, mm, rec + (size_t)b * rec_bytes, &chunk[b]);
                for (int t = 0; t < g;) {
                    const int step = g - t >= 4 ? 4 : g - t >= 2 ? 2 : 1;
                    const block_q8_32 *a[PASS_TOKENS];
                    for (int j = 0; j < PASS_TOKENS; j++) /* a single token stands in for its own pair */
                        a[j] = (const block_q8_32 *)((const uint8_t *)act + (size_t)(a0 + t + (j < step ? j : 0)) * as) + b0;
                    float *yt = y + (size_t)(a0 + t) * ys + r0;
                    if (mm) p32_mm_passes[fmt](step == 4 ? 2 : 1, chunk, nblk, a, step, yt, ys, b0 > 0, keep);
                    else if (step == 4) p32_pass_sdot(fmt, 4, chunk, nblk, a, yt, ys, b0 > 0, keep);
                    else if (step == 2) p32_pass_sdot(fmt, 2, chunk, nblk, a, yt, ys, b0 > 0, keep);
                    else p32_pass_sdot(fmt, 1, chunk, nblk, a, yt, ys, b0 > 0, keep);
                    t += step;
                }
            }
        }
    }
}

/* Decode: each record unpacked on its own, the panel's 16 sums in registers along the row. */
ALWAYS_INLINE void p32_decode(const int fmt, int nb, const uint8_t *rec, int n_rows, const block_q8_32 *act, float *y)
{
    const size_t rec_bytes = PANEL_ROWS * p32_formats[fmt].block;
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
        float32x4_t acc[1][QUADS];
        rows_load(NULL, 0, PANEL_ROWS, acc[0]);
        for (int b = 0; b < nb; b++, rec += rec_bytes) {
            __builtin_prefetch(rec + 4 * rec_bytes);
            p32_rec u;
            p32_unpack(fmt, 0, rec, &u);
            const block_q8_32 *a[1] = {act + b};
            p32_block_sdot(fmt, 1, &u, a, acc);
        }
        rows_store(y + r0, acc[0], n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS);
    }
}

/* Rows [row0, row0 + n_rows) of the packed matrix (row0 a multiple of 16) against n_act tokens. */
ALWAYS_INLINE void p32_gemm(const int fmt, const int mm, int n, const void *panels, int row0, int n_rows,
                            const void *act, size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK32;
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * nb * PANEL_ROWS * p32_formats[fmt].block;
    if (n_act == 1) p32_decode(fmt, nb, base, n_rows, act, y);
    else p32_prefill(fmt, mm, nb, base, n_rows, act, as, n_act, y, ys);
}

#define KQ_GROUP 32 /* tokens whose activations and outputs stay in cache while the call's panels pass */

/* Prefill, k-quants: for each group of tokens and each super-block, every
 * panel's record is unpacked once and the group's tokens (4, 2, then 1 at a
 * time) add their part into y. */
ALWAYS_INLINE void kq_prefill(const int fmt, const int mm, int nb, const uint8_t *base, int n_rows, const void *act,
                              size_t as, int n_act, float *y, size_t ys)
{
    const size_t rec_bytes = PANEL_ROWS * kq_block(fmt);
    kq_rec u;
    for (int a0 = 0; a0 < n_act; a0 += KQ_GROUP) {
        const int g = n_act - a0 < KQ_GROUP ? n_act - a0 : KQ_GROUP;
        for (int i = 0; i < nb; i++)
            for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
                const int keep = n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS;
                kq_unpack(fmt, mm, base + ((size_t)(r0 / PANEL_ROWS) * nb + i) * rec_bytes, &u);
                for (int t = 0; t < g;) {
                    const int step = g - t >= 4 ? 4 : g - t >= 2 ? 2 : 1;
                    const block_q8_K *a[PASS_TOKENS];
                    for (int j = 0; j < PASS_TOKENS; j++)
                        a[j] = (const block_q8_K *)((const uint8_t *)act + (size_t)(a0 + t + (j < step ? j : 0)) * as) + i;
                    float *yt = y + (size_t)(a0 + t) * ys + r0;
                    if (mm) kq_mm_tokens[fmt](step == 4 ? 2 : 1, &u, a, step, yt, ys, i > 0, keep);
                    else if (step == 4) kq_tokens_sdot(fmt, 4, &u, a, yt, ys, i > 0, keep);
                    else if (step == 2) kq_tokens_sdot(fmt, 2, &u, a, yt, ys, i > 0, keep);
                    else kq_tokens_sdot(fmt, 1, &u, a, yt, ys, i > 0, keep);
                    t += step;
                }
            }
    }
}

/* Decode: each record unpacked on its own, the panel's 16 sums in registers along the row. */
ALWAYS_INLINE void kq_decode(const int fmt, int nb, const uint8_t *rec, int n_rows, const block_q8_K *act, float *y)
{
    const size_t rec_bytes = PANEL_ROWS * kq_block(fmt);
    kq_rec u;
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
        float32x4_t v[QUADS];
        rows_load(NULL, 0, PANEL_ROWS, v);
        for (int i = 0; i < nb; i++, rec += rec_bytes) {
            __builtin_prefetch(rec + 2 * rec_bytes);
            kq_unpack(fmt, 0, rec, &u);
            const block_q8_K *a[1] = {act + i};
            int32x4_t acc[1][QUADS];
            kq_sums_sdot(fmt, 1, &u, a, acc);
            kq_scale_into(fmt, &u, a[0], acc[0], v);
        }
        rows_store(y + r0, v, n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS);
    }
}

ALWAYS_INLINE void kq_gemm(const int fmt, const int mm, int n, const void *panels, int row0, int n_rows,
                           const void *act, size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK_K;
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * nb * PANEL_ROWS * kq_block(fmt);
    if (n_act == 1) kq_decode(fmt, nb, base, n_rows, act, y);
    else kq_prefill(fmt, mm, nb, base, n_rows, act, as, n_act, y, ys);
}

/* One entry per type and level: _sdot (neondot), _i8mm (neoni8mm: SMMLA prefill, SDOT decode). */
#define PANEL_GEMM(name, family, fmt)                                                                              \
    static void gemm_panels_##name##_sdot(int n, const void *panels, int row0, int nr, const void *a, size_t as,   \
                                          int na, float *y, size_t ys)                                             \
    {                                                                                                              \
        family##_gemm(fmt, 0, n, panels, row0, nr, a, as, na, y, ys);                                              \
    }                                                                                                              \
    static void gemm_panels_##name##_i8mm(int n, const void *panels, int row0, int nr, const void *a, size_t as,   \
                                          int na, float *y, size_t ys)                                             \
    {                                                                                                              \
        family##_gemm(fmt, 1, n, panels, row0, nr, a, as, na, y, ys);                                              \
    }

PANEL_GEMM(q4_0, p32, P32_Q4_0)
PANEL_GEMM(q4_1, p32, P32_Q4_1)
PANEL_GEMM(q5_0, p32, P32_Q5_0)
PANEL_GEMM(q5_1, p32, P32_Q5_1)
PANEL_GEMM(q8_0, p32, P32_Q8_0)
PANEL_GEMM(iq4_nl, p32, P32_IQ4_NL)
PANEL_GEMM(q4_K, kq, KQ_Q4_K)
PANEL_GEMM(q5_K, kq, KQ_Q5_K)
PANEL_GEMM(q6_K, kq, KQ_Q6_K)

#pragma GCC pop_options

#define INSTALL(type, name) t->gemm_panels[type] = i8mm ? gemm_panels_##name##_i8mm : gemm_panels_##name##_sdot

void kernels_install_gemm_neon(kernel_table *t, int i8mm)
{
    INSTALL(QT_Q4_0, q4_0);
    INSTALL(QT_Q4_1, q4_1);
    INSTALL(QT_Q5_0, q5_0);
    INSTALL(QT_Q5_1, q5_1);
    INSTALL(QT_Q8_0, q8_0);
    INSTALL(QT_IQ4_NL, iq4_nl);
    INSTALL(QT_Q4_K, q4_K);
    INSTALL(QT_Q5_K, q5_K);
    INSTALL(QT_Q6_K, q6_K);
}

#else

void kernels_install_gemm_neon(kernel_table *t, int i8mm) { (void)t, (void)i8mm; }

#endif
