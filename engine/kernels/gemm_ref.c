/*
 * gemm_ref.c - scalar reference for the prefill matrix-matrix entries.
 *
 * gemm[type] has no type argument, so each type gets a tiny wrapper that
 * loops the type's scalar vec_dot over every (row, token) pair. It is what
 * the SIMD gemm kernels are tested against (through vec_dot_ref) and what a
 * CPU without SIMD runs. SIMD tables drop these wrappers again (NULL means
 * "loop over vec_dot"), since a loop over a SIMD vec_dot is faster.
 */
#include "kernels.h"

#include <string.h>

static void gemm_by_vec_dot(uint32_t type, int n, const void *w, size_t w_stride, int n_rows, const void *act,
                            size_t act_stride, int n_act, float *y, size_t y_stride)
{
    const vec_dot_fn dot = quant_traits_of(type)->vec_dot_ref;
    for (int a = 0; a < n_act; a++)
        for (int r = 0; r < n_rows; r++)
            y[(size_t)a * y_stride + r] =
                dot(n, (const char *)w + (size_t)r * w_stride, (const char *)act + (size_t)a * act_stride);
}

#define GEMM_REF(name, type)                                                                                     \
    static void gemm_ref_##name(int n, const void *w, size_t ws, int nr, const void *a, size_t as, int na,       \
                                float *y, size_t ys)                                                             \
    {                                                                                                            \
        gemm_by_vec_dot(type, n, w, ws, nr, a, as, na, y, ys);                                                   \
    }

GEMM_REF(f32, QT_F32)
GEMM_REF(f16, QT_F16)
GEMM_REF(bf16, QT_BF16)
GEMM_REF(q4_0, QT_Q4_0)
GEMM_REF(q4_1, QT_Q4_1)
GEMM_REF(q5_0, QT_Q5_0)
GEMM_REF(q5_1, QT_Q5_1)
GEMM_REF(q8_0, QT_Q8_0)
GEMM_REF(iq4_nl, QT_IQ4_NL)
GEMM_REF(q2_K, QT_Q2_K)
GEMM_REF(q3_K, QT_Q3_K)
GEMM_REF(q4_K, QT_Q4_K)
GEMM_REF(q5_K, QT_Q5_K)
GEMM_REF(q6_K, QT_Q6_K)
GEMM_REF(iq4_xs, QT_IQ4_XS)

void kernels_install_gemm_ref(kernel_table *t)
{
    static const struct {
        uint32_t type;
        void (*fn)(int, const void *, size_t, int, const void *, size_t, int, float *, size_t);
    } refs[] = {
        {QT_F32, gemm_ref_f32},     {QT_F16, gemm_ref_f16},   {QT_BF16, gemm_ref_bf16}, {QT_Q4_0, gemm_ref_q4_0},
        {QT_Q4_1, gemm_ref_q4_1},   {QT_Q5_0, gemm_ref_q5_0}, {QT_Q5_1, gemm_ref_q5_1}, {QT_Q8_0, gemm_ref_q8_0},
        {QT_IQ4_NL, gemm_ref_iq4_nl}, {QT_Q2_K, gemm_ref_q2_K}, {QT_Q3_K, gemm_ref_q3_K}, {QT_Q4_K, gemm_ref_q4_K},
        {QT_Q5_K, gemm_ref_q5_K},   {QT_Q6_K, gemm_ref_q6_K}, {QT_IQ4_XS, gemm_ref_iq4_xs},
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        if (quant_traits_of(refs[i].type) && quant_traits_of(refs[i].type)->vec_dot_ref) t->gemm[refs[i].type] = refs[i].fn;
}

/* A SIMD table keeps only real SIMD gemm entries: for the other types the
 * caller's loop over the table's (SIMD) vec_dot beats the scalar wrapper. */
void kernels_drop_scalar_gemm(kernel_table *t)
{
    kernel_table scalar;
    memset(&scalar, 0, sizeof scalar);
    kernels_install_gemm_ref(&scalar);
    for (uint32_t type = 0; type < QT_COUNT; type++)
        if (t->gemm[type] && t->gemm[type] == scalar.gemm[type]) t->gemm[type] = NULL;
}
