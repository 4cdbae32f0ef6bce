/*
 * kernels_neon.c - NEON (AArch64 Advanced SIMD) dot products and quantizers.
 *
 * NEON is part of every AArch64 CPU, so this file needs no special flags.
 * Byte dot products use the SDOT instruction when the compiler targets a CPU
 * with the dot-product extension (__ARM_FEATURE_DOTPROD, e.g. -march=armv8.2-a+dotprod),
 * else widening multiplies (vmull_s8) and pairwise adds; both give the exact
 * int32 sum. Two blocks per iteration into two float accumulators; one
 * horizontal sum at the end. The quantizers reproduce the scalar references
 * bit for bit: vcvtnq rounds half to even like nearest_int in quant.c, and
 * FMAXNM/FMINNM treat NaN like fmaxf/fminf.
 *
 * On other architectures the installer is empty.
 */
#include "kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

static inline float f16_scalar(f16_t h)
{
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* 16 x 16 signed bytes -> 4 int32 partial sums. */
static inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

static inline int32x4_t q4_0_block_dot(const block_q4_0 *x, const block_q8_32 *y)
{
    const uint8x16_t q = vld1q_u8(x->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
    int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    int32x4_t s = dot_i8x16(vdupq_n_s32(0), lo, vld1q_s8(y->qs));
    return dot_i8x16(s, hi, vld1q_s8(y->qs + 16));
}

static float vec_dot_q4_0_neon(int n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        int32x4_t s0 = q4_0_block_dot(&x[i], &y[i]);
        int32x4_t s1 = q4_0_block_dot(&x[i + 1], &y[i + 1]);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), f16_scalar(x[i].d) * y[i].d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s1), f16_scalar(x[i + 1].d) * y[i + 1].d);
    }
    for (; i < nb; i++) acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(q4_0_block_dot(&x[i], &y[i])), f16_scalar(x[i].d) * y[i].d);
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

static inline int32x4_t q8_0_block_dot(const block_q8_0 *x, const block_q8_32 *y)
{
    int32x4_t s = dot_i8x16(vdupq_n_s32(0), vld1q_s8(x->qs), vld1q_s8(y->qs));
    return dot_i8x16(s, vld1q_s8(x->qs + 16), vld1q_s8(y->qs + 16));
}

static float vec_dot_q8_0_neon(int n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        int32x4_t s0 = q8_0_block_dot(&x[i], &y[i]);
        int32x4_t s1 = q8_0_block_dot(&x[i + 1], &y[i + 1]);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(s0), f16_scalar(x[i].d) * y[i].d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(s1), f16_scalar(x[i + 1].d) * y[i + 1].d);
    }
    for (; i < nb; i++) acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(q8_0_block_dot(&x[i], &y[i])), f16_scalar(x[i].d) * y[i].d);
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

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
static inline float round_through_f16(float v) { return vgetq_lane_f32(vcvt_f32_f16(vcvt_f16_f32(vdupq_n_f32(v))), 0); }

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

void kernels_install_neon(kernel_table *t)
{
    t->vec_dot[QT_F32] = vec_dot_f32_neon;
    t->vec_dot[QT_Q4_0] = vec_dot_q4_0_neon;
    t->vec_dot[QT_Q8_0] = vec_dot_q8_0_neon;
    t->quantize_act[ACT_Q8_32] = quantize_q8_32_neon;
    t->quantize_act[ACT_Q8_K] = quantize_q8_K_neon;
}

#else

void kernels_install_neon(kernel_table *t) { (void)t; }

#endif
