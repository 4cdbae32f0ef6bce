/*
 * kernels_avx512.c - AVX-512 (F/BW/VL/DQ) and AVX512_VNNI dot products.
 *
 * Installed on top of the AVX2 table (kernels.c installs AVX2 first), so only
 * the types that gain from wider registers or from VNNI are overridden here:
 *
 *  - Q4_K, Q5_K, Q6_K work on 64 elements per zmm. Products go through
 *    maddubs (unsigned weight bytes x signed activations -> int16 pairs); the
 *    per-sub-block scales are applied by vpdpwssd (VNNI: multiply int16 pairs
 *    by the int16 scales and accumulate into int32 in one instruction) or by
 *    madd + add without VNNI. Integer sums stay exact per super-block.
 *  - Q4_0 and Q8_0 (32-element blocks) stay 256 bits wide, where one block is
 *    one register, but with VNNI the unsigned x signed byte dot product is a
 *    single vpdpbusd instead of maddubs + madd.
 *  - F32 and F16 use 16-wide FMAs, with masked loads for the tail.
 *
 * Like the AVX2 file, the integer part of every block matches the scalar
 * reference exactly. Compiled with the AVX-512 flags on x86_64 only;
 * elsewhere the installer is empty.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)

#include <immintrin.h>
#include <string.h>

#include "simd_x86.h"

static inline float hsum_f32x4(__m128 s)
{
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* sumi + (int16 pairs p) . (int16 scales s), as int32. */
ALWAYS_INLINE __m512i acc_scaled_pairs(__m512i sumi, __m512i p, __m512i s, const int vnni)
{
    return vnni ? _mm512_dpwssd_epi32(sumi, p, s) : _mm512_add_epi32(sumi, _mm512_madd_epi16(p, s));
}

/* ---- 32-element blocks with VNNI ----------------------------------------- */

#define ACC_BLOCK(acc, d, sumi) (acc) = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), (acc))

/* sum((u - 8) * a) per 4 lanes: one dpbusd for u*a, one for 8*a. */
static inline __m256i q4_0_block_dot_vnni(const block_q4_0 *x, const block_q8_32 *y)
{
    const __m256i zero = _mm256_setzero_si256(), eight = _mm256_set1_epi8(8);
    __m256i a = load256(y->qs);
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, unpack_nibbles_32(x->qs), a), _mm256_dpbusd_epi32(zero, eight, a));
}

/* The 16-byte nibble arrays of two 32-element blocks as 64 unsigned bytes in
 * element order: [lo(a) hi(a) lo(b) hi(b)]. */
static inline __m512i nibbles_two_blocks(const uint8_t *qs_a, const uint8_t *qs_b)
{
    __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs_a)),
                                        _mm_loadu_si128((const __m128i *)qs_b), 1);
    __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    return _mm512_and_si512(_mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), both),
                            _mm512_set1_epi8(0x0F));
}

/*
 * Decode's hottest loop, two blocks per zmm: the 16-byte nibble arrays of
 * blocks i and i+1 become [lo(i) hi(i) lo(i+1) hi(i+1)] to line up with the
 * two activation blocks; one vpdpbusd does 64 products and a second removes
 * the +8 of the unsigned nibbles; both blocks' scales ride in one vector.
 */
static float vec_dot_q4_0_vnni512(int n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    const __m512i eight = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i u = nibbles_two_blocks(x[i].qs, x[i + 1].qs);
        __m512i act = load_two_256(y[i].qs, y[i + 1].qs);
        __m512i sumi = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, act),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, act));
        __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(f16_scalar(x[i].d) * y[i].d),
                                          _mm256_set1_ps(f16_scalar(x[i + 1].d) * y[i + 1].d), 1);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), scale, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        __m256i s0 = q4_0_block_dot_vnni(&x[i], &y[i]);
        __m256 one = _mm256_mul_ps(_mm256_set1_ps(f16_scalar(x[i].d) * y[i].d), _mm256_cvtepi32_ps(s0));
        sum += hsum_f32x8(one);
    }
    return sum;
}

/* signed x signed with one dpbusd: |x| times y with x's sign moved onto y. */
static inline __m256i q8_0_block_dot_vnni(const block_q8_0 *x, const block_q8_32 *y)
{
    __m256i q = load256(x->qs);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(load256(y->qs), q));
}

/* Q5_0 as Q4_0, with the fifth bits (qh, bit j = element j) of both blocks
 * forming one 64-bit byte mask over the zmm's [block i | block i+1] order. */
static float vec_dot_q5_0_vnni512(int n, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    const __m512i sixteen = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i u = nibbles_two_blocks(x[i].qs, x[i + 1].qs);
        uint32_t h0, h1;
        memcpy(&h0, x[i].qh, 4);
        memcpy(&h1, x[i + 1].qh, 4);
        u = _mm512_mask_add_epi8(u, (__mmask64)h0 | (__mmask64)h1 << 32, u, sixteen);
        __m512i act = load_two_256(y[i].qs, y[i + 1].qs);
        __m512i sumi = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, act),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), sixteen, act));
        __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(f16_scalar(x[i].d) * y[i].d),
                                          _mm256_set1_ps(f16_scalar(x[i + 1].d) * y[i + 1].d), 1);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), scale, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) { /* odd block count: the last block through the reference */
        block_q8_32 tail = y[i];
        sum += quant_traits_of(QT_Q5_0)->vec_dot_ref(QK32, &x[i], &tail);
    }
    return sum;
}

/* Two blocks per zmm as for Q4_0; AVX-512 has no sign_epi8, so the
 * activations are negated under the mask of negative weights instead. */
static float vec_dot_q8_0_vnni512(int n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_32 *y = a;
    const int nb = n / QK32;
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i q = load_two_256(x[i].qs, x[i + 1].qs);
        __m512i act = load_two_256(y[i].qs, y[i + 1].qs);
        act = _mm512_mask_sub_epi8(act, _mm512_movepi8_mask(q), _mm512_setzero_si512(), act);
        __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(q), act);
        __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(f16_scalar(x[i].d) * y[i].d),
                                          _mm256_set1_ps(f16_scalar(x[i + 1].d) * y[i + 1].d), 1);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), scale, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++)
        sum += hsum_f32x8(_mm256_mul_ps(_mm256_set1_ps(f16_scalar(x[i].d) * y[i].d),
                                        _mm256_cvtepi32_ps(q8_0_block_dot_vnni(&x[i], &y[i]))));
    return sum;
}

/* ---- k-quants, 64 elements per zmm --------------------------------------- */

/* dmin * sum_j mins[j] * (bsums[2j] + bsums[2j+1]) accumulated into 4 float lanes. */
static inline __m128 acc_k4_mins(__m128 acc_min, const uint32_t mn[2], const int16_t *bsums, float dmin)
{
    __m128i mins16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn[1], (int)mn[0]));
    __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_loadu_si128((const __m128i *)(bsums + 8)));
    return _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins16, pairs)), acc_min);
}

/* int16 index vectors for vpermw: 16 lanes of word a, then 16 lanes of word b. */
static inline __m512i halves_of_words(int a, int b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}

/*
 * One zmm of Q4_K/Q5_K nibbles covers 32 bytes of sub-block pair j and 32 of
 * pair j+1: the low nibbles are sub-blocks 2j and 2j+2, the high ones 2j+1 and
 * 2j+3. The activations are gathered to match with two 256-bit loads each.
 */
ALWAYS_INLINE float vec_dot_q4_K_512(int n, const void *w, const void *a, const int vnni)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i idx_lo0 = halves_of_words(0, 2), idx_hi0 = halves_of_words(1, 3);
    const __m512i idx_lo1 = halves_of_words(4, 6), idx_hi1 = halves_of_words(5, 7);
    __m512 acc = _mm512_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const float dmin = y[i].d * f16_scalar(x[i].dmin);
        uint32_t sc[2], mn[2];
        unpack_scales_k4(x[i].scales, sc, mn);
        acc_min = acc_k4_mins(acc_min, mn, y[i].bsums, dmin);
        const __m512i scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc[1], (int)sc[0])));
        const int8_t *q8 = y[i].qs;
        __m512i sumi = _mm512_setzero_si512();
        for (int jj = 0; jj < 2; jj++) {
            __m512i q = load512(x[i].qs + 64 * jj);
            __m512i lo = _mm512_and_si512(q, low4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
            __m512i a_lo = load_two_256(q8 + 128 * jj, q8 + 128 * jj + 64);
            __m512i a_hi = load_two_256(q8 + 128 * jj + 32, q8 + 128 * jj + 96);
            __m512i s_lo = _mm512_permutexvar_epi16(jj ? idx_lo1 : idx_lo0, scales);
            __m512i s_hi = _mm512_permutexvar_epi16(jj ? idx_hi1 : idx_hi0, scales);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(lo, a_lo), s_lo, vnni);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(hi, a_hi), s_hi, vnni);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc) - hsum_f32x4(acc_min);
}

ALWAYS_INLINE float vec_dot_q5_K_512(int n, const void *w, const void *a, const int vnni)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
    const __m512i idx_lo0 = halves_of_words(0, 2), idx_hi0 = halves_of_words(1, 3);
    const __m512i idx_lo1 = halves_of_words(4, 6), idx_hi1 = halves_of_words(5, 7);
    /* bit 2j of qh[l] is the fifth bit of element 64j+l: shift pair j's bits down to bit 0 */
    const __m512i shift0 = halves_of_words(0, 2), shift1 = halves_of_words(4, 6);
    __m512 acc = _mm512_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const float dmin = y[i].d * f16_scalar(x[i].dmin);
        uint32_t sc[2], mn[2];
        unpack_scales_k4(x[i].scales, sc, mn);
        acc_min = acc_k4_mins(acc_min, mn, y[i].bsums, dmin);
        const __m512i scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc[1], (int)sc[0])));
        const __m512i qh = _mm512_broadcast_i64x4(load256(x[i].qh));
        const int8_t *q8 = y[i].qs;
        __m512i sumi = _mm512_setzero_si512();
        for (int jj = 0; jj < 2; jj++) {
            __m512i q = load512(x[i].qs + 64 * jj);
            __m512i h = _mm512_srlv_epi16(qh, jj ? shift1 : shift0);
            __m512i lo = _mm512_or_si512(_mm512_and_si512(q, low4), _mm512_and_si512(_mm512_slli_epi16(h, 4), bit4));
            __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), low4),
                                         _mm512_and_si512(_mm512_slli_epi16(h, 3), bit4));
            __m512i a_lo = load_two_256(q8 + 128 * jj, q8 + 128 * jj + 64);
            __m512i a_hi = load_two_256(q8 + 128 * jj + 32, q8 + 128 * jj + 96);
            __m512i s_lo = _mm512_permutexvar_epi16(jj ? idx_lo1 : idx_lo0, scales);
            __m512i s_hi = _mm512_permutexvar_epi16(jj ? idx_hi1 : idx_hi0, scales);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(lo, a_lo), s_lo, vnni);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(hi, a_hi), s_hi, vnni);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc) - hsum_f32x4(acc_min);
}

/* int16 index vector: 8 lanes each of words k, k+1, k+2, k+3. */
static inline __m512i quarters_of_words(int k)
{
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16((short)(k + 1)), _mm_set1_epi16((short)k))),
        _mm256_set_m128i(_mm_set1_epi16((short)(k + 3)), _mm_set1_epi16((short)(k + 2))), 1);
}

/*
 * Q6_K: in each 128-element half, the 64 ql bytes' low nibbles are elements
 * 0..63 and their high nibbles 64..127, so one zmm of ql pairs with contiguous
 * activations. The 2-bit high parts come from the 32 qh bytes, shifted by a
 * different amount in each 256-bit half of the register.
 */
ALWAYS_INLINE float vec_dot_q6_K_512(int n, const void *w, const void *a, const int vnni)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    const int nb = n / QK_K;
    const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    const __m512i shl_first = halves_of_words(4, 2), shr_second = halves_of_words(0, 2);
    const __m512i idx[4] = {quarters_of_words(0), quarters_of_words(4), quarters_of_words(8), quarters_of_words(12)};
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const float d = y[i].d * f16_scalar(x[i].d);
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i scales = _mm512_castsi256_si512(scales16);
        /* weights are u - 32: start from -32 * sum(scale * bsum) */
        __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(scales16, load256(y[i].bsums)), 5);
        __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(corr));
        for (int half = 0; half < 2; half++) {
            __m512i l = load512(x[i].ql + 64 * half);
            __m512i h = _mm512_broadcast_i64x4(load256(x[i].qh + 32 * half));
            __m512i u0 = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_and_si512(_mm512_sllv_epi16(h, shl_first), bits45));
            __m512i u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                         _mm512_and_si512(_mm512_srlv_epi16(h, shr_second), bits45));
            const int8_t *q8 = y[i].qs + 128 * half;
            __m512i s0 = _mm512_permutexvar_epi16(idx[2 * half], scales);
            __m512i s1 = _mm512_permutexvar_epi16(idx[2 * half + 1], scales);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(u0, load512(q8)), s0, vnni);
            sumi = acc_scaled_pairs(sumi, _mm512_maddubs_epi16(u1, load512(q8 + 64)), s1, vnni);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static float vec_dot_q4_K_avx512(int n, const void *w, const void *a) { return vec_dot_q4_K_512(n, w, a, 0); }
static float vec_dot_q4_K_vnni(int n, const void *w, const void *a) { return vec_dot_q4_K_512(n, w, a, 1); }
static float vec_dot_q5_K_avx512(int n, const void *w, const void *a) { return vec_dot_q5_K_512(n, w, a, 0); }
static float vec_dot_q5_K_vnni(int n, const void *w, const void *a) { return vec_dot_q5_K_512(n, w, a, 1); }
static float vec_dot_q6_K_avx512(int n, const void *w, const void *a) { return vec_dot_q6_K_512(n, w, a, 0); }
static float vec_dot_q6_K_vnni(int n, const void *w, const void *a) { return vec_dot_q6_K_512(n, w, a, 1); }

/* ---- float formats --------------------------------------------------------- */

static float vec_dot_f32_avx512(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 64 <= n; k += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(y + k + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), _mm512_loadu_ps(y + k + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), _mm512_loadu_ps(y + k + 48), acc3);
    }
    for (; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + k), _mm512_maskz_loadu_ps(m, y + k), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

static inline __m512 load16_f16(const f16_t *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

static float vec_dot_f16_avx512(int n, const void *w, const void *a)
{
    const f16_t *x = w;
    const float *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 64 <= n; k += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(load256(x + k)), _mm512_loadu_ps(y + k), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(load256(x + k + 16)), _mm512_loadu_ps(y + k + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_cvtph_ps(load256(x + k + 32)), _mm512_loadu_ps(y + k + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_cvtph_ps(load256(x + k + 48)), _mm512_loadu_ps(y + k + 48), acc3);
    }
    for (; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        acc0 = _mm512_fmadd_ps(load16_f16(x + k, m), _mm512_maskz_loadu_ps(m, y + k), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

static void silu_mul_row_avx512(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(gate + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    silu_mul_row_ref(n - i, gate + i, up + i);
}

static void gelu_mul_row_avx512(int n, float *gate, const float *up)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(gate + i, gelu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    gelu_mul_row_ref(n - i, gate + i, up + i);
}

/* ---- the int8 step alone, for the compute ceiling ---------------------- */

/* Lane 0 of the probes' sums: the sums wrap, so they are not added up in C
 * (_mm512_reduce_add_epi32 adds in int, where wrapping is undefined). */
static inline int32_t first_lane(__m512i v) { return _mm_cvtsi128_si32(_mm512_castsi512_si128(v)); }

/* VNNI: the panel kernels' vpdpbusd (64 products into 16 int32 sums,
 * gemm_avx512.c). Eight independent sums cover its latency at two per cycle
 * (more make GCC spill them); the empty asm makes the weights look new to the
 * compiler each time, so no product is hoisted. */
static void int8_mac_probe_vnni(long rounds, int32_t *sink)
{
    __m512i w0 = _mm512_set1_epi8(3), w1 = _mm512_set1_epi8(5), w2 = _mm512_set1_epi8(7), w3 = _mm512_set1_epi8(9);
    const __m512i a0 = _mm512_set1_epi8(1), a1 = _mm512_set1_epi8(-2);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < INT8_PROBE_MACS / (8 * 64); k++) {
            __asm__ volatile("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
            s0 = _mm512_dpbusd_epi32(s0, w0, a0), s1 = _mm512_dpbusd_epi32(s1, w1, a0);
            s2 = _mm512_dpbusd_epi32(s2, w2, a0), s3 = _mm512_dpbusd_epi32(s3, w3, a0);
            s4 = _mm512_dpbusd_epi32(s4, w0, a1), s5 = _mm512_dpbusd_epi32(s5, w1, a1);
            s6 = _mm512_dpbusd_epi32(s6, w2, a1), s7 = _mm512_dpbusd_epi32(s7, w3, a1);
        }
    *sink = first_lane(_mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
                                        _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7))));
}

/* AVX-512 without VNNI: maddubs and an int16 add, as on AVX2 but 64 bytes wide. */
static void int8_mac_probe_avx512(long rounds, int32_t *sink)
{
    __m512i w0 = _mm512_set1_epi8(3), w1 = _mm512_set1_epi8(5), w2 = _mm512_set1_epi8(7), w3 = _mm512_set1_epi8(9);
    const __m512i a0 = _mm512_set1_epi8(1), a1 = _mm512_set1_epi8(-2);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < INT8_PROBE_MACS / (8 * 64); k++) {
            __asm__ volatile("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
            s0 = _mm512_add_epi16(s0, _mm512_maddubs_epi16(w0, a0));
            s1 = _mm512_add_epi16(s1, _mm512_maddubs_epi16(w1, a0));
            s2 = _mm512_add_epi16(s2, _mm512_maddubs_epi16(w2, a0));
            s3 = _mm512_add_epi16(s3, _mm512_maddubs_epi16(w3, a0));
            s0 = _mm512_add_epi16(s0, _mm512_maddubs_epi16(w0, a1));
            s1 = _mm512_add_epi16(s1, _mm512_maddubs_epi16(w1, a1));
            s2 = _mm512_add_epi16(s2, _mm512_maddubs_epi16(w2, a1));
            s3 = _mm512_add_epi16(s3, _mm512_maddubs_epi16(w3, a1));
        }
    *sink = first_lane(_mm512_add_epi16(_mm512_add_epi16(s0, s1), _mm512_add_epi16(s2, s3)));
}

void kernels_install_avx512(kernel_table *t, int vnni)
{
    t->int8_mac_probe = vnni ? int8_mac_probe_vnni : int8_mac_probe_avx512;
    t->silu_mul_row = silu_mul_row_avx512;
    t->gelu_mul_row = gelu_mul_row_avx512;
    t->vec_dot[QT_F32] = vec_dot_f32_avx512;
    t->vec_dot[QT_F16] = vec_dot_f16_avx512;
    t->vec_dot[QT_Q4_K] = vnni ? vec_dot_q4_K_vnni : vec_dot_q4_K_avx512;
    t->vec_dot[QT_Q5_K] = vnni ? vec_dot_q5_K_vnni : vec_dot_q5_K_avx512;
    t->vec_dot[QT_Q6_K] = vnni ? vec_dot_q6_K_vnni : vec_dot_q6_K_avx512;
    if (vnni) {
        t->vec_dot[QT_Q4_0] = vec_dot_q4_0_vnni512;
        t->vec_dot[QT_Q5_0] = vec_dot_q5_0_vnni512;
        t->vec_dot[QT_Q8_0] = vec_dot_q8_0_vnni512;
    }
}

#else

void kernels_install_avx512(kernel_table *t, int vnni)
{
    (void)t;
    (void)vnni;
}

#endif
