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

/* What one architecture does differently; zero is the llama default. */
typedef struct {
    const char *name;
    rope_layout rope;
    int qkv_bias; /* q, k, v must carry bias vectors (other archs may) */
} arch_traits;

/* A weight matrix: its GGUF tensor and, once model_pack_weights found a panel
 * kernel for its type on this CPU, the same rows repacked into 16-row panels
 * (kernels/panels.h), which the forward pass then reads instead of the file. */
typedef struct {
    const gguf_tensor *t;
    uint8_t *panels; /* NULL: the rows as the file stores them */
} matrix;

typedef struct {
    float *attn_norm, *ffn_norm;      /* f32 copies, n_embd */
    float *bq, *bk, *bv;              /* f32 copies or NULL */
    matrix wq, wk, wv, wo;
    matrix w_gate, w_up, w_down;
} layer_weights;

typedef struct {
    const arch_traits *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, rope_dim;
    float rope_base, norm_eps;
    matrix tok_embd, output; /* same tensor (and panels) when tied */
    float *output_norm;
    layer_weights *layers;
    uint64_t weight_bytes; /* bytes read per decoded token */
} model;

int model_load(model *m, const gguf_file *f, char *err, size_t errlen);
/* Repacks every matrix whose type has a panel kernel (kernels.gemm_panels) on
 * the pool's threads, and hands the file pages it no longer reads back to the
 * kernel, so memory stays about one copy of the weights. */
int model_pack_weights(model *m, thread_pool *pool, char *err, size_t errlen);
void model_free(model *m);

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
int model_state_n_ctx(const model_state *s);

/* Runs tokens[0..n) at the current position (any n; split into n_batch chunks).
 * logits_all: n rows of n_vocab, or NULL. The last row is always kept and
 * returned by model_state_logits. */
int model_forward(model_state *s, const int32_t *tokens, int n, float *logits_all, char *err, size_t errlen);
float *model_state_logits(model_state *s);

#endif
