/*
 * test_kernels.c - every SIMD kernel against the scalar reference.
 *
 * For each ISA this CPU supports and each weight type, random rows (seeded
 * PRNG, sane f16 scales) of 1, 2, 3, 8 and 64 blocks are dotted with random
 * activations quantized by the scalar reference quantizer; the SIMD result
 * must match quant_traits_of(t)->vec_dot_ref within
 *     1e-5 * (sum_i |w_i * a_i| + 1)
 * (the integer parts are exact; only the float summation order differs).
 * Two more rows per length have every quant at its maximum against
 * activations that are all +127 or all -127: the largest partial sums a
 * kernel that adds products in int16 can meet. The |w_i| are obtained from the reference dot itself, by dotting each block
 * with one-hot activation blocks, so the test needs nothing but the reference.
 * The SIMD activation quantizers must reproduce the reference bit for bit,
 * including rounding ties, all-zero blocks, tiny and huge values. The f16
 * row conversions and the SwiGLU/GeGLU rows are checked the same way (the
 * attention kernels: tests/test_attention.c).
 */
#include <math.h>
#include <stdint.h>

#include "../engine/kernels/kernels.h"
#include "quant_blocks.h"
#include "test.h"

/* One-hot activation block (value 1 at element e) in format `act`. */
static void one_hot_block(act_format act, void *blk, int e)
{
    if (act == ACT_Q8_32) {
        block_q8_32 *b = blk;
        memset(b, 0, sizeof *b);
        b->d = 1, b->s = 1, b->qs[e] = 1, b->sum = 1;
    } else if (act == ACT_Q8_K) {
        block_q8_K *b = blk;
        memset(b, 0, sizeof *b);
        b->d = 1, b->qs[e] = 1, b->bsums[e / 16] = 1;
    } else {
        float *f = blk;
        memset(f, 0, sizeof(float));
        f[e] = 1;
    }
}

/* sum_i |w_i * a_i|, with w_i read back through the reference dot and one-hot activations. */
static double sum_abs_terms(uint32_t type, const uint8_t *w, const void *act_row, int n)
{
    const quant_traits *tr = quant_traits_of(type);
    union { block_q8_32 a; block_q8_K b; float f[QK_K]; } hot;
    double total = 0;
    for (int e = 0; e < n; e++) {
        int bs = tr->block_size, in_block = e % bs;
        const uint8_t *blk = w + (size_t)(e / bs) * tr->type_size;
        one_hot_block(tr->act, &hot, in_block);
        float wi = tr->vec_dot_ref(bs, blk, &hot);
        total += fabs((double)wi * act_value(tr->act, act_row, e));
    }
    return total;
}

/* Test rows start this many bytes into their buffer: every block struct stays
 * naturally aligned, but SIMD loads of 16/32/64 bytes are unaligned. */
#define MISALIGN 4

static kernel_isa cur_isa;
static uint32_t cur_type;

static void check_vec_dot_case(const kernel_table *t, int n, int trial)
{
    const quant_traits *tr = quant_traits_of(cur_type);
    const int nb = n / tr->block_size;
    /* MISALIGN bytes in: naturally aligned for the structs, but not to 16/32 */
    uint8_t *w = malloc((size_t)nb * tr->type_size + MISALIGN);
    float *x = malloc((size_t)n * sizeof(float));
    uint8_t *act = malloc(act_row_size(tr->act, n) + MISALIGN);
    REQUIRE(w && x && act, "out of memory");
    /* trials 3 and 4: every quant at its maximum against activations all +127 / all -127 */
    const int saturated = trial >= 3;
    if (saturated) saturated_weight_blocks(cur_type, w + MISALIGN, nb);
    else random_weight_blocks(cur_type, w + MISALIGN, nb);
    float xscale = trial == 0 ? 1.0f : rng_float(0.01f, 10.0f);
    for (int i = 0; i < n; i++) x[i] = saturated ? (trial == 3 ? xscale : -xscale) : xscale * rng_float(-1, 1);
    quantize_activations_ref(tr->act, x, act + MISALIGN, n);
    float ref = tr->vec_dot_ref(n, w + MISALIGN, act + MISALIGN);
    float got = t->vec_dot[cur_type](n, w + MISALIGN, act + MISALIGN);
    double tol = 1e-5 * (sum_abs_terms(cur_type, w + MISALIGN, act + MISALIGN, n) + 1);
    double diff = fabs((double)got - ref);
    free(w);
    free(x);
    free(act);
    EXPECT(isfinite(ref) && diff <= tol, "%s n=%d trial %d: simd %.9g ref %.9g diff %.3g > tol %.3g", tr->name, n,
           trial, got, ref, diff, tol);
}

static void test_vec_dot_type(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    const quant_traits *tr = quant_traits_of(cur_type);
    REQUIRE(tr && tr->vec_dot_ref, "no scalar reference for type %u", cur_type);
    REQUIRE(t.vec_dot[cur_type], "no kernel for %s", tr->name);
    rng_state = 0x1234 + cur_type * 77 + (uint64_t)cur_isa;
    static const int block_counts[] = {1, 2, 3, 8, 64};
    static const int float_lengths[] = {1, 7, 8, 31, 32, 33, 100, 256, 1000};
    if (tr->block_size == 1) {
        for (size_t k = 0; k < sizeof float_lengths / sizeof float_lengths[0]; k++)
            for (int trial = 0; trial < 3; trial++) check_vec_dot_case(&t, float_lengths[k], trial);
    } else {
        for (size_t k = 0; k < sizeof block_counts / sizeof block_counts[0]; k++)
            for (int trial = 0; trial < 5; trial++) check_vec_dot_case(&t, block_counts[k] * tr->block_size, trial);
    }
}

/* ---- activation quantizers --------------------------------------------- */

static act_format cur_act;

/* Rows that hit the corners: zeros, exact .5 ties, +-amax ties, tiny and huge values. */
static void special_row(float *x, int n, int which)
{
    for (int i = 0; i < n; i++) {
        switch (which) {
        case 0: x[i] = 0; break;
        case 1: x[i] = (float)((i % 255) - 127) * 0.5f; break;  /* amax 63.5 -> many x*id near halves */
        case 2: x[i] = (i % 2 ? -1.0f : 1.0f) * (float)(i % 7); break; /* +amax and -amax both present */
        case 3: x[i] = (i % 2 ? -6.0f : 6.0f) * (i % 3 == 0 ? 1.0f : 0.25f); break; /* -amax first in some blocks */
        case 4: x[i] = rng_float(-1e-30f, 1e-30f); break;
        case 5: x[i] = rng_float(-1e20f, 1e20f); break;
        default: x[i] = (float)(i % 255 - 127); break; /* amax 127: id = 1, exact integers */
        }
    }
    if (which == 1 && n > 3) x[3] = 127.0f * 0.5f; /* the element that sets amax, before any negative one */
}

static int compare_q8_32(const block_q8_32 *a, const block_q8_32 *b, int nb, char *why, size_t len)
{
    for (int i = 0; i < nb; i++) {
        if (memcmp(&a[i].d, &b[i].d, sizeof(float)) || memcmp(&a[i].s, &b[i].s, sizeof(float)) || a[i].sum != b[i].sum) {
            snprintf(why, len, "block %d: d %g/%g s %g/%g sum %d/%d", i, a[i].d, b[i].d, a[i].s, b[i].s, a[i].sum, b[i].sum);
            return -1;
        }
        for (int j = 0; j < QK32; j++)
            if (a[i].qs[j] != b[i].qs[j]) {
                snprintf(why, len, "block %d qs[%d]: %d vs ref %d", i, j, a[i].qs[j], b[i].qs[j]);
                return -1;
            }
    }
    return 0;
}

static int compare_q8_K(const block_q8_K *a, const block_q8_K *b, int nb, char *why, size_t len)
{
    for (int i = 0; i < nb; i++) {
        if (memcmp(&a[i].d, &b[i].d, sizeof(float))) {
            snprintf(why, len, "block %d: d %g vs ref %g", i, a[i].d, b[i].d);
            return -1;
        }
        for (int j = 0; j < QK_K; j++)
            if (a[i].qs[j] != b[i].qs[j]) {
                snprintf(why, len, "block %d qs[%d]: %d vs ref %d", i, j, a[i].qs[j], b[i].qs[j]);
                return -1;
            }
        for (int j = 0; j < QK_K / 16; j++)
            if (a[i].bsums[j] != b[i].bsums[j]) {
                snprintf(why, len, "block %d bsums[%d]: %d vs ref %d", i, j, a[i].bsums[j], b[i].bsums[j]);
                return -1;
            }
    }
    return 0;
}

static void check_quantize_case(const kernel_table *t, const float *x, int n, const char *what)
{
    const size_t bytes = act_row_size(cur_act, n);
    uint8_t *got = malloc(bytes + MISALIGN), *ref = malloc(bytes + MISALIGN);
    REQUIRE(got && ref, "out of memory");
    memset(got, 0x5A, bytes + MISALIGN);
    memset(ref, 0xA5, bytes + MISALIGN);
    quantize_activations_ref(cur_act, x, ref + MISALIGN, n);
    t->quantize_act[cur_act](x, got + MISALIGN, n);
    char why[200] = "";
    void *g = got + MISALIGN, *r = ref + MISALIGN;
    int rc = cur_act == ACT_Q8_32 ? compare_q8_32(g, r, n / QK32, why, sizeof why)
                                  : compare_q8_K(g, r, n / QK_K, why, sizeof why);
    free(got);
    free(ref);
    EXPECT(rc == 0, "%s n=%d: %s", what, n, why);
}

static void test_quantize_act(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    REQUIRE(t.quantize_act[cur_act], "no quantizer");
    const int bs = cur_act == ACT_Q8_32 ? QK32 : QK_K;
    rng_state = 0x51 + (uint64_t)cur_act * 1000 + (uint64_t)cur_isa;
    static const int block_counts[] = {1, 2, 3, 8, 64};
    for (size_t k = 0; k < sizeof block_counts / sizeof block_counts[0]; k++) {
        const int n = block_counts[k] * bs;
        float *x = malloc((size_t)n * sizeof(float) + sizeof(float));
        REQUIRE(x, "out of memory");
        float *xu = x + 1; /* unaligned on purpose */
        for (int trial = 0; trial < 4; trial++) {
            float scale = trial == 0 ? 1.0f : rng_float(1e-3f, 1e3f);
            for (int i = 0; i < n; i++) xu[i] = scale * rng_float(-1, 1);
            check_quantize_case(&t, xu, n, "random");
        }
        for (int which = 0; which <= 6; which++) {
            special_row(xu, n, which);
            char what[32];
            snprintf(what, sizeof what, "special row %d", which);
            check_quantize_case(&t, xu, n, what);
        }
        free(x);
    }
}

/* Row conversions to and from f16 agree bit for bit with the scalar ones: normal values,
 * exact ties (round to even), subnormals, overflow to inf, signed zeros, inf and NaN. */
static void test_f16_rows(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    REQUIRE(t.f32_to_f16_row && t.f16_to_f32_row, "f16 row conversions missing");
    rng_state = 0xF16 + (uint64_t)cur_isa;
    enum { N = 1000 };
    float x[N + 1], back[N + 1], back_ref[N + 1];
    f16_t h[N + 1], h_ref[N + 1];
    static const float special[] = {0.0f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-20f, -0x1p-24f, 0x1p-26f,
                                    65504.0f, 65520.0f, 1e6f, -INFINITY, INFINITY, NAN, 6.1e-5f, 2049.0f, 2051.0f};
    for (int i = 0; i <= N; i++) {
        int kind = i % 4;
        x[i] = kind == 0 ? special[(i / 4) % (int)(sizeof special / sizeof *special)]
             : kind == 1 ? rng_float(-70000, 70000)
             : kind == 2 ? rng_float(-1, 1) * 1e-5f
                         : rng_float(-4, 4);
    }
    static const int lengths[] = {1, 7, 8, 9, 31, N};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        int n = lengths[k];
        /* +1: unaligned on purpose */
        t.f32_to_f16_row(n, x + 1, h + 1);
        f32_to_f16_row_ref(n, x + 1, h_ref + 1);
        int bad = -1;
        for (int i = 1; i <= n; i++)
            if (h[i] != h_ref[i]) bad = i;
        EXPECT(bad < 0, "f32->f16 n=%d: %.9g gave %#x, scalar %#x", n, bad < 0 ? 0 : x[bad], bad < 0 ? 0 : h[bad],
               bad < 0 ? 0 : h_ref[bad]);
        t.f16_to_f32_row(n, h_ref + 1, back + 1);
        f16_to_f32_row_ref(n, h_ref + 1, back_ref + 1);
        EXPECT(memcmp(back + 1, back_ref + 1, (size_t)n * sizeof(float)) == 0, "f16->f32 n=%d differs", n);
    }
}

typedef void (*gated_row_fn)(int n, float *gate, const float *up);

/* A gated activation row (gate[i] = act(gate[i]) * up[i]) against its scalar reference: the
 * `special` gates first, then gates uniform in +-range and ups in +-3, at lengths that leave
 * vector tails; rel_bound(g) is the relative difference allowed for gate g. */
static void expect_gated_row(const char *what, gated_row_fn kernel, gated_row_fn ref, const float *special,
                             int n_special, float range, float (*rel_bound)(float g))
{
    enum { N = 1003 };
    float gate[N], up[N], got[N], want[N];
    for (int i = 0; i < N; i++) {
        gate[i] = i < n_special ? special[i] : rng_float(-range, range);
        up[i] = rng_float(-3, 3);
    }
    static const int lengths[] = {1, 7, 8, 15, 16, 17, N};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        int n = lengths[k], bad = -1;
        memcpy(got, gate, sizeof gate);
        memcpy(want, gate, sizeof gate);
        kernel(n, got, up);
        ref(n, want, up);
        for (int i = 0; i < n; i++)
            if (!(fabsf(got[i] - want[i]) <= rel_bound(gate[i]) * fabsf(want[i]) + 1e-30f)) bad = i;
        for (int i = n; i < N; i++)
            if (got[i] != gate[i]) bad = i; /* nothing past n is written */
        EXPECT(bad < 0, "n=%d: %s(%g) * %g = %.9g, reference %.9g", n, what, bad < 0 ? 0 : gate[bad],
               bad < 0 ? 0 : up[bad], bad < 0 ? 0 : got[bad], bad < 0 ? 0 : want[bad]);
    }
}

/* a vector exp within a few ulp */
static float silu_bound(float g)
{
    (void)g;
    return 4e-7f;
}

/* an ulp of z = g (GELU_Z_LINEAR + GELU_Z_CUBIC g^2), computed in a different order by the
 * vector code, is |z| ulps of e^-|z| */
static float gelu_bound(float g)
{
    float z = fabsf(g * (GELU_Z_LINEAR + GELU_Z_CUBIC * g * g));
    return 1e-6f * (1 + fminf(z, 100));
}

/* SwiGLU: large gates of both signs (e^-g overflows for g < -88), zeros. */
static void test_silu_mul(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    REQUIRE(t.silu_mul_row, "silu_mul_row missing");
    rng_state = 0x5170 + (uint64_t)cur_isa;
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 87.0f, -87.0f, 89.0f, -89.0f,
                                    200.0f, -200.0f, 1e30f, -1e30f};
    expect_gated_row("silu", t.silu_mul_row, silu_mul_row_ref, special, (int)(sizeof special / sizeof *special), 12,
                     silu_bound);
}

/* GeGLU (tanh form): gates of both signs past where e^-z underflows (|g| > ~7.5), zeros. */
static void test_gelu_mul(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    REQUIRE(t.gelu_mul_row, "gelu_mul_row missing");
    rng_state = 0x6e1u + (uint64_t)cur_isa;
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 3.0f, -3.0f, 7.0f, -7.0f, 9.0f, -9.0f,
                                    200.0f, -200.0f, 1e30f, -1e30f};
    expect_gated_row("gelu", t.gelu_mul_row, gelu_mul_row_ref, special, (int)(sizeof special / sizeof *special), 8,
                     gelu_bound);
}

/* The reference itself against the tanh form in double, where that form does not cancel. */
static void test_gelu_ref_is_gelu(void)
{
    float worst = 0;
    for (int i = -4000; i <= 4000; i++) {
        float g = i / 1000.0f, up = 1.0f, got = g;
        gelu_mul_row_ref(1, &got, &up);
        double want = 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * (double)g * g * g)));
        float err = (float)fabs(got - want);
        if (err > worst) worst = err;
    }
    EXPECT(worst < 2e-6f, "gelu_mul_row_ref is %g away from 0.5 g (1 + tanh(...))", (double)worst);
}

/* ---- dispatch ------------------------------------------------------------ */

static void test_scalar_table_is_the_reference(void)
{
    kernel_table t;
    REQUIRE(kernels_fill(&t, ISA_SCALAR) == 0, "scalar fill failed");
    EXPECT(strcmp(t.isa, "scalar") == 0, "isa name %s", t.isa);
    for (uint32_t type = 0; type < QT_COUNT; type++) {
        const quant_traits *tr = quant_traits_of(type);
        EXPECT(t.vec_dot[type] == (tr ? tr->vec_dot_ref : NULL), "type %u is not the reference", type);
    }
    EXPECT(t.quantize_act[ACT_Q8_32] == quantize_row_q8_32_ref, "q8_32 quantizer is not the reference");
    EXPECT(t.quantize_act[ACT_Q8_K] == quantize_row_q8_K_ref, "q8_K quantizer is not the reference");
}

/* Every SIMD level this CPU has replaces the scalar row kernels (a level that
 * forgot one would still pass the comparisons above, against itself). */
static void test_simd_replaces_row_kernels(void)
{
    kernel_table t;
    int tested = 0;
    for (int isa = ISA_SCALAR + 1; isa < 32; isa++) { /* every level, including ones added later */
        if (kernels_fill(&t, (kernel_isa)isa) != 0) continue;
        tested++;
        EXPECT(t.f32_to_f16_row != f32_to_f16_row_ref, "%s: f32_to_f16_row is the scalar reference", t.isa);
        EXPECT(t.f16_to_f32_row != f16_to_f32_row_ref, "%s: f16_to_f32_row is the scalar reference", t.isa);
        EXPECT(t.silu_mul_row != silu_mul_row_ref, "%s: silu_mul_row is the scalar reference", t.isa);
        EXPECT(t.gelu_mul_row != gelu_mul_row_ref, "%s: gelu_mul_row is the scalar reference", t.isa);
    }
    if (!tested) SKIP("no SIMD level on this CPU");
}

/* kernels_fill must agree with the compiler's own view of the CPU. */
static void test_detection_matches_compiler(void)
{
#if defined(__x86_64__)
    kernel_table t;
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    int vnni = avx512 && __builtin_cpu_supports("avx512vnni");
    EXPECT((kernels_fill(&t, ISA_AVX2) == 0) == avx2, "avx2 detection disagrees (compiler says %d)", avx2);
    EXPECT((kernels_fill(&t, ISA_AVX512) == 0) == avx512, "avx512 detection disagrees (compiler says %d)", avx512);
    EXPECT((kernels_fill(&t, ISA_AVX512VNNI) == 0) == vnni, "vnni detection disagrees (compiler says %d)", vnni);
    EXPECT(kernels_fill(&t, ISA_NEON) == -1, "neon claimed on x86");
    EXPECT(kernels_fill(&t, ISA_NEONDOT) == -1, "neondot claimed on x86");
    EXPECT(kernels_fill(&t, ISA_NEONI8MM) == -1, "neoni8mm claimed on x86");
#elif defined(__aarch64__)
    kernel_table t;
    EXPECT(kernels_fill(&t, ISA_NEON) == 0, "neon not available on aarch64");
    EXPECT(kernels_fill(&t, ISA_AVX2) == -1, "avx2 claimed on aarch64");
    /* tests/test_aarch64.sh runs this under emulated CPUs with and without the dot-product
     * and int8 matrix-multiply extensions */
    const char *dotprod = getenv("PRBOT_TEST_DOTPROD"), *i8mm = getenv("PRBOT_TEST_I8MM");
    if (dotprod)
        EXPECT((kernels_fill(&t, ISA_NEONDOT) == 0) == (atoi(dotprod) != 0),
               "neondot detection disagrees (the emulated CPU has dotprod: %s)", dotprod);
    if (i8mm)
        EXPECT((kernels_fill(&t, ISA_NEONI8MM) == 0) == (atoi(i8mm) != 0),
               "neoni8mm detection disagrees (the emulated CPU has i8mm: %s)", i8mm);
#else
    SKIP("no SIMD ISA for this architecture");
#endif
}

/* kernels_set_cap (PRBOT_ISA through engine_set_isa) caps the level
 * kernels_init picks; never raises it. */
static void test_cap(void)
{
    kernel_table t;
    const char *want = kernels_fill(&t, ISA_AVX2) == 0 ? "avx2" : "scalar";
    EXPECT(kernels_set_cap("avx3") == -1, "an unknown ISA name was accepted");
    REQUIRE(kernels_set_cap("avx2") == 0, "avx2 refused as a cap");
    kernels_init();
    REQUIRE(kernels.isa, "kernels_init left the table empty");
    EXPECT(strcmp(kernels.isa, want) == 0, "cap avx2 gave %s, want %s", kernels.isa, want);
    for (uint32_t type = 0; type < QT_COUNT; type++)
        if (quant_traits_of(type)) EXPECT(kernels.vec_dot[type] != NULL, "type %u has no kernel", type);
    kernels_init(); /* idempotent */
    EXPECT(strcmp(kernels.isa, want) == 0, "second kernels_init changed the table to %s", kernels.isa);
}

int main(void)
{
    static const kernel_isa isas[] = {ISA_AVX2, ISA_AVX512, ISA_AVX512VNNI, ISA_NEON, ISA_NEONDOT};
    static const char *const isa_names[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot"};
    TEST_RUN(test_scalar_table_is_the_reference);
    TEST_RUN(test_detection_matches_compiler);
    TEST_RUN(test_cap);
    TEST_RUN(test_simd_replaces_row_kernels);
    TEST_RUN(test_gelu_ref_is_gelu);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        cur_isa = isas[i];
#if defined(__x86_64__)
        if (cur_isa >= ISA_NEON) continue;
#else
        if (cur_isa < ISA_NEON) continue;
#endif
        char name[80];
        for (size_t k = 0; k < N_TYPES; k++) {
            cur_type = all_types[k];
            if (!quant_traits_of(cur_type)) continue;
            snprintf(name, sizeof name, "vec_dot_%s_%s", isa_names[cur_isa], quant_traits_of(cur_type)->name);
            TEST_RUN_AS(name, test_vec_dot_type);
        }
        snprintf(name, sizeof name, "f16_rows_%s", isa_names[cur_isa]);
        TEST_RUN_AS(name, test_f16_rows);
        snprintf(name, sizeof name, "silu_mul_%s", isa_names[cur_isa]);
        TEST_RUN_AS(name, test_silu_mul);
        snprintf(name, sizeof name, "gelu_mul_%s", isa_names[cur_isa]);
        TEST_RUN_AS(name, test_gelu_mul);
        for (cur_act = ACT_Q8_32; cur_act <= ACT_Q8_K; cur_act++) {
            snprintf(name, sizeof name, "quantize_%s_%s", isa_names[cur_isa], cur_act == ACT_Q8_32 ? "q8_32" : "q8_K");
            TEST_RUN_AS(name, test_quantize_act);
        }
    }
    return test_exit_code();
}
