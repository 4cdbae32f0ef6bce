/*
 * test_attention.c - every ISA's attention kernel against attention_ref.
 *
 * Random queries, keys and values (F16 cache rows with a stride, as in the
 * model), many key counts (1, tails of 8, long prompts) and head sizes. The
 * SIMD version uses a vector exp, so a probability may round to the
 * neighbouring f16 value; the bound below allows exactly that.
 */
#include <math.h>

#include "../engine/kernels/kernels.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

static kernel_isa isa_under_test;

static void check_shapes(void)
{
    kernel_table t;
    if (kernels_fill(&t, isa_under_test)) SKIP("this CPU or build lacks the ISA");
    const int hds[] = {64, 128, 80, 8, 6}, ns[] = {1, 2, 7, 8, 9, 63, 64, 65, 500, 3001};
    enum { STRIDE = 3 * 128 };
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
            int hd = hds[a], n = ns[b];
            f16_t *k = malloc(sizeof *k * (size_t)n * STRIDE), *v = malloc(sizeof *v * (size_t)n * STRIDE);
            float q[128], out[128], ref[128], *scores = malloc(sizeof(float) * (size_t)n);
            for (size_t i = 0; i < (size_t)n * STRIDE; i++) {
                k[i] = f32_to_f16(frand() * 3);
                v[i] = f32_to_f16(frand() * 2);
            }
            for (int d = 0; d < hd; d++) q[d] = f16_to_f32(f32_to_f16(frand() * 2));
            float scale = 1.0f / sqrtf((float)hd);
            attention_ref(n, hd, q, k, v, STRIDE, scale, scores, ref);
            /* Bound per output: each probability may differ by one f16 step (2^-11 relative) and
             * the exp by a few ulp, so |diff_d| <= 6e-4 * sum_j p_j |v_jd|. A skipped or doubled
             * key, or a wrong softmax, breaks it. */
            double sum = 0, bound[128] = {0};
            for (int j = 0; j < n; j++) sum += scores[j];
            for (int j = 0; j < n; j++)
                for (int d = 0; d < hd; d++) bound[d] += scores[j] / sum * fabs(f16_to_f32(v[(size_t)j * STRIDE + d]));
            t.attention(n, hd, q, k, v, STRIDE, scale, scores, out);
            int bad = -1;
            for (int d = 0; d < hd; d++)
                if (!(fabs((double)out[d] - ref[d]) <= 6e-4 * bound[d] + 1e-7)) bad = d;
            EXPECT(bad < 0, "hd %d n %d: out[%d] %g vs ref %g (bound %g)", hd, n, bad, bad < 0 ? 0 : out[bad],
                   bad < 0 ? 0 : ref[bad], bad < 0 ? 0 : 6e-4 * bound[bad]);
            free(k);
            free(v);
            free(scores);
        }
}

int main(void)
{
    const struct { kernel_isa isa; const char *name; } isas[] = {
        {ISA_SCALAR, "attention_scalar"}, {ISA_AVX2, "attention_avx2"}, {ISA_AVX512, "attention_avx512"},
        {ISA_AVX512VNNI, "attention_avx512vnni"}, {ISA_NEON, "attention_neon"},
    };
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        isa_under_test = isas[i].isa;
        TEST_RUN_AS(isas[i].name, check_shapes);
    }
    return test_exit_code();
}
