/*
 * test_gemm.c - the matrix-matrix kernels against the scalar dot.
 *
 * For every ISA this CPU supports and every type with a gemm or gemm_panels
 * entry, random weight rows (seeded PRNG, sane f16 scales) and random
 * activation rows quantized by the scalar reference quantizer go through
 * each entry the table has (gemm on the rows, gemm_panels on them packed as
 * at load) in several shapes: single rows and tokens, odd sizes that leave
 * partial tiles and panels, and full 64 x 64 blocks, with row strides that
 * are not a multiple of anything SIMD-friendly. Every output element must
 * equal
 *     quant_traits_of(type)->vec_dot_ref(row r, token a)
 * within 1e-5 * (sum_i |w_i * a_i| + 1), the weights read back with the
 * scalar dequantizer (integer parts are exact; only float summation order
 * differs). The output buffer is padded on every side with guard values that
 * must survive, so a kernel that writes past its rows or tokens fails.
 * Some trials use activations that all quantize to +-127, and some saturated
 * weights (every quant at its maximum) against tokens all +127 or all -127:
 * the worst cases for 16-bit intermediate sums. Row counts 16, 17, 31, 48
 * against 1..20 tokens, and rows over 128 blocks, cover the row-panel kernels
 * (16 rows x a few tokens per pass, several passes over long rows) and the
 * edges they hand to tiles or store partially; for the k-quants the same
 * rows run with 1, 2, 3 and 19 super-blocks. The load-time panel layout
 * (kernels/panels.h) also gets a start past the first panel, more tokens
 * than one 32-token group, and, for every type it has a form for, whatever
 * the ISA, an exact pack/unpack round trip.
 */
#include <math.h>
#include <stdint.h>

#include "../engine/kernels/kernels.h"
#include "../engine/kernels/panels.h"
#include "quant_blocks.h"
#include "test.h"

/* One gemm problem: random operands laid out with awkward strides, plus the reference answer. */
typedef struct {
    int n, n_rows, n_act;
    size_t w_stride, act_stride, y_stride;
    uint8_t *w, *act;     /* row 0 starts MISALIGN bytes into the allocation */
    float *w_abs, *a_abs; /* |w_i| per row, |a_i| per token, for the tolerance */
    float *y_buf;         /* GUARD floats, n_act * y_stride floats, GUARD floats */
} gemm_case;

#define MISALIGN 4
#define GUARD 37
static const uint32_t guard_bits = 0x7FC0DEADu; /* a NaN no kernel produces */

static kernel_isa cur_isa;
static uint32_t cur_type;

/* How a case's operands are drawn. */
enum {
    CASE_RANDOM,    /* random weights, activations of random size */
    CASE_EXTREME,   /* activations that all quantize to +-127 (random signs) */
    CASE_SATURATED, /* every quant at its maximum; each token all +127 or all -127 */
};

static void free_case(gemm_case *c)
{
    free(c->w);
    free(c->act);
    free(c->w_abs);
    free(c->a_abs);
    free(c->y_buf);
}

static int make_case(gemm_case *c, int n, int n_rows, int n_act, int mode)
{
    const quant_traits *tr = quant_traits_of(cur_type);
    memset(c, 0, sizeof *c);
    c->n = n, c->n_rows = n_rows, c->n_act = n_act;
    /* strides: 4 bytes past the row (keeps block structs aligned, breaks every SIMD alignment) */
    c->w_stride = quant_row_size(cur_type, n) + 4;
    c->act_stride = act_row_size(tr->act, n) + 4;
    c->y_stride = (size_t)n_rows + 3;
    c->w = malloc(c->w_stride * (size_t)n_rows + MISALIGN);
    c->act = malloc(c->act_stride * (size_t)n_act + MISALIGN);
    c->w_abs = malloc(sizeof(float) * (size_t)n * (size_t)n_rows);
    c->a_abs = malloc(sizeof(float) * (size_t)n * (size_t)n_act);
    c->y_buf = malloc(sizeof(float) * ((size_t)n_act * c->y_stride + 2 * GUARD));
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!c->w || !c->act || !c->w_abs || !c->a_abs || !c->y_buf || !x) {
        free(x);
        return -1;
    }
    memset(c->w, 0xA5, c->w_stride * (size_t)n_rows + MISALIGN);
    memset(c->act, 0x5A, c->act_stride * (size_t)n_act + MISALIGN);
    for (int r = 0; r < n_rows; r++) {
        uint8_t *row = c->w + MISALIGN + (size_t)r * c->w_stride;
        if (mode == CASE_SATURATED) saturated_weight_blocks(cur_type, row, n / tr->block_size);
        else random_weight_blocks(cur_type, row, n / tr->block_size);
        tr->dequantize_row(row, c->w_abs + (size_t)r * n, n);
    }
    for (int a = 0; a < n_act; a++) {
        uint8_t *row = c->act + MISALIGN + (size_t)a * c->act_stride;
        float scale = rng_float(0.01f, 10.0f);
        for (int i = 0; i < n; i++) {
            if (mode == CASE_EXTREME) x[i] = (rng_next() & 1) ? scale : -scale;
            else if (mode == CASE_SATURATED) x[i] = a % 2 ? -scale : scale;
            else x[i] = scale * rng_float(-1, 1);
        }
        quantize_activations_ref(tr->act, x, row, n);
        for (int i = 0; i < n; i++) c->a_abs[(size_t)a * n + i] = act_value(tr->act, row, i);
    }
    for (size_t i = 0; i < (size_t)n * (size_t)n_rows; i++) c->w_abs[i] = fabsf(c->w_abs[i]);
    for (size_t i = 0; i < (size_t)n * (size_t)n_act; i++) c->a_abs[i] = fabsf(c->a_abs[i]);
    for (size_t i = 0; i < (size_t)n_act * c->y_stride + 2 * GUARD; i++) memcpy(&c->y_buf[i], &guard_bits, 4);
    free(x);
    return 0;
}

static int is_guard(const float *p)
{
    uint32_t bits;
    memcpy(&bits, p, 4);
    return bits == guard_bits;
}

/* The case's rows packed into the load-time panel layout and multiplied by
 * gemm_panels from row row0 (a multiple of 16) on; NULL when out of memory. */
static uint8_t *run_panels(const kernel_table *t, const gemm_case *c, int row0, const uint8_t *w, const uint8_t *act,
                           float *y)
{
    size_t row_bytes = quant_row_size(cur_type, c->n);
    uint8_t *rows = malloc(row_bytes * (size_t)c->n_rows);
    uint8_t *panels = malloc(panels_size(cur_type, c->n, c->n_rows) + MISALIGN);
    if (!rows || !panels) {
        free(rows);
        free(panels);
        return NULL;
    }
    for (int r = 0; r < c->n_rows; r++) memcpy(rows + (size_t)r * row_bytes, w + (size_t)r * c->w_stride, row_bytes);
    panels_pack(cur_type, c->n, c->n_rows, rows, panels + MISALIGN);
    free(rows);
    t->gemm_panels[cur_type](c->n, panels + MISALIGN, row0, c->n_rows - row0, act, c->act_stride, c->n_act, y + row0,
                             c->y_stride);
    return panels;
}

/* gemm (row0 < 0) or gemm_panels from row row0 against the scalar dot. */
static void check_case_from(const kernel_table *t, int n, int n_rows, int n_act, int mode, int row0)
{
    const quant_traits *tr = quant_traits_of(cur_type);
    gemm_case c;
    if (make_case(&c, n, n_rows, n_act, mode) != 0) {
        free_case(&c);
        REQUIRE(0, "out of memory");
    }
    const uint8_t *w = c.w + MISALIGN, *act = c.act + MISALIGN;
    float *y = c.y_buf + GUARD;
    if (row0 < 0) {
        t->gemm[cur_type](n, w, c.w_stride, n_rows, act, c.act_stride, n_act, y, c.y_stride);
        row0 = 0;
    } else {
        uint8_t *panels = run_panels(t, &c, row0, w, act, y);
        free(panels);
        if (!panels) {
            free_case(&c);
            REQUIRE(0, "out of memory");
        }
    }
    int bad = 0;
    for (int a = 0; a < n_act && !bad; a++) {
        for (int r = row0; r < n_rows && !bad; r++) {
            float ref = tr->vec_dot_ref(n, w + (size_t)r * c.w_stride, act + (size_t)a * c.act_stride);
            float got = y[(size_t)a * c.y_stride + r];
            double terms = 0;
            for (int i = 0; i < n; i++) terms += (double)c.w_abs[(size_t)r * n + i] * c.a_abs[(size_t)a * n + i];
            double tol = 1e-5 * (terms + 1), diff = fabs((double)got - ref);
            if (!(isfinite(ref) && diff <= tol)) {
                bad = 1;
                EXPECT(0, "%s n=%d %dx%d%s: y[tok %d][row %d] = %.9g, ref %.9g, diff %.3g > tol %.3g", tr->name, n,
                       n_rows, n_act, mode == CASE_EXTREME ? " extreme" : mode == CASE_SATURATED ? " saturated" : "",
                       a, r, got, ref, diff, tol);
            }
        }
    }
    /* everything outside y[a][0..n_rows) must still hold the guard */
    const size_t total = (size_t)n_act * c.y_stride + 2 * GUARD;
    for (size_t i = 0; i < total && !bad; i++) {
        long k = (long)i - GUARD;
        int inside = k >= 0 && k < (long)((size_t)n_act * c.y_stride) && (size_t)k % c.y_stride < (size_t)n_rows &&
                     (size_t)k % c.y_stride >= (size_t)row0;
        if (!inside && !is_guard(&c.y_buf[i])) {
            bad = 1;
            EXPECT(0, "%s n=%d %dx%d: wrote outside the output at offset %ld", tr->name, n, n_rows, n_act, k);
        }
    }
    free_case(&c);
}

/* The case through every product the table has for the type: gemm on GGUF rows, gemm_panels on packed ones. */
static void check_case(const kernel_table *t, int n, int n_rows, int n_act, int mode)
{
    const uint64_t seed = rng_state;
    if (t->gemm[cur_type]) check_case_from(t, n, n_rows, n_act, mode, -1);
    rng_state = seed; /* the same operands */
    if (t->gemm_panels[cur_type]) check_case_from(t, n, n_rows, n_act, mode, 0);
}

static void test_gemm_type(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    const quant_traits *tr = quant_traits_of(cur_type);
    REQUIRE(tr && tr->vec_dot_ref, "no scalar reference for type %u", cur_type);
    if (!t.gemm[cur_type] && !t.gemm_panels[cur_type]) SKIP("no gemm for %s", tr->name);
    rng_state = 0x6E33 + cur_type * 131 + (uint64_t)cur_isa * 7;
    static const int shapes[][2] = {{1, 1}, {1, 5}, {3, 17}, {17, 3}, {4, 4}, {5, 9}, {64, 64}, {13, 64}, {64, 1}};
    /* block counts: a single block, odd counts (tail of the 2-block steps), a Qwen-like 896/32 = 28 */
    const int bs = tr->block_size;
    int lengths[3];
    if (bs == 1) lengths[0] = 37, lengths[1] = 64, lengths[2] = 136;
    else if (bs == QK32) lengths[0] = bs, lengths[1] = 3 * bs, lengths[2] = 28 * bs;
    else lengths[0] = bs, lengths[1] = 2 * bs, lengths[2] = 3 * bs;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int l = 0; l < 3; l++) {
            int big = shapes[s][0] * shapes[s][1] >= 64 * 13;
            if (big && l == 0) continue; /* keep the suite fast: big shapes only with real lengths */
            check_case(&t, lengths[l], shapes[s][0], shapes[s][1], CASE_RANDOM);
            if (!big) check_case(&t, lengths[l], shapes[s][0], shapes[s][1], CASE_EXTREME);
        }
    /* Row counts around the 16-row panels (whole, +1, -1, three) against every
     * token count up to 20: 4-, 8- and 16-token groups and the 1..3 left over. */
    static const int panel_rows[] = {16, 17, 31, 48};
    for (size_t r = 0; r < sizeof panel_rows / sizeof panel_rows[0]; r++)
        for (int a = 1; a <= 20; a++) {
            check_case(&t, lengths[1], panel_rows[r], a, a == 16 ? CASE_EXTREME : CASE_RANDOM);
            if (bs == QK32 && (a == 5 || a == 16 || a == 20)) check_case(&t, lengths[2], panel_rows[r], a, CASE_RANDOM);
            /* k-quant panels: one and three super-blocks (the first stores, the rest add) */
            if (bs == QK_K && (a == 1 || a == 6 || a == 13)) {
                check_case(&t, lengths[0], panel_rows[r], a, a == 6 ? CASE_EXTREME : CASE_RANDOM);
                check_case(&t, lengths[2], panel_rows[r], a, CASE_RANDOM);
            }
        }
    /* a Qwen-like ffn_down row (4864 = 19 super-blocks) in a 64-row x 32-token slice */
    if (bs == QK_K) {
        check_case(&t, 19 * QK_K, 32, 7, CASE_RANDOM);
        check_case(&t, 19 * QK_K, 16, 5, CASE_EXTREME);
    }
    /* rows longer than one 128-block activation table (several passes adding into y; one
     * token, and the single token left after a group of 16, go in one pass) */
    if (bs == QK32) {
        check_case(&t, 131 * QK32, 32, 20, CASE_RANDOM);
        check_case(&t, 131 * QK32, 16, 16, CASE_EXTREME);
        check_case(&t, 131 * QK32, 48, 1, CASE_RANDOM);
        check_case(&t, 280 * QK32, 17, 17, CASE_RANDOM);
    }
    /* every quant at its maximum: the largest partial sums, whole and partial panels and tiles */
    static const int saturated_shapes[][2] = {{17, 5}, {48, 20}, {5, 1}, {3, 4}};
    for (size_t k = 0; k < sizeof saturated_shapes / sizeof saturated_shapes[0]; k++)
        for (int l = 1; l < 3; l++) check_case(&t, lengths[l], saturated_shapes[k][0], saturated_shapes[k][1], CASE_SATURATED);
}

/* The panel kernels on weights repacked like model load does: whole and
 * partial last panels (padding rows must not be stored), a start past the
 * first panel, one token (decode) and the 4/8/16-token groups, rows longer
 * than one 128-block activation table (32-element formats) or as long as
 * Qwen2.5-Coder-1.5B's ffn_down rows (k-quants: 35 super-blocks). */
static void test_gemm_panels(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    const quant_traits *tr = quant_traits_of(cur_type);
    if (!t.gemm_panels[cur_type]) SKIP("no panel kernel for %s", tr->name);
    REQUIRE(panels_supported(cur_type), "%s has a panel kernel but no panel layout", tr->name);
    rng_state = 0x9A4E1 + cur_type;
    const int bs = tr->block_size, kq = bs == QK_K;
    const int few = 3 * bs, some = (kq ? 6 : 28) * bs, many = (kq ? 35 : 131) * bs;
    static const int rows[] = {16, 17, 31, 48, 5};
    static const int tokens[] = {1, 2, 3, 4, 5, 8, 13, 16, 20};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (size_t a = 0; a < sizeof tokens / sizeof tokens[0]; a++) {
            check_case_from(&t, few, rows[r], tokens[a], tokens[a] == 4 ? CASE_EXTREME : CASE_RANDOM, 0);
            if (rows[r] > 16) check_case_from(&t, some, rows[r], tokens[a], CASE_RANDOM, 16);
        }
    check_case_from(&t, bs, 17, 1, CASE_RANDOM, 0);
    check_case_from(&t, bs, 33, 6, CASE_EXTREME, 16);
    check_case_from(&t, many, 33, 1, CASE_RANDOM, 16);
    check_case_from(&t, many, 32, 17, CASE_EXTREME, 0);
    /* more tokens than one activation group (AVX2: 32 tokens for the k-quants, 64 for the
     * rest), whole and partial; and rows of several 32-block chunks with them (AVX2 unpacks
     * a panel of the 32-element formats 32 blocks at a time) */
    check_case_from(&t, some, 48, 45, CASE_RANDOM, 0);
    check_case_from(&t, few, 33, 70, CASE_EXTREME, 16);
    check_case_from(&t, many, 17, 67, CASE_RANDOM, 0);
    /* every quant at its maximum, decode and prefill */
    static const int saturated_tokens[] = {1, 2, 4, 13, 45};
    for (size_t a = 0; a < sizeof saturated_tokens / sizeof saturated_tokens[0]; a++) {
        check_case_from(&t, few, 31, saturated_tokens[a], CASE_SATURATED, 0);
        if (kq) check_case_from(&t, some, 17, saturated_tokens[a], CASE_SATURATED, 0);
    }
}

/* A token's row from a batch equals, bit for bit, the same token's row from a
 * one-token (decode) call: prompt-lookup speculation keeps plain decoding's
 * output only when batch rows are one-token rows (engine.c, tests/test_spec.c),
 * so a panel kernel's prefill path may differ from its decode path in how it
 * forms the exact integer sums, never in its float operations. Shapes: a
 * partial panel, several blocks (super-blocks), tokens that leave 4-, 2- and
 * 1-token passes. */
static void test_gemm_panels_rows_exact(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    const quant_traits *tr = quant_traits_of(cur_type);
    if (!t.gemm_panels[cur_type]) SKIP("no panel kernel for %s", tr->name);
    rng_state = 0x5EC + cur_type;
    static const int tokens[] = {2, 3, 7};
    for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
        gemm_case c, one;
        const int n = (tr->block_size == QK_K ? 3 : 37) * tr->block_size;
        float *y1 = malloc(sizeof(float) * 64);
        if (make_case(&c, n, 33, tokens[k], CASE_RANDOM) != 0 || !y1) {
            free_case(&c);
            free(y1);
            REQUIRE(0, "out of memory");
        }
        const uint8_t *w = c.w + MISALIGN, *act = c.act + MISALIGN;
        float *y = c.y_buf + GUARD;
        uint8_t *panels = run_panels(&t, &c, 0, w, act, y);
        int oom = !panels, bad = 0;
        free(panels);
        one = c;
        one.n_act = 1;
        for (int a = 0; a < c.n_act && !bad && !oom; a++) {
            panels = run_panels(&t, &one, 0, w, act + (size_t)a * c.act_stride, y1);
            oom = !panels;
            free(panels);
            for (int r = 0; r < c.n_rows && !bad && !oom; r++)
                if (memcmp(&y1[r], &y[(size_t)a * c.y_stride + r], sizeof(float)) != 0) {
                    bad = 1;
                    EXPECT(0, "%s %dx%d: token %d row %d: batch %.9g, one token %.9g", tr->name, c.n_rows, c.n_act, a,
                           r, y[(size_t)a * c.y_stride + r], y1[r]);
                }
        }
        free_case(&c);
        free(y1);
        REQUIRE(!oom, "out of memory");
        if (bad) return;
    }
}

/* Every row of a packed matrix (random bytes, a partial last panel) unpacks
 * to its exact GGUF bytes, whatever kernels this machine has. */
static void test_panels_round_trip(void)
{
    const quant_traits *tr = quant_traits_of(cur_type);
    rng_state = 0x2F17 + cur_type;
    const int n = 5 * tr->block_size, n_rows = 21;
    size_t row_bytes = quant_row_size(cur_type, n);
    uint8_t *w = malloc(row_bytes * n_rows), *panels = malloc(panels_size(cur_type, n, n_rows)), *back = malloc(row_bytes);
    REQUIRE(w && panels && back, "out of memory");
    for (size_t i = 0; i < row_bytes * n_rows; i++) w[i] = (uint8_t)rng_next();
    panels_pack(cur_type, n, n_rows, w, panels);
    for (int r = 0; r < n_rows; r++) {
        panels_unpack_row(cur_type, n, panels, r, back);
        EXPECT(memcmp(back, w + (size_t)r * row_bytes, row_bytes) == 0, "%s row %d does not unpack to its bytes",
               tr->name, r);
    }
    free(w), free(panels), free(back);
}

/* Blocks as a quantizer makes them (not random bytes): rows of quantize_row_ref
 * output against quantized activations, in the model's slice shape. */
static void check_quantized_rows(const kernel_table *t, int n, int n_rows, int n_act)
{
    const quant_traits *tr = quant_traits_of(cur_type);
    size_t row_bytes = quant_row_size(cur_type, n), act_bytes = act_row_size(tr->act, n);
    uint8_t *w = malloc(row_bytes * (size_t)n_rows), *act = malloc(act_bytes * (size_t)n_act);
    float *x = malloc(sizeof(float) * (size_t)n), *wf = malloc(sizeof(float) * (size_t)n);
    float *af = malloc(sizeof(float) * (size_t)n * (size_t)n_act), *y = malloc(sizeof(float) * (size_t)n_rows * n_act);
    REQUIRE(w && act && x && wf && af && y, "out of memory");
    for (int r = 0; r < n_rows; r++) {
        for (int i = 0; i < n; i++) x[i] = rng_float(-1.0f, 1.0f) * (i % 7 == 0 ? 4.0f : 1.0f);
        REQUIRE(quantize_row_ref(cur_type, x, w + (size_t)r * row_bytes, n) > 0, "quantize_row_ref(%s)", tr->name);
    }
    for (int a = 0; a < n_act; a++) {
        float *xa = af + (size_t)a * n;
        for (int i = 0; i < n; i++) xa[i] = rng_float(-1.0f, 1.0f);
        if (tr->act == ACT_F32)
            memcpy(act + (size_t)a * act_bytes, xa, act_bytes);
        else
            (tr->act == ACT_Q8_32 ? quantize_row_q8_32_ref : quantize_row_q8_K_ref)(xa, act + (size_t)a * act_bytes, n);
    }
    /* through gemm on the rows and through gemm_panels on them packed, whichever the table has */
    for (int packed = 0; packed < 2; packed++) {
        if (packed ? !t->gemm_panels[cur_type] : !t->gemm[cur_type]) continue;
        if (packed) {
            uint8_t *panels = malloc(panels_size(cur_type, n, n_rows));
            REQUIRE(panels, "out of memory");
            panels_pack(cur_type, n, n_rows, w, panels);
            t->gemm_panels[cur_type](n, panels, 0, n_rows, act, act_bytes, n_act, y, (size_t)n_rows);
            free(panels);
        } else {
            t->gemm[cur_type](n, w, row_bytes, n_rows, act, act_bytes, n_act, y, (size_t)n_rows);
        }
        int bad = 0;
        for (int r = 0; r < n_rows && !bad; r++) {
            tr->dequantize_row(w + (size_t)r * row_bytes, wf, n);
            for (int a = 0; a < n_act && !bad; a++) {
                float ref = tr->vec_dot_ref(n, w + (size_t)r * row_bytes, act + (size_t)a * act_bytes);
                double terms = 0;
                for (int i = 0; i < n; i++) terms += fabs((double)wf[i] * af[(size_t)a * n + i]);
                double diff = fabs((double)y[(size_t)a * n_rows + r] - ref);
                if (!(diff <= 1e-4 * (terms + 1))) {
                    bad = 1;
                    EXPECT(0, "%s n=%d %dx%d quantized rows%s: y[tok %d][row %d] = %.7g, ref %.7g", tr->name, n, n_rows,
                           n_act, packed ? " packed" : "", a, r, y[(size_t)a * n_rows + r], ref);
                }
            }
        }
    }
    free(w), free(act), free(x), free(wf), free(af), free(y);
}

static void test_gemm_quantized(void)
{
    kernel_table t;
    if (kernels_fill(&t, cur_isa) != 0) SKIP("this CPU or build lacks the ISA");
    const quant_traits *tr = quant_traits_of(cur_type);
    if (!t.gemm[cur_type] && !t.gemm_panels[cur_type]) SKIP("no gemm for %s", tr->name);
    rng_state = 0x51 + cur_type;
    int bs = tr->block_size == 1 ? 64 : tr->block_size;
    check_quantized_rows(&t, 2 * bs, 64, 27);
    check_quantized_rows(&t, 3 * bs, 17, 5);
}

/* Every type has a scalar gemm, and the SIMD levels really replace the ones
 * prefill depends on (for a type with a panel layout, gemm_panels does). */
static void test_gemm_coverage(void)
{
    kernel_table scalar, simd;
    REQUIRE(kernels_fill(&scalar, ISA_SCALAR) == 0, "scalar table");
    for (size_t k = 0; k < N_TYPES; k++)
        if (quant_traits_of(all_types[k])) EXPECT(scalar.gemm[all_types[k]] != NULL, "no scalar gemm for type %u", all_types[k]);
    static const uint32_t fast[] = {QT_Q4_0, QT_Q8_0, QT_Q4_K, QT_Q5_K, QT_Q6_K};
    /* plain NEON (no SDOT) loops over its vec_dot: not a level that must have these */
    static const kernel_isa isas[] = {ISA_AVX2, ISA_AVX512VNNI, ISA_NEONDOT, ISA_NEONI8MM};
    int tested = 0;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (kernels_fill(&simd, isas[i]) != 0) continue;
        tested++;
        for (size_t k = 0; k < sizeof fast / sizeof fast[0]; k++) {
            const int has_gemm = simd.gemm[fast[k]] && simd.gemm[fast[k]] != scalar.gemm[fast[k]];
            EXPECT(has_gemm || simd.gemm_panels[fast[k]], "%s gemm for %s is missing or scalar", simd.isa,
                   quant_traits_of(fast[k])->name);
        }
    }
    if (!tested) SKIP("no SIMD level with gemm kernels on this CPU");
}

int main(void)
{
    static const kernel_isa isas[] = {ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_AVX512VNNI, ISA_NEON, ISA_NEONDOT, ISA_NEONI8MM};
    static const char *const isa_names[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot", "neoni8mm"};
    TEST_RUN(test_gemm_coverage);
    for (size_t k = 0; k < N_TYPES; k++) {
        cur_type = all_types[k];
        if (!quant_traits_of(cur_type) || !panels_supported(cur_type)) continue;
        char name[80];
        snprintf(name, sizeof name, "panels_round_trip_%s", quant_traits_of(cur_type)->name);
        TEST_RUN_AS(name, test_panels_round_trip);
    }
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        cur_isa = isas[i];
        char name[80];
        for (size_t k = 0; k < N_TYPES; k++) {
            cur_type = all_types[k];
            if (!quant_traits_of(cur_type)) continue;
            snprintf(name, sizeof name, "gemm_%s_%s", isa_names[cur_isa], quant_traits_of(cur_type)->name);
            TEST_RUN_AS(name, test_gemm_type);
            snprintf(name, sizeof name, "gemm_quantized_%s_%s", isa_names[cur_isa], quant_traits_of(cur_type)->name);
            TEST_RUN_AS(name, test_gemm_quantized);
            if (!panels_supported(cur_type)) continue;
            snprintf(name, sizeof name, "gemm_panels_%s_%s", isa_names[cur_isa], quant_traits_of(cur_type)->name);
            TEST_RUN_AS(name, test_gemm_panels);
            snprintf(name, sizeof name, "gemm_panels_rows_exact_%s_%s", isa_names[cur_isa], quant_traits_of(cur_type)->name);
            TEST_RUN_AS(name, test_gemm_panels_rows_exact);
        }
    }
    return test_exit_code();
}
