/*
 * quant.h - tensor element types: block layouts, scalar references, dispatch.
 *
 * Every weight type is a block struct (the public GGUF/ggml layout) plus two
 * scalar reference functions: dequantize a row to f32, and dot a weight row
 * with an activation row. Activations are quantized once per matmul into the
 * type's "activation format" (q8_32 blocks for 32-element weight blocks, q8_K
 * blocks for 256-element super-blocks, plain f32 for F32/F16/BF16), so the
 * inner loop is an integer dot product, as in the reference implementation.
 *
 * The scalar functions are the oracle: every SIMD kernel (engine/kernels/) is
 * tested against them. Which implementation runs is decided once at start-up
 * in the dispatch table `kernels` (kernels.h), the only mutable global.
 */
#ifndef PRBOT_QUANT_H
#define PRBOT_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Type ids as numbered in GGUF files. */
typedef enum {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_IQ4_NL = 20,
    QT_IQ4_XS = 23,
    QT_BF16 = 30,
    QT_COUNT = 40 /* size of per-type tables; ids >= QT_COUNT are unknown */
} quant_type;

#define QK32 32  /* elements per block of the 32-element formats */
#define QK_K 256 /* elements per k-quant super-block */
#define K_SCALE_SIZE 12

typedef uint16_t f16_t;  /* IEEE half, stored bits */
typedef uint16_t bf16_t; /* bfloat16, stored bits */

typedef struct { f16_t d; uint8_t qs[QK32 / 2]; } block_q4_0;
typedef struct { f16_t d, m; uint8_t qs[QK32 / 2]; } block_q4_1;
typedef struct { f16_t d; uint8_t qh[4]; uint8_t qs[QK32 / 2]; } block_q5_0;
typedef struct { f16_t d, m; uint8_t qh[4]; uint8_t qs[QK32 / 2]; } block_q5_1;
typedef struct { f16_t d; int8_t qs[QK32]; } block_q8_0;
typedef struct { f16_t d; uint8_t qs[QK32 / 2]; } block_iq4_nl;

typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; f16_t d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; f16_t d; } block_q3_K;
typedef struct { f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { f16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; f16_t d; } block_q6_K;
typedef struct { f16_t d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;

/* The layouts GGUF files store, byte for byte (as ggml-common.h checks them):
 * a field added, removed or padded would misread every block after it. */
_Static_assert(sizeof(block_q4_0) == 2 + QK32 / 2, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 4 + QK32 / 2, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 2 + 4 + QK32 / 2, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 4 + 4 + QK32 / 2, "block_q5_1 size");
_Static_assert(sizeof(block_q8_0) == 2 + QK32, "block_q8_0 size");
_Static_assert(sizeof(block_iq4_nl) == 2 + QK32 / 2, "block_iq4_nl size");
_Static_assert(sizeof(block_q2_K) == QK_K / 16 + QK_K / 4 + 4, "block_q2_K size");
_Static_assert(sizeof(block_q3_K) == QK_K / 8 + QK_K / 4 + 12 + 2, "block_q3_K size");
_Static_assert(sizeof(block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "block_q6_K size");
_Static_assert(sizeof(block_iq4_xs) == 2 + 2 + QK_K / 64 + QK_K / 2, "block_iq4_xs size");

/* Activation formats (internal, never stored in files). */
/* s = d * sum(qs) rounded through f16 (what the reference keeps); sum = sum(qs) exactly,
 * for kernels that work on unsigned weights and subtract offset * sum once per block. */
typedef struct { float d; float s; int8_t qs[QK32]; int32_t sum; } block_q8_32;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
/* The SIMD kernels step through rows of these with fixed offsets. */
_Static_assert(sizeof(block_q8_32) == 4 + 4 + QK32 + 4, "block_q8_32 size");
_Static_assert(sizeof(block_q8_K) == 4 + QK_K + 2 * (QK_K / 16), "block_q8_K size");

typedef enum { ACT_F32 = 0, ACT_Q8_32 = 1, ACT_Q8_K = 2 } act_format;

typedef void (*dequantize_row_fn)(const void *src, float *dst, int64_t n);
/* n elements; w = weight row of the type, a = activation row in its act_format */
typedef float (*vec_dot_fn)(int n, const void *w, const void *a);
typedef void (*quantize_act_fn)(const float *x, void *dst, int n);

typedef struct {
    const char *name;   /* "Q4_K", ... ; NULL for unsupported ids */
    int block_size;     /* elements per block */
    size_t type_size;   /* bytes per block */
    act_format act;     /* activation format for vec_dot */
    dequantize_row_fn dequantize_row; /* scalar reference */
    vec_dot_fn vec_dot_ref;           /* scalar reference */
} quant_traits;

/* NULL for unknown / unsupported types. */
const quant_traits *quant_traits_of(uint32_t type);
/* Bytes for a row of n elements (n must be a multiple of block_size), 0 if invalid. */
size_t quant_row_size(uint32_t type, int64_t n);
/* Bytes of one activation row of n elements in format `act`. */
size_t act_row_size(act_format act, int n);

/* Scalar references for activation quantization. */
void quantize_row_q8_32_ref(const float *x, void *dst, int n);
void quantize_row_q8_K_ref(const float *x, void *dst, int n);

/* Plain round-to-nearest quantizer from f32 to any supported weight type
 * (valid blocks for tests and benchmark models, not the reference
 * quantizer's exact output). Returns bytes written, 0 if the type is
 * unsupported or n is not a multiple of its block size. */
size_t quantize_row_ref(uint32_t type, const float *x, void *dst, int64_t n);

float f16_to_f32(f16_t h);
f16_t f32_to_f16(float f);
float bf16_to_f32(bf16_t h);
bf16_t f32_to_bf16(float f);

extern const int8_t iq4nl_values[16];

#endif
