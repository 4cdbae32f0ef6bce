/*
 * neon_dots.h - the NEON integer dot products of every quantized type, written
 * once against DOT16 and included twice by kernels_neon.c: once with DOT16 as
 * widening multiplies (any AArch64 CPU), once inside `#pragma GCC target
 * ("+dotprod")` with DOT16 as SDOT, the names suffixed by NEON_SUFFIX. The
 * installer picks one set at run time, so a binary for plain armv8-a still
 * uses SDOT where the CPU has it.
 *
 * Every kernel unpacks a block into int8 vectors of 16 weights (sub-blocks of
 * 16 or 32 are whole vectors, so the lane order of DOT16's partial sums never
 * matters: only whole vectors are added up), dots them with the activation
 * bytes into int32 lanes, applies the sub-block scales in int32 (exact) and
 * the block's float scales as the scalar reference does. Decoding the scales
 * and the bit layouts is in kernels_neon.c, shared by both sets.
 *
 * Not a header: it has no include guard and defines static functions.
 */

#define NEON_CAT2(a, b) a##_##b
#define NEON_CAT(a, b) NEON_CAT2(a, b)
#define NEON_FN(name) NEON_CAT(name, NEON_SUFFIX)

/* The 32 weights lo (elements 0..15) and hi (16..31) against 32 activation bytes. */
static inline int32x4_t NEON_FN(dot32)(int8x16_t lo, int8x16_t hi, const int8_t *y)
{
    return DOT16(DOT16(vdupq_n_s32(0), lo, vld1q_s8(y)), hi, vld1q_s8(y + 16));
}

/* The 32-element formats: d * y.d * (q . y) (+ m * y.s for the offset types). */
static inline __attribute__((always_inline)) float NEON_FN(dot_blocks32)(int n, const void *w, const void *a,
                                                                          quant_type type)
{
    const block_q8_32 *y = a;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    float offset = 0;
    for (int i = 0; i < n / QK32; i++) {
        block32 b = unpack_block32(w, i, type);
        float32x4_t dot = vcvtq_f32_s32(NEON_FN(dot32)(b.lo, b.hi, y[i].qs));
        /* two accumulators: consecutive blocks do not wait on each other's FMA */
        if (i & 1) acc1 = vfmaq_n_f32(acc1, dot, b.d * y[i].d);
        else acc0 = vfmaq_n_f32(acc0, dot, b.d * y[i].d);
        offset += b.m * y[i].s;
    }
    return vaddvq_f32(vaddq_f32(acc0, acc1)) + offset;
}

static float NEON_FN(vec_dot_q4_0)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_Q4_0); }
static float NEON_FN(vec_dot_q4_1)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_Q4_1); }
static float NEON_FN(vec_dot_q5_0)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_Q5_0); }
static float NEON_FN(vec_dot_q5_1)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_Q5_1); }
static float NEON_FN(vec_dot_q8_0)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_Q8_0); }
static float NEON_FN(vec_dot_iq4_nl)(int n, const void *w, const void *a) { return NEON_FN(dot_blocks32)(n, w, a, QT_IQ4_NL); }

/* Q4_K and Q5_K (type): 8 sub-blocks of 32 with 6-bit scales and mins; the
 * mins meet the activation block sums (bsums); Q5_K's fifth bit is in qh. */
static inline __attribute__((always_inline)) float NEON_FN(dot_k4)(int n, const void *w, const void *a, quant_type type)
{
    const block_q8_K *y = a;
    const uint8x16_t low4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        const block_q4_K *x4 = (const block_q4_K *)w + i;
        const block_q5_K *x5 = (const block_q5_K *)w + i;
        const uint8_t *scales = type == QT_Q5_K ? x5->scales : x4->scales, *qs = type == QT_Q5_K ? x5->qs : x4->qs;
        const f16_t d16 = type == QT_Q5_K ? x5->d : x4->d, dmin16 = type == QT_Q5_K ? x5->dmin : x4->dmin;
        uint8_t sc[8], mn[8];
        k4_scales_mins(scales, sc, mn);
        uint8x16_t h0 = vdupq_n_u8(0), h1 = vdupq_n_u8(0);
        if (type == QT_Q5_K) h0 = vld1q_u8(x5->qh), h1 = vld1q_u8(x5->qh + 16);
        const int8_t *q8 = y[i].qs;
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++, qs += 32, q8 += 64) {
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            uint8x16_t l0 = vandq_u8(b0, low4), l1 = vandq_u8(b1, low4);
            uint8x16_t u0 = vshrq_n_u8(b0, 4), u1 = vshrq_n_u8(b1, 4);
            if (type == QT_Q5_K) { /* sub-block m takes bit m of qh: shift the next bit down after each */
                l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(h0, one), 4));
                l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(h1, one), 4));
                h0 = vshrq_n_u8(h0, 1), h1 = vshrq_n_u8(h1, 1);
                u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(h0, one), 4));
                u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(h1, one), 4));
                h0 = vshrq_n_u8(h0, 1), h1 = vshrq_n_u8(h1, 1);
            }
            int32x4_t lo = NEON_FN(dot32)(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), q8);
            int32x4_t hi = NEON_FN(dot32)(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), q8 + 32);
            acc = vmlaq_n_s32(acc, lo, sc[2 * c]);
            acc = vmlaq_n_s32(acc, hi, sc[2 * c + 1]);
        }
        const int32_t scaled = vaddvq_s32(acc), mins = k4_mins_dot(mn, y[i].bsums);
        sum += y[i].d * (f16_scalar(d16) * (float)scaled - f16_scalar(dmin16) * (float)mins);
    }
    return sum;
}

static float NEON_FN(vec_dot_q4_K)(int n, const void *w, const void *a) { return NEON_FN(dot_k4)(n, w, a, QT_Q4_K); }
static float NEON_FN(vec_dot_q5_K)(int n, const void *w, const void *a) { return NEON_FN(dot_k4)(n, w, a, QT_Q5_K); }

/* Q6_K: 16 sub-blocks of 16 with int8 scales, q in [-32, 31]. */
static float NEON_FN(vec_dot_q6_K)(int n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h, *scales = x[i].scales + 8 * h;
            const uint8x16_t ql0 = vld1q_u8(ql), ql1 = vld1q_u8(ql + 16), ql2 = vld1q_u8(ql + 32), ql3 = vld1q_u8(ql + 48);
            const uint8x16_t qh0 = vld1q_u8(qh), qh1 = vld1q_u8(qh + 16);
            for (int g = 0; g < 4; g++) {
                /* low 4 bits: ql[l] (g = 0, 2) or ql[32 + l] (g = 1, 3), low nibble for g < 2 */
                uint8x16_t l0 = g & 1 ? ql2 : ql0, l1 = g & 1 ? ql3 : ql1;
                l0 = g < 2 ? vandq_u8(l0, vdupq_n_u8(0x0f)) : vshrq_n_u8(l0, 4);
                l1 = g < 2 ? vandq_u8(l1, vdupq_n_u8(0x0f)) : vshrq_n_u8(l1, 4);
                const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l0, q6k_high(qh0, g))), vdupq_n_s8(32));
                const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l1, q6k_high(qh1, g))), vdupq_n_s8(32));
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v0, vld1q_s8(q8 + 32 * g)), scales[2 * g]);
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v1, vld1q_s8(q8 + 32 * g + 16)), scales[2 * g + 1]);
            }
        }
        sum += f16_scalar(x[i].d) * y[i].d * (float)vaddvq_s32(acc);
    }
    return sum;
}

/* Q3_K: 16 sub-blocks of 16 with 6-bit signed scales, q = low 2 bits - 4 + 4 * hmask bit. */
static float NEON_FN(vec_dot_q3_K)(int n, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t three = vdupq_n_u8(3), one = vdupq_n_u8(1);
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        q3k_scales(x[i].scales, sc);
        /* element 32m + l has its high bit at bit m of hmask[l]: shift the next bit down after each group */
        uint8x16_t m0 = vld1q_u8(x[i].hmask), m1 = vld1q_u8(x[i].hmask + 16);
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t qs0 = vld1q_u8(x[i].qs + 32 * h), qs1 = vld1q_u8(x[i].qs + 32 * h + 16);
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int g = 0; g < 4; g++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * g)); /* a negative shift goes right */
                uint8x16_t u0 = vandq_u8(vshlq_u8(qs0, shift), three), u1 = vandq_u8(vshlq_u8(qs1, shift), three);
                u0 = vorrq_u8(u0, vshlq_n_u8(vandq_u8(m0, one), 2));
                u1 = vorrq_u8(u1, vshlq_n_u8(vandq_u8(m1, one), 2));
                m0 = vshrq_n_u8(m0, 1), m1 = vshrq_n_u8(m1, 1);
                const int8x16_t v0 = vsubq_s8(vreinterpretq_s8_u8(u0), vdupq_n_s8(4));
                const int8x16_t v1 = vsubq_s8(vreinterpretq_s8_u8(u1), vdupq_n_s8(4));
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v0, vld1q_s8(q8 + 32 * g)), sc[8 * h + 2 * g]);
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v1, vld1q_s8(q8 + 32 * g + 16)), sc[8 * h + 2 * g + 1]);
            }
        }
        sum += f16_scalar(x[i].d) * y[i].d * (float)vaddvq_s32(acc);
    }
    return sum;
}

/* Q2_K: 16 sub-blocks of 16, q in [0, 3], 4-bit scales and mins. */
static float NEON_FN(vec_dot_q2_K)(int n, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const uint8x16_t three = vdupq_n_u8(3);
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8x16_t qs0 = vld1q_u8(x[i].qs + 32 * h), qs1 = vld1q_u8(x[i].qs + 32 * h + 16);
            const int8_t *q8 = y[i].qs + 128 * h;
            const uint8_t *scales = x[i].scales + 8 * h;
            for (int g = 0; g < 4; g++) {
                const int8x16_t shift = vdupq_n_s8((int8_t)(-2 * g));
                const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qs0, shift), three));
                const int8x16_t v1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qs1, shift), three));
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v0, vld1q_s8(q8 + 32 * g)), scales[2 * g] & 0x0f);
                acc = vmlaq_n_s32(acc, DOT16(vdupq_n_s32(0), v1, vld1q_s8(q8 + 32 * g + 16)), scales[2 * g + 1] & 0x0f);
            }
        }
        const int32_t mins = q2k_mins_dot(x[i].scales, y[i].bsums);
        sum += y[i].d * (f16_scalar(x[i].d) * (float)vaddvq_s32(acc) - f16_scalar(x[i].dmin) * (float)mins);
    }
    return sum;
}

/* IQ4_XS: 8 sub-blocks of 32 on the IQ4_NL grid, 6-bit signed scales. */
static float NEON_FN(vec_dot_iq4_xs)(int n, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    const int8x16_t grid = vld1q_s8(iq4nl_values);
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const uint8x16_t q = vld1q_u8(x[i].qs + 16 * ib);
            const int8x16_t lo = vqtbl1q_s8(grid, vandq_u8(q, low4)), hi = vqtbl1q_s8(grid, vshrq_n_u8(q, 4));
            acc = vmlaq_n_s32(acc, NEON_FN(dot32)(lo, hi, y[i].qs + 32 * ib), iq4xs_scale_of(&x[i], ib));
        }
        sum += f16_scalar(x[i].d) * y[i].d * (float)vaddvq_s32(acc);
    }
    return sum;
}

/* The set's entries into the table. */
static void NEON_FN(install_dots)(kernel_table *t)
{
    t->vec_dot[QT_Q4_0] = NEON_FN(vec_dot_q4_0);
    t->vec_dot[QT_Q4_1] = NEON_FN(vec_dot_q4_1);
    t->vec_dot[QT_Q5_0] = NEON_FN(vec_dot_q5_0);
    t->vec_dot[QT_Q5_1] = NEON_FN(vec_dot_q5_1);
    t->vec_dot[QT_Q8_0] = NEON_FN(vec_dot_q8_0);
    t->vec_dot[QT_IQ4_NL] = NEON_FN(vec_dot_iq4_nl);
    t->vec_dot[QT_Q2_K] = NEON_FN(vec_dot_q2_K);
    t->vec_dot[QT_Q3_K] = NEON_FN(vec_dot_q3_K);
    t->vec_dot[QT_Q4_K] = NEON_FN(vec_dot_q4_K);
    t->vec_dot[QT_Q5_K] = NEON_FN(vec_dot_q5_K);
    t->vec_dot[QT_Q6_K] = NEON_FN(vec_dot_q6_K);
    t->vec_dot[QT_IQ4_XS] = NEON_FN(vec_dot_iq4_xs);
}

#undef NEON_CAT2
#undef NEON_CAT
#undef NEON_FN
