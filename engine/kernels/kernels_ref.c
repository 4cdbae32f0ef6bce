/*
 * kernels_ref.c - scalar references for the attention kernels over the F16
 * KV cache (the quant types' references live in engine/quant.c).
 */
#include "kernels.h"

float dot_f16_f32_ref(int n, const f16_t *x, const float *y)
{
    float sum = 0;
    for (int i = 0; i < n; i++) sum += f16_to_f32(x[i]) * y[i];
    return sum;
}

void axpy_f16_ref(int n, float alpha, const f16_t *x, float *y)
{
    for (int i = 0; i < n; i++) y[i] += alpha * f16_to_f32(x[i]);
}
