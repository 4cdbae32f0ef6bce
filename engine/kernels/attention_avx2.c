/*
 * attention_avx2.c - one query row against the F16 KV cache, AVX2 + F16C.
 *
 * Three passes over the keys, as in the scalar reference: scores (8-wide
 * f16->f32 dot products), exponentials (a vectorised exp: Cody-Waite range
 * reduction to |r| <= ln2/2 and a degree-6 polynomial, ~2 ulp), and the
 * weighted sum of values with each probability rounded through f16 (what
 * the reference does). Long prompts spend most of their attention time in
 * expf, so the vector exp is the point of this file.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x for x <= 0 (inputs below -87 give ~0). */
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

static inline __m256 load_f16x8(const f16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static float dot_q_k(int hd, const float *q, const f16_t *k)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= hd; d += 16) {
        acc0 = _mm256_fmadd_ps(load_f16x8(k + d), _mm256_loadu_ps(q + d), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(k + d + 8), _mm256_loadu_ps(q + d + 8), acc1);
    }
    for (; d < hd; d += 8) acc0 = _mm256_fmadd_ps(load_f16x8(k + d), _mm256_loadu_ps(q + d), acc0);
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static void attention_avx2(int n, int hd, const float *q, const f16_t *k, const f16_t *v, size_t kv_stride,
                           float scale, float *scores, float *out)
{
    if (hd % 8) {
        attention_ref(n, hd, q, k, v, kv_stride, scale, scores, out);
        return;
    }
    float max = -INFINITY;
    for (int j = 0; j < n; j++) {
        scores[j] = dot_q_k(hd, q, k + (size_t)j * kv_stride) * scale;
        if (scores[j] > max) max = scores[j];
    }
    __m256 vmax = _mm256_set1_ps(max), vsum = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vmax));
        _mm256_storeu_ps(scores + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    double sum = hsum8(vsum);
    for (; j < n; j++) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    /* probabilities rounded to f16, in place */
    __m256 vinv = _mm256_set1_ps((float)(1.0 / sum));
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(scores + j), vinv);
        _mm256_storeu_ps(scores + j, _mm256_cvtph_ps(_mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
    }
    for (; j < n; j++) scores[j] = f16_to_f32(f32_to_f16(scores[j] * (float)(1.0 / sum)));

    memset(out, 0, (size_t)hd * sizeof *out);
    for (int d0 = 0; d0 < hd; d0 += 64) { /* 8 accumulators of 8 lanes per chunk of the head */
        int w = hd - d0 < 64 ? hd - d0 : 64;
        __m256 acc[8];
        for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
        for (j = 0; j < n; j++) {
            const f16_t *vj = v + (size_t)j * kv_stride + d0;
            __m256 p = _mm256_set1_ps(scores[j]);
            for (int a = 0; a < w / 8; a++) acc[a] = _mm256_fmadd_ps(p, load_f16x8(vj + 8 * a), acc[a]);
        }
        for (int a = 0; a < w / 8; a++) _mm256_storeu_ps(out + d0 + 8 * a, acc[a]);
    }
}

static void attention_block_avx2(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                                 size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out)
{
    for (int r = 0; r < n_q; r++)
        attention_avx2(n_keys[r], hd, q + (size_t)r * hd, k, v, kv_stride, scale, scores + (size_t)r * scores_stride,
                       out + (size_t)r * hd);
}

void kernels_install_attention_avx2(kernel_table *t)
{
    t->attention = attention_avx2;
    t->attention_block = attention_block_avx2;
}

#else
void kernels_install_attention_avx2(kernel_table *t) { (void)t; }
#endif
