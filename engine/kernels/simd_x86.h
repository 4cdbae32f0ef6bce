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
static inline __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

/* Two 32-byte loads in one zmm (lo in the low half). */
static inline __m512i load_two_256(const void *lo, const void *hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(lo)), load256(hi), 1);
}
#endif

#endif
