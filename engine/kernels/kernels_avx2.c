/*
 * kernels_avx2.c - AVX2 + FMA + F16C dot products and activation quantizers.
 *
 * Every quantized dot product here follows one pattern: expand the weight
 * block's packed bits into one byte per element, multiply against the int8
 * activations with maddubs (unsigned x signed bytes -> int16 pairs) or the
 * abs/sign trick when both sides are signed, widen with madd (which also
 * applies the per-sub-block integer scales of the k-quants), and keep the
 * integer sum exact per block. Only then is the block scale applied with one
 * FMA into a float accumulator that stays in a register; the horizontal sum
 * happens once at the end. The 32-element formats handle two blocks per
 * iteration into two accumulators so the FMA latency chains overlap.
 *
 * The integer part of every block equals the scalar reference's exactly; only
 * the order of the float additions differs (tests/test_kernels.c checks this).
 * The quantizers reproduce quantize_row_q8_32_ref / quantize_row_q8_K_ref bit
 * for bit: same float operations in the same order, the same rounding (half
 * to even) and the same clamping, even for NaN and infinite inputs.
 *
 * The Makefile compiles this file with -mavx2 -mfma -mf16c on x86_64 only;
 * elsewhere the installer is an empty function so everything still links.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#include "simd_x86.h"

/* ---- small helpers ------------------------------------------------------ */

/* unsigned bytes u times signed bytes y -> 8 int32 sums of 4 products. */
static inline __m256i dot_u8_i8(__m256i u, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
}

/* signed bytes x times signed bytes y (y != -128) -> 8 int32 sums of 4 products. */
static inline __m256i dot_i8_i8(__m256i x, __m256i y)
{
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* Same as dot_i8_i8 but stops at the int16 pair sums (for scaled sub-blocks). */
static inline __m256i pairs_i8_i8(__m256i x, __m256i y)
{
    return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* int16 lanes 0..7 = scales[2k], lanes 8..15 = scales[2k+1] (scales are signed int8). */
static inline __m256i scale_pair_i16(__m128i scales8, int k)
{
    __m128i ctl = _mm_loadu_si128((const __m128i *)scale_pair_shuffle[k]);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, ctl));
}

/* Shuffle controls broadcasting int16 lane k of a 128-bit vector (both 128-bit halves). */
static const uint8_t scale_word_shuffle[8][32] = {
#define W(k) {2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1,                    \
              2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1,                    \
              2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1,                    \
              2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1, 2 * k, 2 * k + 1}
    W(0), W(1), W(2), W(3), W(4), W(5), W(6), W(7)
#undef W
};

/* All 16 int16 lanes = word k of scales16 (8 int16 broadcast into both halves). */
static inline __m256i scale_word_i16(__m256i scales16x2, int k)
{
    return _mm256_shuffle_epi8(scales16x2, load256(scale_word_shuffle[k]));
}

/* ---- 32-element formats against q8_32 activations ------------------------ */

/* Accumulates one block: acc += d * float(sumi). */
#define ACC_BLOCK(acc, d, sumi) (acc) = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), (acc))

static float vec_dot_q4_0_avx2(int n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i q0 = _mm256_sub_epi8(unpack_nibbles_32(x[i].qs), eight);
        __m256i q1 = _mm256_sub_epi8(unpack_nibbles_32(x[i + 1].qs), eight);
        __m256i s0 = dot_i8_i8(q0, load256(y[i].qs));
        __m256i s1 = dot_i8_i8(q1, load256(y[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, s0);
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, s1);
    }
    for (; i < nb; i++) {
        __m256i q = _mm256_sub_epi8(unpack_nibbles_32(x[i].qs), eight);
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_i8_i8(q, load256(y[i].qs)));
    }
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

static float vec_dot_q4_1_avx2(int n, const void *w, const void *a)
{
    const block_q4_1 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float min0 = 0, min1 = 0; /* sum of m * (d_a * sum(a)) */
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i s0 = dot_u8_i8(unpack_nibbles_32(x[i].qs), load256(y[i].qs));
        __m256i s1 = dot_u8_i8(unpack_nibbles_32(x[i + 1].qs), load256(y[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, s0);
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, s1);
        min0 += f16_scalar(x[i].m) * y[i].s;
        min1 += f16_scalar(x[i + 1].m) * y[i + 1].s;
    }
    for (; i < nb; i++) {
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_u8_i8(unpack_nibbles_32(x[i].qs), load256(y[i].qs)));
        min0 += f16_scalar(x[i].m) * y[i].s;
    }
    return hsum_f32x8(_mm256_add_ps(acc0, acc1)) + (min0 + min1);
}

/* Q5_0 weights as signed bytes: nibble | high bit << 4, minus 16. */
static inline __m256i q5_0_values(const block_q5_0 *b)
{
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    __m256i high_clear = _mm256_andnot_si256(bits_to_byte_mask(qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(unpack_nibbles_32(b->qs), high_clear);
}

static float vec_dot_q5_0_avx2(int n, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i s0 = dot_i8_i8(q5_0_values(&x[i]), load256(y[i].qs));
        __m256i s1 = dot_i8_i8(q5_0_values(&x[i + 1]), load256(y[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, s0);
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, s1);
    }
    for (; i < nb; i++) ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_i8_i8(q5_0_values(&x[i]), load256(y[i].qs)));
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

/* Q5_1 weights as unsigned bytes 0..31. */
static inline __m256i q5_1_values(const block_q5_1 *b)
{
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    __m256i high = _mm256_and_si256(bits_to_byte_mask(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles_32(b->qs), high);
}

static float vec_dot_q5_1_avx2(int n, const void *w, const void *a)
{
    const block_q5_1 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float min0 = 0, min1 = 0;
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i s0 = dot_u8_i8(q5_1_values(&x[i]), load256(y[i].qs));
        __m256i s1 = dot_u8_i8(q5_1_values(&x[i + 1]), load256(y[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, s0);
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, s1);
        min0 += f16_scalar(x[i].m) * y[i].s;
        min1 += f16_scalar(x[i + 1].m) * y[i + 1].s;
    }
    for (; i < nb; i++) {
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_u8_i8(q5_1_values(&x[i]), load256(y[i].qs)));
        min0 += f16_scalar(x[i].m) * y[i].s;
    }
    return hsum_f32x8(_mm256_add_ps(acc0, acc1)) + (min0 + min1);
}

static float vec_dot_q8_0_avx2(int n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i s0 = dot_i8_i8(load256(x[i].qs), load256(y[i].qs));
        __m256i s1 = dot_i8_i8(load256(x[i + 1].qs), load256(y[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, s0);
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, s1);
    }
    for (; i < nb; i++) ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_i8_i8(load256(x[i].qs), load256(y[i].qs)));
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

/* The 16 IQ4 non-linear levels in both 128-bit halves, for pshufb lookups. */
static inline __m256i iq4nl_table(void)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4nl_values));
}

static float vec_dot_iq4_nl_avx2(int n, const void *w, const void *a)
{
    const block_iq4_nl *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    const __m256i table = iq4nl_table();
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256i q0 = _mm256_shuffle_epi8(table, unpack_nibbles_32(x[i].qs));
        __m256i q1 = _mm256_shuffle_epi8(table, unpack_nibbles_32(x[i + 1].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_i8_i8(q0, load256(y[i].qs)));
        ACC_BLOCK(acc1, f16_scalar(x[i + 1].d) * y[i + 1].d, dot_i8_i8(q1, load256(y[i + 1].qs)));
    }
    for (; i < nb; i++) {
        __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles_32(x[i].qs));
        ACC_BLOCK(acc0, f16_scalar(x[i].d) * y[i].d, dot_i8_i8(q, load256(y[i].qs)));
    }
    return hsum_f32x8(_mm256_add_ps(acc0, acc1));
}

/* ---- k-quants against q8_K activations ---------------------------------- */

static float vec_dot_q4_K_avx2(int n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const float dmin = y[i].d * f16_scalar(x[i].dmin);
        uint32_t sc[2], mn[2];
        unpack_scales_k4(x[i].scales, sc, mn);

        /* mins . (bsums[2j] + bsums[2j+1]) */
        __m128i mins16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn[1], (int)mn[0]));
        __m128i bs_lo = _mm_loadu_si128((const __m128i *)y[i].bsums);
        __m128i bs_hi = _mm_loadu_si128((const __m128i *)(y[i].bsums + 8));
        __m128i prod_min = _mm_madd_epi16(mins16, _mm_hadd_epi16(bs_lo, bs_hi));
        acc_min = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod_min), acc_min);

        __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc[1], (int)sc[0])));
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = load256(q4 + 32 * j);
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            __m256i p_lo = _mm256_maddubs_epi16(lo, load256(q8 + 64 * j));
            __m256i p_hi = _mm256_maddubs_epi16(hi, load256(q8 + 64 * j + 32));
            p_lo = _mm256_madd_epi16(p_lo, scale_word_i16(scales, 2 * j));
            p_hi = _mm256_madd_epi16(p_hi, scale_word_i16(scales, 2 * j + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    __m128 m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return hsum_f32x8(acc) - _mm_cvtss_f32(m);
}

static float vec_dot_q5_K_avx2(int n, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const float dmin = y[i].d * f16_scalar(x[i].dmin);
        uint32_t sc[2], mn[2];
        unpack_scales_k4(x[i].scales, sc, mn);

        __m128i mins16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn[1], (int)mn[0]));
        __m128i bs_lo = _mm_loadu_si128((const __m128i *)y[i].bsums);
        __m128i bs_hi = _mm_loadu_si128((const __m128i *)(y[i].bsums + 8));
        __m128i prod_min = _mm_madd_epi16(mins16, _mm_hadd_epi16(bs_lo, bs_hi));
        acc_min = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod_min), acc_min);

        __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc[1], (int)sc[0])));
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i hbits = load256(x[i].qh); /* bit 2j / 2j+1 of byte l: element 64j+l / 64j+32+l */
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = load256(q4 + 32 * j);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_slli_epi16(hbits, 4), bit4));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4),
                                         _mm256_and_si256(_mm256_slli_epi16(hbits, 3), bit4));
            hbits = _mm256_srli_epi16(hbits, 2);
            __m256i p_lo = _mm256_maddubs_epi16(lo, load256(q8 + 64 * j));
            __m256i p_hi = _mm256_maddubs_epi16(hi, load256(q8 + 64 * j + 32));
            p_lo = _mm256_madd_epi16(p_lo, scale_word_i16(scales, 2 * j));
            p_hi = _mm256_madd_epi16(p_hi, scale_word_i16(scales, 2 * j + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    __m128 m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return hsum_f32x8(acc) - _mm_cvtss_f32(m);
}

/* sum_k scales[k] * bsums[k] over the 16 sub-blocks, as 8 int32 partial sums. */
static inline __m256i scales_dot_bsums(__m128i scales8, const int16_t *bsums)
{
    return _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales8), load256(bsums));
}

static float vec_dot_q6_K_avx2(int n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const __m128i scales8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        /* weights are u - 32 with u in 0..63: subtract 32 * sum(scale * bsum) at the end */
        __m256i sumi = _mm256_slli_epi32(scales_dot_bsums(scales8, y[i].bsums), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x[i].ql + 64 * half;
            const int8_t *q8 = y[i].qs + 128 * half;
            __m256i l0 = load256(ql), l1 = load256(ql + 32), h = load256(x[i].qh + 32 * half);
            __m256i u0 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45));
            __m256i u1 = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45));
            __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(h, bits45));
            __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                         _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, load256(q8)), scale_pair_i16(scales8, 4 * half + 0));
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, load256(q8 + 32)), scale_pair_i16(scales8, 4 * half + 1));
            __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(u2, load256(q8 + 64)), scale_pair_i16(scales8, 4 * half + 2));
            __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(u3, load256(q8 + 96)), scale_pair_i16(scales8, 4 * half + 3));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

/* The 16 signed 6-bit Q3_K scales (already minus 32) as int8. */
static inline __m128i unpack_scales_q3_K(const uint8_t *packed)
{
    uint32_t aux[4], lo0, lo1, hi;
    memcpy(&lo0, packed, 4);
    memcpy(&lo1, packed + 4, 4);
    memcpy(&hi, packed + 8, 4);
    aux[0] = (lo0 & 0x0f0f0f0f) | ((hi & 0x03030303) << 4);
    aux[1] = (lo1 & 0x0f0f0f0f) | (((hi >> 2) & 0x03030303) << 4);
    aux[2] = ((lo0 >> 4) & 0x0f0f0f0f) | (((hi >> 4) & 0x03030303) << 4);
    aux[3] = ((lo1 >> 4) & 0x0f0f0f0f) | (((hi >> 6) & 0x03030303) << 4);
    __m128i s = _mm_loadu_si128((const __m128i *)aux);
    return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

static float vec_dot_q3_K_avx2(int n, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i two_bits = _mm256_set1_epi8(3), bit2 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const __m128i scales8 = unpack_scales_q3_K(x[i].scales);
        /* weights are u - 4 with u = low 2 bits + 4 * hmask bit */
        __m256i sumi = _mm256_slli_epi32(scales_dot_bsums(scales8, y[i].bsums), 2);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        __m256i hbits = load256(x[i].hmask);
        for (int half = 0; half < 2; half++) {
            __m256i q = load256(x[i].qs + 32 * half);
            const int8_t *q8 = y[i].qs + 128 * half;
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_or_si256(_mm256_and_si256(q, two_bits), _mm256_and_si256(_mm256_slli_epi16(hbits, 2), bit2));
                q = _mm256_srli_epi16(q, 2);
                hbits = _mm256_srli_epi16(hbits, 1);
                __m256i p = _mm256_maddubs_epi16(u, load256(q8 + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair_i16(scales8, 4 * half + j)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

static float vec_dot_q2_K_avx2(int n, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i two_bits = _mm256_set1_epi8(3);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const float dmin = y[i].d * f16_scalar(x[i].dmin);
        const __m128i packed = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i scales8 = _mm_and_si128(packed, low4);
        const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(scales_dot_bsums(mins8, y[i].bsums)), acc_min);
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            __m256i q = load256(x[i].qs + 32 * half);
            const int8_t *q8 = y[i].qs + 128 * half;
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(q, two_bits);
                q = _mm256_srli_epi16(q, 2);
                __m256i p = _mm256_maddubs_epi16(u, load256(q8 + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair_i16(scales8, 4 * half + j)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc) - hsum_f32x8(acc_min);
}

static float vec_dot_iq4_xs_avx2(int n, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m256i table = iq4nl_table();
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        __m256i sum0 = _mm256_setzero_si256(), sum1 = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib += 2) {
            int ls0 = ((x[i].scales_l[ib / 2] & 0xf) | (((x[i].scales_h >> (2 * ib)) & 3) << 4)) - 32;
            int ls1 = ((x[i].scales_l[ib / 2] >> 4) | (((x[i].scales_h >> (2 * ib + 2)) & 3) << 4)) - 32;
            __m256i q0 = _mm256_shuffle_epi8(table, unpack_nibbles_32(x[i].qs + 16 * ib));
            __m256i q1 = _mm256_shuffle_epi8(table, unpack_nibbles_32(x[i].qs + 16 * ib + 16));
            __m256i p0 = pairs_i8_i8(q0, load256(y[i].qs + 32 * ib));
            __m256i p1 = pairs_i8_i8(q1, load256(y[i].qs + 32 * ib + 32));
            sum0 = _mm256_add_epi32(sum0, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)ls0)));
            sum1 = _mm256_add_epi32(sum1, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)ls1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sum0, sum1)), acc);
    }
    return hsum_f32x8(acc);
}

/* ---- float formats against f32 activations ------------------------------ */

/* Generic 32-per-iteration loop; LOAD8(p, k) yields 8 floats of the weight row at element k. */
#define FLOAT_DOT_BODY(LOAD8, SCALAR)                                                                          \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                             \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                                             \
    int k = 0;                                                                                                 \
    for (; k + 32 <= n; k += 32) {                                                                             \
        acc0 = _mm256_fmadd_ps(LOAD8(x, k), _mm256_loadu_ps(y + k), acc0);                                     \
        acc1 = _mm256_fmadd_ps(LOAD8(x, k + 8), _mm256_loadu_ps(y + k + 8), acc1);                             \
        acc2 = _mm256_fmadd_ps(LOAD8(x, k + 16), _mm256_loadu_ps(y + k + 16), acc2);                           \
        acc3 = _mm256_fmadd_ps(LOAD8(x, k + 24), _mm256_loadu_ps(y + k + 24), acc3);                           \
    }                                                                                                          \
    for (; k + 8 <= n; k += 8) acc0 = _mm256_fmadd_ps(LOAD8(x, k), _mm256_loadu_ps(y + k), acc0);              \
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));               \
    for (; k < n; k++) sum += SCALAR(x[k]) * y[k];                                                             \
    return sum;

#define LOAD8_F32(p, k) _mm256_loadu_ps((p) + (k))
#define LOAD8_F16(p, k) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + (k))))
#define LOAD8_BF16(p, k) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((p) + (k)))), 16))
#define SCALAR_F32(v) (v)

static float vec_dot_f32_avx2(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    FLOAT_DOT_BODY(LOAD8_F32, SCALAR_F32)
}

static float vec_dot_f16_avx2(int n, const void *w, const void *a)
{
    const f16_t *x = w;
    const float *y = a;
    FLOAT_DOT_BODY(LOAD8_F16, f16_scalar)
}

static float vec_dot_bf16_avx2(int n, const void *w, const void *a)
{
    const bf16_t *x = w;
    const float *y = a;
    FLOAT_DOT_BODY(LOAD8_BF16, bf16_to_f32)
}

/* ---- activation quantizers ---------------------------------------------- */

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* max |x| over k floats (k a multiple of 8). Like the reference, NaNs are
 * skipped: maxps returns its second operand when the first is NaN. */
static inline float absmax(const float *x, int k)
{
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < k; j += 8) m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + j)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* The reference's clamp_int(nearest_int(v), -127, 127): clamp v to +-4194303
 * with fmaxf/fminf NaN rules (maxps/minps return the second operand for NaN),
 * round half to even (cvtps under the default MXCSR), clamp to +-127. */
static inline __m256i round_to_i8_range(__m256 v)
{
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-4194303.0f)), _mm256_set1_ps(4194303.0f));
    __m256i q = _mm256_cvtps_epi32(v);
    return _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}

/* f32 -> nearest f16 -> f32 (round to nearest even, as f32_to_f16). */
static inline float round_through_f16(float v) { return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }

/* Four vectors of 8 int32 (each in -127..127) -> 32 int8 in element order. */
static inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Quantizes 32 floats with multiplier id: stores 32 int8, returns their sum. */
static inline int quantize_32(const float *x, __m256 id, int8_t *out)
{
    __m256i q0 = round_to_i8_range(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i q1 = round_to_i8_range(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i q2 = round_to_i8_range(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i q3 = round_to_i8_range(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    _mm256_storeu_si256((__m256i *)out, pack_i32_to_i8(q0, q1, q2, q3));
    return hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
}

static void quantize_q8_32_avx2(const float *x, void *dst, int n)
{
    block_q8_32 *y = dst;
    for (int i = 0; i < n / QK32; i++, x += QK32) {
        const float amax = absmax(x, QK32);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const int sum = quantize_32(x, _mm256_set1_ps(id), y[i].qs);
        y[i].d = round_through_f16(amax / 127.0f);
        y[i].s = round_through_f16(amax / 127.0f * (float)sum);
        y[i].sum = sum;
    }
}

static void quantize_q8_K_avx2(const float *x, void *dst, int n)
{
    block_q8_K *y = dst;
    for (int i = 0; i < n / QK_K; i++, x += QK_K) {
        const float d = absmax(x, QK_K) / 127.0f;
        const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        for (int k = 0; k < QK_K; k += 32) {
            /* the 16-element sums need the two halves of the 32 separately */
            int8_t *q = y[i].qs + k;
            quantize_32(x + k, id, q);
            __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), load256(q)), _mm256_set1_epi16(1));
            __m128i lo = _mm256_castsi256_si128(sums), hi = _mm256_extracti128_si256(sums, 1);
            __m128i both = _mm_hadd_epi32(_mm_hadd_epi32(lo, hi), _mm_setzero_si128());
            y[i].bsums[k / 16] = (int16_t)_mm_cvtsi128_si32(both);
            y[i].bsums[k / 16 + 1] = (int16_t)_mm_extract_epi32(both, 1);
        }
        y[i].d = d;
    }
}

static void silu_mul_row_avx2(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    silu_mul_row_ref(n - i, gate + i, up + i);
}

static void gelu_mul_row_avx2(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, gelu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    gelu_mul_row_ref(n - i, gate + i, up + i);
}

/* F16C converts 8 at a time with round-to-nearest-even, as f32_to_f16 does. */
static void f32_to_f16_row_avx2(int n, const float *x, f16_t *y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f32_to_f16(x[i]);
}

static void f16_to_f32_row_avx2(int n, const f16_t *x, float *y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = f16_to_f32(x[i]);
}

/* ---- the int8 step alone, for the compute ceiling ---------------------- */

/* The panel kernels' step for 4 weights x 8 rows x 1 token: maddubs, then an
 * int16 add into a running sum (gemm_avx2.c). The products do not depend on
 * the sums, and an add's latency is one cycle, so four sums keep both
 * multipliers busy; the empty asm makes the weights look new to the compiler
 * each time, so no product is hoisted out of the loop. */
static void int8_mac_probe_avx2(long rounds, int32_t *sink)
{
    __m256i w0 = _mm256_set1_epi8(3), w1 = _mm256_set1_epi8(5), w2 = _mm256_set1_epi8(7), w3 = _mm256_set1_epi8(9);
    const __m256i a0 = _mm256_set1_epi8(1), a1 = _mm256_set1_epi8(-2);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < INT8_PROBE_MACS / (8 * 32); k++) {
            __asm__ volatile("" : "+x"(w0), "+x"(w1), "+x"(w2), "+x"(w3));
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w0, a0));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w1, a0));
            s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(w2, a0));
            s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(w3, a0));
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w0, a1));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w1, a1));
            s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(w2, a1));
            s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(w3, a1));
        }
    const __m256i s = _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
    *sink = _mm256_extract_epi32(s, 0);
}

void kernels_install_avx2(kernel_table *t)
{
    t->int8_mac_probe = int8_mac_probe_avx2;
    t->f32_to_f16_row = f32_to_f16_row_avx2;
    t->f16_to_f32_row = f16_to_f32_row_avx2;
    t->vec_dot[QT_F32] = vec_dot_f32_avx2;
    t->vec_dot[QT_F16] = vec_dot_f16_avx2;
    t->vec_dot[QT_BF16] = vec_dot_bf16_avx2;
    t->vec_dot[QT_Q4_0] = vec_dot_q4_0_avx2;
    t->vec_dot[QT_Q4_1] = vec_dot_q4_1_avx2;
    t->vec_dot[QT_Q5_0] = vec_dot_q5_0_avx2;
    t->vec_dot[QT_Q5_1] = vec_dot_q5_1_avx2;
    t->vec_dot[QT_Q8_0] = vec_dot_q8_0_avx2;
    t->vec_dot[QT_IQ4_NL] = vec_dot_iq4_nl_avx2;
    t->vec_dot[QT_Q2_K] = vec_dot_q2_K_avx2;
    t->vec_dot[QT_Q3_K] = vec_dot_q3_K_avx2;
    t->vec_dot[QT_Q4_K] = vec_dot_q4_K_avx2;
    t->vec_dot[QT_Q5_K] = vec_dot_q5_K_avx2;
    t->vec_dot[QT_Q6_K] = vec_dot_q6_K_avx2;
    t->vec_dot[QT_IQ4_XS] = vec_dot_iq4_xs_avx2;
    t->quantize_act[ACT_Q8_32] = quantize_q8_32_avx2;
    t->silu_mul_row = silu_mul_row_avx2;
    t->gelu_mul_row = gelu_mul_row_avx2;
    t->quantize_act[ACT_Q8_K] = quantize_q8_K_avx2;
}

#else

void kernels_install_avx2(kernel_table *t) { (void)t; }

#endif
