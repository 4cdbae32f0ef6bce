/*
 * forward.h - what the two halves of the forward pass share (engine-internal).
 *
 * model.c holds the math: what a transformer block computes for one token
 * (norms, q/k/v preparation, FFN activation, residual adds), written once and
 * read top to bottom in transformer(). schedule.c decides who computes it and
 * when: it splits every matrix product and attention across the thread pool,
 * in prefill (a batch of tokens, one parallel region per step) and in decode
 * (one token, one parallel region for the whole pass in which every thread
 * runs transformer() itself). A `pass` is what transformer() sees: the
 * tokens, and in decode which thread it is running on.
 */
#ifndef PRBOT_FORWARD_H
#define PRBOT_FORWARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model.h"

#define MAX_HEAD_DIM 512

/* The products of each layer, in the order the forward pass runs them; the
 * output matrix is product n_layer * PRODUCTS_PER_LAYER. */
enum { PRODUCT_QKV, PRODUCT_O, PRODUCT_FFN_IN, PRODUCT_DOWN, PRODUCTS_PER_LAYER };

static inline int product_step(int il, int product) { return il * PRODUCTS_PER_LAYER + product; }
static inline int output_step(const model *m) { return m->n_layer * PRODUCTS_PER_LAYER; }

/* A thread's share of a decode product, in panels: [front, back) in one word. */
typedef struct {
    _Alignas(64) _Atomic uint64_t span;
} owned_share;

/* What one thread keeps to itself while decoding a token. */
typedef struct {
    float *x;     /* the residual stream */
    float *in;    /* a product's input before quantization (a norm, or the gated FFN input) */
    float *q;     /* the query, prepared and rounded to f16 values */
    uint8_t *act; /* `in` quantized */
} decode_scratch;

/* cos and sin of every position's rotation angles: [n_ctx][rope_dim / 2] each. */
typedef struct {
    float *cos, *sin;
} rope_table;

struct model_state {
    const model *m;
    thread_pool *pool;
    int n_ctx, n_batch, pos;
    /* KV cache, F16 like the reference's default: per layer, per KV head, a
     * run of kv_slots[il] rows of head_dim (see kv_row in model.c) */
    f16_t *k_cache, *v_cache;
    size_t *kv_offset; /* [n_layer]: the layer's first row */
    int *kv_slots;     /* [n_layer]: rows per KV head */
    int *kv_ring;      /* [n_layer]: positions the ring holds, 0 when every position has its own row */
    rope_table rope[2]; /* [ROPE_GLOBAL], [ROPE_SLIDING] */
    float kq_scale;     /* multiplies q . k in attention (1 when q carries the scale) */
    /* activations, n_batch rows each */
    float *x;      /* residual stream, n_embd */
    float *in;     /* a product's input rows before quantization, widest input */
    float *qkv;    /* q | k | v of each token, qkv_dim */
    float *att;    /* attention output, q_dim */
    float *o;      /* output of wo and w_down, n_embd */
    float *ffn;    /* gate | up, 2 n_ff */
    float *logits; /* n_vocab: the last row */
    uint8_t *act;  /* quantized activations of the widest input */
    uint8_t *embd_row; /* one GGUF row of the embedding matrix, unpacked from panels */
    /* attention scratch */
    float *scores;             /* prefill, per thread: score rows, query rows, output rows */
    size_t att_scratch_floats; /* per thread */
    int *n_keys;               /* prefill, per thread: att_rows key counts */
    int att_rows;
    float *decode_scores;      /* decode: [n_head][n_ctx] scores, then probabilities, shared by the threads */
    /* decode scheduling */
    owned_share *shares;       /* [product][thread] */
    decode_scratch *decode;    /* one per thread, in decode_mem */
    uint8_t *decode_mem;
    float *wtile;              /* prefill with float weights, per thread: dequantized weight rows for sgemm */
    size_t wtile_floats;
};

/* One forward pass over a chunk of tokens, as one thread sees it. */
typedef struct {
    model_state *s;
    const model *m;
    int n_tok, pos0;   /* tokens [0, n_tok) at positions pos0.. */
    int out_first;     /* the output product runs on tokens [out_first, n_tok) */
    float *logits;     /* their logits */
    int decode;        /* one token inside the decode region: ith of nth, with its own scratch */
    int ith, nth;
    decode_scratch *me;
} pass;

/* The residual stream row of token t. */
static inline float *pass_x(const pass *p, int t)
{
    return p->decode ? p->me->x : p->s->x + (size_t)t * p->m->n_embd;
}

static inline int q_dim_of(const model *m) { return m->n_head * m->head_dim; }
static inline int kv_dim_of(const model *m) { return m->n_head_kv * m->head_dim; }
static inline int qkv_dim_of(const model *m) { return q_dim_of(m) + 2 * kv_dim_of(m); }

/* A product's input row for token t, computed into dst (n_in floats). In
 * prefill, where each token's row belongs to one thread while its input is
 * made, dst is row t of `rows` (stride floats apart) when given, so that fn
 * can work in place; otherwise (and always in decode) a scratch row. */
typedef struct {
    void (*fn)(const pass *p, int t, float *dst, const void *arg);
    const void *arg;
    float *rows;
    size_t stride;
} row_input;

/* A step applied to every token's row: fn(p, t, arg). */
typedef void (*row_step)(const pass *p, int t, const void *arg);

/* ---- model.c: the math, called from schedule.c */

/* The forward pass of p's tokens through every layer and the output matrix. */
void transformer(pass *p);
/* The matrices of product `step` (returns how many, 1-3) and where their
 * output goes: one row per token of all their outputs side by side (*y NULL
 * for the output matrix, whose rows go to the pass's logits). */
int product_matrices(const model_state *s, int step, const matrix *w[3], float **y);
/* Token t's query (every head), in place: bias, norm, RoPE, scale. */
void prepare_query(const model_state *s, int il, float *q, int pos);
/* KV head kvh of one token's k or v, prepared in place and stored in the cache. */
void store_key(model_state *s, int il, int kvh, float *k, int pos);
void store_value(model_state *s, int il, int kvh, float *v, int pos);
/* The cache row of (layer il, KV head kvh, position pos). From there the rows
 * of the positions that follow, up to the newest, are contiguous for as many
 * as attention reads (key_range). */
f16_t *kv_row(const model_state *s, f16_t *cache, int il, int kvh, int pos);
/* The keys a query at position pos attends to in layer il: [*first, pos]; returns their count. */
int key_range(const model_state *s, int il, int pos, int *first);

/* ---- schedule.c: who runs what */

/* y = in W for the matrices of product `step`, for p's tokens (the output
 * product: tokens [out_first, n_tok)). `in` computes each input row; NULL
 * means the product reads the attention output as it is. */
void run_product(pass *p, int step, const row_input *in);
/* Attention of layer il: every token's q, k, v prepared (prepare_query,
 * store_key, store_value) and att = softmax(q k^T * scale) v over the cache. */
void run_attention(pass *p, int il);
/* fn on every token's row. */
void run_rows(pass *p, row_step fn, const void *arg);
/* Tokens already embedded in s->x through transformer(): n > 1 as a batch,
 * n == 1 as one decode region. Logits of tokens [out_first, n) go to `logits`. */
void schedule_forward(model_state *s, int n, int out_first, float *logits);
/* Scheduling state of a new model_state (decode shares, per-thread scratch,
 * attention scratch, and with float_weights the sgemm tiles); 0 or -1 when
 * out of memory. widest: the widest product input. */
int schedule_state_init(model_state *s, size_t widest, int float_weights);
void schedule_state_free(model_state *s);

#endif
