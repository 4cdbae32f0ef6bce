/*
 * kernels_neon.c - NEON (AArch64 Advanced SIMD) dot products, quantizers and
 * row kernels (f16 conversions, SwiGLU/GeGLU).
 *
 * NEON is part of every AArch64 CPU, so this file needs no special flags. The
 * integer dot products of the quantized types are in neon_dots.h, compiled
 * twice here: with widening multiplies (vmull_s8 and pairwise adds) for any
 * AArch64 CPU, and for CPUs with the dot-product extension (SDOT, four byte
 * products per lane and instruction) under a target pragma. kernels.c asks
 * the kernel (getauxval HWCAP_ASIMDDP) which one the CPU runs: ISA_NEONDOT
 * installs the second set, ISA_NEON the first, so both stay testable on one
 * machine. Both give the exact int32 sums; the float scales are applied as
 * the scalar references in quant.c apply them. What both sets share (scale
 * decoding, the 32-element formats' unpacking, the f32/f16/bf16 dots, the
 * activation quantizers) is here.
 *
 * The quantizers reproduce the scalar references bit for bit: vcvtnq rounds
 * half to even like nearest_int in quant.c, and FMAXNM/FMINNM treat NaN like
 * fmaxf/fminf. So do the f16 row conversions (the hardware's FCVTN/FCVTL).
 * The gated activations use simd_neon.h's exp, the x86 one lane for lane, in
 * the references' sigmoid form; tails shorter than a vector go to the
 * references. The attention kernels are in attention_neon.c.
 *
 * A new type: its unpacking into int8x16 vectors of 16 weights, a vec_dot in
 * neon_dots.h against DOT16, one line in install_dots, and test_kernels checks
 * it against the reference on both sets (tests/test_aarch64.sh runs it under
 * qemu). On other architectures the installer is empty.
 */
#include "kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "simd_neon.h"

static inline float f16_scalar(f16_t h)
{
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* ---- what both dot-product sets share */

/* One 32-element block as int8 weights (elements 0..15 and 16..31) and its
 * float scale d and offset m (m only for Q4_1/Q5_1, whose x = d * q + m). */
typedef struct {
    int8x16_t lo, hi;
    float d, m;
} block32;

/* 16 bits (little-endian, bit k = element k) -> 16 bytes of 0x10 or 0. */
static inline uint8x16_t fifth_bits(uint16_t bits)
{
    static const uint8_t bit_of_lane[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t spread = vcombine_u8(vdup_n_u8((uint8_t)bits), vdup_n_u8((uint8_t)(bits >> 8)));
    return vandq_u8(vtstq_u8(spread, vld1q_u8(bit_of_lane)), vdupq_n_u8(0x10));
}

/* Block i of a row of `type` (a 32-element format): element l < 16 is the low
 * nibble of qs[l], element 16 + l its high nibble; Q5's fifth bit is bit k of qh. */
static inline __attribute__((always_inline)) block32 unpack_block32(const void *row, int i, quant_type type)
{
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    block32 b = {.m = 0};
    uint8x16_t q, lo, hi;
    uint32_t qh;
    switch (type) {
    case QT_Q8_0: {
        const block_q8_0 *x = (const block_q8_0 *)row + i;
        b.lo = vld1q_s8(x->qs), b.hi = vld1q_s8(x->qs + 16), b.d = f16_scalar(x->d);
        return b;
    }
    case QT_IQ4_NL: {
        const block_iq4_nl *x = (const block_iq4_nl *)row + i;
        const int8x16_t grid = vld1q_s8(iq4nl_values);
        q = vld1q_u8(x->qs);
        b.lo = vqtbl1q_s8(grid, vandq_u8(q, low4)), b.hi = vqtbl1q_s8(grid, vshrq_n_u8(q, 4)), b.d = f16_scalar(x->d);
        return b;
    }
    case QT_Q4_0:
    case QT_Q4_1: {
        const block_q4_0 *x0 = (const block_q4_0 *)row + i;
        const block_q4_1 *x1 = (const block_q4_1 *)row + i;
        q = vld1q_u8(type == QT_Q4_0 ? x0->qs : x1->qs);
        lo = vandq_u8(q, low4), hi = vshrq_n_u8(q, 4);
        if (type == QT_Q4_0) b.d = f16_scalar(x0->d);
        else b.d = f16_scalar(x1->d), b.m = f16_scalar(x1->m);
        break;
    }
    default: { /* QT_Q5_0, QT_Q5_1 */
        const block_q5_0 *x0 = (const block_q5_0 *)row + i;
        const block_q5_1 *x1 = (const block_q5_1 *)row + i;
        q = vld1q_u8(type == QT_Q5_0 ? x0->qs : x1->qs);
        memcpy(&qh, type == QT_Q5_0 ? x0->qh : x1->qh, sizeof qh);
        lo = vorrq_u8(vandq_u8(q, low4), fifth_bits((uint16_t)qh));
        hi = vorrq_u8(vshrq_n_u8(q, 4), fifth_bits((uint16_t)(qh >> 16)));
        if (type == QT_Q5_0) b.d = f16_scalar(x0->d);
        else b.d = f16_scalar(x1->d), b.m = f16_scalar(x1->m);
        break;
    }
    }
    b.lo = vreinterpretq_s8_u8(lo), b.hi = vreinterpretq_s8_u8(hi);
    /* the symmetric types are stored with an offset: Q4_0 q - 8, Q5_0 q - 16 */
    if (type == QT_Q4_0) b.lo = vsubq_s8(b.lo, vdupq_n_s8(8)), b.hi = vsubq_s8(b.hi, vdupq_n_s8(8));
    if (type == QT_Q5_0) b.lo = vsubq_s8(b.lo, vdupq_n_s8(16)), b.hi = vsubq_s8(b.hi, vdupq_n_s8(16));
    return b;
}

/* Q4_K/Q5_K's eight 6-bit scales and mins from their 12 bytes (k4_scale_min in quant.c). */
static inline void k4_scales_mins(const uint8_t s[K_SCALE_SIZE], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* sum_j mn[j] * (bsums[2j] + bsums[2j + 1]): the mins against the activation sums of their 32 elements. */
static inline int32_t k4_mins_dot(const uint8_t mn[8], const int16_t bsums[QK_K / 16])
{
    const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8)); /* |sum| <= 32 * 127 */
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    return vaddvq_s32(vaddq_s32(vmull_s16(vget_low_s16(pairs), vget_low_s16(m)), vmull_high_s16(pairs, m)));
}

/* sum_j (scales[j] >> 4) * bsums[j]: Q2_K's mins against the activation sums of their 16 elements. */
static inline int32_t q2k_mins_dot(const uint8_t scales[QK_K / 16], const int16_t bsums[QK_K / 16])
{
    const uint8x16_t mins = vshrq_n_u8(vld1q_u8(scales), 4);
    const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
    const int16x8_t m1 = vreinterpretq_s16_u16(vmovl_high_u8(mins));
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(b0), vget_low_s16(m0));
    s = vmlal_high_s16(s, b0, m0);
    s = vmlal_s16(s, vget_low_s16(b1), vget_low_s16(m1));
    return vaddvq_s32(vmlal_high_s16(s, b1, m1));
}

/* Q3_K's sixteen scales (q3k_scale in quant.c): 4 low bits from byte i % 8, 2 high bits from byte 8 + i % 4, -32. */
static inline void q3k_scales(const uint8_t s[12], int8_t sc[16])
{
    for (int i = 0; i < 16; i++)
        sc[i] = (int8_t)((((s[i % 8] >> (4 * (i / 8))) & 0x0f) | (((s[8 + i % 4] >> (2 * (i / 4))) & 3) << 4)) - 32);
}

/* Q6_K group g's two high bits (bits 2g, 2g + 1 of qh) at bits 4 and 5. */
static inline uint8x16_t q6k_high(uint8x16_t qh, int g)
{
    const uint8x16_t mask = vdupq_n_u8(0x30);
    switch (g) {
    case 0: return vandq_u8(vshlq_n_u8(qh, 4), mask);
    case 1: return vandq_u8(vshlq_n_u8(qh, 2), mask);
    case 2: return vandq_u8(qh, mask);
    default: return vshrq_n_u8(vandq_u8(qh, vdupq_n_u8(0xc0)), 2);
    }
}

/* IQ4_XS sub-block ib's scale (iq4xs_scale in quant.c). */
static inline int iq4xs_scale_of(const block_iq4_xs *b, int ib)
{
    return (((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((b->scales_h >> (2 * ib)) & 3) << 4)) - 32;
}

/* ---- the two dot-product sets */

/* 16 x 16 signed bytes -> 4 int32 partial sums, without SDOT (products fit int16: |q| <= 127 * 128). */
static inline int32x4_t dot16_widening(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b)), hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
}

#define NEON_SUFFIX neon
#define DOT16 dot16_widening
#include "neon_dots.h"
#undef NEON_SUFFIX
#undef DOT16

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod") /* what arm_neon.h asks of vdotq_s32; every CPU with SDOT is v8.2 */
#define NEON_SUFFIX neondot
#define DOT16 vdotq_s32
#include "neon_dots.h"
#undef NEON_SUFFIX
#undef DOT16
#pragma GCC pop_options

/* ---- float dots */

static float vec_dot_f32_neon(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0), acc2 = vdupq_n_f32(0), acc3 = vdupq_n_f32(0);
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(x + k), vld1q_f32(y + k));
        acc1 = vfmaq_f32(acc1, vld1q_f32(x + k + 4), vld1q_f32(y + k + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(x + k + 8), vld1q_f32(y + k + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(x + k + 12), vld1q_f32(y + k + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; k < n; k++) sum += x[k] * y[k];
    return sum;
}

/* f16 weights against f32: widened 4 at a time. */
static float vec_dot_f16_neon(int n, const void *w, const void *a)
{
    const f16_t *x = w;
    const float *y = a;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + k))), vld1q_f32(y + k));
        acc1 = vfmaq_f32(acc1, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + k + 4))), vld1q_f32(y + k + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; k < n; k++) sum += f16_scalar(x[k]) * y[k];
    return sum;
}

/* bf16 is the top half of an f32: shifted up 16 bits, 4 at a time. */
static float vec_dot_bf16_neon(int n, const void *w, const void *a)
{
    const bf16_t *x = w;
    const float *y = a;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        acc0 = vfmaq_f32(acc0, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(x + k), 16)), vld1q_f32(y + k));
        acc1 = vfmaq_f32(acc1, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(x + k + 4), 16)), vld1q_f32(y + k + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; k < n; k++) sum += bf16_to_f32(x[k]) * y[k];
    return sum;
}

/* ---- activation quantizers */

/* 16 int32 in -127..127 -> 16 int8. */
static inline int8x16_t narrow_i32x16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    return vcombine_s8(vmovn_s16(ab), vmovn_s16(cd));
}

/* max |x| over k floats; FMAXNM skips NaNs like the reference's `a > amax`. */
static inline float absmax(const float *x, int k)
{
    float32x4_t m = vdupq_n_f32(0);
    for (int j = 0; j < k; j += 4) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + j)));
    return vmaxnmvq_f32(m);
}

/* The reference's clamp_int(nearest_int(v), -127, 127): fmaxf/fminf clamp to
 * +-4194303 (FMAXNM/FMINNM have the same NaN rule), round half to even, clamp. */
static inline int32x4_t round_to_i8_range(float32x4_t v)
{
    v = vminnmq_f32(vmaxnmq_f32(v, vdupq_n_f32(-4194303.0f)), vdupq_n_f32(4194303.0f));
    int32x4_t q = vcvtnq_s32_f32(v);
    return vmaxq_s32(vminq_s32(q, vdupq_n_s32(127)), vdupq_n_s32(-127));
}

/* f32 -> nearest f16 (ties to even) -> f32, as f32_to_f16 in quant.c. */
static inline float round_through_f16(float v) { return vgetq_lane_f32(round_through_f16x4(vdupq_n_f32(v)), 0); }

/* Quantizes 16 floats with multiplier id into out; returns their sum. */
static inline int quantize_16(const float *x, float id, int8_t *out)
{
    int32x4_t q[4];
    for (int j = 0; j < 4; j++) q[j] = round_to_i8_range(vmulq_n_f32(vld1q_f32(x + 4 * j), id));
    vst1q_s8(out, narrow_i32x16(q[0], q[1], q[2], q[3]));
    return vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
}

static void quantize_q8_32_neon(const float *x, void *dst, int n)
{
    block_q8_32 *y = dst;
    for (int i = 0; i < n / QK32; i++, x += QK32) {
        const float amax = absmax(x, QK32);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const int sum = quantize_16(x, id, y[i].qs) + quantize_16(x + 16, id, y[i].qs + 16);
        y[i].d = round_through_f16(amax / 127.0f);
        y[i].s = round_through_f16(amax / 127.0f * (float)sum);
        y[i].sum = sum;
    }
}

static void quantize_q8_K_neon(const float *x, void *dst, int n)
{
    block_q8_K *y = dst;
    for (int i = 0; i < n / QK_K; i++, x += QK_K) {
        const float d = absmax(x, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int k = 0; k < QK_K; k += 16) y[i].bsums[k / 16] = (int16_t)quantize_16(x + k, id, y[i].qs + k);
        y[i].d = d;
    }
}

/* ---- rows: f16 conversions, gated activations */

/* FCVTN / FCVTL round to nearest even and keep subnormals, inf and NaN, as f32_to_f16 and
 * f16_to_f32 in quant.c do (the FPCR Linux gives a process: no flush to zero, no default NaN). */
static void f32_to_f16_row_neon(int n, const float *x, f16_t *y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    f32_to_f16_row_ref(n - i, x + i, y + i);
}

static void f16_to_f32_row_neon(int n, const f16_t *x, float *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, load_f16x4(x + i));
    f16_to_f32_row_ref(n - i, x + i, y + i);
}

/* act(g) * u = g / (1 + e^-z) * u, with e = e^-|z| only (never overflows): for z < 0,
 * g / (1 + 1/e) = g e / (1 + e). e is 0 past |z| > 87, where exp4 stops. silu: z = g. */
static inline float32x4_t sigmoid_form_mul4(float32x4_t g, float32x4_t z, float32x4_t u)
{
    const float32x4_t minus_abs = vnegq_f32(vabsq_f32(z));
    const uint32x4_t live = vcgeq_f32(minus_abs, vdupq_n_f32(-87.0f));
    const float32x4_t e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(exp4(minus_abs)), live));
    const float32x4_t num = vbslq_f32(vcltzq_f32(z), vmulq_f32(g, e), g);
    return vmulq_f32(vdivq_f32(num, vaddq_f32(vdupq_n_f32(1.0f), e)), u);
}

static void silu_mul_row_neon(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        vst1q_f32(gate + i, sigmoid_form_mul4(g, g, vld1q_f32(up + i)));
    }
    silu_mul_row_ref(n - i, gate + i, up + i);
}

/* z = g (GELU_Z_LINEAR + GELU_Z_CUBIC g^2), in gelu_mul_row_ref's order of operations */
static void gelu_mul_row_neon(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t z =
            vmulq_f32(g, vaddq_f32(vdupq_n_f32(GELU_Z_LINEAR), vmulq_f32(vdupq_n_f32(GELU_Z_CUBIC), vmulq_f32(g, g))));
        vst1q_f32(gate + i, sigmoid_form_mul4(g, z, vld1q_f32(up + i)));
    }
    gelu_mul_row_ref(n - i, gate + i, up + i);
}

void kernels_install_neon(kernel_table *t, int dotprod)
{
    if (dotprod) install_dots_neondot(t);
    else install_dots_neon(t);
    t->vec_dot[QT_F32] = vec_dot_f32_neon;
    t->vec_dot[QT_F16] = vec_dot_f16_neon;
    t->vec_dot[QT_BF16] = vec_dot_bf16_neon;
    t->quantize_act[ACT_Q8_32] = quantize_q8_32_neon;
    t->quantize_act[ACT_Q8_K] = quantize_q8_K_neon;
    t->f32_to_f16_row = f32_to_f16_row_neon;
    t->f16_to_f32_row = f16_to_f32_row_neon;
    t->silu_mul_row = silu_mul_row_neon;
    t->gelu_mul_row = gelu_mul_row_neon;
}

#else

void kernels_install_neon(kernel_table *t, int dotprod) { (void)t, (void)dotprod; }

#endif
