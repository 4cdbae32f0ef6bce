/*
 * gemm_avx512.c - quantized matrix products with AVX-512 VNNI on the
 * load-time panels (panels.h): prefill and decode.
 *
 * gemm_panels[type](n, panels, row0, n_rows, act, ..., y) computes every dot
 * product of rows [row0, row0 + n_rows) of a matrix repacked at load into
 * panels of PANEL_ROWS (16) rows with n_act activation rows. A panel record
 * holds one block of all 16 rows with every field in 4-byte groups per row,
 * so one load gives 4 weights (or scale bytes) of every row, one int32 lane
 * per row. Every weight the engine multiplies is packed at load
 * (model_pack_weights), so there is no kernel here for GGUF's own row layout.
 *
 * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): weights are
 * made unsigned (u = q + offset: 8 for Q4_0, 16 for Q5_0, 128 for
 * Q8_0/IQ4_NL via xor 0x80), so vpdpbusd does unsigned x signed bytes; the
 * offset is removed exactly by starting the integer sum from -offset *
 * sum(activation bytes), which each activation block carries
 * (block_q8_32.sum). Eight vpdpbusd against broadcasts of a token's matching
 * 4 activation bytes give the 16 rows' whole block dots, and one convert +
 * multiply + FMA applies d_w * d_a for all 16 rows: ~11 vector ops per 512
 * multiply-adds, where a row-per-zmm layout needs a convert, multiply and FMA
 * per 64. Tokens go in groups of 16 (8, 4 and 1 for the rest).
 *
 * K-quants (Q4_K, Q5_K, Q6_K): per sub-block, vpdpbusd of the rows' unsigned
 * weights (Q6_K as stored, q + 32) against a broadcast of the token's 4
 * matching activation bytes gives the 16 rows' integer dots, with no
 * horizontal sums; vpmulld by the rows' integer sub-block scales (unpacked
 * from the record's 6-bit or int8 scales for 16 rows at once) adds them into
 * an exact int32 sum. The Q4_K/Q5_K mins and the Q6_K -32 offset come from
 * the activation bsums (vpdpwssd of int16 pairs against bsum pairs), so the
 * float work happens once per super-block and token. Decode streams each
 * record once straight into registers (prefetching ahead), its 16 sums in one
 * zmm along the row, instead of a horizontal sum and a scalar scale unpack
 * per row and super-block. Prefill unpacks each super-block of a panel once
 * for a group of 32 tokens (their activations and outputs stay in L2) and
 * runs 4 tokens per pass over it.
 *
 * AVX-512 without VNNI installs nothing here: the AVX2 row panels
 * (gemm_avx2.c) are faster than zmm tiles built on maddubs + madd
 * (docs/PERFORMANCE.md).
 *
 * To add a type: give it a layout in panels.c, a weight decoder beside
 * panel_weights or kq_weights, and a line in the installer; test_gemm.c
 * picks it up. Integer parts are exact; only the float summation order
 * differs from the scalar reference (tests/test_gemm.c). Compiled with the
 * AVX-512 flags on x86_64 only; elsewhere the installer is empty.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)

#include <immintrin.h>
#include <string.h>

#include "panels.h"
#include "simd_x86.h"

/* ---- 32-element formats: load-time panels (VNNI) -------------------------- */

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

static inline uint32_t read_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

_Static_assert(PANEL_ROWS == 16, "a panel's rows are the 16 int32 / f32 lanes of a zmm");
#define PANEL_A 16      /* tokens per activation group */
#define PANEL_CHUNK 128 /* prefill: blocks per pass over the panels, so a group's activations for a pass stay in L2 */

/* The activation rows of one group of tokens (a partial group repeats its last). */
typedef struct {
    const uint8_t *tok[PANEL_A];
} panel_acts;

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

/* Block record rec of a load-time panel (panels.h): u[e] lane r = unsigned
 * weights 4e..4e+3 of row r; dw (and mw) = the rows' scales (mins). */
ALWAYS_INLINE void panel_weights(const int fmt, const uint8_t *rec, __m512i u[8], __m512 *dw, __m512 *mw)
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
 * [i0, i0 + nblk); w0 = the panel's first record; y = output of token t0,
 * row 0; add: accumulate into y; keep: the rows to store. */
ALWAYS_INLINE void panel_tile(const int fmt, const int na, const uint8_t *w0, const panel_acts *pa, int i0, int nblk,
                              int t0, float *y, size_t ys, int add, __mmask16 keep)
{
    const size_t bs = b32_size[fmt];
    __m512 acc[PANEL_A];
    UNROLL
    for (int t = 0; t < na; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nblk; b++) {
        __m512i u[8];
        __m512 dw, mw = _mm512_setzero_ps();
        if (na == 1) prefetch_ahead(w0 + (size_t)(i0 + b) * PANEL_ROWS * bs, PANEL_ROWS * bs); /* decode */
        panel_weights(fmt, w0 + (size_t)(i0 + b) * PANEL_ROWS * bs, u, &dw, &mw);
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

typedef void (*panel_fn)(const uint8_t *w0, const panel_acts *pa, int i0, int nblk, int t0, float *y, size_t ys,
                         int add, __mmask16 keep);
typedef struct {
    panel_fn t16, t8, t4, t1; /* 16, 8, 4 and 1 tokens */
} panel_tiles;

/* One row panel against the g tokens of the group (16, or fewer in the last group). */
static void panel_group(const panel_tiles *tl, int g, const uint8_t *w0, const panel_acts *pa, int i0, int nblk,
                        float *y, size_t ys, __mmask16 keep)
{
    const int add = i0 > 0;
    if (g == PANEL_A) {
        tl->t16(w0, pa, i0, nblk, 0, y, ys, add, keep);
        return;
    }
    int t0 = 0;
    if (g - t0 >= 8) tl->t8(w0, pa, i0, nblk, t0, y, ys, add, keep), t0 += 8;
    if (g - t0 >= 4) tl->t4(w0, pa, i0, nblk, t0, y + (size_t)t0 * ys, ys, add, keep), t0 += 4;
    for (; t0 < g; t0++) tl->t1(w0, pa, i0, nblk, t0, y + (size_t)t0 * ys, ys, add, keep);
}

/* Rows [row0, row0 + n_rows) of the panel form (panels.h), bs bytes per
 * block: tokens in groups of 16 (8 + 4 + singles for the last group, so one
 * token, the decode case, is a panel too); for each group and 128-block
 * chunk every panel of 16 rows is visited. Nothing is computed per call
 * beyond pointers: the offset correction of unsigned weights comes with each
 * activation block (block_q8_32.sum), so decode can split a matrix into many
 * calls for free. */
static void panel_gemm(const panel_tiles *tl, int n, const void *panels, size_t bs, int row0, int n_rows,
                       const void *act, size_t as, int n_act, float *y, size_t ys)
{
    const int nb = n / QK32;
    const size_t panel_bytes = (size_t)nb * bs * PANEL_ROWS;
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * panel_bytes;
    panel_acts pa;
    for (int a0 = 0; a0 < n_act; a0 += PANEL_A) {
        const int g = n_act - a0 < PANEL_A ? n_act - a0 : PANEL_A;
        for (int t = 0; t < PANEL_A; t++) pa.tok[t] = (const uint8_t *)act + (size_t)(a0 + (t < g ? t : g - 1)) * as;
        /* one token (decode): every panel front to back in one pass, a single stream; chunks of
         * 128 blocks would read a wide matrix in short runs that jump a panel ahead */
        const int chunk = g == 1 ? nb : PANEL_CHUNK;
        for (int i0 = 0; i0 < nb; i0 += chunk) {
            const int nblk = nb - i0 < chunk ? nb - i0 : chunk;
            for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
                const int left = n_rows - r0;
                const __mmask16 keep = left >= PANEL_ROWS ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                panel_group(tl, g, base + (size_t)(r0 / PANEL_ROWS) * panel_bytes, &pa, i0, nblk,
                            y + (size_t)a0 * ys + r0, ys, keep);
            }
        }
    }
}

#define PANEL_TILE(name, fmt, na)                                                                                  \
    static void panel##na##_##name(const uint8_t *w0, const panel_acts *pa, int i0, int nblk, int t0, float *y,     \
                                   size_t ys, int add, __mmask16 keep)                                             \
    {                                                                                                              \
        panel_tile(fmt, na, w0, pa, i0, nblk, t0, y, ys, add, keep);                                               \
    }

#define PANEL_GEMM(name, fmt)                                                                                      \
    PANEL_TILE(name, fmt, 16)                                                                                      \
    PANEL_TILE(name, fmt, 8)                                                                                       \
    PANEL_TILE(name, fmt, 4)                                                                                       \
    PANEL_TILE(name, fmt, 1)                                                                                       \
    static const panel_tiles panels_##name = {panel16_##name, panel8_##name, panel4_##name, panel1_##name};         \
    static void gemm_packed_##name(int n, const void *panels, int row0, int nr, const void *a, size_t as, int na,  \
                                   float *y, size_t ys)                                                            \
    {                                                                                                              \
        panel_gemm(&panels_##name, n, panels, b32_size[fmt], row0, nr, a, as, na, y, ys);                          \
    }

PANEL_GEMM(q4_0_vnni, B32_Q4_0)
PANEL_GEMM(q4_1_vnni, B32_Q4_1)
PANEL_GEMM(q5_0_vnni, B32_Q5_0)
PANEL_GEMM(q5_1_vnni, B32_Q5_1)
PANEL_GEMM(q8_0_vnni, B32_Q8_0)
PANEL_GEMM(iq4_nl_vnni, B32_IQ4_NL)

/* ---- k-quants: load-time panels (VNNI) ------------------------------------ */

/* The lanes of the first `left` rows of a panel (all 16 when left >= 16). */
static inline __mmask16 first_rows(int left) { return left >= PANEL_ROWS ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

/* A | (B & C), bit by bit, as one vpternlogd. */
static inline __m512i or_masked(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xF8); }

/* Unsigned weights 32c + 4k .. 32c + 4k + 3 of the record's 16 rows (lane r
 * = row r's 4 bytes; Q6_K as stored, q + 32), from the record's 4-byte
 * groups (panels.h). Q4_K/Q5_K: qs byte 32j + l holds element 64j + l in
 * its low nibble and 64j + 32 + l in its high one; bit c of qh byte l is the
 * fifth bit of element 32c + l. Q4_K's high nibbles stay where they are, as
 * 16 q (one and instead of a shift and an and, in the decode's inner loop);
 * kq_record_scales makes up for it. Q6_K: element 128h + 32g + l has its
 * low 4 bits in ql byte 64h + 32(g & 1) + l (nibble g >> 1) and its high 2
 * bits at bit 2g of qh byte 32h + l. */
ALWAYS_INLINE __m512i kq_weights(const int fmt, const uint8_t *rec, int c, int k)
{
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    if (fmt == KQ_Q6_K) {
        const int h = c / 4, g = c % 4;
        const __m512i ql = load512(rec + panel_field_at(offsetof(block_q6_K, ql)) + 64 * (16 * h + 8 * (g & 1) + k));
        const __m512i qh = load512(rec + panel_field_at(offsetof(block_q6_K, qh)) + 64 * (8 * h + k));
        const __m512i low = _mm512_and_si512(g >> 1 ? _mm512_srli_epi16(ql, 4) : ql, low4);
        const __m512i high = g <= 2 ? _mm512_slli_epi16(qh, 4 - 2 * g) : _mm512_srli_epi16(qh, 2); /* bits 2g.. -> 4.. */
        return or_masked(low, high, _mm512_set1_epi8(0x30));
    }
    const size_t qs_at = fmt == KQ_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const __m512i qs = load512(rec + panel_field_at(qs_at) + 64 * (8 * (c / 2) + k));
    if (fmt == KQ_Q4_K) return _mm512_and_si512(qs, c & 1 ? _mm512_set1_epi8((char)0xF0) : low4);
    const __m512i u = _mm512_and_si512(c & 1 ? _mm512_srli_epi16(qs, 4) : qs, low4);
    const __m512i qh = load512(rec + panel_field_at(offsetof(block_q5_K, qh)) + 64 * k);
    const __m512i fifth = c <= 4 ? _mm512_slli_epi16(qh, 4 - c) : _mm512_srli_epi16(qh, c - 4); /* bit c -> 4 */
    return or_masked(u, fifth, _mm512_set1_epi8(0x10));
}

/* The record's per-row scales as the kernels use them: sc[s] lane r = row
 * r's integer scale of sub-block s (Q4_K/Q5_K: 8 sub-blocks of 32, Q6_K: 16
 * of 16); pair[k] lane r = two int16 weights against the token's int16 pair
 * kq_act_pairs()[k] (Q4_K/Q5_K: min_2k, min_2k+1, k < 4; Q6_K: scale_2k,
 * scale_2k+1, k < 8); d and dmin the rows' float scales. */
typedef struct {
    __m512i sc[16];
    __m512i pair[8];
    __m512 d, dmin;
} kq_scales;

ALWAYS_INLINE void kq_record_scales(const int fmt, const uint8_t *rec, kq_scales *s)
{
    if (fmt == KQ_Q6_K) {
        s->d = _mm512_cvtph_ps(load256(rec + panel_field_at(offsetof(block_q6_K, d))));
        UNROLL
        for (int g = 0; g < 4; g++) {
            /* lane r = int8 scales 4g..4g+3 of row r */
            const __m512i t = load512(rec + panel_field_at(offsetof(block_q6_K, scales)) + 64 * g);
            s->sc[4 * g + 0] = _mm512_srai_epi32(pick_bytes512(t, -1, -1, -1, 0), 24);
            s->sc[4 * g + 1] = _mm512_srai_epi32(pick_bytes512(t, -1, -1, -1, 1), 24);
            s->sc[4 * g + 2] = _mm512_srai_epi32(pick_bytes512(t, -1, -1, -1, 2), 24);
            s->sc[4 * g + 3] = _mm512_srai_epi32(t, 24);
            s->pair[2 * g] = _mm512_srai_epi16(pick_bytes512(t, -1, 0, -1, 1), 8);
            s->pair[2 * g + 1] = _mm512_srai_epi16(pick_bytes512(t, -1, 2, -1, 3), 8);
        }
        return;
    }
    s->d = _mm512_cvtph_ps(load256(rec + panel_field_at(offsetof(block_q4_K, d))));
    s->dmin = _mm512_cvtph_ps(load256(rec + panel_field_at(offsetof(block_q4_K, dmin))));
    /* the 12 bytes of 6-bit scales and mins as 3 groups, unpacked as unpack_scales_k4 does, 16 rows at once */
    const uint8_t *packed = rec + panel_field_at(offsetof(block_q4_K, scales));
    const __m512i t0 = load512(packed), t1 = load512(packed + 64), t2 = load512(packed + 128);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm512_set1_epi32(0x30303030);
    const __m512i sc_lo = _mm512_and_si512(t0, m6), mn_lo = _mm512_and_si512(t1, m6);
    const __m512i sc_hi = or_masked(_mm512_and_si512(t2, m4), _mm512_srli_epi32(t0, 2), hi2);
    const __m512i mn_hi = or_masked(_mm512_and_si512(_mm512_srli_epi32(t2, 4), m4), _mm512_srli_epi32(t1, 2), hi2);
    s->sc[0] = pick_bytes512(sc_lo, 0, -1, -1, -1);
    s->sc[1] = pick_bytes512(sc_lo, 1, -1, -1, -1);
    s->sc[2] = pick_bytes512(sc_lo, 2, -1, -1, -1);
    s->sc[3] = _mm512_srli_epi32(sc_lo, 24);
    s->sc[4] = pick_bytes512(sc_hi, 0, -1, -1, -1);
    s->sc[5] = pick_bytes512(sc_hi, 1, -1, -1, -1);
    s->sc[6] = pick_bytes512(sc_hi, 2, -1, -1, -1);
    s->sc[7] = _mm512_srli_epi32(sc_hi, 24);
    if (fmt == KQ_Q4_K) /* the odd sub-blocks' weights come as 16 q (kq_weights): the even ones' scales x 16 */
        for (int c = 0; c < 8; c += 2) s->sc[c] = _mm512_slli_epi32(s->sc[c], 4);
    s->pair[0] = pick_bytes512(mn_lo, 0, -1, 1, -1);
    s->pair[1] = pick_bytes512(mn_lo, 2, -1, 3, -1);
    s->pair[2] = pick_bytes512(mn_hi, 0, -1, 1, -1);
    s->pair[3] = pick_bytes512(mn_hi, 2, -1, 3, -1);
}

/* One super-block of 16 rows with its weights unpacked once for a prefill
 * call's tokens: u[c][k] = kq_weights(c, k). */
typedef struct {
    __m512i u[8][8];
    kq_scales s;
} kq_unpacked;

ALWAYS_INLINE void kq_unpack(const int fmt, const uint8_t *rec, kq_unpacked *p)
{
    UNROLL
    for (int c = 0; c < 8; c++)
        UNROLL
        for (int k = 0; k < 8; k++) p->u[c][k] = kq_weights(fmt, rec, c, k);
    kq_record_scales(fmt, rec, &p->s);
}

#define KQ_TOKENS 4 /* tokens per pass over an unpacked super-block */

/* v[j] lane r = the contribution of the super-block to row r of token a[j]
 * (j < na): Q4_K/Q5_K d_a * (d * sum_s sc_s * dot_s - dmin * sum_s min_s *
 * sum_s(a)); Q6_K d_a * d * sum_s sc_s * (dot_s - 32 * sum_s(a)), dot_s of
 * the stored (q + 32) weights. Q4_K's integer sum comes 16 times too large
 * (at most 16 * 63 * 8 * 32 * 15 * 127, well inside int32) and d / 16 takes
 * it back exactly. Per sub-block, vpdpbusd of the rows' weights
 * against a broadcast of the token's 4 matching bytes gives the 16 rows' dots
 * at once; vpmulld by the rows' integer scales adds them into an exact int32
 * sum; the mins and Q6_K's -32 go through the activation sums as int16 pairs
 * (vpdpwssd); one convert and scale per super-block. Weights come from the
 * unpacked super-block p, or (p == NULL, decode) straight from the record. */
ALWAYS_INLINE void kq_tokens(const int fmt, const int na, const kq_unpacked *p, const uint8_t *rec,
                             const kq_scales *s, const block_q8_K *const a[], __m512 v[])
{
    __m512i isum[KQ_TOKENS], icorr[KQ_TOKENS];
    UNROLL
    for (int j = 0; j < na; j++) isum[j] = icorr[j] = _mm512_setzero_si512();
    UNROLL
    for (int c = 0; c < 8; c++) {
        __m512i half[KQ_TOKENS][2]; /* Q6_K: elements 32c..32c+15, 32c+16..; else all 32 in half[j][0] */
        UNROLL
        for (int j = 0; j < na; j++) half[j][0] = half[j][1] = _mm512_setzero_si512();
        UNROLL
        for (int k = 0; k < 8; k++) {
            const __m512i u = p ? p->u[c][k] : kq_weights(fmt, rec, c, k);
            UNROLL
            for (int j = 0; j < na; j++)
                dpbusd_broadcast(&half[j][fmt == KQ_Q6_K ? k / 4 : 0], u, (const uint8_t *)a[j]->qs + 32 * c + 4 * k);
        }
        UNROLL
        for (int j = 0; j < na; j++) {
            if (fmt == KQ_Q6_K)
                isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(_mm512_mullo_epi32(half[j][0], s->sc[2 * c]),
                                                                     _mm512_mullo_epi32(half[j][1], s->sc[2 * c + 1])));
            else
                isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(half[j][0], s->sc[c]));
        }
    }
    UNROLL
    for (int j = 0; j < na; j++) {
        int32_t pairs[8];
        kq_act_pairs(fmt, a[j], pairs);
        UNROLL
        for (int k = 0; k < kq_pairs(fmt); k++) icorr[j] = _mm512_dpwssd_epi32(icorr[j], s->pair[k], _mm512_set1_epi32(pairs[k]));
        const __m512 da = _mm512_set1_ps(a[j]->d);
        if (fmt == KQ_Q6_K) {
            v[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[j], _mm512_slli_epi32(icorr[j], 5))),
                                 _mm512_mul_ps(s->d, da));
            /* The product is rounded before the callers add it up: otherwise GCC may fuse it
             * with decode's running sum but not with prefill's, and a token's row would
             * depend on the batch it came in (speculation needs them equal). */
            __asm__("" : "+v"(v[j]));
        } else {
            const __m512 d = fmt == KQ_Q4_K ? _mm512_mul_ps(s->d, _mm512_set1_ps(1.0f / 16)) : s->d;
            v[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(d, da));
            v[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(icorr[j]), _mm512_mul_ps(s->dmin, da), v[j]);
        }
    }
}

/* Decode: the panel's records stream through registers; its 16 sums stay in one zmm along the row. */
ALWAYS_INLINE void kq_decode_panel(const int fmt, int nb, const uint8_t *rec, const block_q8_K *act, float *y,
                                   __mmask16 keep)
{
    const size_t rec_bytes = PANEL_ROWS * kq_size(fmt);
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++, rec += rec_bytes) {
        prefetch_ahead(rec, rec_bytes);
        kq_scales s;
        kq_record_scales(fmt, rec, &s);
        const block_q8_K *a[1] = {act + i};
        __m512 v[1];
        kq_tokens(fmt, 1, NULL, rec, &s, a, v);
        acc = _mm512_add_ps(acc, v[0]);
    }
    _mm512_mask_storeu_ps(y, keep, acc);
}

/* y[t] (16 rows, tokens t < na, ys floats apart) += (or = when !add) the unpacked super-block's part. */
ALWAYS_INLINE void kq_add_tokens(const int fmt, const int na, const kq_unpacked *p, const block_q8_K *const a[],
                                 float *y, size_t ys, int add, __mmask16 keep)
{
    __m512 v[KQ_TOKENS];
    kq_tokens(fmt, na, p, NULL, &p->s, a, v);
    UNROLL
    for (int j = 0; j < na; j++) {
        float *yt = y + (size_t)j * ys;
        _mm512_mask_storeu_ps(yt, keep, add ? _mm512_add_ps(_mm512_maskz_loadu_ps(keep, yt), v[j]) : v[j]);
    }
}

#define KQ_GROUP 32 /* tokens whose activations and outputs stay in cache while a panel passes */

/* Prefill: for each group of tokens and each panel, every super-block is
 * unpacked once and every token of the group (4 at a time, then singly)
 * adds its part into y. */
ALWAYS_INLINE void kq_prefill(const int fmt, int nb, const uint8_t *base, int n_rows, const void *act, size_t as,
                              int n_act, float *y, size_t ys)
{
    const size_t rec_bytes = PANEL_ROWS * kq_size(fmt);
    kq_unpacked p;
    for (int a0 = 0; a0 < n_act; a0 += KQ_GROUP) {
        const int g = n_act - a0 < KQ_GROUP ? n_act - a0 : KQ_GROUP;
        for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
            const __mmask16 keep = first_rows(n_rows - r0);
            float *yg = y + (size_t)a0 * ys + r0;
            for (int i = 0; i < nb; i++) {
                kq_unpack(fmt, base + ((size_t)(r0 / PANEL_ROWS) * nb + i) * rec_bytes, &p);
                int t = 0;
                for (; t + KQ_TOKENS <= g; t += KQ_TOKENS) {
                    const block_q8_K *a[KQ_TOKENS];
                    for (int j = 0; j < KQ_TOKENS; j++)
                        a[j] = (const block_q8_K *)((const uint8_t *)act + (size_t)(a0 + t + j) * as) + i;
                    kq_add_tokens(fmt, KQ_TOKENS, &p, a, yg + (size_t)t * ys, ys, i > 0, keep);
                }
                for (; t < g; t++) {
                    const block_q8_K *a[1] = {(const block_q8_K *)((const uint8_t *)act + (size_t)(a0 + t) * as) + i};
                    kq_add_tokens(fmt, 1, &p, a, yg + (size_t)t * ys, ys, i > 0, keep);
                }
            }
        }
    }
}

/* Rows [row0, row0 + n_rows) of the packed matrix (row0 a multiple of 16). */
ALWAYS_INLINE void kq_gemm(const int fmt, int n, const void *panels, int row0, int n_rows, const void *act, size_t as,
                           int n_act, float *y, size_t ys)
{
    const int nb = n / QK_K;
    const size_t panel_bytes = (size_t)nb * PANEL_ROWS * kq_size(fmt);
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * panel_bytes;
    if (n_act > 1) {
        kq_prefill(fmt, nb, base, n_rows, act, as, n_act, y, ys);
        return;
    }
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS)
        kq_decode_panel(fmt, nb, base + (size_t)(r0 / PANEL_ROWS) * panel_bytes, act, y + r0, first_rows(n_rows - r0));
}

#define KQ_GEMM(name, fmt)                                                                                         \
    static void gemm_packed_##name(int n, const void *panels, int row0, int nr, const void *a, size_t as, int na,  \
                                   float *y, size_t ys)                                                            \
    {                                                                                                              \
        kq_gemm(fmt, n, panels, row0, nr, a, as, na, y, ys);                                                       \
    }

KQ_GEMM(q4_K_vnni, KQ_Q4_K)
KQ_GEMM(q5_K_vnni, KQ_Q5_K)
KQ_GEMM(q6_K_vnni, KQ_Q6_K)

void kernels_install_gemm_avx512(kernel_table *t, int vnni)
{
    /* Without VNNI every type keeps its AVX2 row-panel kernel (see the top of this file). */
    if (!vnni) return;
    t->gemm_panels[QT_Q4_0] = gemm_packed_q4_0_vnni;
    t->gemm_panels[QT_Q4_1] = gemm_packed_q4_1_vnni;
    t->gemm_panels[QT_Q5_0] = gemm_packed_q5_0_vnni;
    t->gemm_panels[QT_Q5_1] = gemm_packed_q5_1_vnni;
    t->gemm_panels[QT_Q8_0] = gemm_packed_q8_0_vnni;
    t->gemm_panels[QT_IQ4_NL] = gemm_packed_iq4_nl_vnni;
    t->gemm_panels[QT_Q4_K] = gemm_packed_q4_K_vnni;
    t->gemm_panels[QT_Q5_K] = gemm_packed_q5_K_vnni;
    t->gemm_panels[QT_Q6_K] = gemm_packed_q6_K_vnni;
}

#else

void kernels_install_gemm_avx512(kernel_table *t, int vnni)
{
    (void)t;
    (void)vnni;
}

#endif
