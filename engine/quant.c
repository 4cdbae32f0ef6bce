/*
 * quant.c - scalar reference for every tensor element type.
 *
 * For each type there are three small functions:
 *
 *   dequantize_row_T  block bytes -> f32, following the public GGUF/ggml
 *                     block layout (see the structs in quant.h);
 *   vec_dot_T         dot product of one weight row with one activation row
 *                     in the type's activation format. Each weight block is
 *                     first unpacked into small signed integers, multiplied
 *                     with the int8 activations in integer arithmetic, and
 *                     only the per-block (or per-sub-block) integer sum is
 *                     scaled in float. Offsets ("mins") use the activation
 *                     block's precomputed sums (block_q8_32.s, block_q8_K.bsums)
 *                     so they cost one multiply per block, not per element;
 *   quantize_row_T    f32 -> block bytes, a plain round-to-nearest quantizer
 *                     used for tests and benchmark models. It produces valid
 *                     blocks, not the reference quantizer's exact bits.
 *
 * Activation quantization (q8_32, q8_K) is symmetric absmax: d = amax / 127,
 * q = round-to-nearest-even(x / d) clamped to [-127, 127]; q8_32 also stores
 * s = d * sum(q), q8_K stores bsums = sums of each group of 16 q.
 *
 * The code favours clarity: unpack to an int8 array, then a plain integer
 * loop the compiler can vectorize. The SIMD kernels in engine/kernels/ are
 * checked against these functions, and the functions themselves are checked
 * against the independent Python `gguf` package (tests/test_quant_oracle.py).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------ float bit helpers */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/*
 * f16 -> f32 is exact and branch-free (so loops over it vectorize):
 *  - normal/inf/NaN: the exponent and mantissa bits move to their f32
 *    positions with 224 added to the exponent, so f16 exponent 31 becomes
 *    255 (inf/NaN, unchanged by scaling); multiplying by 2^-112 then gives
 *    finite values the f32 bias (e - 15 + 127 = e + 224 - 112);
 *  - subnormal (exponent 0): the value is mantissa * 2^-24, exact in f32.
 */
float f16_to_f32(f16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t magnitude = h & 0x7fffu;
    float normal = f32_from_bits((magnitude << 13) + (224u << 23)) * 0x1p-112f;
    float subnormal = (float)magnitude * 0x1p-24f;
    float r = magnitude < 0x0400 ? subnormal : normal;
    return f32_from_bits(f32_bits(r) | sign);
}

/*
 * f32 -> f16 with round-to-nearest-even. NaN stays a (quiet) NaN, values
 * from 65520 up become inf, values below 2^-14 become subnormals or zero.
 */
f16_t f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) { /* inf or NaN */
        uint16_t nan_bits = x > 0x7f800000u ? (uint16_t)(0x200 | ((x >> 13) & 0x3ff)) : 0;
        return (f16_t)(sign | 0x7c00 | nan_bits);
    }
    if (x >= 0x477ff000u) return (f16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                                /* below 2^-14: subnormal */
        uint32_t exp = x >> 23;
        if (exp < 102) return sign; /* below 2^-25: rounds to zero */
        uint32_t mant = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp; /* value = mant >> shift units of 2^-24 */
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (f16_t)(sign | q);
    }
    /* normal: re-bias, then round the 13 dropped bits to nearest even; a
     * carry out of the mantissa correctly bumps the exponent */
    uint32_t r = x - ((127u - 15u) << 23);
    r += 0xfffu + ((r >> 13) & 1);
    return (f16_t)(sign | (r >> 13));
}

float bf16_to_f32(bf16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* Round-to-nearest-even; NaN is kept (and made quiet) rather than rounded to inf. */
bf16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (bf16_t)(x >> 16);
}

/* ------------------------------------------------------------ small math */

const int8_t iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Round to nearest, ties to even: adding 1.5 * 2^23 leaves the integer part
 * in the low mantissa bits. Inputs are clamped to +-2^22 where this is exact. */
static inline int nearest_int(float v)
{
    v = fminf(fmaxf(v, -4194303.0f), 4194303.0f);
    float shifted = v + 12582912.0f;
    return (int)(f32_bits(shifted) & 0x7fffffu) - 0x400000;
}

static inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline int dot_i8(const int8_t *a, const int8_t *b, int n)
{
    int sum = 0;
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* The x with the largest |x| (keeping its sign), and that |x|. */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            max = x[i];
        }
    }
    if (amax_out) *amax_out = amax;
    return max;
}

/* ------------------------------------------------------ float row types */

static void dequantize_row_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const f16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(h[i]);
}

static void dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const bf16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(h[i]);
}

static float vec_dot_f32(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i] * y[i];
    return sum;
}

static float vec_dot_f16(int n, const void *w, const void *a)
{
    const f16_t *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += f16_to_f32(x[i]) * y[i];
    return sum;
}

static float vec_dot_bf16(int n, const void *w, const void *a)
{
    const bf16_t *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += bf16_to_f32(x[i]) * y[i];
    return sum;
}

/* --------------------------------------------- 32-element weight formats */

/*
 * Q4_0, Q4_1, IQ4_NL: element i < 16 is the low nibble of qs[i], element
 * i + 16 the high nibble. Q5_0/Q5_1 add bit i of the little-endian 32-bit qh
 * as the fifth bit of element i.
 */
static inline void unpack_nibbles_32(const uint8_t *qs, uint8_t q[QK32])
{
    for (int i = 0; i < QK32 / 2; i++) {
        q[i] = qs[i] & 0x0f;
        q[i + QK32 / 2] = qs[i] >> 4;
    }
}

static inline void unpack_5bit_32(const uint8_t *qs, const uint8_t qh_bytes[4], uint8_t q[QK32])
{
    uint32_t qh = (uint32_t)qh_bytes[0] | (uint32_t)qh_bytes[1] << 8 | (uint32_t)qh_bytes[2] << 16 |
                  (uint32_t)qh_bytes[3] << 24;
    unpack_nibbles_32(qs, q);
    for (int i = 0; i < QK32; i++) q[i] |= (uint8_t)(((qh >> i) & 1) << 4);
}

static inline void pack_nibbles_32(const uint8_t q[QK32], uint8_t *qs)
{
    for (int i = 0; i < QK32 / 2; i++) qs[i] = (uint8_t)(q[i] | (q[i + QK32 / 2] << 4));
}

static inline void pack_5bit_32(const uint8_t q[QK32], uint8_t *qs, uint8_t qh_bytes[4])
{
    uint8_t low[QK32];
    uint32_t qh = 0;
    for (int i = 0; i < QK32; i++) {
        low[i] = q[i] & 0x0f;
        qh |= (uint32_t)(q[i] >> 4) << i;
    }
    pack_nibbles_32(low, qs);
    for (int b = 0; b < 4; b++) qh_bytes[b] = (uint8_t)(qh >> (8 * b));
}

/* Q4_0: x = d * (q - 8) */
static void dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        uint8_t q[QK32];
        float d = f16_to_f32(b[i].d);
        unpack_nibbles_32(b[i].qs, q);
        for (int j = 0; j < QK32; j++) dst[j] = d * (float)((int)q[j] - 8);
    }
}

static float vec_dot_q4_0(int n, const void *w, const void *a)
{
    const block_q4_0 *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++) {
        uint8_t u[QK32];
        int8_t q[QK32];
        unpack_nibbles_32(x[i].qs, u);
        for (int j = 0; j < QK32; j++) q[j] = (int8_t)(u[j] - 8);
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(q, y[i].qs, QK32);
    }
    return sum;
}

static void quantize_row_q4_0(const float *x, void *dst, int64_t n)
{
    block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float max = signed_absmax(x, QK32, NULL);
        float d = max / -8.0f; /* the largest |x| maps to q - 8 = -8 */
        b[i].d = f32_to_f16(d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK32];
        for (int j = 0; j < QK32; j++) q[j] = (uint8_t)clamp_int(nearest_int(x[j] * id) + 8, 0, 15);
        pack_nibbles_32(q, b[i].qs);
    }
}

/* Q4_1: x = d * q + m */
static void dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        uint8_t q[QK32];
        float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        unpack_nibbles_32(b[i].qs, q);
        for (int j = 0; j < QK32; j++) dst[j] = d * (float)q[j] + m;
    }
}

static float vec_dot_q4_1(int n, const void *w, const void *a)
{
    const block_q4_1 *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++) {
        uint8_t u[QK32];
        int8_t q[QK32];
        unpack_nibbles_32(x[i].qs, u);
        for (int j = 0; j < QK32; j++) q[j] = (int8_t)u[j];
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(q, y[i].qs, QK32) + f16_to_f32(x[i].m) * y[i].s;
    }
    return sum;
}

/* Asymmetric min/max quantizer shared by Q4_1 and Q5_1 (nmax = 15 or 31). */
static void quantize_minmax_32(const float *x, int nmax, f16_t *d_out, f16_t *m_out, uint8_t q[QK32])
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < QK32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *d_out = f32_to_f16((hi - lo) / (float)nmax);
    *m_out = f32_to_f16(lo);
    float d = f16_to_f32(*d_out), m = f16_to_f32(*m_out);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK32; j++) q[j] = (uint8_t)clamp_int(nearest_int((x[j] - m) * id), 0, nmax);
}

static void quantize_row_q4_1(const float *x, void *dst, int64_t n)
{
    block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        uint8_t q[QK32];
        quantize_minmax_32(x, 15, &b[i].d, &b[i].m, q);
        pack_nibbles_32(q, b[i].qs);
    }
}

/* Q5_0: x = d * (q - 16) */
static void dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        uint8_t q[QK32];
        float d = f16_to_f32(b[i].d);
        unpack_5bit_32(b[i].qs, b[i].qh, q);
        for (int j = 0; j < QK32; j++) dst[j] = d * (float)((int)q[j] - 16);
    }
}

static float vec_dot_q5_0(int n, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++) {
        uint8_t u[QK32];
        int8_t q[QK32];
        unpack_5bit_32(x[i].qs, x[i].qh, u);
        for (int j = 0; j < QK32; j++) q[j] = (int8_t)(u[j] - 16);
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(q, y[i].qs, QK32);
    }
    return sum;
}

static void quantize_row_q5_0(const float *x, void *dst, int64_t n)
{
    block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float max = signed_absmax(x, QK32, NULL);
        float d = max / -16.0f;
        b[i].d = f32_to_f16(d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK32];
        for (int j = 0; j < QK32; j++) q[j] = (uint8_t)clamp_int(nearest_int(x[j] * id) + 16, 0, 31);
        pack_5bit_32(q, b[i].qs, b[i].qh);
    }
}

/* Q5_1: x = d * q + m */
static void dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        uint8_t q[QK32];
        float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
        unpack_5bit_32(b[i].qs, b[i].qh, q);
        for (int j = 0; j < QK32; j++) dst[j] = d * (float)q[j] + m;
    }
}

static float vec_dot_q5_1(int n, const void *w, const void *a)
{
    const block_q5_1 *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++) {
        uint8_t u[QK32];
        int8_t q[QK32];
        unpack_5bit_32(x[i].qs, x[i].qh, u);
        for (int j = 0; j < QK32; j++) q[j] = (int8_t)u[j];
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(q, y[i].qs, QK32) + f16_to_f32(x[i].m) * y[i].s;
    }
    return sum;
}

static void quantize_row_q5_1(const float *x, void *dst, int64_t n)
{
    block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        uint8_t q[QK32];
        quantize_minmax_32(x, 31, &b[i].d, &b[i].m, q);
        pack_5bit_32(q, b[i].qs, b[i].qh);
    }
}

/* Q8_0: x = d * q */
static void dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK32; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

static float vec_dot_q8_0(int n, const void *w, const void *a)
{
    const block_q8_0 *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++)
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(x[i].qs, y[i].qs, QK32);
    return sum;
}

static void quantize_row_q8_0(const float *x, void *dst, int64_t n)
{
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float amax;
        signed_absmax(x, QK32, &amax);
        float d = amax / 127.0f;
        b[i].d = f32_to_f16(d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK32; j++) b[i].qs[j] = (int8_t)clamp_int(nearest_int(x[j] * id), -127, 127);
    }
}

/* IQ4_NL: x = d * iq4nl_values[q] (a non-linear 4-bit grid) */
static void dequantize_row_iq4_nl(const void *src, float *dst, int64_t n)
{
    const block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / QK32; i++, dst += QK32) {
        uint8_t q[QK32];
        float d = f16_to_f32(b[i].d);
        unpack_nibbles_32(b[i].qs, q);
        for (int j = 0; j < QK32; j++) dst[j] = d * (float)iq4nl_values[q[j]];
    }
}

static float vec_dot_iq4_nl(int n, const void *w, const void *a)
{
    const block_iq4_nl *x = w;
    const block_q8_32 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK32; i++) {
        uint8_t u[QK32];
        int8_t q[QK32];
        unpack_nibbles_32(x[i].qs, u);
        for (int j = 0; j < QK32; j++) q[j] = iq4nl_values[u[j]];
        sum += f16_to_f32(x[i].d) * y[i].d * (float)dot_i8(q, y[i].qs, QK32);
    }
    return sum;
}

/* Index of the grid value nearest to v (the grid is sorted ascending). */
static int iq4nl_nearest(float v)
{
    int best = 0;
    float best_err = fabsf(v - (float)iq4nl_values[0]);
    for (int k = 1; k < 16; k++) {
        float err = fabsf(v - (float)iq4nl_values[k]);
        if (err < best_err) {
            best_err = err;
            best = k;
        }
    }
    return best;
}

/* Quantizes n values with scale d onto the IQ4_NL grid (d == 0 gives index 8, value 1 * 0). */
static void iq4nl_quantize_values(const float *x, int n, float d, uint8_t *q)
{
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++) q[j] = (uint8_t)iq4nl_nearest(x[j] * id);
}

static void quantize_row_iq4_nl(const float *x, void *dst, int64_t n)
{
    block_iq4_nl *b = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += QK32) {
        float max = signed_absmax(x, QK32, NULL);
        b[i].d = f32_to_f16(max / (float)iq4nl_values[0]); /* the largest |x| maps to -127 */
        uint8_t q[QK32];
        iq4nl_quantize_values(x, QK32, f16_to_f32(b[i].d), q);
        pack_nibbles_32(q, b[i].qs);
    }
}

/* ------------------------------------------------ k-quant super-blocks */

/*
 * Bit placement shared by Q2_K and Q3_K's low two bits: the 256 elements
 * are two halves of 128; in half h, element 32*g + l sits in bits 2g..2g+1
 * of qs[32h + l].
 */
static void unpack_2bit_256(const uint8_t *qs, uint8_t q[QK_K])
{
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * g + l] = (qs[32 * h + l] >> (2 * g)) & 3;
}

static void pack_2bit_256(const uint8_t q[QK_K], uint8_t *qs)
{
    memset(qs, 0, QK_K / 4);
    for (int k = 0; k < QK_K; k++) {
        int h = k / 128, g = (k % 128) / 32, l = k % 32;
        qs[32 * h + l] |= (uint8_t)((q[k] & 3) << (2 * g));
    }
}

/* Q4_K/Q5_K: element 64c + l (l < 32) is the low nibble of qs[32c + l],
 * element 64c + 32 + l its high nibble. */
static void unpack_4bit_256(const uint8_t *qs, uint8_t q[QK_K])
{
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[32 * c + l] & 0x0f;
            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
}

static void pack_4bit_256(const uint8_t q[QK_K], uint8_t *qs)
{
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)((q[64 * c + l] & 0x0f) | (q[64 * c + 32 + l] << 4));
}

/* One bit per element over 32 bytes: element 32m + l is bit m of bits[l]
 * (Q3_K hmask, Q5_K qh). */
static void unpack_bits_256(const uint8_t *bits, uint8_t out[QK_K])
{
    for (int m = 0; m < 8; m++)
        for (int l = 0; l < 32; l++) out[32 * m + l] = (bits[l] >> m) & 1;
}

static void pack_bits_256(const uint8_t q[QK_K], int bit, uint8_t *bits)
{
    memset(bits, 0, QK_K / 8);
    for (int k = 0; k < QK_K; k++) bits[k % 32] |= (uint8_t)(((q[k] >> bit) & 1) << (k / 32));
}

/*
 * Q4_K/Q5_K scales: eight 6-bit scales and eight 6-bit mins in 12 bytes.
 * Sub-blocks 0..3 use the low 6 bits of bytes 0..3 (scale) and 4..7 (min);
 * sub-blocks 4..7 take their low 4 bits from the nibbles of bytes 8..11 and
 * their high 2 bits from the top bits of bytes 0..3 (scale) and 4..7 (min).
 */
static void k4_scale_min(const uint8_t *s, int j, int *scale, int *min)
{
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void k4_pack_scale_min(const uint8_t scale[8], const uint8_t min[8], uint8_t s[K_SCALE_SIZE])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((scale[j] & 63) | ((scale[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((min[j] & 63) | ((min[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((scale[j + 4] & 0x0f) | ((min[j + 4] & 0x0f) << 4));
    }
}

/*
 * Q3_K scales: sixteen 6-bit values stored with a +32 bias. Scale i takes
 * its low 4 bits from byte i % 8 (low nibble for i < 8, high for i >= 8)
 * and its high 2 bits from byte 8 + i % 4 at bit 2 * (i / 4).
 */
static int q3k_scale(const uint8_t *s, int i)
{
    int low = (s[i % 8] >> (4 * (i / 8))) & 0x0f;
    int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | (high << 4)) - 32;
}

static void q3k_pack_scales(const int8_t scale[16], uint8_t s[12])
{
    memset(s, 0, 12);
    for (int i = 0; i < 16; i++) {
        int v = scale[i] + 32;
        s[i % 8] |= (uint8_t)((v & 0x0f) << (4 * (i / 8)));
        s[8 + i % 4] |= (uint8_t)((v >> 4) << (2 * (i / 4)));
    }
}

/* IQ4_XS: eight 6-bit scales with a +32 bias; low 4 bits in the nibbles of
 * scales_l (sub-block 2j low nibble, 2j+1 high nibble), high 2 bits in
 * scales_h at bit 2 * ib. */
static int iq4xs_scale(const block_iq4_xs *b, int ib)
{
    int low = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    int high = (b->scales_h >> (2 * ib)) & 3;
    return (low | (high << 4)) - 32;
}

/* Unpacked integer contents of one super-block: q[k] is the element's
 * integer level, scale/min per sub-block of `sub` elements. */

static void q2k_unpack(const block_q2_K *b, int8_t q[QK_K])
{
    uint8_t u[QK_K];
    unpack_2bit_256(b->qs, u);
    for (int k = 0; k < QK_K; k++) q[k] = (int8_t)u[k];
}

static void q3k_unpack(const block_q3_K *b, int8_t q[QK_K])
{
    uint8_t u[QK_K], high[QK_K];
    unpack_2bit_256(b->qs, u);
    unpack_bits_256(b->hmask, high);
    /* a set hmask bit means no -4 offset */
    for (int k = 0; k < QK_K; k++) q[k] = (int8_t)(u[k] - 4 + 4 * high[k]);
}

static void q4k_unpack(const block_q4_K *b, int8_t q[QK_K])
{
    uint8_t u[QK_K];
    unpack_4bit_256(b->qs, u);
    for (int k = 0; k < QK_K; k++) q[k] = (int8_t)u[k];
}

static void q5k_unpack(const block_q5_K *b, int8_t q[QK_K])
{
    uint8_t u[QK_K], high[QK_K];
    unpack_4bit_256(b->qs, u);
    unpack_bits_256(b->qh, high);
    for (int k = 0; k < QK_K; k++) q[k] = (int8_t)(u[k] | (high[k] << 4));
}

/*
 * Q6_K: two halves of 128; in half h, element 32*g + l (g = 0..3) has its
 * low 4 bits in ql[64h + l + 32*(g & 1)] (low nibble for g < 2, high for
 * g >= 2) and its high 2 bits at bit 2g of qh[32h + l]. Value q - 32.
 */
static void q6k_unpack(const block_q6_K *b, int8_t q[QK_K])
{
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 4; g++) {
            const uint8_t *ql = b->ql + 64 * h + 32 * (g & 1), *qh = b->qh + 32 * h;
            int8_t *out = q + 128 * h + 32 * g;
            for (int l = 0; l < 32; l++) {
                int low = (ql[l] >> (4 * (g >> 1))) & 0x0f;
                int high = (qh[l] >> (2 * g)) & 3;
                out[l] = (int8_t)((low | (high << 4)) - 32);
            }
        }
}

static void q6k_pack(const uint8_t u[QK_K], block_q6_K *b)
{
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int k = 0; k < QK_K; k++) {
        int h = k / 128, g = (k % 128) / 32, l = k % 32;
        b->ql[64 * h + l + 32 * (g & 1)] |= (uint8_t)((u[k] & 0x0f) << (4 * (g >> 1)));
        b->qh[32 * h + l] |= (uint8_t)((u[k] >> 4) << (2 * g));
    }
}

static void iq4xs_unpack(const block_iq4_xs *b, int8_t q[QK_K])
{
    for (int ib = 0; ib < QK_K / 32; ib++) {
        const uint8_t *qs = b->qs + 16 * ib;
        for (int l = 0; l < 16; l++) {
            q[32 * ib + l] = iq4nl_values[qs[l] & 0x0f];
            q[32 * ib + 16 + l] = iq4nl_values[qs[l] >> 4];
        }
    }
}

/* Q2_K: 16 sub-blocks of 16, x = d * sc * q - dmin * m (sc, m are 4 bits) */
static void dequantize_row_q2_K(const void *src, float *dst, int64_t n)
{
    const block_q2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        q2k_unpack(&b[i], q);
        for (int j = 0; j < 16; j++) {
            float dl = d * (float)(b[i].scales[j] & 0x0f), ml = dmin * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) dst[16 * j + l] = dl * (float)q[16 * j + l] - ml;
        }
    }
}

static float vec_dot_q2_K(int n, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q2k_unpack(&x[i], q);
        int scaled = 0, mins = 0;
        for (int j = 0; j < 16; j++) {
            scaled += (x[i].scales[j] & 0x0f) * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
            mins += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        sum += y[i].d * (f16_to_f32(x[i].d) * (float)scaled - f16_to_f32(x[i].dmin) * (float)mins);
    }
    return sum;
}

/*
 * Shared asymmetric quantizer for Q2_K/Q4_K/Q5_K: each sub-block of `sub`
 * elements gets scale s_j = (hi - lo) / nmax and min m_j = -lo (lo <= 0);
 * those are quantized to `scale_bits` with super-block factors d, dmin
 * (stored as f16), then each element to round((x + m) / s) in [0, nmax].
 */
static void quantize_k_asymmetric(const float *x, int sub, int nmax, int scale_max, f16_t *d_out, f16_t *dmin_out,
                                  uint8_t *ls, uint8_t *lm, uint8_t q[QK_K])
{
    int n_sub = QK_K / sub;
    float scale[16], min[16], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < n_sub; j++) {
        const float *xs = x + sub * j;
        float lo = 0.0f, hi = xs[0];
        for (int l = 0; l < sub; l++) {
            lo = fminf(lo, xs[l]);
            hi = fmaxf(hi, xs[l]);
        }
        scale[j] = (hi - lo) / (float)nmax;
        min[j] = -lo;
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, min[j]);
    }
    *d_out = f32_to_f16(max_scale / (float)scale_max);
    *dmin_out = f32_to_f16(max_min / (float)scale_max);
    float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
    for (int j = 0; j < n_sub; j++) {
        ls[j] = (uint8_t)(d > 0.0f ? clamp_int(nearest_int(scale[j] / d), 0, scale_max) : 0);
        lm[j] = (uint8_t)(dmin > 0.0f ? clamp_int(nearest_int(min[j] / dmin), 0, scale_max) : 0);
        float s = d * (float)ls[j], m = dmin * (float)lm[j];
        float is = s > 0.0f ? 1.0f / s : 0.0f;
        for (int l = 0; l < sub; l++) {
            int k = sub * j + l;
            q[k] = (uint8_t)clamp_int(nearest_int((x[k] + m) * is), 0, nmax);
        }
    }
}

static void quantize_row_q2_K(const float *x, void *dst, int64_t n)
{
    block_q2_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[16], lm[16], q[QK_K];
        quantize_k_asymmetric(x, 16, 3, 15, &b[i].d, &b[i].dmin, ls, lm, q);
        for (int j = 0; j < 16; j++) b[i].scales[j] = (uint8_t)(ls[j] | (lm[j] << 4));
        pack_2bit_256(q, b[i].qs);
    }
}

/* Q3_K: 16 sub-blocks of 16, x = d * sc * q with sc in [-32, 31], q in [-4, 3] */
static void dequantize_row_q3_K(const void *src, float *dst, int64_t n)
{
    const block_q3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d);
        q3k_unpack(&b[i], q);
        for (int j = 0; j < 16; j++) {
            float dl = d * (float)q3k_scale(b[i].scales, j);
            for (int l = 0; l < 16; l++) dst[16 * j + l] = dl * (float)q[16 * j + l];
        }
    }
}

static float vec_dot_q3_K(int n, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q3k_unpack(&x[i], q);
        int scaled = 0;
        for (int j = 0; j < 16; j++) scaled += q3k_scale(x[i].scales, j) * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += f16_to_f32(x[i].d) * y[i].d * (float)scaled;
    }
    return sum;
}

/*
 * Shared symmetric quantizer for Q3_K/Q6_K/IQ4_XS-like layouts: each
 * sub-block's scale s_j = (its largest |x|, signed) / -qneg so that value
 * maps to the most negative level; the s_j become signed integers
 * l_j in [-scale_max, scale_max] times one f16 d.
 */
static void quantize_k_symmetric_scales(const float *x, int sub, float qneg, int scale_max, f16_t *d_out,
                                        int8_t *l_out, float *eff_scale)
{
    int n_sub = QK_K / sub;
    float s[16], amax_s = 0.0f;
    for (int j = 0; j < n_sub; j++) {
        s[j] = signed_absmax(x + sub * j, sub, NULL) / -qneg;
        amax_s = fmaxf(amax_s, fabsf(s[j]));
    }
    *d_out = f32_to_f16(amax_s / (float)scale_max);
    float d = f16_to_f32(*d_out);
    for (int j = 0; j < n_sub; j++) {
        l_out[j] = (int8_t)(d > 0.0f ? clamp_int(nearest_int(s[j] / d), -scale_max, scale_max) : 0);
        eff_scale[j] = d * (float)l_out[j];
    }
}

static void quantize_row_q3_K(const float *x, void *dst, int64_t n)
{
    block_q3_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t l[16];
        float s[16];
        uint8_t u[QK_K];
        quantize_k_symmetric_scales(x, 16, 4.0f, 31, &b[i].d, l, s);
        for (int k = 0; k < QK_K; k++) {
            float is = s[k / 16] != 0.0f ? 1.0f / s[k / 16] : 0.0f;
            u[k] = (uint8_t)(clamp_int(nearest_int(x[k] * is), -4, 3) + 4); /* 0..7 */
        }
        q3k_pack_scales(l, b[i].scales);
        pack_2bit_256(u, b[i].qs);
        pack_bits_256(u, 2, b[i].hmask);
    }
}

/* Q4_K: 8 sub-blocks of 32, x = d * sc * q - dmin * m (sc, m are 6 bits) */
static void dequantize_row_q4_K(const void *src, float *dst, int64_t n)
{
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        q4k_unpack(&b[i], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[32 * j + l] = dl * (float)q[32 * j + l] - ml;
        }
    }
}

/* Q4_K and Q5_K differ only in how q is unpacked. */
static float dot_k4_block(const int8_t q[QK_K], const uint8_t *scales, float d, float dmin, const block_q8_K *y)
{
    int scaled = 0, mins = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_scale_min(scales, j, &sc, &m);
        scaled += sc * dot_i8(q + 32 * j, y->qs + 32 * j, 32);
        mins += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return y->d * (d * (float)scaled - dmin * (float)mins);
}

static float vec_dot_q4_K(int n, const void *w, const void *a)
{
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q4k_unpack(&x[i], q);
        sum += dot_k4_block(q, x[i].scales, f16_to_f32(x[i].d), f16_to_f32(x[i].dmin), &y[i]);
    }
    return sum;
}

static void quantize_row_q4_K(const float *x, void *dst, int64_t n)
{
    block_q4_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        quantize_k_asymmetric(x, 32, 15, 63, &b[i].d, &b[i].dmin, ls, lm, q);
        k4_pack_scale_min(ls, lm, b[i].scales);
        pack_4bit_256(q, b[i].qs);
    }
}

/* Q5_K: as Q4_K with a fifth bit from qh */
static void dequantize_row_q5_K(const void *src, float *dst, int64_t n)
{
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        q5k_unpack(&b[i], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[32 * j + l] = dl * (float)q[32 * j + l] - ml;
        }
    }
}

static float vec_dot_q5_K(int n, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q5k_unpack(&x[i], q);
        sum += dot_k4_block(q, x[i].scales, f16_to_f32(x[i].d), f16_to_f32(x[i].dmin), &y[i]);
    }
    return sum;
}

static void quantize_row_q5_K(const float *x, void *dst, int64_t n)
{
    block_q5_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        quantize_k_asymmetric(x, 32, 31, 63, &b[i].d, &b[i].dmin, ls, lm, q);
        k4_pack_scale_min(ls, lm, b[i].scales);
        pack_4bit_256(q, b[i].qs);
        pack_bits_256(q, 4, b[i].qh);
    }
}

/* Q6_K: 16 sub-blocks of 16, x = d * sc * q with sc int8, q in [-32, 31] */
static void dequantize_row_q6_K(const void *src, float *dst, int64_t n)
{
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d);
        q6k_unpack(&b[i], q);
        for (int j = 0; j < 16; j++) {
            float dl = d * (float)b[i].scales[j];
            for (int l = 0; l < 16; l++) dst[16 * j + l] = dl * (float)q[16 * j + l];
        }
    }
}

static float vec_dot_q6_K(int n, const void *w, const void *a)
{
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q6k_unpack(&x[i], q);
        int scaled = 0;
        for (int j = 0; j < 16; j++) scaled += x[i].scales[j] * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += f16_to_f32(x[i].d) * y[i].d * (float)scaled;
    }
    return sum;
}

static void quantize_row_q6_K(const float *x, void *dst, int64_t n)
{
    block_q6_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t l[16];
        float s[16];
        uint8_t u[QK_K];
        quantize_k_symmetric_scales(x, 16, 32.0f, 127, &b[i].d, l, s);
        for (int j = 0; j < 16; j++) b[i].scales[j] = l[j];
        for (int k = 0; k < QK_K; k++) {
            float is = s[k / 16] != 0.0f ? 1.0f / s[k / 16] : 0.0f;
            u[k] = (uint8_t)(clamp_int(nearest_int(x[k] * is), -32, 31) + 32); /* 0..63 */
        }
        q6k_pack(u, &b[i]);
    }
}

/* IQ4_XS: 8 sub-blocks of 32, x = d * (ls - 32) * iq4nl_values[q] */
static void dequantize_row_iq4_xs(const void *src, float *dst, int64_t n)
{
    const block_iq4_xs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        int8_t q[QK_K];
        float d = f16_to_f32(b[i].d);
        iq4xs_unpack(&b[i], q);
        for (int j = 0; j < 8; j++) {
            float dl = d * (float)iq4xs_scale(&b[i], j);
            for (int l = 0; l < 32; l++) dst[32 * j + l] = dl * (float)q[32 * j + l];
        }
    }
}

static float vec_dot_iq4_xs(int n, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        iq4xs_unpack(&x[i], q);
        int scaled = 0;
        for (int j = 0; j < 8; j++) scaled += iq4xs_scale(&x[i], j) * dot_i8(q + 32 * j, y[i].qs + 32 * j, 32);
        sum += f16_to_f32(x[i].d) * y[i].d * (float)scaled;
    }
    return sum;
}

static void quantize_row_iq4_xs(const float *x, void *dst, int64_t n)
{
    block_iq4_xs *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t l[8];
        float s[8];
        quantize_k_symmetric_scales(x, 32, 127.0f, 31, &b[i].d, l, s);
        b[i].scales_h = 0;
        memset(b[i].scales_l, 0, sizeof b[i].scales_l);
        for (int ib = 0; ib < 8; ib++) {
            int v = l[ib] + 32;
            b[i].scales_l[ib / 2] |= (uint8_t)((v & 0x0f) << (4 * (ib % 2)));
            b[i].scales_h |= (uint16_t)((v >> 4) << (2 * ib));
            uint8_t q[32];
            iq4nl_quantize_values(x + 32 * ib, 32, s[ib], q);
            for (int j = 0; j < 16; j++) b[i].qs[16 * ib + j] = (uint8_t)(q[j] | (q[j + 16] << 4));
        }
    }
}

/* --------------------------------------------------- float quantizers */

static void quantize_row_f32(const float *x, void *dst, int64_t n) { memcpy(dst, x, (size_t)n * sizeof(float)); }

static void quantize_row_f16(const float *x, void *dst, int64_t n)
{
    f16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(x[i]);
}

static void quantize_row_bf16(const float *x, void *dst, int64_t n)
{
    bf16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(x[i]);
}

/* ------------------------------------------------ activation quantizers */

/* Symmetric absmax to int8: returns d, writes q. */
static float quantize_absmax_i8(const float *x, int n, int8_t *q)
{
    float amax;
    signed_absmax(x, n, &amax);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++) q[j] = (int8_t)clamp_int(nearest_int(x[j] * id), -127, 127);
    return d;
}

/*
 * The scale and the sum are rounded through f16 and the quants use the
 * multiplier 127/amax: exactly the activations the reference implementation
 * computes for its 32-element formats, so our logits match its to the last
 * bits rather than differing by an int8 rounding here and there.
 */
void quantize_row_q8_32_ref(const float *x, void *dst, int n)
{
    block_q8_32 *b = dst;
    for (int i = 0; i < n / QK32; i++, x += QK32) {
        float amax;
        signed_absmax(x, QK32, &amax);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK32; j++) {
            b[i].qs[j] = (int8_t)clamp_int(nearest_int(x[j] * id), -127, 127);
            sum += b[i].qs[j];
        }
        b[i].d = f16_to_f32(f32_to_f16(amax / 127.0f));
        b[i].s = f16_to_f32(f32_to_f16(amax / 127.0f * (float)sum));
        b[i].sum = sum;
    }
}

void quantize_row_q8_K_ref(const float *x, void *dst, int n)
{
    block_q8_K *b = dst;
    for (int i = 0; i < n / QK_K; i++, x += QK_K) {
        b[i].d = quantize_absmax_i8(x, QK_K, b[i].qs);
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)sum;
        }
    }
}

/* ------------------------------------------------------------- traits */

typedef void (*quantize_row_fn)(const float *x, void *dst, int64_t n);

typedef struct {
    quant_traits traits;
    quantize_row_fn quantize_row;
} type_entry;

#define TYPE_ENTRY(id, NAME, bs, block, act, suffix)                                                         \
    [id] = {{NAME, bs, sizeof(block), act, dequantize_row_##suffix, vec_dot_##suffix}, quantize_row_##suffix}

static const type_entry type_table[QT_COUNT] = {
    TYPE_ENTRY(QT_F32, "F32", 1, float, ACT_F32, f32),
    TYPE_ENTRY(QT_F16, "F16", 1, f16_t, ACT_F32, f16),
    TYPE_ENTRY(QT_BF16, "BF16", 1, bf16_t, ACT_F32, bf16),
    TYPE_ENTRY(QT_Q4_0, "Q4_0", QK32, block_q4_0, ACT_Q8_32, q4_0),
    TYPE_ENTRY(QT_Q4_1, "Q4_1", QK32, block_q4_1, ACT_Q8_32, q4_1),
    TYPE_ENTRY(QT_Q5_0, "Q5_0", QK32, block_q5_0, ACT_Q8_32, q5_0),
    TYPE_ENTRY(QT_Q5_1, "Q5_1", QK32, block_q5_1, ACT_Q8_32, q5_1),
    TYPE_ENTRY(QT_Q8_0, "Q8_0", QK32, block_q8_0, ACT_Q8_32, q8_0),
    TYPE_ENTRY(QT_IQ4_NL, "IQ4_NL", QK32, block_iq4_nl, ACT_Q8_32, iq4_nl),
    TYPE_ENTRY(QT_Q2_K, "Q2_K", QK_K, block_q2_K, ACT_Q8_K, q2_K),
    TYPE_ENTRY(QT_Q3_K, "Q3_K", QK_K, block_q3_K, ACT_Q8_K, q3_K),
    TYPE_ENTRY(QT_Q4_K, "Q4_K", QK_K, block_q4_K, ACT_Q8_K, q4_K),
    TYPE_ENTRY(QT_Q5_K, "Q5_K", QK_K, block_q5_K, ACT_Q8_K, q5_K),
    TYPE_ENTRY(QT_Q6_K, "Q6_K", QK_K, block_q6_K, ACT_Q8_K, q6_K),
    TYPE_ENTRY(QT_IQ4_XS, "IQ4_XS", QK_K, block_iq4_xs, ACT_Q8_K, iq4_xs),
};

const quant_traits *quant_traits_of(uint32_t type)
{
    if (type >= QT_COUNT || !type_table[type].traits.name) return NULL;
    return &type_table[type].traits;
}

size_t quant_row_size(uint32_t type, int64_t n)
{
    const quant_traits *t = quant_traits_of(type);
    if (!t || n < 0 || n % t->block_size != 0) return 0;
    return (size_t)(n / t->block_size) * t->type_size;
}

size_t act_row_size(act_format act, int n)
{
    if (n < 0) return 0;
    switch (act) {
    case ACT_F32: return (size_t)n * sizeof(float);
    case ACT_Q8_32: return n % QK32 ? 0 : (size_t)(n / QK32) * sizeof(block_q8_32);
    case ACT_Q8_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q8_K);
    }
    return 0;
}

size_t quantize_row_ref(uint32_t type, const float *x, void *dst, int64_t n)
{
    size_t bytes = quant_row_size(type, n);
    if (bytes == 0) return 0;
    type_table[type].quantize_row(x, dst, n);
    return bytes;
}
