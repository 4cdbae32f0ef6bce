/*
 * model.h - transformer weights and the forward pass.
 *
 * model_load binds GGUF tensors to a model description and checks every
 * shape; architecture differences are named fields of a small table
 * (arch_traits), not separate code paths. model_state owns everything that
 * changes while running: KV cache, scratch buffers, position.
 */
#ifndef PRBOT_MODEL_H
#define PRBOT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "threads.h"

typedef enum {
    ROPE_ADJACENT, /* rotate pairs (2i, 2i + 1) */
    ROPE_NEOX,     /* rotate pairs (i, i + rope_dim / 2) */
} rope_layout;

typedef enum {
    FFN_SILU,      /* SwiGLU: silu(gate) * up */
    FFN_GELU_TANH, /* GeGLU: gelu(gate) * up, tanh approximation */
} ffn_activation;

/* What one architecture does differently; zero is the llama default. */
typedef struct {
    const char *name;
    rope_layout rope;
    ffn_activation ffn;
    int qkv_bias;        /* q, k, v must carry bias vectors (other archs may) */
    int qk_norm;         /* RMS norm over each head of q and k before RoPE (attn_q_norm, attn_k_norm) */
    int post_norms;      /* RMS norm of the attention and FFN outputs before each residual add
                            (post_attention_norm, post_ffw_norm) */
    int embd_scale_sqrt; /* embedding rows times sqrt(n_embd) */
    int fused_qkv;       /* q, k, v as one attn_qkv matrix (three separate ones also accepted) */
    int fused_gate_up;   /* gate and up as one ffn_up matrix of 2 n_ff rows, gate first */
    int scaled_query;    /* q times the attention scale before attention, not the scores */
    int swa_pattern;     /* with attention.sliding_window: layer il slides unless (il + 1) % swa_pattern
                            == 0; 0: every layer slides */
    float swa_rope_base; /* RoPE base of sliding layers, never scaled (0: as the other layers) */
    int scales;          /* embedding_scale, residual_scale, attention.scale, logit_scale from metadata */
} arch_traits;

/* A weight matrix: its GGUF tensor and, once model_pack_weights found a panel
 * kernel for its type on this CPU, the same rows repacked into 16-row panels
 * (kernels/panels.h), which the forward pass then reads instead of the file. */
typedef struct {
    const gguf_tensor *t;
    uint8_t *panels; /* NULL: the rows as the file stores them */
} matrix;

enum { ROPE_GLOBAL, ROPE_SLIDING };

typedef struct {
    float *attn_norm, *ffn_norm;          /* f32 copies, n_embd */
    float *attn_post_norm, *ffn_post_norm; /* or NULL */
    float *q_norm, *k_norm;               /* head_dim, or NULL */
    float *bq, *bk, *bv;                  /* f32 copies or NULL */
    matrix wqkv;                          /* fused q | k | v, or wq, wk, wv */
    matrix wq, wk, wv, wo;
    matrix w_gate, w_up, w_down;          /* w_up alone is gate | up when fused */
    int window; /* sliding window: a query sees the keys at most window - 1 positions back; 0: all */
    int rope;   /* ROPE_GLOBAL or ROPE_SLIDING */
} layer_weights;

/* How positions turn into rotation angles (one per kind of layer). */
typedef struct {
    float base;          /* theta_i = pos * scale / factor_i * base^(-2i / rope_dim) */
    float scale;         /* linear scaling: 1 / rope.scaling.factor */
    float mscale;        /* cos and sin times this (rope.scaling.attn_factor) */
    const float *factors; /* rope_dim / 2 frequency divisors, or NULL */
    int longrope;        /* factors are LongRoPE's: long or short by context size (model_state_new) */
} rope_params;

typedef struct {
    const arch_traits *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, rope_dim;
    float norm_eps;
    rope_params rope[2]; /* [ROPE_GLOBAL], [ROPE_SLIDING] */
    float *rope_freqs;   /* llama 3: rope_freqs.weight */
    float *rope_long, *rope_short; /* LongRoPE: rope_factors_long/short.weight */
    int n_ctx_orig;      /* LongRoPE: long factors beyond this context */
    float embd_scale, residual_scale, attn_scale, logit_scale; /* 1, 1, 1/sqrt(head_dim), 1 by default */
    matrix tok_embd, output; /* same tensor (and panels) when tied */
    float *output_norm;
    layer_weights *layers;
    uint64_t weight_bytes; /* bytes read per decoded token */
    uint64_t layer_macs;   /* weight products per token in the layers' matrices */
} model;

int model_load(model *m, const gguf_file *f, char *err, size_t errlen);
/* Repacks every matrix whose type has a panel kernel (kernels.gemm_panels) on
 * the pool's threads, and hands the file pages it no longer reads back to the
 * kernel, so memory stays about one copy of the weights. */
int model_pack_weights(model *m, thread_pool *pool, char *err, size_t errlen);
void model_free(model *m);
/* "llama, qwen2, ..." */
const char *model_supported_archs(void);

typedef struct model_state model_state;

/* n_ctx: KV cache positions; n_batch: max tokens per forward call chunk. */
int model_state_new(model_state **out, const model *m, int n_ctx, int n_batch, thread_pool *pool, char *err,
                    size_t errlen);
void model_state_free(model_state *s);
void model_state_reset(model_state *s);
/* Drops the cache positions from pos on, keeping [0, pos) for the next
 * forward call to continue from, and returns the position it now stands at:
 * min(pos, current position) for a cache that keeps every position. A cache
 * that cannot go back that far (a sliding window that has overwritten the
 * positions it would need) returns less, down to 0 (everything dropped). */
int model_state_rewind(model_state *s, int pos);
int model_state_pos(const model_state *s);
/* Bytes of K and V cache, all layers (flat in n_ctx for sliding-window layers). */
uint64_t model_state_kv_bytes(const model_state *s);

/* Runs tokens[0..n) at the current position (any n; split into n_batch chunks).
 * logits_all: n rows of n_vocab, or NULL. The last row is always kept and
 * returned by model_state_logits. */
int model_forward(model_state *s, const int32_t *tokens, int n, float *logits_all, char *err, size_t errlen);
float *model_state_logits(model_state *s);

#endif
