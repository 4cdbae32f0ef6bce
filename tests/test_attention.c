/*
 * test_attention.c - every ISA's attention kernels against attention_ref.
 *
 * Decode attention is three kernels (scores, softmax, values) that the model
 * calls with the keys, heads and head columns split across threads. They are
 * checked composed, one row at a time and GQA rows together, against the
 * reference; and split the way threads split them (keys in 16-key blocks,
 * columns in 16-column chunks, into 1..3 parts) they must give bit for bit
 * what one unsplit call gives, so the output never depends on the thread
 * count.
 *
 * Random queries, keys and values (F16 cache rows with a stride, as in the
 * model), many key counts (1, tails of 8, long prompts) and head sizes. The
 * SIMD version uses a vector exp, so a probability may round to the
 * neighbouring f16 value; the bound below allows exactly that.
 *
 * attention_block (many query rows sharing one KV head, each with its own
 * causal key limit) is checked the same way against attention_block_ref:
 * one to sixty-four rows, equal limits, causal staircases and scattered
 * limits (1 .. 3001 keys, rows with none), with buffers allocated to the
 * exact size so that AddressSanitizer catches any read or write past them.
 * Shapes aim at the SIMD kernels' edges: row counts around the 16-lane
 * vectors and the 32-row batches (16, 17, 31, 32, 33), key counts off the
 * 12/24-key score blocks and 64-key tiles, rows seeing 0..3 keys, heads with
 * a half vector (8, 24, 40) and the largest blocked head (256), and the
 * score scratch both exactly n_q x max keys and with room to spare (the
 * AVX-512 kernel lays scores out differently in each case).
 *
 * The comparisons cannot tell a SIMD level that kept a scalar entry from one
 * that replaced it, so attention_simd_coverage checks that every SIMD level
 * the CPU has (x86 here, NEON under qemu in test_aarch64.sh) replaces all four.
 */
#include <math.h>

#include "../engine/kernels/kernels.h"
#include "test.h"

/* A probability computed from inputs that differ in the last float bit (summation order, a
 * vector exp within a few ulp) can round to the neighbouring f16 value: one f16 ulp, at most
 * 2^-10 of the value. So per output |diff_d| <= (2^-10 + a little) * sum_j p_j |v_jd|. (2^-11,
 * half an ulp, is what one rounding costs, not what two roundings can differ by; sharp
 * softmaxes of random data do show the full step.) */
#define PROB_TOLERANCE 1.1e-3

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
            /* Bound per output: see PROB_TOLERANCE. A skipped or doubled key, or a wrong
             * softmax, breaks it. */
            double sum = 0, bound[128] = {0};
            for (int j = 0; j < n; j++) sum += scores[j];
            for (int j = 0; j < n; j++)
                for (int d = 0; d < hd; d++) bound[d] += scores[j] / sum * fabs(f16_to_f32(v[(size_t)j * STRIDE + d]));
            t.attention_scores(1, n, hd, q, k, STRIDE, scale, scores, (size_t)n);
            t.attention_softmax(n, scores);
            t.attention_values(1, n, hd, scores, (size_t)n, v, STRIDE, out, (size_t)hd);
            int bad = -1;
            for (int d = 0; d < hd; d++)
                if (!(fabs((double)out[d] - ref[d]) <= PROB_TOLERANCE * bound[d] + 1e-7)) bad = d;
            EXPECT(bad < 0, "hd %d n %d: out[%d] %g vs ref %g (bound %g)", hd, n, bad, bad < 0 ? 0 : out[bad],
                   bad < 0 ? 0 : ref[bad], bad < 0 ? 0 : PROB_TOLERANCE * bound[bad]);
            free(k);
            free(v);
            free(scores);
        }
}

/* Per output; the reference's scratch row holds e^(s_j - max). */
static int first_bad_output(int n, int hd, const float *ref_scores, const f16_t *v, size_t stride, const float *out,
                            const float *ref, double *bound_of_bad)
{
    double sum = 0, bound[256] = {0};
    for (int j = 0; j < n; j++) sum += ref_scores[j];
    for (int j = 0; j < n; j++)
        for (int d = 0; d < hd; d++) bound[d] += ref_scores[j] / sum * fabs(f16_to_f32(v[(size_t)j * stride + d]));
    for (int d = 0; d < hd; d++)
        if (!(fabs((double)out[d] - ref[d]) <= PROB_TOLERANCE * bound[d] + 1e-7)) {
            *bound_of_bad = PROB_TOLERANCE * bound[d];
            return d;
        }
    return -1;
}

enum { LIMITS_SAME, LIMITS_CAUSAL, LIMITS_SCATTERED };

/* n_keys of a block: all `keys`; a staircase of tokens (`group` rows per token, the last token
 * seeing `keys`); or scattered in [0, keys] with the first row at `keys` and the second at 0. */
static void fill_limits(int *n_keys, int n_q, int keys, int layout, int group)
{
    int n_tok = (n_q + group - 1) / group;
    for (int r = 0; r < n_q; r++) {
        if (layout == LIMITS_SAME) n_keys[r] = keys;
        else if (layout == LIMITS_CAUSAL) n_keys[r] = keys - (n_tok - 1 - r / group);
        else n_keys[r] = r == 0 ? keys : r == 1 ? 0 : 1 + (int)((frand() * 0.5f + 0.5f) * (keys - 1));
        if (n_keys[r] < 0) n_keys[r] = 0;
    }
}

static int rows_under_test; /* 1: check_block_case runs the decode steps (every row the same keys) */

/* Decode attention of n_q rows over n keys through the three kernels, the keys split into
 * `key_parts` ranges of whole 16-key blocks and the columns into `col_parts` ranges of
 * whole 16-column chunks, as threads split them in the model. */
static void decode_steps(const kernel_table *t, int n_q, int n, int hd, const float *q, const f16_t *k,
                         const f16_t *v, size_t kv_stride, float scale, float *scores, size_t s_stride, float *out,
                         int key_parts, int col_parts)
{
    int n_blocks = (n + 15) / 16;
    for (int part = 0; part < key_parts; part++) {
        int j0 = n_blocks * part / key_parts * 16, j1 = n_blocks * (part + 1) / key_parts * 16;
        if (j1 > n) j1 = n;
        if (j0 < j1) t->attention_scores(n_q, j1 - j0, hd, q, k + (size_t)j0 * kv_stride, kv_stride, scale, scores + j0, s_stride);
    }
    for (int r = 0; r < n_q; r++) t->attention_softmax(n, scores + (size_t)r * s_stride);
    int chunk = hd % 16 ? hd : 16, n_chunks = hd / chunk;
    for (int part = 0; part < col_parts; part++) {
        int c0 = n_chunks * part / col_parts * chunk, c1 = n_chunks * (part + 1) / col_parts * chunk;
        if (c0 < c1) t->attention_values(n_q, n, c1 - c0, scores, s_stride, v + c0, kv_stride, out + c0, (size_t)hd);
    }
}

static void check_block_case(const kernel_table *t, int hd, int n_q, int keys, int layout, int group, float scale,
                             int spare)
{
    enum { STRIDE = 3 * 256 };
    int n_keys[64];
    fill_limits(n_keys, n_q, keys, layout, group);
    int n_max = 0;
    for (int r = 0; r < n_q; r++)
        if (n_keys[r] > n_max) n_max = n_keys[r];
    /* the head sits at the end of each cache row, as the last KV head does in the model */
    f16_t *kc = malloc(sizeof *kc * (size_t)n_max * STRIDE), *vc = malloc(sizeof *vc * (size_t)n_max * STRIDE);
    float *q = malloc(sizeof *q * (size_t)n_q * hd), *out = malloc(sizeof *out * (size_t)n_q * hd);
    float *ref = malloc(sizeof *ref * (size_t)n_q * hd);
    size_t s_stride = (size_t)n_max + (size_t)spare; /* scratch row pitch: exact, or with room */
    float *scores = malloc(sizeof *scores * (size_t)n_q * s_stride + 1);
    float *ref_scores = malloc(sizeof *ref_scores * (size_t)n_q * n_max + 1);
    REQUIRE(kc && vc && q && out && ref && scores && ref_scores, "out of memory");
    for (size_t i = 0; i < (size_t)n_max * STRIDE; i++) {
        kc[i] = f32_to_f16(frand() * 3);
        vc[i] = f32_to_f16(frand() * 2);
    }
    for (int i = 0; i < n_q * hd; i++) q[i] = f16_to_f32(f32_to_f16(frand() * 2));
    const f16_t *k = kc + STRIDE - hd, *v = vc + STRIDE - hd;
    attention_block_ref(n_q, n_keys, hd, q, k, v, STRIDE, scale, ref_scores, (size_t)n_max, ref);
    for (int i = 0; i < n_q * hd; i++) out[i] = NAN;
    if (rows_under_test) {
        decode_steps(t, n_q, n_keys[0], hd, q, k, v, STRIDE, scale, scores, s_stride, out, 1, 1);
        /* split like 2 and 3 threads split it: the same bits */
        float *split = malloc(sizeof *split * (size_t)n_q * hd);
        REQUIRE(split, "out of memory");
        for (int parts = 2; parts <= 3; parts++) {
            for (int i = 0; i < n_q * hd; i++) split[i] = NAN;
            decode_steps(t, n_q, n_keys[0], hd, q, k, v, STRIDE, scale, scores, s_stride, split, parts, parts);
            EXPECT(memcmp(split, out, sizeof *out * (size_t)n_q * hd) == 0,
                   "hd %d n_q %d keys %d: split in %d parts differs from one call", hd, n_q, n_keys[0], parts);
        }
        free(split);
    } else
        t->attention_block(n_q, n_keys, hd, q, k, v, STRIDE, scale, scores, s_stride, out);
    for (int r = 0; r < n_q; r++) {
        double bound = 0;
        int bad = first_bad_output(n_keys[r], hd, ref_scores + (size_t)r * n_max, v, STRIDE, out + (size_t)r * hd,
                                   ref + (size_t)r * hd, &bound);
        EXPECT(bad < 0, "hd %d n_q %d layout %d spare %d: row %d (%d keys) out[%d] %g vs ref %g (bound %g)", hd, n_q,
               layout, spare, r, n_keys[r], bad, bad < 0 ? 0 : out[(size_t)r * hd + bad], bad < 0 ? 0 : ref[(size_t)r * hd + bad], bound);
    }
    free(kc);
    free(vc);
    free(q);
    free(out);
    free(ref);
    free(scores);
    free(ref_scores);
}

static void check_block_shapes(void)
{
    kernel_table t;
    if (kernels_fill(&t, isa_under_test)) SKIP("this CPU or build lacks the ISA");
    static const struct { int n_q, keys, layout, group; } cases[] = {
        {1, 1, LIMITS_SAME, 1},      {1, 3001, LIMITS_SAME, 1},     {2, 7, LIMITS_CAUSAL, 1},
        {3, 8, LIMITS_SAME, 1},      {5, 9, LIMITS_CAUSAL, 1},      {7, 63, LIMITS_SAME, 7},
        {8, 65, LIMITS_CAUSAL, 2},   {12, 64, LIMITS_CAUSAL, 6},    {24, 100, LIMITS_CAUSAL, 6},
        {28, 129, LIMITS_CAUSAL, 7}, {24, 1000, LIMITS_SAME, 24},   {30, 3001, LIMITS_CAUSAL, 5},
        {13, 3001, LIMITS_SCATTERED, 1}, {17, 2, LIMITS_CAUSAL, 8},  {6, 400, LIMITS_SCATTERED, 1},
        {4, 3, LIMITS_CAUSAL, 1},    {28, 3, LIMITS_CAUSAL, 7},     {16, 25, LIMITS_CAUSAL, 4},
        {17, 13, LIMITS_SAME, 17},   {31, 47, LIMITS_CAUSAL, 1},    {32, 11, LIMITS_CAUSAL, 8},
        {33, 77, LIMITS_CAUSAL, 3},  {64, 23, LIMITS_SCATTERED, 1}, {20, 1, LIMITS_SAME, 20},
        {28, 301, LIMITS_CAUSAL, 7}, {9, 130, LIMITS_CAUSAL, 3},
    };
    const int hds[] = {64, 128, 80, 8, 24, 40, 256};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            int hd = hds[a];
            if (a >= 3 && cases[c].keys > 400) continue; /* the odd heads' edges show on short blocks */
            /* the usual 1/sqrt(hd), and a sharp softmax where most exponentials underflow */
            float scale = c % 3 == 2 ? 1.0f : 1.0f / sqrtf((float)hd);
            /* exact scratch, or room for padded key rows (as a model with a long context has) */
            int spare = (a + c) % 2 ? 0 : cases[c].keys + 7;
            check_block_case(&t, hd, cases[c].n_q, cases[c].keys, cases[c].layout, cases[c].group, scale, spare);
        }
}

/* The decode steps (a few heads of one token over the same keys) against the reference:
 * 1..8 rows, key counts around the 16-key blocks and 64-key sums, heads the SIMD kernels take
 * (multiples of 16, or of 8 for AVX2) and heads they hand to the reference. */
static void check_rows_shapes(void)
{
    kernel_table t;
    if (kernels_fill(&t, isa_under_test)) SKIP("this CPU or build lacks the ISA");
    static const int n_qs[] = {1, 2, 3, 4, 5, 7, 8};
    static const int keys[] = {1, 15, 16, 17, 63, 64, 65, 577, 3001};
    static const int hds[] = {64, 128, 80, 16, 48, 256, 24};
    rows_under_test = 1;
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof n_qs / sizeof *n_qs; b++)
            for (size_t c = 0; c < sizeof keys / sizeof *keys; c++) {
                if (keys[c] > 600 && (b % 3 || a > 2)) continue; /* long rows: a few shapes suffice */
                float scale = (a + b + c) % 3 == 2 ? 1.0f : 1.0f / sqrtf((float)hds[a]);
                check_block_case(&t, hds[a], n_qs[b], keys[c], LIMITS_SAME, n_qs[b], scale, (int)(c % 2) * 9);
            }
    rows_under_test = 0;
}

/* Every SIMD level this CPU has replaces the four scalar attention kernels (a level that
 * forgot one would still pass the comparisons above, against the reference itself). */
static void check_simd_replaces_reference(void)
{
    kernel_table t;
    int tested = 0;
    for (int isa = ISA_SCALAR + 1; isa < 32; isa++) { /* every level, including ones added later */
        if (kernels_fill(&t, (kernel_isa)isa) != 0) continue;
        tested++;
        EXPECT(t.attention_scores != attention_scores_ref, "%s: attention_scores is the scalar reference", t.isa);
        EXPECT(t.attention_softmax != attention_softmax_ref, "%s: attention_softmax is the scalar reference", t.isa);
        EXPECT(t.attention_values != attention_values_ref, "%s: attention_values is the scalar reference", t.isa);
        EXPECT(t.attention_block != attention_block_ref, "%s: attention_block is the scalar reference", t.isa);
    }
    if (!tested) SKIP("no SIMD level on this CPU");
}

int main(void)
{
    TEST_RUN_AS("attention_simd_coverage", check_simd_replaces_reference);
    const struct { kernel_isa isa; const char *name; } isas[] = {
        {ISA_SCALAR, "attention_scalar"}, {ISA_AVX2, "attention_avx2"}, {ISA_AVX512, "attention_avx512"},
        {ISA_AVX512VNNI, "attention_avx512vnni"}, {ISA_NEON, "attention_neon"},
        {ISA_NEONDOT, "attention_neondot"},
    };
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        isa_under_test = isas[i].isa;
        TEST_RUN_AS(isas[i].name, check_shapes);
    }
    const struct { kernel_isa isa; const char *name; } rows_isas[] = {
        {ISA_SCALAR, "attention_decode_scalar"}, {ISA_AVX2, "attention_decode_avx2"},
        {ISA_AVX512, "attention_decode_avx512"}, {ISA_AVX512VNNI, "attention_decode_avx512vnni"},
        {ISA_NEON, "attention_decode_neon"}, {ISA_NEONDOT, "attention_decode_neondot"},
    };
    for (size_t i = 0; i < sizeof rows_isas / sizeof *rows_isas; i++) {
        isa_under_test = rows_isas[i].isa;
        TEST_RUN_AS(rows_isas[i].name, check_rows_shapes);
    }
    const struct { kernel_isa isa; const char *name; } block_isas[] = {
        {ISA_SCALAR, "attention_block_scalar"}, {ISA_AVX2, "attention_block_avx2"},
        {ISA_AVX512, "attention_block_avx512"}, {ISA_AVX512VNNI, "attention_block_avx512vnni"},
        {ISA_NEON, "attention_block_neon"}, {ISA_NEONDOT, "attention_block_neondot"},
    };
    for (size_t i = 0; i < sizeof block_isas / sizeof *block_isas; i++) {
        isa_under_test = block_isas[i].isa;
        TEST_RUN_AS(block_isas[i].name, check_block_shapes);
    }
    return test_exit_code();
}
