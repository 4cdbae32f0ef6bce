/*
 * model.h - transformer weights and the forward pass (llama, qwen2).
 *
 * model_load binds GGUF tensors to a model description and checks every
 * shape; architecture differences are rows of a small table (RoPE layout,
 * QKV bias), not separate code paths. model_state owns everything that
 * changes while running: KV cache, scratch buffers, position.
 */
#ifndef PRBOT_MODEL_H
#define PRBOT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "threads.h"

typedef struct {
    const char *name;
    int rope_neox;    /* 1: rotate (i, i+d/2) pairs; 0: rotate adjacent (2i, 2i+1) pairs */
    int qkv_bias;     /* attention q/k/v carry bias vectors */
} arch_traits;

typedef struct {
    float *attn_norm, *ffn_norm;      /* f32 copies, n_embd */
    float *bq, *bk, *bv;              /* f32 copies or NULL */
    const gguf_tensor *wq, *wk, *wv, *wo;
    const gguf_tensor *w_gate, *w_up, *w_down;
} layer_weights;

typedef struct {
    const arch_traits *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, rope_dim;
    float rope_base, norm_eps;
    const gguf_tensor *tok_embd, *output; /* output == tok_embd when tied */
    float *output_norm;
    layer_weights *layers;
    uint64_t weight_bytes; /* bytes read per decoded token */
} model;

int model_load(model *m, const gguf_file *f, char *err, size_t errlen);
void model_free(model *m);

typedef struct model_state model_state;

/* n_ctx: KV cache positions; n_batch: max tokens per forward call chunk. */
int model_state_new(model_state **out, const model *m, int n_ctx, int n_batch, thread_pool *pool, char *err,
                    size_t errlen);
void model_state_free(model_state *s);
void model_state_reset(model_state *s);
int model_state_pos(const model_state *s);
int model_state_n_ctx(const model_state *s);

/* Runs tokens[0..n) at the current position (any n; split into n_batch chunks).
 * logits_all: n rows of n_vocab, or NULL. The last row is always kept and
 * returned by model_state_logits. */
int model_forward(model_state *s, const int32_t *tokens, int n, float *logits_all, char *err, size_t errlen);
float *model_state_logits(model_state *s);

#endif
