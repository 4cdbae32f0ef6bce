/*
 * gemm_avx2.c - quantized matrix products on row panels with AVX2 + FMA + F16C.
 *
 * Row panels, as in gemm_avx512.c but sized for 16 ymm registers: a ymm
 * holds 4 consecutive weights of 8 rows (one int32 lane per row), and a
 * 16-row panel is two of them. maddubs of such a ymm against a broadcast of
 * a token's 4 matching activation bytes gives the 8 rows' int16 pair sums;
 * both halves share the broadcast. Weights are made unsigned (maddubs wants
 * one unsigned operand) and the products of several groups add up in int16
 * as far as they provably cannot overflow (|a| <= 127: 4-bit weights 8
 * groups = 30480, 5-bit 4 groups, 6-bit 2) before one madd widens them to
 * int32 and, for the k-quants, applies the integer sub-block scales. A row
 * of 32 weights then costs ~1.1 multiplier ops per token instead of the 2
 * (maddubs + madd) of a row-per-ymm layout, there are no horizontal sums,
 * and unpacking the weights is paid once for many tokens. On AMD Zen the
 * integer multiplies, FMA and pshufb/psign share two pipes, so the multiplier
 * count is what bounds these kernels; shifts, adds and converts are cheap.
 *
 * K-quants (Q4_K, Q5_K, Q6_K) run on the load-time panels too: a record is
 * a super-block of 16 rows with every field in 4-byte groups per row, so one
 * 32-byte load gives 4 weights (or scale bytes) of 8 rows, and the rows'
 * 6-bit or int8 sub-block scales unpack with a few shifts and one pshufb per
 * scale for 8 rows at once. The Q4_K/Q5_K mins and the Q6_K -32 offset are
 * madds of per-row int16 pairs against the token's bsums; the float work
 * happens once per super-block and token. Decode decodes each record
 * straight into registers (the row-per-call dot product it replaces paid a
 * horizontal sum and a scalar scale unpack per row and super-block);
 * prefill unpacks a record once for a group of 32 tokens and runs 4 tokens
 * per pass over it.
 *
 * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL; `gemm_panels`
 * on the load-time layout of panels.h, prefill and decode): the 4/5-bit
 * weights carry their format's offset (Q4_0 +8, Q5_0 +16); 8-bit weights
 * (Q8_0, IQ4_NL's grid values) + 128 are split into two 4-bit planes, the
 * high one weighted 16 by its madd, so every format takes the same unsigned
 * path (the abs/sign trick would cost a psign and a madd per group). The
 * offset goes as -offset * sum(a), the sum each q8_32 block carries. Prefill
 * unpacks a panel 32 records at a time into an L1 scratch, once for a group
 * of 64 tokens, and runs 2-3 tokens at a time along it with their float sums
 * in registers: a block of 32 weights has its own float scale, so the float
 * work per block and token is a convert, a multiply and an FMA per 8 rows,
 * and keeping the sums in registers saves a load and a store of y per block;
 * decode (one token) decodes each record straight into registers, where the
 * 16 rows' sums stay along the whole row.
 *
 * Packed panels are zero-padded; only real rows are stored. Integer parts
 * are exact; only the float summation order differs from the scalar
 * reference (tests/test_gemm.c). Compiled with -mavx2 -mfma -mf16c on x86_64
 * only; elsewhere the installer is empty.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#include "panels.h"
#include "simd_x86.h"
/* acc += x in int16 lanes, as one in-place vpaddw the compiler cannot
 * reorder: written as intrinsics, GCC rebalances a running sum of products
 * into a tree, whose products are then all live at once and spill. */
static inline void add_epi16_in_place(__m256i *acc, __m256i x) { __asm__("vpaddw %1, %0, %0" : "+x"(*acc) : "x"(x)); }

static inline uint32_t read_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- row panels ----------------------------------------------------------- */

#define PANEL_H 2  /* ymm per panel of PANEL_ROWS (16) rows: 8 int32 lanes each */
_Static_assert(PANEL_H * 8 == PANEL_ROWS, "a panel is PANEL_H ymm of 8 rows");

/* The 16 floats at y (only the first `keep` are real rows) as two ymm; zero when !add. */
static inline void load_panel(const float *y, int add, int keep, __m256 v[PANEL_H])
{
    if (!add) {
        v[0] = v[1] = _mm256_setzero_ps();
    } else if (keep == PANEL_ROWS) {
        v[0] = _mm256_loadu_ps(y);
        v[1] = _mm256_loadu_ps(y + 8);
    } else {
        float part[PANEL_ROWS] = {0};
        memcpy(part, y, sizeof(float) * (size_t)keep);
        v[0] = _mm256_loadu_ps(part);
        v[1] = _mm256_loadu_ps(part + 8);
    }
}

/* The first `keep` of the 16 floats in v -> y. */
static inline void store_panel(float *y, const __m256 v[PANEL_H], int keep)
{
    if (keep == PANEL_ROWS) {
        _mm256_storeu_ps(y, v[0]);
        _mm256_storeu_ps(y + 8, v[1]);
        return;
    }
    float part[PANEL_ROWS];
    _mm256_storeu_ps(part, v[0]);
    _mm256_storeu_ps(part + 8, v[1]);
    memcpy(y, part, sizeof(float) * (size_t)keep);
}

/* ---- k-quants: load-time panels ------------------------------------------ */

/* Weight groups (4 bytes each) whose maddubs pairs can be summed in int16
 * before one madd widens them: 4-bit 0..15 x 127 x 2 x 8 groups = 30480,
 * 5-bit 4 groups = 31496, 6-bit 2 groups = 32004, all below 32767. */
static inline int kq_groups_per_sum(const int fmt) { return fmt == KQ_Q4_K ? 8 : fmt == KQ_Q5_K ? 4 : 2; }

/* Unsigned weights 32c + 4k .. 32c + 4k + 3 of rows 8h..8h+7 of the record
 * (lane r = row 8h + r; Q6_K as stored, q + 32), from its 4-byte groups
 * (panels.h). Q4_K/Q5_K: qs byte 32j + l holds element 64j + l in its low
 * nibble and 64j + 32 + l in its high one; bit c of qh byte l is the fifth
 * bit of element 32c + l. Q6_K: element 128h' + 32g + l has its low 4 bits
 * in ql byte 64h' + 32(g & 1) + l (nibble g >> 1) and its high 2 bits at
 * bit 2g of qh byte 32h' + l. */
ALWAYS_INLINE __m256i kq_weights(const int fmt, const uint8_t *rec, int c, int k, int h)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    if (fmt == KQ_Q6_K) {
        const int half = c / 4, g = c % 4;
        const __m256i ql =
            load256(rec + panel_field_at(offsetof(block_q6_K, ql)) + 64 * (16 * half + 8 * (g & 1) + k) + 32 * h);
        const __m256i qh = load256(rec + panel_field_at(offsetof(block_q6_K, qh)) + 64 * (8 * half + k) + 32 * h);
        const __m256i low = _mm256_and_si256(g >> 1 ? _mm256_srli_epi16(ql, 4) : ql, low4);
        const __m256i high = g <= 2 ? _mm256_slli_epi16(qh, 4 - 2 * g) : _mm256_srli_epi16(qh, 2); /* bits 2g.. -> 4.. */
        return _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi8(0x30)));
    }
    const size_t qs_at = fmt == KQ_Q5_K ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const __m256i qs = load256(rec + panel_field_at(qs_at) + 64 * (8 * (c / 2) + k) + 32 * h);
    const __m256i u = _mm256_and_si256(c & 1 ? _mm256_srli_epi16(qs, 4) : qs, low4);
    if (fmt != KQ_Q5_K) return u;
    const __m256i qh = load256(rec + panel_field_at(offsetof(block_q5_K, qh)) + 64 * k + 32 * h);
    const __m256i fifth = c <= 4 ? _mm256_slli_epi16(qh, 4 - c) : _mm256_srli_epi16(qh, c - 4); /* bit c -> 4 */
    return _mm256_or_si256(u, _mm256_and_si256(fifth, _mm256_set1_epi8(0x10)));
}

/* The record's per-row scales as the kernels use them, rows 8h..8h+7 in
 * [h]: sc[s] lane r = row r's integer scale of sub-block s as an int16 pair
 * (Q4_K/Q5_K: 8 sub-blocks of 32, Q6_K: 16 of 16), a madd operand scaling
 * both halves; pair[k] lane r = two int16 weights against the token's int16
 * pair kq_act_pairs()[k] (Q4_K/Q5_K: min_2k, min_2k+1 against sub-blocks 2k,
 * 2k + 1, k < 4; Q6_K: scale_2k, scale_2k+1 against bsums[2k], bsums[2k +
 * 1]); d and dmin the rows' float scales. */
typedef struct {
    __m256i sc[16][PANEL_H];
    __m256i pair[8][PANEL_H];
    __m256 d[PANEL_H], dmin[PANEL_H];
} kq_scales;

ALWAYS_INLINE void kq_record_scales(const int fmt, const uint8_t *rec, int h, kq_scales *s)
{
    if (fmt == KQ_Q6_K) {
        s->d[h] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rec + panel_field_at(offsetof(block_q6_K, d))) + h));
        UNROLL
        for (int g = 0; g < 4; g++) {
            /* lane r = int8 scales 4g..4g+3 of row r, sign-extended from the high byte of each int16 */
            const __m256i t = load256(rec + panel_field_at(offsetof(block_q6_K, scales)) + 64 * g + 32 * h);
            s->sc[4 * g + 0][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 0, -1, 0), 8);
            s->sc[4 * g + 1][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 1, -1, 1), 8);
            s->sc[4 * g + 2][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 2, -1, 2), 8);
            s->sc[4 * g + 3][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 3, -1, 3), 8);
            s->pair[2 * g][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 0, -1, 1), 8);
            s->pair[2 * g + 1][h] = _mm256_srai_epi16(pick_bytes256(t, -1, 2, -1, 3), 8);
        }
        return;
    }
    const __m128i *d = (const __m128i *)(rec + panel_field_at(offsetof(block_q4_K, d))); /* Q5_K alike */
    const __m128i *dmin = (const __m128i *)(rec + panel_field_at(offsetof(block_q4_K, dmin)));
    s->d[h] = _mm256_cvtph_ps(_mm_loadu_si128(d + h));
    s->dmin[h] = _mm256_cvtph_ps(_mm_loadu_si128(dmin + h));
    /* the 12 bytes of 6-bit scales and mins as 3 groups, unpacked as unpack_scales_k4 does, 8 rows at once */
    const uint8_t *packed = rec + panel_field_at(offsetof(block_q4_K, scales)) + 32 * h;
    const __m256i t0 = load256(packed), t1 = load256(packed + 64), t2 = load256(packed + 128);
    const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), m4 = _mm256_set1_epi32(0x0f0f0f0f),
                  hi2 = _mm256_set1_epi32(0x30303030);
    const __m256i sc_lo = _mm256_and_si256(t0, m6), mn_lo = _mm256_and_si256(t1, m6);
    const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(t2, m4), _mm256_and_si256(_mm256_srli_epi32(t0, 2), hi2));
    const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(t2, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi32(t1, 2), hi2));
    UNROLL
    for (int j = 0; j < 4; j++) {
        s->sc[j][h] = pick_bytes256(sc_lo, j, -1, j, -1);
        s->sc[4 + j][h] = pick_bytes256(sc_hi, j, -1, j, -1);
    }
    s->pair[0][h] = pick_bytes256(mn_lo, 0, -1, 1, -1);
    s->pair[1][h] = pick_bytes256(mn_lo, 2, -1, 3, -1);
    s->pair[2][h] = pick_bytes256(mn_hi, 0, -1, 1, -1);
    s->pair[3][h] = pick_bytes256(mn_hi, 2, -1, 3, -1);
}

/* One super-block of 16 rows with its weights unpacked once for a group of
 * prefill tokens: u[c][k][h] = kq_weights(c, k, h). */
typedef struct {
    __m256i u[8][8][PANEL_H];
    kq_scales s;
} kq_unpacked;

ALWAYS_INLINE void kq_unpack(const int fmt, const uint8_t *rec, kq_unpacked *p)
{
    UNROLL
    for (int h = 0; h < PANEL_H; h++) {
        UNROLL
        for (int c = 0; c < 8; c++)
            UNROLL
            for (int k = 0; k < 8; k++) p->u[c][k][h] = kq_weights(fmt, rec, c, k, h);
        kq_record_scales(fmt, rec, h, &p->s);
    }
}

#define KQ_TOKENS 4 /* tokens per pass over an unpacked super-block */

/* acc[j][h] += sub-block c's (Q6_K: sub-blocks 2c, 2c + 1) sc_s * dot_s of
 * rows 8h..8h+7 against token a[j]. Per group of 4 weights, maddubs of the
 * rows' unsigned weights against a broadcast of the token's 4 matching bytes
 * gives int16 pairs, summed in int16 as far as they cannot overflow, then
 * madd by the rows' scale pairs widens them. Weights come from the unpacked
 * super-block p, or (p == NULL, decode) straight from the record. */
ALWAYS_INLINE void kq_sub_block(const int fmt, const int na, const kq_unpacked *p, const uint8_t *rec,
                                const kq_scales *s, const block_q8_K *const a[], int c, __m256i acc[][PANEL_H])
{
    const int g16 = kq_groups_per_sum(fmt);
    for (int k0 = 0; k0 < 8; k0 += g16) { /* not forced to unroll: Q6_K decode is faster rolled */
        __m256i s16[KQ_TOKENS][PANEL_H];
        UNROLL
        for (int k = k0; k < k0 + g16; k++) {
            UNROLL
            for (int j = 0; j < na; j++) {
                const __m256i q = _mm256_set1_epi32((int)read_u32((const uint8_t *)a[j]->qs + 32 * c + 4 * k));
                UNROLL
                for (int h = 0; h < PANEL_H; h++) {
                    const __m256i u = p ? p->u[c][k][h] : kq_weights(fmt, rec, c, k, h);
                    const __m256i prod = _mm256_maddubs_epi16(u, q);
                    if (k == k0) s16[j][h] = prod;
                    else add_epi16_in_place(&s16[j][h], prod);
                }
            }
        }
        const int sub = fmt == KQ_Q6_K ? 2 * c + k0 / 4 : c;
        UNROLL
        for (int j = 0; j < na; j++)
            UNROLL
            for (int h = 0; h < PANEL_H; h++)
                acc[j][h] = _mm256_add_epi32(acc[j][h], _mm256_madd_epi16(s16[j][h], s->sc[sub][h]));
    }
}

/* acc[j][h] lane r = sum_s sc_s * dot_s and corr[j][h] lane r = the
 * correction sum (Q4_K/Q5_K: sum_s min_s * sum_s(a); Q6_K: sum_s sc_s *
 * sum_s(a)) of row 8h + r against token a[j], exact int32. */
ALWAYS_INLINE void kq_sums(const int fmt, const int na, const kq_unpacked *p, const uint8_t *rec,
                           const kq_scales *s, const block_q8_K *const a[], __m256i acc[][PANEL_H],
                           __m256i corr[][PANEL_H])
{
    UNROLL
    for (int j = 0; j < na; j++)
        UNROLL
        for (int h = 0; h < PANEL_H; h++) acc[j][h] = corr[j][h] = _mm256_setzero_si256();
    if (p) { /* prefill: a loop over the unpacked sub-blocks keeps the code small */
        for (int c = 0; c < 8; c++) kq_sub_block(fmt, na, p, NULL, s, a, c, acc);
    } else { /* decode: unrolled, so that every record offset and shift is a constant */
        UNROLL
        for (int c = 0; c < 8; c++) kq_sub_block(fmt, na, NULL, rec, s, a, c, acc);
    }
    UNROLL
    for (int j = 0; j < na; j++) {
        int32_t pairs[8];
        kq_act_pairs(fmt, a[j], pairs);
        UNROLL
        for (int k = 0; k < kq_pairs(fmt); k++) {
            const __m256i b = _mm256_set1_epi32(pairs[k]);
            UNROLL
            for (int h = 0; h < PANEL_H; h++) corr[j][h] = _mm256_add_epi32(corr[j][h], _mm256_madd_epi16(s->pair[k][h], b));
        }
    }
}

/* v[h] += the super-block's contribution of token a to the 16 rows: Q4_K/Q5_K
 * d_a * (d * acc - dmin * corr); Q6_K d_a * d * (acc - 32 corr), acc of the
 * stored (q + 32) weights. */
ALWAYS_INLINE void kq_scale_into(const int fmt, const kq_scales *s, const block_q8_K *a, const __m256i acc[PANEL_H],
                                 const __m256i corr[PANEL_H], __m256 v[PANEL_H])
{
    const __m256 da = _mm256_set1_ps(a->d);
    UNROLL
    for (int h = 0; h < PANEL_H; h++) {
        if (fmt == KQ_Q6_K) {
            const __m256i offset_removed = _mm256_sub_epi32(acc[h], _mm256_slli_epi32(corr[h], 5));
            v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(offset_removed), _mm256_mul_ps(s->d[h], da), v[h]);
        } else {
            v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]), _mm256_mul_ps(s->d[h], da), v[h]);
            v[h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr[h]), _mm256_mul_ps(s->dmin[h], da), v[h]);
        }
    }
}

/* y[t] (16 rows, tokens t < na, ys floats apart) = (add ? y[t] : 0) + the unpacked super-block's part. */
ALWAYS_INLINE void kq_tokens(const int fmt, const int na, const kq_unpacked *p, const block_q8_K *const a[],
                             float *y, size_t ys, int add, int keep)
{
    __m256i acc[KQ_TOKENS][PANEL_H], corr[KQ_TOKENS][PANEL_H];
    kq_sums(fmt, na, p, NULL, &p->s, a, acc, corr);
    UNROLL
    for (int j = 0; j < na; j++) {
        float *yt = y + (size_t)j * ys;
        __m256 v[PANEL_H];
        load_panel(yt, add, keep, v);
        kq_scale_into(fmt, &p->s, a[j], acc[j], corr[j], v);
        store_panel(yt, v, keep);
    }
}

#define KQ_GROUP 32 /* tokens whose activations and outputs stay in cache while the call's panels pass */

/* Prefill: for each group of tokens and each super-block, every panel's
 * record is unpacked once and every token of the group (KQ_TOKENS at a time,
 * then singly) adds its part into y. Super-blocks outside the panels: one
 * super-block of the group's tokens stays in L1 while each panel uses it. */
ALWAYS_INLINE void kq_prefill(const int fmt, int nb, const uint8_t *base, int n_rows, const void *act, size_t as,
                              int n_act, float *y, size_t ys)
{
    const size_t rec_bytes = PANEL_ROWS * kq_size(fmt);
    kq_unpacked p;
    for (int a0 = 0; a0 < n_act; a0 += KQ_GROUP) {
        const int g = n_act - a0 < KQ_GROUP ? n_act - a0 : KQ_GROUP;
        for (int i = 0; i < nb; i++)
            for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
                const int keep = n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS;
                kq_unpack(fmt, base + ((size_t)(r0 / PANEL_ROWS) * nb + i) * rec_bytes, &p);
                float *yg = y + (size_t)a0 * ys + r0;
                int t = 0;
                for (; t + KQ_TOKENS <= g; t += KQ_TOKENS) {
                    const block_q8_K *a[KQ_TOKENS];
                    for (int j = 0; j < KQ_TOKENS; j++)
                        a[j] = (const block_q8_K *)((const uint8_t *)act + (size_t)(a0 + t + j) * as) + i;
                    kq_tokens(fmt, KQ_TOKENS, &p, a, yg + (size_t)t * ys, ys, i > 0, keep);
                }
                for (; t < g; t++) {
                    const block_q8_K *a[1] = {(const block_q8_K *)((const uint8_t *)act + (size_t)(a0 + t) * as) + i};
                    kq_tokens(fmt, 1, &p, a, yg + (size_t)t * ys, ys, i > 0, keep);
                }
            }
    }
}

/* Decode (one token): each panel's records are decoded straight into
 * registers and its 16 sums stay in registers along the row. */
ALWAYS_INLINE void kq_decode(const int fmt, int nb, const uint8_t *rec, int n_rows, const block_q8_K *act, float *y)
{
    const size_t rec_bytes = PANEL_ROWS * kq_size(fmt);
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
        __m256 v[PANEL_H] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int i = 0; i < nb; i++, rec += rec_bytes) {
            prefetch_ahead(rec, rec_bytes);
            kq_scales s;
            UNROLL
            for (int h = 0; h < PANEL_H; h++) kq_record_scales(fmt, rec, h, &s);
            const block_q8_K *a[1] = {act + i};
            __m256i acc[1][PANEL_H], corr[1][PANEL_H];
            kq_sums(fmt, 1, NULL, rec, &s, a, acc, corr);
            kq_scale_into(fmt, &s, a[0], acc[0], corr[0], v);
        }
        store_panel(y + r0, v, n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS);
    }
}

/* Rows [row0, row0 + n_rows) of the packed matrix (row0 a multiple of 16) against n_act tokens. */
ALWAYS_INLINE void kq_gemm(const int fmt, int n, const void *panels, int row0, int n_rows, const void *act, size_t as,
                           int n_act, float *y, size_t ys)
{
    const int nb = n / QK_K;
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * nb * PANEL_ROWS * kq_size(fmt);
    if (n_act == 1) kq_decode(fmt, nb, base, n_rows, act, y);
    else kq_prefill(fmt, nb, base, n_rows, act, as, n_act, y, ys);
}

#define KQ_GEMM(name, fmt)                                                                                         \
    static void gemm_packed_##name(int n, const void *panels, int row0, int nr, const void *a, size_t as, int na,  \
                                   float *y, size_t ys)                                                            \
    {                                                                                                              \
        kq_gemm(fmt, n, panels, row0, nr, a, as, na, y, ys);                                                       \
    }

KQ_GEMM(q4_K_avx2, KQ_Q4_K)
KQ_GEMM(q5_K_avx2, KQ_Q5_K)
KQ_GEMM(q6_K_avx2, KQ_Q6_K)

/* ---- 32-element formats: load-time row panels ---------------------------- */

enum { P32_Q4_0, P32_Q4_1, P32_Q5_0, P32_Q5_1, P32_Q8_0, P32_IQ4_NL };

static const size_t p32_block[] = {sizeof(block_q4_0), sizeof(block_q4_1), sizeof(block_q5_0),
                                   sizeof(block_q5_1), sizeof(block_q8_0), sizeof(block_iq4_nl)};

static inline int p32_has_min(const int fmt) { return fmt == P32_Q4_1 || fmt == P32_Q5_1; }
static inline int p32_has_qh(const int fmt) { return fmt == P32_Q5_0 || fmt == P32_Q5_1; }
/* Where qs, qh and m start in each format's block (their record offsets: panel_field_at). */
static inline size_t p32_qs_at(const int fmt)
{
    switch (fmt) {
    case P32_Q4_1: return offsetof(block_q4_1, qs);
    case P32_Q5_0: return offsetof(block_q5_0, qs);
    case P32_Q5_1: return offsetof(block_q5_1, qs);
    case P32_Q8_0: return offsetof(block_q8_0, qs);
    case P32_IQ4_NL: return offsetof(block_iq4_nl, qs);
    default: return offsetof(block_q4_0, qs);
    }
}
static inline size_t p32_qh_at(const int fmt) { return fmt == P32_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }
#define P32_M_AT offsetof(block_q4_1, m) /* Q5_1 alike */
/* 8-bit weights (Q8_0, IQ4_NL's grid values) go as two 4-bit planes: low and high nibble of w + 128 */
static inline int p32_planes(const int fmt) { return fmt == P32_Q8_0 || fmt == P32_IQ4_NL ? 2 : 1; }

/* log2 of the amount added to each weight to make it unsigned (removed as -offset * sum(a)); -1: none. */
static inline int p32_offset_log2(const int fmt)
{
    switch (fmt) {
    case P32_Q4_0: return 3;
    case P32_Q5_0: return 4;
    case P32_Q8_0:
    case P32_IQ4_NL: return 7;
    default: return -1;
    }
}

/* Groups (4 weights) whose maddubs pairs add up in int16 without overflow: 4-bit 8 (30480), 5-bit 4 (31496). */
static inline int p32_groups_per_sum(const int fmt) { return p32_has_qh(fmt) ? 4 : 8; }

/* The fifth bits of weights 4g..4g+3 (bit 4g + b of each lane's qh) as 0x10 in byte b. */
static inline __m256i fifth_bits(__m256i qh, int g)
{
    const char src = (char)(g / 2);
    const __m256i pick = _mm256_setr_epi8(src, src, src, src, 4 + src, 4 + src, 4 + src, 4 + src, 8 + src, 8 + src,
                                          8 + src, 8 + src, 12 + src, 12 + src, 12 + src, 12 + src, src, src, src, src,
                                          4 + src, 4 + src, 4 + src, 4 + src, 8 + src, 8 + src, 8 + src, 8 + src,
                                          12 + src, 12 + src, 12 + src, 12 + src);
    const __m256i bits = _mm256_set1_epi32((g & 1) ? (int)0x80402010u : 0x08040201);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, pick), bits), bits);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Plane `plane` of the unsigned weights 4g..4g+3 of rows 8h..8h+7, decoded
 * from record rec (layout in panels.h): lane r = that row's 4 weights (plane
 * 0: the weight itself, or the low nibble of w + 128; plane 1: its high
 * nibble). Loads repeated across calls on one record are merged by the
 * compiler. */
ALWAYS_INLINE __m256i p32_weights(const int fmt, const uint8_t *rec, int plane, int g, int h)
{
    const int has_qh = p32_has_qh(fmt);
    const uint8_t *qs = rec + panel_field_at(p32_qs_at(fmt));
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i w;
    if (fmt == P32_Q8_0) {
        w = _mm256_xor_si256(load256(qs + 64 * g + 32 * h), _mm256_set1_epi8((char)0x80));
    } else {
        /* bytes 4k..4k+3 hold weights 4k.. in their low nibbles and 16 + 4k.. in their high ones */
        const __m256i raw = load256(qs + 64 * (g % 4) + 32 * h);
        w = g < 4 ? _mm256_and_si256(raw, low4) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
        if (has_qh) w = _mm256_or_si256(w, fifth_bits(load256(rec + panel_field_at(p32_qh_at(fmt)) + 32 * h), g));
        if (fmt != P32_IQ4_NL) return w;
        const __m128i grid = _mm_xor_si128(_mm_loadu_si128((const __m128i *)iq4nl_values), _mm_set1_epi8((char)0x80));
        w = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(grid), w); /* grid value + 128 */
    }
    return plane ? _mm256_and_si256(_mm256_srli_epi16(w, 4), low4) : _mm256_and_si256(w, low4);
}

/* The record's scales (mins) of rows 8h..8h+7. */
static inline __m256 p32_scales(const uint8_t *rec, int h) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rec + h)); }
static inline __m256 p32_mins(const uint8_t *rec, int h)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rec + panel_field_at(P32_M_AT)) + h));
}

/* One record unpacked for every token of a group: u[8p + g][h] =
 * p32_weights(p, g, h); d, m = the rows' scales and mins. */
typedef struct {
    __m256i u[16][PANEL_H];
    __m256 d[PANEL_H], m[PANEL_H];
} p32_panel;

ALWAYS_INLINE void p32_unpack(const int fmt, const uint8_t *rec, p32_panel *p)
{
    for (int h = 0; h < PANEL_H; h++) {
        p->d[h] = p32_scales(rec, h);
        if (p32_has_min(fmt)) p->m[h] = p32_mins(rec, h);
        for (int plane = 0; plane < p32_planes(fmt); plane++)
            for (int g = 0; g < 8; g++) p->u[8 * plane + g][h] = p32_weights(fmt, rec, plane, g, h);
    }
}

#define P32_TOKENS 3 /* most tokens per pass in prefill */

/* Prefill tokens per pass along an unpacked chunk: as many as keep their
 * float sums and int16 sums in the 16 ymm registers: 4-bit 2, 5-bit 3 (two
 * int16 runs per block), two planes 2, each the fastest of its neighbours
 * on one core. */
static inline int p32_prefill_tokens(const int fmt) { return p32_planes(fmt) == 2 ? 2 : p32_has_qh(fmt) ? 3 : 2; }

/* sumi[t][h] lane r = the exact integer dot of row 8h + r's block with
 * token a[t]'s: sum_planes 16^p * u.a - offset * sum(a). Weights from the
 * unpacked record p, or (p == NULL) decoded from rec on the spot. Per group
 * of 4 weights, maddubs against a broadcast of the token's 4 matching bytes
 * gives int16 pairs for 8 rows; they add up in int16 as far as they cannot
 * overflow, then madd widens them to int32. */
ALWAYS_INLINE void p32_sums(const int fmt, const int na, const p32_panel *p, const uint8_t *rec,
                            const block_q8_32 *const a[], __m256i sumi[][PANEL_H])
{
    const int run = p32_groups_per_sum(fmt), planes = p32_planes(fmt);
    UNROLL
    for (int g0 = 0; g0 < 8; g0 += run) {
        __m256i s16[2][P32_TOKENS][PANEL_H]; /* [plane] */
        UNROLL
        for (int g = g0; g < g0 + run; g++)
            UNROLL
            for (int j = 0; j < na; j++) {
                const __m256i q = _mm256_set1_epi32((int)read_u32((const uint8_t *)a[j]->qs + 4 * g));
                UNROLL
                for (int plane = 0; plane < planes; plane++)
                    UNROLL
                    for (int h = 0; h < PANEL_H; h++) {
                        const __m256i u = p ? p->u[8 * plane + g][h] : p32_weights(fmt, rec, plane, g, h);
                        const __m256i prod = _mm256_maddubs_epi16(u, q);
                        if (g == g0) s16[plane][j][h] = prod;
                        else add_epi16_in_place(&s16[plane][j][h], prod);
                    }
            }
        /* madd widens the int16 pairs and weighs the plane (the high nibbles count 16) */
        UNROLL
        for (int plane = 0; plane < planes; plane++) {
            const __m256i weight = _mm256_set1_epi16(plane ? 16 : 1);
            UNROLL
            for (int j = 0; j < na; j++)
                UNROLL
                for (int h = 0; h < PANEL_H; h++) {
                    const __m256i part = _mm256_madd_epi16(s16[plane][j][h], weight);
                    sumi[j][h] = plane == 0 && g0 == 0 ? part : _mm256_add_epi32(sumi[j][h], part);
                }
        }
    }
    if (p32_offset_log2(fmt) >= 0)
        UNROLL
        for (int j = 0; j < na; j++) {
            const __m256i offset_sum = _mm256_slli_epi32(_mm256_set1_epi32(a[j]->sum), p32_offset_log2(fmt));
            UNROLL
            for (int h = 0; h < PANEL_H; h++) sumi[j][h] = _mm256_sub_epi32(sumi[j][h], offset_sum);
        }
}

/* acc[h] += d_w * d_a * sumi[h] (+ m_w * s_a for the formats with a minimum). */
ALWAYS_INLINE void p32_scale_into(const int fmt, const __m256 d[PANEL_H], const __m256 m[PANEL_H],
                                  const block_q8_32 *a, const __m256i sumi[PANEL_H], __m256 acc[PANEL_H])
{
    const __m256 da = _mm256_set1_ps(a->d);
    UNROLL
    for (int h = 0; h < PANEL_H; h++) {
        acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[h]), _mm256_mul_ps(d[h], da), acc[h]);
        if (p32_has_min(fmt)) acc[h] = _mm256_fmadd_ps(m[h], _mm256_set1_ps(a->s), acc[h]);
    }
}

#define P32_GROUP 64  /* tokens whose activations stay in L2 while the tile's panels pass */
#define P32_CHUNK 32  /* blocks of a panel unpacked at once: their used bytes (~20 KB) stay in L1 */

/* y[t] (16 rows, tokens t < na, ys floats apart) = (add ? y[t] : 0) + the
 * contribution of blocks [0, nblk) of the unpacked chunk, activations a[t]
 * pointing at the chunk's first block. The rows' float sums stay in
 * registers along the chunk; only the integer work is per block. */
ALWAYS_INLINE void p32_pass(const int fmt, const int na, const p32_panel *chunk, int nblk,
                            const block_q8_32 *const a[], float *y, size_t ys, int add, int keep)
{
    __m256 acc[P32_TOKENS][PANEL_H];
    UNROLL
    for (int j = 0; j < na; j++) load_panel(y + (size_t)j * ys, add, keep, acc[j]);
    for (int b = 0; b < nblk; b++) {
        const block_q8_32 *ab[P32_TOKENS];
        UNROLL
        for (int j = 0; j < na; j++) ab[j] = a[j] + b;
        __m256i sumi[P32_TOKENS][PANEL_H];
        p32_sums(fmt, na, &chunk[b], NULL, ab, sumi);
        UNROLL
        for (int j = 0; j < na; j++) p32_scale_into(fmt, chunk[b].d, chunk[b].m, ab[j], sumi[j], acc[j]);
    }
    UNROLL
    for (int j = 0; j < na; j++) store_panel(y + (size_t)j * ys, acc[j], keep);
}

/* Prefill: for each group of tokens, each panel, each chunk of its blocks:
 * the chunk is unpacked once, then every token of the group (a few at a
 * time) runs along it with its 16 sums in registers. */
ALWAYS_INLINE void p32_gemm_tokens(const int fmt, int nb, const uint8_t *base, int n_rows, const void *act, size_t as,
                                   int n_act, float *y, size_t ys)
{
    const size_t rec_bytes = PANEL_ROWS * p32_block[fmt], panel_bytes = (size_t)nb * rec_bytes;
    const int tp = p32_prefill_tokens(fmt);
    p32_panel chunk[P32_CHUNK];
    for (int a0 = 0; a0 < n_act; a0 += P32_GROUP) {
        const int g = n_act - a0 < P32_GROUP ? n_act - a0 : P32_GROUP;
        for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
            const int keep = n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS;
            for (int b0 = 0; b0 < nb; b0 += P32_CHUNK) {
                const int nblk = nb - b0 < P32_CHUNK ? nb - b0 : P32_CHUNK;
                const uint8_t *rec = base + (size_t)(r0 / PANEL_ROWS) * panel_bytes + (size_t)b0 * rec_bytes;
                float *yb = y + (size_t)a0 * ys + r0;
                for (int b = 0; b < nblk; b++) p32_unpack(fmt, rec + (size_t)b * rec_bytes, &chunk[b]);
                int t = 0;
                for (; t + tp <= g; t += tp) {
                    const block_q8_32 *a[P32_TOKENS];
                    for (int j = 0; j < tp; j++)
                        a[j] = (const block_q8_32 *)((const uint8_t *)act + (size_t)(a0 + t + j) * as) + b0;
                    float *yt = yb + (size_t)t * ys;
                    switch (tp) {
                    case 3: p32_pass(fmt, 3, chunk, nblk, a, yt, ys, b0 > 0, keep); break;
                    case 2: p32_pass(fmt, 2, chunk, nblk, a, yt, ys, b0 > 0, keep); break;
                    default: p32_pass(fmt, 1, chunk, nblk, a, yt, ys, b0 > 0, keep); break;
                    }
                }
                for (; t < g; t++) {
                    const block_q8_32 *a[1] = {(const block_q8_32 *)((const uint8_t *)act + (size_t)(a0 + t) * as) + b0};
                    p32_pass(fmt, 1, chunk, nblk, a, yb + (size_t)t * ys, ys, b0 > 0, keep);
                }
            }
        }
    }
}

/* Decode (one token): each panel's records are decoded straight into
 * registers and its 16 sums stay in registers across the row. */
ALWAYS_INLINE void p32_gemm_one(const int fmt, int nb, const uint8_t *base, int n_rows, const void *act, float *y)
{
    const size_t rec_bytes = PANEL_ROWS * p32_block[fmt];
    const uint8_t *rec = base;
    for (int r0 = 0; r0 < n_rows; r0 += PANEL_ROWS) {
        __m256 acc[PANEL_H] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int b = 0; b < nb; b++, rec += rec_bytes) {
            prefetch_ahead(rec, rec_bytes);
            const block_q8_32 *a[1] = {(const block_q8_32 *)act + b};
            __m256i sumi[1][PANEL_H];
            p32_sums(fmt, 1, NULL, rec, a, sumi);
            __m256 d[PANEL_H], m[PANEL_H];
            UNROLL
            for (int h = 0; h < PANEL_H; h++) {
                d[h] = p32_scales(rec, h);
                m[h] = p32_has_min(fmt) ? p32_mins(rec, h) : _mm256_setzero_ps();
            }
            p32_scale_into(fmt, d, m, a[0], sumi[0], acc);
        }
        store_panel(y + r0, acc, n_rows - r0 < PANEL_ROWS ? n_rows - r0 : PANEL_ROWS);
    }
}

/* Rows [row0, row0 + n_rows) of the packed matrix (row0 a multiple of 16) against n_act tokens. */
ALWAYS_INLINE void p32_gemm(const int fmt, int n, const void *panels, int row0, int n_rows, const void *act, size_t as,
                            int n_act, float *y, size_t ys)
{
    const int nb = n / QK32;
    const uint8_t *base = (const uint8_t *)panels + (size_t)(row0 / PANEL_ROWS) * nb * PANEL_ROWS * p32_block[fmt];
    if (n_act == 1) p32_gemm_one(fmt, nb, base, n_rows, act, y);
    else p32_gemm_tokens(fmt, nb, base, n_rows, act, as, n_act, y, ys);
}

#define P32_GEMM(name, fmt)                                                                                        \
    static void gemm_packed_##name(int n, const void *panels, int row0, int nr, const void *a, size_t as, int na,  \
                                   float *y, size_t ys)                                                            \
    {                                                                                                              \
        p32_gemm(fmt, n, panels, row0, nr, a, as, na, y, ys);                                                      \
    }

P32_GEMM(q4_0_avx2, P32_Q4_0)
P32_GEMM(q4_1_avx2, P32_Q4_1)
P32_GEMM(q5_0_avx2, P32_Q5_0)
P32_GEMM(q5_1_avx2, P32_Q5_1)
P32_GEMM(q8_0_avx2, P32_Q8_0)
P32_GEMM(iq4_nl_avx2, P32_IQ4_NL)

void kernels_install_gemm_avx2(kernel_table *t)
{
    /* weights repacked at load (panels.h): decode and prefill */
    t->gemm_panels[QT_Q4_K] = gemm_packed_q4_K_avx2;
    t->gemm_panels[QT_Q5_K] = gemm_packed_q5_K_avx2;
    t->gemm_panels[QT_Q6_K] = gemm_packed_q6_K_avx2;
    t->gemm_panels[QT_Q4_0] = gemm_packed_q4_0_avx2;
    t->gemm_panels[QT_Q4_1] = gemm_packed_q4_1_avx2;
    t->gemm_panels[QT_Q5_0] = gemm_packed_q5_0_avx2;
    t->gemm_panels[QT_Q5_1] = gemm_packed_q5_1_avx2;
    t->gemm_panels[QT_Q8_0] = gemm_packed_q8_0_avx2;
    t->gemm_panels[QT_IQ4_NL] = gemm_packed_iq4_nl_avx2;
}

#else

void kernels_install_gemm_avx2(kernel_table *t) { (void)t; }

#endif
