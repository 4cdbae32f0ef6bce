/*
 * simd_neon.h - small NEON helpers shared by the AArch64 kernel files.
 *
 * Only included from *_neon.c inside their `#if defined(__aarch64__)`, after
 * <arm_neon.h>. The exp is the x86 one (simd_x86.h's exp8) lane for lane:
 * same reduction, same polynomial, same constants, so every ISA's softmax and
 * gated activations stay within the same few ulp of the scalar references.
 */
#ifndef PRBOT_SIMD_NEON_H
#define PRBOT_SIMD_NEON_H

#include <arm_neon.h>

#include "../quant.h"

/* For helpers whose constant arguments must fold away where they are expanded. */
#define NEON_INLINE static inline __attribute__((always_inline))

/* 4 f16 at p -> 4 f32 (exact). */
static inline float32x4_t load_f16x4(const f16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

/* f32 -> nearest f16 (ties to even, as f32_to_f16 in quant.c) -> f32, 4 lanes. */
static inline float32x4_t round_through_f16x4(float32x4_t x) { return vcvt_f32_f16(vcvt_f16_f32(x)); }

/* e^x for x <= 0 (inputs below -87 give ~0): Cody-Waite range reduction to |r| <= ln2/2 and a
 * degree-6 polynomial, ~2 ulp. */
static inline float32x4_t exp4(float32x4_t x)
{
    x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
    r = vfmsq_f32(r, n, vdupq_n_f32(1.42860682030941723212e-6f));
    float32x4_t p = vdupq_n_f32(1.0f / 720);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

#endif
