/*
 * kernels.h - the run-time dispatch table.
 *
 * kernels_init() fills `kernels` once at start-up: scalar references first,
 * then whatever the CPU supports (AVX2, AVX-512/VNNI, NEON) overrides the
 * entries it has faster versions of. Everything hot calls through this table,
 * so a machine without AVX2 still runs the scalar path, and tests can compare
 * any entry against quant_traits_of(t)->vec_dot_ref.
 */
#ifndef PRBOT_KERNELS_H
#define PRBOT_KERNELS_H

#include "../quant.h"

typedef struct {
    const char *isa; /* "scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot", "neoni8mm" */
    vec_dot_fn vec_dot[QT_COUNT];
    quantize_act_fn quantize_act[3]; /* indexed by act_format; [ACT_F32] unused */
    /* Matrix-matrix product for prefill: for r < n_rows, a < n_act:
     *   y[a * y_stride + r] = vec_dot(n, w + r * w_stride, act + a * act_stride)
     * Weights are unpacked once and reused across several activation rows.
     * NULL = not available for this type (callers loop over vec_dot). */
    void (*gemm[QT_COUNT])(int n, const void *w, size_t w_stride, int n_rows, const void *act, size_t act_stride,
                           int n_act, float *y, size_t y_stride);
    /* The same product on weights repacked at load into 16-row panels
     * (panels.h): rows [row0, row0 + n_rows) of the packed matrix, row0 a
     * multiple of 16, y pointing at row0's output. Serves decode (n_act = 1)
     * and prefill. NULL = no panel kernel: weights stay as GGUF stores them. */
    void (*gemm_panels[QT_COUNT])(int n, const void *panels, int row0, int n_rows, const void *act,
                                  size_t act_stride, int n_act, float *y, size_t y_stride);
    /* rows to and from f16 (round to nearest even), as the KV cache stores them */
    void (*f32_to_f16_row)(int n, const float *x, f16_t *y);
    void (*f16_to_f32_row)(int n, const f16_t *x, float *y);
    /* SwiGLU: gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i] */
    void (*silu_mul_row)(int n, float *gate, const float *up);
    /* GeGLU (tanh form): gate[i] = gelu(gate[i]) * up[i], gelu(g) = g / 2 (1 + tanh(z / 2)) =
     * g / (1 + e^-z) with z = 2 sqrt(2 / pi) (g + 0.044715 g^3) */
    void (*gelu_mul_row)(int n, float *gate, const float *up);
    /* Decode attention over the F16 cache in three steps, so that threads can split the
     * keys (scores), the query rows (softmax) and the head columns (P x V), each thread
     * reading its own part of the cache. Composed for one row they compute attention_ref:
     *   attention_scores:  scores[r * s_stride + j] = scale * q_r . k_j   (r < n_q, j < n)
     *   attention_softmax: s[0, n) -> softmax probabilities, rounded to f16 as the
     *                      reference rounds them before multiplying with V
     *   attention_values:  out[r * out_stride + c] = sum_j p[r * p_stride + j] v_j[c]
     *                      for c < n_cols, keys in order: a column's result does not
     *                      depend on how the columns are split.
     * q rows are hd floats apart and already rounded to f16 values; k and v rows are
     * kv_stride elements apart (v pointing at the first column wanted). */
    void (*attention_scores)(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride, float scale,
                             float *scores, size_t s_stride);
    void (*attention_softmax)(int n, float *s);
    void (*attention_values)(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                             size_t kv_stride, float *out, size_t out_stride);
    /* A block of n_q query rows sharing one KV head (GQA heads x tokens): row r
     * attends to keys [0, n_keys[r]) and gets exactly what attention_ref gives
     * it (same probabilities rounded to f16). q rows are hd floats apart, out
     * rows too; scores is scratch of n_q rows, scores_stride floats apart
     * (>= max n_keys). Blocking over keys lets one K/V tile serve every row. */
    void (*attention_block)(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                            size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out);
    /* The int8 multiply-accumulate step this level's prefill kernels repeat,
     * alone on registers: `rounds` x INT8_PROBE_MACS products, a sum of them
     * stored to *sink so that nothing is optimised away. What it sustains is
     * the compute ceiling of prefill, as memory bandwidth is decode's
     * (engine_membw_int8_pass). NULL on the scalar level: no ceiling there. */
    void (*int8_mac_probe)(long rounds, int32_t *sink);
} kernel_table;

#define INT8_PROBE_MACS 1024 /* products per round of int8_mac_probe */

void attention_block_ref(int n_q, const int *n_keys, int hd, const float *q, const f16_t *k, const f16_t *v,
                         size_t kv_stride, float scale, float *scores, size_t scores_stride, float *out);
float dot_f16_f32_ref(int n, const f16_t *x, const float *y);
void f32_to_f16_row_ref(int n, const float *x, f16_t *y);
void f16_to_f32_row_ref(int n, const f16_t *x, float *y);
void axpy_f16_ref(int n, float alpha, const f16_t *x, float *y);
void silu_mul_row_ref(int n, float *gate, const float *up);
void gelu_mul_row_ref(int n, float *gate, const float *up);
/* One query row against n keys: scores (n floats of scratch) end as the probabilities. */
void attention_ref(int n, int hd, const float *q, const f16_t *k, const f16_t *v, size_t kv_stride, float scale,
                   float *scores, float *out);
void attention_scores_ref(int n_q, int n, int hd, const float *q, const f16_t *k, size_t kv_stride, float scale,
                          float *scores, size_t s_stride);
void attention_softmax_ref(int n, float *s);
void attention_values_ref(int n_q, int n, int n_cols, const float *p, size_t p_stride, const f16_t *v,
                          size_t kv_stride, float *out, size_t out_stride);
void kernels_install_attention_avx2(kernel_table *t);
void kernels_install_attention_avx512(kernel_table *t); /* attention_block only */
void kernels_install_attention_neon(kernel_table *t);

extern kernel_table kernels;

/* gelu's z = g (GELU_Z_LINEAR + GELU_Z_CUBIC g^2): 2 sqrt(2 / pi) and 2 sqrt(2 / pi) 0.044715 */
#define GELU_Z_LINEAR 1.5957691216057308f
#define GELU_Z_CUBIC 0.071354816f

/* ISA_NEONDOT: NEON with the dot-product extension (SDOT); ISA_NEONI8MM: and
 * with the int8 matrix-multiply extension (SMMLA). */
typedef enum {
    ISA_SCALAR = 0,
    ISA_AVX2 = 1,
    ISA_AVX512 = 2,
    ISA_AVX512VNNI = 3,
    ISA_NEON = 4,
    ISA_NEONDOT = 5,
    ISA_NEONI8MM = 6,
} kernel_isa;

/* Caps the level kernels_init chooses at the ISA named "scalar", "avx2",
 * "avx512", "avx512vnni", "neon", "neondot" or "neoni8mm" (NULL or "" = no cap); only
 * calls before the first kernels_init count. Returns -1, changing nothing, on
 * another name. */
int kernels_set_cap(const char *name);
/* Fills `kernels` for the best ISA the CPU has, up to the cap. Idempotent. */
void kernels_init(void);
/* Fills `t` for exactly `isa` if this CPU and build support it; returns -1 otherwise. */
int kernels_fill(kernel_table *t, kernel_isa isa);

/* Per-ISA installers, each only overriding the entries it implements. */
void kernels_install_avx2(kernel_table *t);
void kernels_install_avx512(kernel_table *t, int vnni);
void kernels_install_neon(kernel_table *t, int dotprod);
/* Matrix-matrix (prefill) entries: scalar wrappers of vec_dot_ref for every
 * type, and the SIMD tiles (engine/kernels/gemm_*.c) for the types they cover. */
void kernels_install_gemm_ref(kernel_table *t);
void kernels_install_gemm_avx2(kernel_table *t);
void kernels_install_gemm_avx512(kernel_table *t, int vnni);
void kernels_install_gemm_neon(kernel_table *t, int i8mm); /* SDOT panels; i8mm: SMMLA prefill */
/* Sets to NULL the gemm entries that are still the scalar wrappers. */
void kernels_drop_scalar_gemm(kernel_table *t);

#endif
