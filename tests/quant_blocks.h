/*
 * quant_blocks.h - random quantized weight blocks and reference activations
 * shared by the kernel tests (test_kernels.c, test_gemm.c).
 *
 * Every test is a single-file program, so these are static functions in a
 * header each test includes once. The PRNG is splitmix64 over a seedable
 * global `rng_state`, so a test can make its cases reproducible. Random
 * weight blocks get random bits everywhere, then f16 scales in a sane range:
 * random bits in a scale would mean NaN, Inf or values no model has.
 */
#ifndef PRBOT_TESTS_QUANT_BLOCKS_H
#define PRBOT_TESTS_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#include "../engine/kernels/kernels.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static float rng_float(float lo, float hi) { return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0)); }

/* Every weight type the kernel tables may cover. */
static const uint32_t all_types[] = {QT_F32, QT_F16, QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0,
                                     QT_IQ4_NL, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_XS};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* An f16 scale uniform in [lo, hi), negated half the time if allowed. */
static f16_t random_scale(float lo, float hi, int allow_negative)
{
    float v = rng_float(lo, hi);
    if (allow_negative && (rng_next() & 1)) v = -v;
    return f32_to_f16(v);
}

/* Sane f16 scales (and values for the float types) over blocks whose other bytes are already set. */
static void set_sane_scales(uint32_t type, uint8_t *row, int nb)
{
    const quant_traits *tr = quant_traits_of(type);
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = row + (size_t)b * tr->type_size;
        switch (type) {
        case QT_Q4_0: ((block_q4_0 *)blk)->d = random_scale(0.001f, 0.1f, 1); break;
        case QT_Q4_1:
            ((block_q4_1 *)blk)->d = random_scale(0.001f, 0.1f, 0);
            ((block_q4_1 *)blk)->m = random_scale(0.01f, 0.5f, 1);
            break;
        case QT_Q5_0: ((block_q5_0 *)blk)->d = random_scale(0.001f, 0.1f, 1); break;
        case QT_Q5_1:
            ((block_q5_1 *)blk)->d = random_scale(0.001f, 0.1f, 0);
            ((block_q5_1 *)blk)->m = random_scale(0.01f, 0.5f, 1);
            break;
        case QT_Q8_0: ((block_q8_0 *)blk)->d = random_scale(0.0005f, 0.01f, 1); break;
        case QT_IQ4_NL: ((block_iq4_nl *)blk)->d = random_scale(0.0005f, 0.01f, 1); break;
        case QT_Q2_K:
            ((block_q2_K *)blk)->d = random_scale(0.001f, 0.05f, 0);
            ((block_q2_K *)blk)->dmin = random_scale(0.001f, 0.05f, 0);
            break;
        case QT_Q3_K: ((block_q3_K *)blk)->d = random_scale(0.001f, 0.05f, 1); break;
        case QT_Q4_K:
            ((block_q4_K *)blk)->d = random_scale(0.001f, 0.05f, 0);
            ((block_q4_K *)blk)->dmin = random_scale(0.001f, 0.05f, 0);
            break;
        case QT_Q5_K:
            ((block_q5_K *)blk)->d = random_scale(0.001f, 0.05f, 0);
            ((block_q5_K *)blk)->dmin = random_scale(0.001f, 0.05f, 0);
            break;
        case QT_Q6_K: ((block_q6_K *)blk)->d = random_scale(0.0005f, 0.01f, 1); break;
        case QT_IQ4_XS: ((block_iq4_xs *)blk)->d = random_scale(0.0005f, 0.01f, 1); break;
        case QT_F32: ((float *)row)[b] = rng_float(-1, 1); break;
        case QT_F16: ((f16_t *)row)[b] = f32_to_f16(rng_float(-1, 1)); break;
        case QT_BF16: ((bf16_t *)row)[b] = f32_to_bf16(rng_float(-1, 1)); break;
        default: break;
        }
    }
}

/* `nb` random blocks of `type`: random bits everywhere, then sane f16 scales. */
static void random_weight_blocks(uint32_t type, uint8_t *row, int nb)
{
    const quant_traits *tr = quant_traits_of(type);
    for (size_t k = 0; k < (size_t)nb * tr->type_size; k++) row[k] = (uint8_t)rng_next();
    set_sane_scales(type, row, nb);
}

/* `nb` blocks whose quant bytes are all at their maximum (every nibble 15,
 * 5- and 6-bit values 31 and 63, k-quant scales and mins 63; Q8_0 bytes 127),
 * with sane f16 scales: the worst case for kernels that sum products in int16. */
static void saturated_weight_blocks(uint32_t type, uint8_t *row, int nb)
{
    const quant_traits *tr = quant_traits_of(type);
    memset(row, type == QT_Q8_0 ? 0x7F : 0xFF, (size_t)nb * tr->type_size);
    set_sane_scales(type, row, nb);
}

/* Element e of the activation row, as a float. */
static float act_value(act_format act, const void *row, int e)
{
    if (act == ACT_Q8_32) {
        const block_q8_32 *b = (const block_q8_32 *)row + e / QK32;
        return b->d * b->qs[e % QK32];
    }
    if (act == ACT_Q8_K) {
        const block_q8_K *b = (const block_q8_K *)row + e / QK_K;
        return b->d * b->qs[e % QK_K];
    }
    return ((const float *)row)[e];
}

/* x[0..n) in activation format `act`, by the scalar reference quantizers. */
static void quantize_activations_ref(act_format act, const float *x, void *dst, int n)
{
    if (act == ACT_Q8_32) quantize_row_q8_32_ref(x, dst, n);
    else if (act == ACT_Q8_K) quantize_row_q8_K_ref(x, dst, n);
    else memcpy(dst, x, (size_t)n * sizeof(float));
}

#endif
