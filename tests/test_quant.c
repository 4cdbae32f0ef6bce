/*
 * test_quant.c - the scalar references in engine/quant.c.
 *
 * - vec_dot_ref of random weight blocks with a quantized activation row must
 *   equal the f64 dot product of the two dequantized rows (the integer fast
 *   path and the dequantizer describe the same numbers);
 * - activation quantizers: values within half a step, s and bsums correct;
 * - quantize_row_ref followed by dequantize_row stays within a per-type rms
 *   error (the layout against the format itself is checked by
 *   tests/test_quant_oracle.py with the independent Python gguf package);
 * - hand-built blocks whose values follow from the published layout;
 * - f16/bf16 conversions: exhaustive f16 round trip, correct rounding
 *   checked against neighbours, special values;
 * - traits table and row sizes, including invalid ids and lengths.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../engine/quant.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state;

static uint32_t rng_u32(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static float rng_uniform(void) { return (float)(rng_u32() >> 8) / 16777216.0f; } /* [0, 1) */

static float rng_normal(void)
{
    float u1 = rng_uniform() + 1e-7f, u2 = rng_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}


static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct {
    uint32_t type;
    const char *name;
    int block_size;
    size_t type_size; /* from the GGUF specification, not from sizeof */
    size_t f16_fields[2]; /* byte offsets of f16 scale fields in a block */
    int n_f16_fields;
    double roundtrip_rms; /* allowed rms error / rms(x) of quantize_row_ref on gaussian data */
} type_case;

static const type_case type_cases[] = {
    {QT_F32, "F32", 1, 4, {0}, 0, 0.0},
    {QT_F16, "F16", 1, 2, {0}, 0, 5e-4},
    {QT_BF16, "BF16", 1, 2, {0}, 0, 3e-3},
    {QT_Q4_0, "Q4_0", 32, 18, {offsetof(block_q4_0, d)}, 1, 0.12},
    {QT_Q4_1, "Q4_1", 32, 20, {offsetof(block_q4_1, d), offsetof(block_q4_1, m)}, 2, 0.11},
    {QT_Q5_0, "Q5_0", 32, 22, {offsetof(block_q5_0, d)}, 1, 0.06},
    {QT_Q5_1, "Q5_1", 32, 24, {offsetof(block_q5_1, d), offsetof(block_q5_1, m)}, 2, 0.055},
    {QT_Q8_0, "Q8_0", 32, 34, {offsetof(block_q8_0, d)}, 1, 0.008},
    {QT_IQ4_NL, "IQ4_NL", 32, 18, {offsetof(block_iq4_nl, d)}, 1, 0.11},
    {QT_Q2_K, "Q2_K", 256, 84, {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)}, 2, 0.42},
    {QT_Q3_K, "Q3_K", 256, 110, {offsetof(block_q3_K, d)}, 1, 0.21},
    {QT_Q4_K, "Q4_K", 256, 144, {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)}, 2, 0.11},
    {QT_Q5_K, "Q5_K", 256, 176, {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)}, 2, 0.055},
    {QT_Q6_K, "Q6_K", 256, 210, {offsetof(block_q6_K, d)}, 1, 0.027},
    {QT_IQ4_XS, "IQ4_XS", 256, 136, {offsetof(block_iq4_xs, d)}, 1, 0.11},
};
#define N_TYPES ((int)(sizeof type_cases / sizeof type_cases[0]))

/* Random weight row: random bytes, f16 scales set to +-[1e-3, 1e-1]; float
 * types get gaussian values. */
static void random_weight_row(const type_case *tc, uint8_t *row, int64_t n)
{
    size_t n_blocks = (size_t)(n / tc->block_size);
    if (tc->block_size == 1) {
        for (int64_t i = 0; i < n; i++) {
            float v = rng_normal();
            if (tc->type == QT_F32) memcpy(row + 4 * i, &v, 4);
            if (tc->type == QT_F16) { f16_t h = f32_to_f16(v); memcpy(row + 2 * i, &h, 2); }
            if (tc->type == QT_BF16) { bf16_t h = f32_to_bf16(v); memcpy(row + 2 * i, &h, 2); }
        }
        return;
    }
    for (size_t b = 0; b < n_blocks * tc->type_size; b++) row[b] = (uint8_t)rng_u32();
    for (size_t b = 0; b < n_blocks; b++)
        for (int f = 0; f < tc->n_f16_fields; f++) {
            float mag = 1e-3f + rng_uniform() * (1e-1f - 1e-3f);
            f16_t h = f32_to_f16(rng_u32() & 1 ? mag : -mag);
            memcpy(row + b * tc->type_size + tc->f16_fields[f], &h, 2);
        }
}

/* The activation row as floats, as the weight's vec_dot sees it. */
static void dequantize_act(act_format fmt, const void *act, float *out, int n)
{
    if (fmt == ACT_F32) {
        memcpy(out, act, (size_t)n * sizeof(float));
    } else if (fmt == ACT_Q8_32) {
        const block_q8_32 *b = act;
        for (int i = 0; i < n; i++) out[i] = b[i / QK32].d * (float)b[i / QK32].qs[i % QK32];
    } else {
        const block_q8_K *b = act;
        for (int i = 0; i < n; i++) out[i] = b[i / QK_K].d * (float)b[i / QK_K].qs[i % QK_K];
    }
}

static void quantize_act(act_format fmt, const float *x, void *act, int n)
{
    if (fmt == ACT_F32) memcpy(act, x, (size_t)n * sizeof(float));
    else if (fmt == ACT_Q8_32) quantize_row_q8_32_ref(x, act, n);
    else quantize_row_q8_K_ref(x, act, n);
}

/* ---------------------------------------------------------- the tests */

enum { ROW = 1024, MAX_ROW_BYTES = ROW * 4 };

static const type_case *current_type;

static void check_vec_dot_one_type(void)
{
    const type_case *tc = current_type;
    const quant_traits *t = quant_traits_of(tc->type);
    REQUIRE(t, "no traits");
    static uint8_t w[MAX_ROW_BYTES], act[ROW * 2 * sizeof(float)];
    static float wf[ROW], x[ROW], af[ROW];
    rng_state = 0x9E3779B97F4A7C15ULL ^ tc->type;
    for (int trial = 0; trial < 20; trial++) {
        int n = trial % 2 ? ROW : 512;
        random_weight_row(tc, w, n);
        for (int i = 0; i < n; i++) x[i] = rng_normal() * (trial % 3 ? 1.0f : 30.0f);
        REQUIRE(act_row_size(t->act, n) <= sizeof act, "activation buffer too small");
        quantize_act(t->act, x, act, n);
        t->dequantize_row(w, wf, n);
        dequantize_act(t->act, act, af, n);
        double ref = 0.0, mag = 0.0;
        for (int i = 0; i < n; i++) {
            ref += (double)wf[i] * af[i];
            mag += fabs((double)wf[i] * af[i]);
        }
        float got = t->vec_dot_ref(n, w, act);
        REQUIRE(isfinite(got), "trial %d: vec_dot is %g", trial, got);
        EXPECT(fabs(got - ref) <= 1e-4 * mag + 1e-30, "trial %d n %d: vec_dot %.9g, dequantized dot %.9g (sum|t| %g)",
               trial, n, got, ref, mag);
    }
}

static void check_roundtrip_one_type(void)
{
    const type_case *tc = current_type;
    const quant_traits *t = quant_traits_of(tc->type);
    REQUIRE(t, "no traits");
    static uint8_t q[MAX_ROW_BYTES];
    static float x[ROW], y[ROW];
    rng_state = 12345 + tc->type;
    for (int trial = 0; trial < 8; trial++) {
        float spread = trial < 4 ? 1.0f : 1e-3f;
        float offset = trial % 2 ? 0.3f * spread : 0.0f;
        for (int i = 0; i < ROW; i++) x[i] = rng_normal() * spread + offset;
        memset(q, 0xAB, sizeof q);
        REQUIRE(quantize_row_ref(tc->type, x, q, ROW) == quant_row_size(tc->type, ROW), "size returned");
        t->dequantize_row(q, y, ROW);
        double err = 0.0, ref = 0.0;
        for (int i = 0; i < ROW; i++) {
            err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            ref += (double)x[i] * x[i];
        }
        double rel = sqrt(err / ref);
        EXPECT(rel <= tc->roundtrip_rms, "trial %d: relative rms error %.4f > %.4f", trial, rel, tc->roundtrip_rms);
    }
    /* zeros stay zeros (no 0/0 in scales) */
    memset(x, 0, sizeof x);
    quantize_row_ref(tc->type, x, q, ROW);
    t->dequantize_row(q, y, ROW);
    for (int i = 0; i < ROW; i++) REQUIRE(y[i] == 0.0f, "zero input gives %g at %d", y[i], i);
    /* a lone spike survives: the largest value in a block sets its scale */
    x[77] = 5.0f;
    quantize_row_ref(tc->type, x, q, ROW);
    t->dequantize_row(q, y, ROW);
    EXPECT(fabsf(y[77] - 5.0f) < 0.1f, "spike 5.0 comes back as %g", y[77]);
    for (int i = 0; i < ROW; i++)
        if (i != 77) EXPECT(fabsf(y[i]) < 0.1f, "zero next to a spike comes back as %g at %d", y[i], i);
}

static void test_activation_quantizers(void)
{
    static float x[ROW];
    static block_q8_32 a32[ROW / QK32];
    static block_q8_K ak[ROW / QK_K];
    rng_state = 99;
    for (int i = 0; i < ROW; i++) x[i] = rng_normal() * (i < 512 ? 1.0f : 1e-4f);
    x[5] = -9.0f;
    for (int i = 64; i < 96; i++) x[i] = 0.0f; /* an all-zero block */
    quantize_row_q8_32_ref(x, a32, ROW);
    quantize_row_q8_K_ref(x, ak, ROW);
    for (int b = 0; b < ROW / QK32; b++) {
        float amax = 0.0f;
        int sum = 0, big = 0;
        for (int j = 0; j < QK32; j++) amax = fmaxf(amax, fabsf(x[b * QK32 + j]));
        for (int j = 0; j < QK32; j++) {
            float v = a32[b].d * a32[b].qs[j];
            /* half a step, plus up to 127 x the f16 rounding of d (2^-11 relative, 2^-25 absolute) */
            EXPECT(fabsf(v - x[b * QK32 + j]) <= amax / 254.0f * 1.13f + 127 * 3e-8f, "q8_32 block %d: %g vs %g", b, v,
                   x[b * QK32 + j]);
            EXPECT(a32[b].qs[j] >= -127, "q8_32 uses -128");
            sum += a32[b].qs[j];
            big |= abs(a32[b].qs[j]) == 127;
        }
        /* s is d*sum rounded through f16, like the reference's activations */
        EXPECT(a32[b].s == f16_to_f32(f32_to_f16(amax / 127.0f * (float)sum)), "q8_32 s wrong");
        EXPECT(a32[b].sum == sum, "q8_32 sum %d, want %d", a32[b].sum, sum);
        EXPECT(a32[b].d == f16_to_f32(f32_to_f16(amax / 127.0f)), "q8_32 d is not amax/127 in f16");
        EXPECT(amax == 0.0f || big, "q8_32 block %d does not use the full range", b);
        EXPECT(amax != 0.0f || a32[b].d == 0.0f, "zero block has d %g", a32[b].d);
    }
    for (int b = 0; b < ROW / QK_K; b++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[b * QK_K + j]));
        for (int j = 0; j < QK_K; j++) {
            float v = ak[b].d * ak[b].qs[j];
            EXPECT(fabsf(v - x[b * QK_K + j]) <= amax / 254.0f * 1.001f, "q8_K block %d: %g vs %g", b, v,
                   x[b * QK_K + j]);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += ak[b].qs[16 * g + l];
            EXPECT(ak[b].bsums[g] == sum, "q8_K bsums[%d] = %d, qs sum %d", g, ak[b].bsums[g], sum);
        }
    }
    EXPECT(a32[0].qs[5] == -127 && fabsf(a32[0].d * a32[0].qs[5] + 9.0f) < 9.0f / 2048, "the block maximum -9 is -127 steps");
}

/* Blocks built by hand from the published layout: element values follow from
 * the format description, independent of our unpacking code. */
static void test_hand_built_blocks(void)
{
    float out[QK_K];

    block_q4_0 q40;
    memset(&q40, 0, sizeof q40);
    q40.d = f32_to_f16(0.5f);
    q40.qs[3] = 0xA1; /* element 3 = low nibble 1, element 19 = high nibble 10 */
    quant_traits_of(QT_Q4_0)->dequantize_row(&q40, out, QK32);
    EXPECT(out[3] == 0.5f * (1 - 8) && out[19] == 0.5f * (10 - 8) && out[0] == -4.0f, "Q4_0: %g %g %g", out[3],
           out[19], out[0]);

    block_q5_0 q50;
    memset(&q50, 0, sizeof q50);
    q50.d = f32_to_f16(1.0f);
    q50.qh[2] = 0x02; /* bit 17 of the little-endian qh: element 17 gets +16 */
    q50.qs[1] = 0x30; /* element 17 low bits = 3 */
    quant_traits_of(QT_Q5_0)->dequantize_row(&q50, out, QK32);
    EXPECT(out[17] == 3.0f && out[1] == -16.0f, "Q5_0: %g %g", out[17], out[1]);

    block_q4_K q4k;
    memset(&q4k, 0, sizeof q4k);
    q4k.d = f32_to_f16(1.0f);
    q4k.dmin = f32_to_f16(0.25f);
    /* sub-block 5: scale = low nibble of scales[9] | (scales[1] >> 6) << 4,
     * min = high nibble of scales[9] | (scales[5] >> 6) << 4 */
    q4k.scales[9] = 0x37;
    q4k.scales[1] = 0x80;  /* top bits 2 -> scale 7 + 32 = 39 */
    q4k.scales[5] = 0x40;  /* top bits 1 -> min 3 + 16 = 19 */
    q4k.qs[64 + 3] = 0x90; /* sub-block 5 = high nibbles of bytes 64..95: element 160 + 3 gets 9 */
    quant_traits_of(QT_Q4_K)->dequantize_row(&q4k, out, QK_K);
    EXPECT(out[163] == 39.0f * 9 - 0.25f * 19 && out[160] == -0.25f * 19, "Q4_K: %g %g", out[163], out[160]);

    block_q6_K q6k;
    memset(&q6k, 0, sizeof q6k);
    q6k.d = f32_to_f16(1.0f);
    for (int j = 0; j < 16; j++) q6k.scales[j] = (int8_t)(j - 8);
    /* element 128 + 96 + 5 (second half, group 3): low bits = high nibble of
     * ql[64 + 32 + 5], high bits = bits 6-7 of qh[32 + 5] */
    q6k.ql[101] = 0xF0;
    q6k.qh[37] = 0x80; /* high 2 bits = 2 -> q = 15 + 32 - 32 = 15 */
    quant_traits_of(QT_Q6_K)->dequantize_row(&q6k, out, QK_K);
    EXPECT(out[229] == (float)((229 / 16) - 8) * 15.0f, "Q6_K: %g", out[229]);
    EXPECT(out[0] == -8.0f * -32.0f, "Q6_K element 0: %g", out[0]);

    block_q3_K q3k;
    memset(&q3k, 0, sizeof q3k);
    q3k.d = f32_to_f16(1.0f);
    memset(q3k.hmask, 0xFF, sizeof q3k.hmask); /* no -4 offsets anywhere */
    q3k.hmask[7] = 0xFF & ~(1 << 5);           /* except element 5*32 + 7 = 167 */
    /* scale 10: low 4 bits in high nibble of scales[2], high 2 bits at bits 4-5 of scales[10] */
    q3k.scales[2] = 0x50;
    q3k.scales[10] = 0x20; /* scale = 5 | 2 << 4 = 37 -> 37 - 32 = 5; others are 0 - 32 */
    q3k.qs[32 + 7] = 0x04; /* element 167: second half, group 1, l = 7 -> bits 2-3 = 1 */
    quant_traits_of(QT_Q3_K)->dequantize_row(&q3k, out, QK_K);
    EXPECT(out[167] == 5.0f * (1 - 4), "Q3_K: %g", out[167]);
    EXPECT(out[0] == 0.0f && out[166] == 0.0f, "Q3_K zeros: %g %g", out[0], out[166]);

    block_iq4_xs xs;
    memset(&xs, 0, sizeof xs);
    xs.d = f32_to_f16(2.0f);
    xs.scales_l[1] = 0x30;          /* sub-block 3 low bits = 3 */
    xs.scales_h = (uint16_t)(2 << 6); /* sub-block 3 high bits = 2 -> 35 - 32 = 3 */
    xs.qs[16 * 3 + 4] = 0xF0;       /* element 96 + 16 + 4 = index 15 -> 113 */
    quant_traits_of(QT_IQ4_XS)->dequantize_row(&xs, out, QK_K);
    EXPECT(out[116] == 2.0f * 3 * 113 && out[100] == 2.0f * 3 * -127, "IQ4_XS: %g %g", out[116], out[100]);
}

static void test_f16_exhaustive_round_trip(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((f16_t)h);
        int is_nan = ((h & 0x7c00) == 0x7c00) && (h & 0x3ff);
        if (is_nan) {
            REQUIRE(isnan(f), "f16 %#06x should be NaN", h);
            REQUIRE(f32_to_f16(f) == (f16_t)(h | 0x200), "NaN %#06x comes back as %#06x", h, f32_to_f16(f));
        } else {
            REQUIRE(f32_to_f16(f) == h, "f16 %#06x -> %g -> %#06x", h, f, f32_to_f16(f));
        }
    }
    EXPECT(f16_to_f32(0x3c00) == 1.0f && f16_to_f32(0xc000) == -2.0f, "1 and -2");
    EXPECT(f16_to_f32(0x7bff) == 65504.0f, "largest finite");
    EXPECT(f16_to_f32(0x0001) == 0x1p-24f && f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "subnormals");
    EXPECT(f16_to_f32(0x0400) == 0x1p-14f, "smallest normal");
    EXPECT(isinf(f16_to_f32(0x7c00)) && f16_to_f32(0xfc00) < 0, "infinities");
    EXPECT(signbit(f16_to_f32(0x8000)) && f16_to_f32(0x8000) == 0.0f, "negative zero");
}

static void test_f32_to_f16_rounding(void)
{
    EXPECT(f32_to_f16(65519.996f) == 0x7bff, "just below the overflow tie");
    EXPECT(f32_to_f16(65520.0f) == 0x7c00 && f32_to_f16(-1e9f) == 0xfc00, "overflow to inf");
    EXPECT(f32_to_f16(0x1p-25f) == 0x0000, "2^-25 ties to even zero");
    EXPECT(f32_to_f16(0x1.000002p-25f) == 0x0001, "just above 2^-25 rounds up");
    EXPECT(f32_to_f16(3 * 0x1p-25f) == 0x0002, "1.5 units ties to even 2");
    EXPECT(f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "1 + half ulp ties to even");
    EXPECT(f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "1 + 1.5 ulp ties to even");
    EXPECT(f32_to_f16(0x1.ffep-15f) == 0x0400, "rounding carries from subnormal to normal");
    EXPECT(f32_to_f16(-0.0f) == 0x8000, "negative zero");
    EXPECT(f32_to_f16(f32_from_bits(0x7f800001)) != 0x7c00 && (f32_to_f16(f32_from_bits(0x7f800001)) & 0x7c00) == 0x7c00,
           "a NaN with only low payload bits stays NaN");
    /* random floats: the result is the nearest f16, ties to even */
    rng_state = 4242;
    for (int i = 0; i < 200000; i++) {
        float f = f32_from_bits(rng_u32() & 0xbfffffffu); /* exponents below 2^1, plenty of subnormals */
        if (i % 2) f = rng_normal() * 3000.0f;
        f16_t h = f32_to_f16(f);
        double err = fabs((double)f16_to_f32(h) - f);
        for (int step = -1; step <= 1; step += 2) {
            f16_t other = (f16_t)(h + step);
            if ((other & 0x7fff) >= 0x7c00 || (other ^ h) & 0x8000) continue;
            double other_err = fabs((double)f16_to_f32(other) - f);
            REQUIRE(err < other_err || (err == other_err && !(h & 1)), "%.9g -> %#06x, but %#06x is nearer", f, h,
                    other);
        }
    }
}

static void test_bf16(void)
{
    EXPECT(bf16_to_f32(0x3f80) == 1.0f && bf16_to_f32(0xc040) == -3.0f, "1 and -3");
    EXPECT(f32_to_bf16(1.0f) == 0x3f80, "1");
    EXPECT(f32_to_bf16(f32_from_bits(0x3f808000)) == 0x3f80, "tie to even down");
    EXPECT(f32_to_bf16(f32_from_bits(0x3f818000)) == 0x3f82, "tie to even up");
    EXPECT(f32_to_bf16(f32_from_bits(0x3f808001)) == 0x3f81, "above the tie");
    EXPECT(isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0x7f800001)))), "NaN with low payload stays NaN");
    EXPECT(isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0xffc00000)))), "negative quiet NaN");
    EXPECT(f32_to_bf16(INFINITY) == 0x7f80 && f32_to_bf16(-INFINITY) == 0xff80, "infinities");
    EXPECT(f32_to_bf16(-0.0f) == 0x8000, "negative zero");
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue; /* NaN */
        REQUIRE(f32_to_bf16(bf16_to_f32((bf16_t)h)) == h, "bf16 %#06x does not round trip", h);
    }
    rng_state = 777;
    for (int i = 0; i < 100000; i++) {
        float f = f32_from_bits(rng_u32() & 0x7effffffu);
        bf16_t h = f32_to_bf16(f);
        double err = fabs((double)bf16_to_f32(h) - f);
        double up = fabs((double)bf16_to_f32((bf16_t)(h + 1)) - f);
        double down = h & 0x7fff ? fabs((double)bf16_to_f32((bf16_t)(h - 1)) - f) : INFINITY;
        REQUIRE(err <= up && err <= down, "%.9g -> %#06x is not the nearest bf16", f, h);
    }
}

static void test_traits_table(void)
{
    for (int i = 0; i < N_TYPES; i++) {
        const type_case *tc = &type_cases[i];
        const quant_traits *t = quant_traits_of(tc->type);
        REQUIRE(t, "%s has no traits", tc->name);
        EXPECT(strcmp(t->name, tc->name) == 0, "type %u is named %s", tc->type, t->name);
        EXPECT(t->block_size == tc->block_size, "%s block size %d", tc->name, t->block_size);
        EXPECT(t->type_size == tc->type_size, "%s type size %zu, the format says %zu", tc->name, t->type_size,
               tc->type_size);
        EXPECT(t->dequantize_row && t->vec_dot_ref, "%s functions missing", tc->name);
        act_format want = tc->block_size == 1 ? ACT_F32 : tc->block_size == QK32 ? ACT_Q8_32 : ACT_Q8_K;
        EXPECT(t->act == want, "%s act format %d", tc->name, t->act);
    }
    const uint32_t unsupported[] = {4, 5, QT_Q8_1, QT_Q8_K, 16, 19, 21, 22, 29, 31, 39, QT_COUNT, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        EXPECT(quant_traits_of(unsupported[i]) == NULL, "type %u should be unsupported", unsupported[i]);
    EXPECT(sizeof(block_q8_32) == 44 && sizeof(block_q8_K) == 292, "activation block sizes");
    EXPECT(iq4nl_values[0] == -127 && iq4nl_values[8] == 1 && iq4nl_values[15] == 113, "iq4nl grid");
}

static void test_row_sizes(void)
{
    EXPECT(quant_row_size(QT_Q4_0, 64) == 36, "Q4_0 64");
    EXPECT(quant_row_size(QT_Q4_0, 31) == 0 && quant_row_size(QT_Q4_0, 33) == 0, "Q4_0 partial block");
    EXPECT(quant_row_size(QT_Q4_0, 0) == 0, "empty row");
    EXPECT(quant_row_size(QT_Q4_0, -32) == 0, "negative length");
    EXPECT(quant_row_size(QT_Q4_K, 512) == 288 && quant_row_size(QT_Q4_K, 128) == 0, "Q4_K");
    EXPECT(quant_row_size(QT_Q6_K, 4096) == 16 * 210, "Q6_K");
    EXPECT(quant_row_size(QT_F32, 3) == 12 && quant_row_size(QT_F16, 3) == 6 && quant_row_size(QT_BF16, 1) == 2,
           "float types");
    EXPECT(quant_row_size(QT_Q8_K, 256) == 0 && quant_row_size(99, 256) == 0 && quant_row_size(UINT32_MAX, 32) == 0,
           "unknown types");
    EXPECT(quant_row_size(QT_Q8_0, (int64_t)1 << 40) == ((size_t)1 << 35) * 34, "large rows do not overflow");
    EXPECT(act_row_size(ACT_F32, 5) == 20, "f32 act");
    EXPECT(act_row_size(ACT_Q8_32, 64) == 88 && act_row_size(ACT_Q8_32, 48) == 0, "q8_32 act");
    EXPECT(act_row_size(ACT_Q8_K, 512) == 584 && act_row_size(ACT_Q8_K, 300) == 0, "q8_K act");
    EXPECT(act_row_size((act_format)7, 32) == 0, "unknown act format");
    float x[32] = {0};
    uint8_t out[64];
    EXPECT(quantize_row_ref(QT_Q4_0, x, out, 31) == 0, "quantize_row_ref rejects partial blocks");
    EXPECT(quantize_row_ref(QT_Q8_K, x, out, 32) == 0, "quantize_row_ref rejects unsupported types");
    EXPECT(quantize_row_ref(QT_Q8_0, x, out, 32) == 34, "quantize_row_ref returns bytes");
}

int main(void)
{
    char name[64];
    for (int i = 0; i < N_TYPES; i++) {
        current_type = &type_cases[i];
        snprintf(name, sizeof name, "vec_dot_matches_dequantized_%s", type_cases[i].name);
        TEST_RUN_AS(name, check_vec_dot_one_type);
    }
    for (int i = 0; i < N_TYPES; i++) {
        current_type = &type_cases[i];
        snprintf(name, sizeof name, "quantize_row_ref_roundtrip_%s", type_cases[i].name);
        TEST_RUN_AS(name, check_roundtrip_one_type);
    }
    TEST_RUN(test_activation_quantizers);
    TEST_RUN(test_hand_built_blocks);
    TEST_RUN(test_f16_exhaustive_round_trip);
    TEST_RUN(test_f32_to_f16_rounding);
    TEST_RUN(test_bf16);
    TEST_RUN(test_traits_table);
    TEST_RUN(test_row_sizes);
    return test_exit_code();
}
