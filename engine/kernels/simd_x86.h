/*
 * simd_x86.h - small AVX2 / AVX-512 helpers shared by the x86 kernel files.
 *
 * Only included from files compiled with the matching ISA flags (*_avx2.c,
 * *_avx512.c), inside their #if guards, after <immintrin.h>.
 */
#ifndef PRBOT_SIMD_X86_H
#define PRBOT_SIMD_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../quant.h"
#include "kernels.h"

/* For helpers whose constant arguments must fold away where they are expanded. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* fully unroll a small loop over accumulators so every one stays in a register */
#define UNROLL _Pragma("GCC unroll 16")

static inline float hsum_f32x8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_i32x8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline float f16_scalar(f16_t h) { return _cvtsh_ss(h); }

/* e^x for x <= 0 (inputs below -87 give ~0): Cody-Waite range reduction to |r| <= ln2/2 and a
 * degree-6 polynomial, ~2 ulp. */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* silu(g) * u = g / (1 + e^-g) * u, with e = e^-|g| only (never overflows): for g < 0,
 * g / (1 + 1/e) = g e / (1 + e). e is 0 past |g| > 87, where exp8 stops. */
static inline __m256 silu_mul8(__m256 g, __m256 u)
{
    const __m256 minus_abs = _mm256_or_ps(g, _mm256_set1_ps(-0.0f)); /* sign bit set: -|g| */
    const __m256 e = _mm256_and_ps(exp8(minus_abs), _mm256_cmp_ps(minus_abs, _mm256_set1_ps(-87.0f), _CMP_GE_OQ));
    const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), g);
    return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

/* gelu(g) * u = g / (1 + e^-z) * u, z = g (GELU_Z_LINEAR + GELU_Z_CUBIC g^2), with e = e^-|z|
 * only, as silu_mul8 (gelu_mul_row_ref's order of operations). */
static inline __m256 gelu_mul8(__m256 g, __m256 u)
{
    const __m256 z = _mm256_mul_ps(g, _mm256_add_ps(_mm256_set1_ps(GELU_Z_LINEAR),
                                                    _mm256_mul_ps(_mm256_set1_ps(GELU_Z_CUBIC), _mm256_mul_ps(g, g))));
    const __m256 minus_abs = _mm256_or_ps(z, _mm256_set1_ps(-0.0f));
    const __m256 e = _mm256_and_ps(exp8(minus_abs), _mm256_cmp_ps(minus_abs, _mm256_set1_ps(-87.0f), _CMP_GE_OQ));
    const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), z);
    return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

/* Decode streams every weight from memory once per token. Asking for the
 * lines DECODE_PREFETCH_BYTES ahead of the ones being read keeps more of them
 * in flight than the hardware prefetcher does alone, so decode gets closer
 * to the memory bandwidth, on one core and on several. Prefetches past the
 * end of the weights are harmless. Always inlined: GCC 12 left it out of line
 * in the big kernels, found that a function doing nothing but prefetches has
 * no effect, and deleted every call. */
#define DECODE_PREFETCH_BYTES 8192
ALWAYS_INLINE void prefetch_ahead(const void *p, size_t bytes)
{
    const char *ahead = (const char *)p + DECODE_PREFETCH_BYTES;
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
}

/* KV-cache rows [j0, j1), clipped to the first n, of a head of hd f16 asked
 * to come to L1: attention reads the cache once per token, from memory, and
 * uses a row as soon as it arrives. */
static inline void prefetch_kv_rows(const f16_t *x, size_t kv_stride, int j0, int j1, int n, int hd)
{
    if (j1 > n) j1 = n;
    for (int j = j0; j < j1; j++)
        for (int d = 0; d < hd; d += 32) _mm_prefetch((const char *)(x + (size_t)j * kv_stride + d), _MM_HINT_T0);
}

/* ---- k-quant panels (AVX2 and AVX-512 alike) ---------------------------- */

enum { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

static inline size_t kq_size(const int fmt)
{
    return fmt == KQ_Q4_K ? sizeof(block_q4_K) : fmt == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

/* int16 pairs of the correction (kq_scales.pair) per row. */
static inline int kq_pairs(const int fmt) { return fmt == KQ_Q6_K ? 8 : 4; }

/* The token's activation sums the pairs weigh, as int16 pairs in int32 lanes:
 * Q6_K's bsums as they are, Q4_K/Q5_K's per sub-block of 32. */
ALWAYS_INLINE void kq_act_pairs(const int fmt, const block_q8_K *a, int32_t pairs[8])
{
    if (fmt == KQ_Q6_K) memcpy(pairs, a->bsums, 8 * sizeof(int32_t));
    else
        _mm_storeu_si128((__m128i *)pairs, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a->bsums),
                                                          _mm_loadu_si128((const __m128i *)a->bsums + 1)));
}

static inline __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 16 packed bytes -> 32 bytes: the low nibbles (elements 0..15), then the high ones (16..31). */
static inline __m256i unpack_nibbles_32(const uint8_t *p)
{
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, byte j = 0xFF if bit j is set, else 0. */
static inline __m256i bits_to_byte_mask(uint32_t bits)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* vpshufb index of byte b (< 0: a zero byte) of the int32 lane at byte 4 d of a 128-bit lane. */
ALWAYS_INLINE uint32_t lane_byte_index(int b, int d)
{
    return b < 0 ? 0x80u : (uint32_t)(4 * d + b);
}

/* vpshufb indices that give that int32 lane its own bytes b0, b1, b2, b3 in that order. */
ALWAYS_INLINE int lane_dword_control(int b0, int b1, int b2, int b3, int d)
{
    return (int)(lane_byte_index(b0, d) | lane_byte_index(b1, d) << 8 | lane_byte_index(b2, d) << 16 |
                 lane_byte_index(b3, d) << 24);
}

/* The same for a whole 128-bit lane; constant-folded for constant b (a control
 * built in an array was not, and made AVX2 k-quant decode much slower). */
ALWAYS_INLINE __m128i lane_bytes_control(int b0, int b1, int b2, int b3)
{
    return _mm_setr_epi32(lane_dword_control(b0, b1, b2, b3, 0), lane_dword_control(b0, b1, b2, b3, 1),
                          lane_dword_control(b0, b1, b2, b3, 2), lane_dword_control(b0, b1, b2, b3, 3));
}

/* Each int32 lane of v -> its bytes b0, b1, b2, b3 (< 0: zero), one vpshufb. */
ALWAYS_INLINE __m256i pick_bytes256(__m256i v, int b0, int b1, int b2, int b3)
{
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(lane_bytes_control(b0, b1, b2, b3)));
}

/* The 12-byte 6-bit scale/min field of Q4_K/Q5_K -> 8 scale bytes and 8 min
 * bytes, packed as two u32 each. */
static inline void unpack_scales_k4(const uint8_t *packed, uint32_t sc[2], uint32_t mn[2])
{
    uint32_t w0, w1, w2;
    memcpy(&w0, packed, 4);
    memcpy(&w1, packed + 4, 4);
    memcpy(&w2, packed + 8, 4);
    sc[0] = w0 & 0x3f3f3f3f;
    sc[1] = (w2 & 0x0f0f0f0f) | ((w0 >> 2) & 0x30303030);
    mn[0] = w1 & 0x3f3f3f3f;
    mn[1] = ((w2 >> 4) & 0x0f0f0f0f) | ((w1 >> 2) & 0x30303030);
}

/* Shuffle controls that turn 16 int8 scales into [s[2k] x8 | s[2k+1] x8] bytes. */
static const uint8_t scale_pair_shuffle[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

#if defined(__AVX512F__)
/* e^x for x <= 0 (inputs below -87 give ~0): Cody-Waite reduction and a degree-6 polynomial, ~2
 * ulp. n = round(x / ln2) comes from adding 1.5 * 2^23, which leaves n in the low mantissa bits,
 * so 2^n is one integer add and shift away. */
static inline __m512 exp16(__m512 x)
{
    const __m512 round_magic = _mm512_set1_ps(12582912.0f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), round_magic);
    __m512 n = _mm512_sub_ps(t, round_magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* bits of t = bits of 1.5 * 2^23 + n: minus that, plus the exponent bias, shifted */
    __m512i e = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127 - 0x4B400000)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* silu_mul8 sixteen at a time. */
static inline __m512 silu_mul16(__m512 g, __m512 u)
{
    const __m512 minus_abs = _mm512_or_ps(g, _mm512_set1_ps(-0.0f)); /* sign bit set: -|g| */
    const __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(minus_abs, _mm512_set1_ps(-87.0f), _CMP_GE_OQ),
                                         exp16(minus_abs));
    const __mmask16 negative = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_mul_ps(g, negative, g, e);
    return _mm512_mul_ps(_mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

/* gelu_mul8 sixteen at a time. */
static inline __m512 gelu_mul16(__m512 g, __m512 u)
{
    const __m512 z = _mm512_mul_ps(g, _mm512_add_ps(_mm512_set1_ps(GELU_Z_LINEAR),
                                                    _mm512_mul_ps(_mm512_set1_ps(GELU_Z_CUBIC), _mm512_mul_ps(g, g))));
    const __m512 minus_abs = _mm512_or_ps(z, _mm512_set1_ps(-0.0f));
    const __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(minus_abs, _mm512_set1_ps(-87.0f), _CMP_GE_OQ),
                                         exp16(minus_abs));
    const __mmask16 negative = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_mul_ps(g, negative, g, e);
    return _mm512_mul_ps(_mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

static inline __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

/* pick_bytes256 for a zmm. */
ALWAYS_INLINE __m512i pick_bytes512(__m512i v, int b0, int b1, int b2, int b3)
{
    return _mm512_shuffle_epi8(v, _mm512_broadcast_i32x4(lane_bytes_control(b0, b1, b2, b3)));
}

#if defined(__AVX512VNNI__)
/* acc += u . (the 4 signed bytes at q, in every lane): vpdpbusd with the
 * broadcast folded into its memory operand ({1to16}), which GCC 12 does not
 * do from _mm512_set1_epi32. It makes prefill faster on the k-quant panels,
 * whose weights come from memory too; the 32-element panels, whose weights
 * sit in registers, are slower with it and keep the separate broadcast. */
static inline void dpbusd_broadcast(__m512i *acc, __m512i u, const void *q)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(*acc) : "v"(u), "m"(*(const int32_t *)q));
}
#endif

/* Two 32-byte loads in one zmm (lo in the low half). */
static inline __m512i load_two_256(const void *lo, const void *hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(lo)), load256(hi), 1);
}
#endif

#endif
