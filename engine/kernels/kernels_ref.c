/*
 * kernels_ref.c - scalar references for the attention kernels over the F16
 * KV cache and the SwiGLU gate (the quant types' references live in
 * engine/quant.c).
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

void f32_to_f16_row_ref(int n, const float *x, f16_t *y)
{
    for (int i = 0; i < n; i++) y[i] = f32_to_f16(x[i]);
}

void f16_to_f32_row_ref(int n, const f16_t *x, float *y)
{
    for (int i = 0; i < n; i++) y[i] = f16_to_f32(x[i]);
}

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

void silu_mul_row_ref(int n, float *gate, const float *up)
{
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* In the sigmoid form, with e^-|z| only (never overflows), which also keeps
 * the small values of large negative gates that 1 + tanh would cancel. */
void gelu_mul_row_ref(int n, float *gate, const float *up)
{
    for (int i = 0; i < n; i++) {
        float g = gate[i], z = g * (GELU_Z_LINEAR + GELU_Z_CUBIC * (g * g)), e = expf(-fabsf(z));
        gate[i] = (z < 0 ? g * e : g) / (1.0f + e) * up[i];
    }
}

void attention_scores_ref(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride, float scale,
                          float *scores, size_t s_stride)
{
    for (int r = 0; r < n_q; r++)
        for (int j = 0; j < n; j++)
            scores[(size_t)r * s_stride + j] = dot_f16_f32_ref(hd, k + (size_t)j * kv_stride, q + (size_t)r * hd) * scale;
}

void attention_softmax_ref(int n, float *s)
{
    float max = -INFINITY;
    for (int j = 0; j < n; j++)
        if (s[j] > max) max = s[j];
    double sum = 0;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - max);
        sum += s[j];
    }
    float inv_sum = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) s[j] = f16_to_f32(f32_to_f16(s[j] * inv_sum));
}

void attention_values_ref(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                          size_t kv_stride, float *out, size_t out_stride)
{
    for (int r = 0; r < n_q; r++) {
        float *o = out + (size_t)r * out_stride;
        memset(o, 0, (size_t)n_cols * sizeof *o);
        for (int j = 0; j < n; j++) axpy_f16_ref(n_cols, p[(size_t)r * p_stride + j], v + (size_t)j * kv_stride, o);
    }
}

void attention_ref(int n, int hd, const float *q, const f16_t *k, const f16_t *v, size_t kv_stride, float scale,
                   float *scores, float *out)
{
    attention_scores_ref(1, n, hd, q, k, kv_stride, scale, scores, (size_t)n);
    attention_softmax_ref(n, scores);
    attention_values_ref(1, n, hd, scores, (size_t)n, v, kv_stride, out, (size_t)hd);
}

void attention_block_ref(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                         size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    for (int r = 0; r < n_q; r++)
        attention_ref(n_keys[r], hd, q + (size_t)r * hd, k, v, kv_stride, scale, scores + (size_t)r * scores_stride,
                      out + (size_t)r * hd);
}
