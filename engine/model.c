/*
 * model.c - llama/qwen2 weights and the forward pass.
 *
 * Loading reads the hyper-parameters from `{arch}.*` metadata, binds every
 * tensor by name and checks its shape and type, so the forward pass never
 * meets a surprise. Small vectors (norms, biases) are copied to f32; big
 * matrices stay in the mmap in their own quant type, or are repacked once
 * into 16-row panels where the kernels have a panel form (model_pack_weights).
 *
 * model_forward reads top to bottom as the math of one transformer block,
 * applied to a batch of tokens at once:
 *
 *   x = embed(tokens)
 *   for each layer:
 *     h = rmsnorm(x) * attn_norm
 *     q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv);  rope(q, k)
 *     cache k, v;  x += attention(q, cache) Wo
 *     h = rmsnorm(x) * ffn_norm
 *     x += (silu(h Wgate) * (h Wup)) Wdown
 *   logits = (rmsnorm(x) * output_norm) Wout
 *
 * Matrix products quantize the activations once into the weight type's
 * activation format and call the dispatch table's kernels; output rows are
 * split across the thread pool (see "matrix multiply" below). The KV cache is
 * F16, one contiguous run of rows per (layer, KV head). Prefill attention
 * works in blocks of (KV head, a few tokens) so one pass over the cache
 * serves every query row of the block, never an n x n matrix; decode
 * attention splits keys, heads and head columns across the threads (see
 * "attention" below).
 */
#include "model.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cblas.h>

#include "kernels/kernels.h"
#include "kernels/panels.h"
#include "quant.h"

#define MAX_HEAD_DIM 512
#define MATMUL_ROW_TILE 64 /* prefill: rows per gemm call (amortises per-call token work) */
#define MATVEC_ROW_TILE 16 /* decode: one weight panel */
#define MATMUL_TOK_TILE 32

static const arch_traits arch_table[] = {
    {"llama", 0, 0},
    {"qwen2", 1, 1},
};

/* ---------------------------------------------------------------- loading */

static int get_arch_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out, int required,
                        char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_get_u32(f, key, out) == 0) return 0;
    if (!required) return 1;
    snprintf(err, errlen, "%s: missing or invalid metadata %s", f->path, key);
    return -1;
}

static const gguf_tensor *bind_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, int optional,
                                      char *err, size_t errlen)
{
    const gguf_tensor *t = gguf_tensor_find(f, name);
    if (!t) {
        if (!optional) snprintf(err, errlen, "%s: tensor %s is missing", f->path, name);
        return NULL;
    }
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (t->ne[0] != ne0 || rows != ne1) {
        snprintf(err, errlen, "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", f->path, name,
                 (long long)t->ne[0], (long long)rows, (long long)ne0, (long long)ne1);
        return NULL;
    }
    if (!quant_traits_of(t->type)) {
        snprintf(err, errlen, "%s: tensor %s has unsupported type %u", f->path, name, t->type);
        return NULL;
    }
    return t;
}

/* Copies a 1-D tensor of any type to a fresh f32 array. */
static float *load_vector(const gguf_file *f, const char *name, int64_t n, int optional, int *failed, char *err,
                          size_t errlen)
{
    const gguf_tensor *t = bind_tensor(f, name, n, 1, optional, err, errlen);
    if (!t) {
        if (!optional || gguf_tensor_find(f, name)) *failed = 1;
        return NULL;
    }
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory loading %s", name);
        *failed = 1;
        return NULL;
    }
    quant_traits_of(t->type)->dequantize_row(t->data, v, n);
    return v;
}

static int load_hparams(model *m, const gguf_file *f, const char *arch, char *err, size_t errlen)
{
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, rope_dim, key_len;
    if (get_arch_u32(f, arch, "embedding_length", &n_embd, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "block_count", &n_layer, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "attention.head_count", &n_head, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "feed_forward_length", &n_ff, 1, err, errlen) < 0)
        return -1;
    if (get_arch_u32(f, arch, "attention.head_count_kv", &n_head_kv, 0, err, errlen)) n_head_kv = n_head;
    if (get_arch_u32(f, arch, "context_length", &n_ctx, 0, err, errlen)) n_ctx = 2048;
    if (n_embd == 0 || n_embd > 65536 || n_layer == 0 || n_layer > 1024 || n_head == 0 || n_head > 1024 ||
        n_head_kv == 0 || n_head % n_head_kv || n_ff == 0 || n_ff > 1 << 20) {
        snprintf(err, errlen, "%s: implausible model dimensions (embd %u, layers %u, heads %u/%u, ffn %u)", f->path,
                 n_embd, n_layer, n_head, n_head_kv, n_ff);
        return -1;
    }
    if (get_arch_u32(f, arch, "attention.key_length", &key_len, 0, err, errlen)) key_len = n_embd / n_head;
    if (get_arch_u32(f, arch, "rope.dimension_count", &rope_dim, 0, err, errlen)) rope_dim = key_len;
    if (key_len == 0 || key_len % 2 || key_len > MAX_HEAD_DIM || rope_dim > key_len || rope_dim % 2) {
        snprintf(err, errlen, "%s: implausible head size %u (rope dims %u)", f->path, key_len, rope_dim);
        return -1;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (gguf_get_f32(f, key, &m->rope_base)) m->rope_base = 10000.0f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (gguf_get_f32(f, key, &m->norm_eps)) m->norm_eps = 1e-5f;
    m->n_embd = (int)n_embd;
    m->n_layer = (int)n_layer;
    m->n_head = (int)n_head;
    m->n_head_kv = (int)n_head_kv;
    m->n_ff = (int)n_ff;
    m->n_ctx_train = (int)n_ctx;
    m->head_dim = (int)key_len;
    m->rope_dim = (int)rope_dim;
    return 0;
}

static int load_layer(model *m, const gguf_file *f, int il, char *err, size_t errlen)
{
    layer_weights *L = &m->layers[il];
    int q_dim = m->n_head * m->head_dim, kv_dim = m->n_head_kv * m->head_dim, failed = 0;
    char name[96];
#define TENSOR(field, suffix, ne0, ne1)                                                                      \
    do {                                                                                                     \
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, suffix);                                          \
        if (!(L->field.t = bind_tensor(f, name, ne0, ne1, 0, err, errlen))) return -1;                       \
        m->weight_bytes += L->field.t->nbytes;                                                               \
    } while (0)
#define VECTOR(field, suffix, kind, n, optional)                                                             \
    do {                                                                                                     \
        snprintf(name, sizeof name, "blk.%d.%s.%s", il, suffix, kind);                                        \
        L->field = load_vector(f, name, n, optional, &failed, err, errlen);                                  \
        if (failed) return -1;                                                                               \
    } while (0)
    TENSOR(wq, "attn_q", m->n_embd, q_dim);
    TENSOR(wk, "attn_k", m->n_embd, kv_dim);
    TENSOR(wv, "attn_v", m->n_embd, kv_dim);
    TENSOR(wo, "attn_output", q_dim, m->n_embd);
    TENSOR(w_gate, "ffn_gate", m->n_embd, m->n_ff);
    TENSOR(w_up, "ffn_up", m->n_embd, m->n_ff);
    TENSOR(w_down, "ffn_down", m->n_ff, m->n_embd);
    VECTOR(attn_norm, "attn_norm", "weight", m->n_embd, 0);
    VECTOR(ffn_norm, "ffn_norm", "weight", m->n_embd, 0);
    VECTOR(bq, "attn_q", "bias", q_dim, !m->arch->qkv_bias);
    VECTOR(bk, "attn_k", "bias", kv_dim, !m->arch->qkv_bias);
    VECTOR(bv, "attn_v", "bias", kv_dim, !m->arch->qkv_bias);
#undef TENSOR
#undef VECTOR
    return 0;
}

int model_load(model *m, const gguf_file *f, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch)) {
        snprintf(err, errlen, "%s: missing general.architecture", f->path);
        return -1;
    }
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (gguf_str_eq(arch, arch_table[i].name)) m->arch = &arch_table[i];
    if (!m->arch) {
        snprintf(err, errlen, "%s: unsupported architecture '%.*s' (supported: llama, qwen2)", f->path,
                 (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
        return -1;
    }
    if (load_hparams(m, f, m->arch->name, err, errlen)) return -1;

    const gguf_tensor *embd = gguf_tensor_find(f, "token_embd.weight");
    if (!embd) {
        snprintf(err, errlen, "%s: tensor token_embd.weight is missing", f->path);
        return -1;
    }
    m->n_vocab = (int)embd->ne[1];
    if (!(m->tok_embd.t = bind_tensor(f, "token_embd.weight", m->n_embd, m->n_vocab, 0, err, errlen))) return -1;
    m->output.t = bind_tensor(f, "output.weight", m->n_embd, m->n_vocab, 1, err, errlen);
    if (!m->output.t) {
        if (gguf_tensor_find(f, "output.weight")) return -1; /* present but wrong */
        m->output = m->tok_embd;                             /* tied embeddings */
    }
    m->weight_bytes = m->output.t->nbytes;
    int failed = 0;
    m->output_norm = load_vector(f, "output_norm.weight", m->n_embd, 0, &failed, err, errlen);
    if (failed) return -1;
    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    if (!m->layers) {
        snprintf(err, errlen, "out of memory");
        model_free(m);
        return -1;
    }
    for (int il = 0; il < m->n_layer; il++)
        if (load_layer(m, f, il, err, errlen)) {
            model_free(m);
            return -1;
        }
    return 0;
}

void model_free(model *m)
{
    if (m->layers)
        for (int il = 0; il < m->n_layer; il++) {
            layer_weights *L = &m->layers[il];
            matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) free(ws[i]->panels);
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
        }
    if (m->output.panels != m->tok_embd.panels) free(m->output.panels);
    free(m->tok_embd.panels);
    m->output.panels = m->tok_embd.panels = NULL;
    free(m->layers);
    free(m->output_norm);
    m->layers = NULL;
    m->output_norm = NULL;
}

/* ------------------------------------------------------------ packing */

#define HUGE_PAGE ((size_t)2 << 20)

typedef struct {
    matrix **mats;
    int n_mats;
    atomic_int next;  /* next matrix to take: big and small ones even out across threads */
    atomic_int failed;
} pack_task;

/* The tensor's whole pages of the read-only file mapping leave our resident
 * set (the page cache keeps them; nothing reads them again). */
static void release_file_pages(const gguf_tensor *t)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

static void pack_worker(void *ctx, int ith, int nth)
{
    pack_task *task = ctx;
    (void)ith, (void)nth;
    for (int i; (i = atomic_fetch_add(&task->next, 1)) < task->n_mats;) {
        matrix *w = task->mats[i];
        int n = (int)w->t->ne[0], n_rows = (int)(w->t->nbytes / quant_row_size(w->t->type, n));
        void *panels = NULL;
        size_t bytes = panels_size(w->t->type, n, n_rows);
        if (posix_memalign(&panels, HUGE_PAGE, bytes)) {
            atomic_store(&task->failed, 1);
            continue;
        }
        /* fewer page faults while packing, fewer TLB misses while streaming */
        if (bytes >= HUGE_PAGE) madvise(panels, bytes / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
        panels_pack(w->t->type, n, n_rows, w->t->data, panels);
        w->panels = panels;
        release_file_pages(w->t);
    }
}

static int wants_panels(const matrix *w)
{
    return kernels.gemm_panels[w->t->type] && panels_supported(w->t->type) && !w->panels;
}

int model_pack_weights(model *m, thread_pool *pool, char *err, size_t errlen)
{
    pack_task task = {.mats = malloc(((size_t)m->n_layer * 7 + 1) * sizeof(matrix *))};
    if (!task.mats) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (wants_panels(&m->output)) task.mats[task.n_mats++] = &m->output;
    for (int il = 0; il < m->n_layer; il++) {
        layer_weights *L = &m->layers[il];
        matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (wants_panels(ws[i])) task.mats[task.n_mats++] = ws[i];
    }
    atomic_init(&task.next, 0);
    atomic_init(&task.failed, 0);
    threads_run(pool, pack_worker, &task);
    free(task.mats);
    if (m->output.t == m->tok_embd.t) m->tok_embd.panels = m->output.panels; /* tied: one copy serves both */
    if (atomic_load(&task.failed)) {
        snprintf(err, errlen, "out of memory repacking the weights");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ run state */

/* A thread's share of the decode range, in panels: [front, back) in one word. */
typedef struct {
    _Alignas(64) _Atomic uint64_t span;
} owned_share;

/* What one thread keeps to itself while decoding a token (see decode_token). */
typedef struct {
    float *x;     /* the residual stream */
    float *in;    /* a product's input before quantization (a norm, or SwiGLU) */
    float *q;     /* the query, with bias and RoPE, rounded to f16 values */
    uint8_t *act; /* `in` quantized */
} decode_scratch;

struct model_state {
    const model *m;
    thread_pool *pool;
    int n_ctx, n_batch, pos;
    f16_t *k_cache, *v_cache; /* [n_layer][n_head_kv][n_ctx][head_dim], F16 like the reference's default */
    float *rope_cos, *rope_sin; /* [n_ctx][rope_dim/2] */
    /* scratch, sized for n_batch tokens */
    float *x, *h, *q, *k, *v, *att, *gate, *up, *logits;
    float *scores;             /* per thread: score rows, query rows, output rows, key counts */
    float *decode_scores;      /* decode: [n_head][n_ctx] scores, then probabilities, shared by the threads */
    owned_share *shares;       /* decode: [product][thread] shares of each product's panels */
    decode_scratch *decode;    /* decode: one per thread, in decode_mem */
    uint8_t *decode_mem;
    size_t att_scratch_floats; /* per thread */
    int *n_keys;               /* per thread: att_rows key counts */
    int att_rows;
    uint8_t *act;              /* quantized activations of the widest input */
    uint8_t *embd_row;         /* one GGUF row of the embedding matrix, unpacked from panels */
    float *wtile;              /* per thread: dequantized weight rows for sgemm */
    size_t wtile_floats;
    size_t act_cap;
};

static int kv_dim_of(const model *m) { return m->n_head_kv * m->head_dim; }

/* The cache rows of one KV head in one layer: n_ctx rows of head_dim, contiguous,
 * so attention streams each head's keys and values as one sequential run. */
static f16_t *kv_head_rows(const model_state *s, f16_t *cache, int il, int kvh)
{
    return cache + ((size_t)il * s->m->n_head_kv + kvh) * s->n_ctx * s->m->head_dim;
}

/* Stores KV head kvh's part of one token's K or V (head_dim f32) at position pos of layer il. */
static void kv_store_head(model_state *s, f16_t *cache, int il, int kvh, int pos, const float *head)
{
    int hd = s->m->head_dim;
    kernels.f32_to_f16_row(hd, head, kv_head_rows(s, cache, il, kvh) + (size_t)pos * hd);
}

/* Stores one token's K or V row (f32, kv_dim) at position pos of layer il of the cache. */
static void kv_store_row(model_state *s, f16_t *cache, int il, int pos, const float *row)
{
    for (int kvh = 0; kvh < s->m->n_head_kv; kvh++)
        kv_store_head(s, cache, il, kvh, pos, row + (size_t)kvh * s->m->head_dim);
}

/* Stores n tokens' K and V (f32, [n][kv_dim]) at positions pos0.. of layer il. */
static void kv_cache_store(model_state *s, int il, int pos0, int n)
{
    size_t kv_dim = (size_t)kv_dim_of(s->m);
    for (int t = 0; t < n; t++) {
        kv_store_row(s, s->k_cache, il, pos0 + t, s->k + t * kv_dim);
        kv_store_row(s, s->v_cache, il, pos0 + t, s->v + t * kv_dim);
    }
}

/* Tokens per attention work item: up to 32 query rows share each K/V tile
 * (the AVX-512 kernel holds 32 rows in two vector lanes sets). */
static int attention_block_tokens(const model *m)
{
    int group = m->n_head / m->n_head_kv;
    return group >= 32 ? 1 : 32 / group;
}

/* cos/sin per position and pair, computed in float with the angle advanced
 * by repeated multiplication exactly as the reference does, so that q and k
 * round to the same F16 values as the reference's. */
static void rope_tables_fill(model_state *s)
{
    const model *m = s->m;
    int half = m->rope_dim / 2;
    float theta_scale = powf(m->rope_base, -2.0f / m->rope_dim);
    for (int p = 0; p < s->n_ctx; p++) {
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            s->rope_cos[(size_t)p * half + i] = cosf(theta);
            s->rope_sin[(size_t)p * half + i] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

static int is_float_matrix(const matrix *w) { return quant_traits_of(w->t->type)->act == ACT_F32; }

static int model_has_float_weights(const model *m)
{
    if (is_float_matrix(&m->output)) return 1;
    for (int il = 0; il < m->n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        const matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (is_float_matrix(ws[i])) return 1;
    }
    return 0;
}

/* Decode runs each layer's products in this order, then the output matrix. */
enum { DECODE_QKV, DECODE_O, DECODE_FFN_IN, DECODE_DOWN, DECODE_PER_LAYER };

static int decode_products(const model *m) { return m->n_layer * DECODE_PER_LAYER + 1; }
static int decode_step(int il, int product) { return il * DECODE_PER_LAYER + product; }

/* The matrices of decode product `step` (one input, up to three outputs); returns how many. */
static int decode_product(const model *m, int step, const matrix *w[3])
{
    if (step == m->n_layer * DECODE_PER_LAYER) {
        w[0] = &m->output;
        return 1;
    }
    const layer_weights *L = &m->layers[step / DECODE_PER_LAYER];
    switch (step % DECODE_PER_LAYER) {
    case DECODE_QKV:
        w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv;
        return 3;
    case DECODE_O:
        w[0] = &L->wo;
        return 1;
    case DECODE_FFN_IN:
        w[0] = &L->w_gate, w[1] = &L->w_up;
        return 2;
    default:
        w[0] = &L->w_down;
        return 1;
    }
}

static size_t cache_lines(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* The next `bytes` of a buffer being cut into pieces. */
static void *carve(uint8_t **cursor, size_t bytes)
{
    void *piece = *cursor;
    *cursor += bytes;
    return piece;
}

/* One decode_scratch per thread, each field on its own cache lines. */
static int decode_scratch_new(model_state *s, size_t widest)
{
    const model *m = s->m;
    int nth = threads_count(s->pool);
    size_t x = cache_lines((size_t)m->n_embd * sizeof(float)), in = cache_lines(widest * sizeof(float));
    size_t q = cache_lines((size_t)m->n_head * m->head_dim * sizeof(float));
    size_t act = cache_lines(2 * act_row_size(ACT_F32, (int)widest)); /* both quantized formats */
    size_t per_thread = x + in + q + act;
    s->decode = calloc((size_t)nth, sizeof *s->decode);
    s->decode_mem = aligned_alloc(64, (size_t)nth * per_thread);
    if (!s->decode || !s->decode_mem) return -1;
    uint8_t *cursor = s->decode_mem;
    for (int i = 0; i < nth; i++) {
        decode_scratch *d = &s->decode[i];
        d->x = carve(&cursor, x);
        d->in = carve(&cursor, in);
        d->q = carve(&cursor, q);
        d->act = carve(&cursor, act);
    }
    return 0;
}

int model_state_new(model_state **out, const model *m, int n_ctx, int n_batch, thread_pool *pool, char *err,
                    size_t errlen)
{
    *out = NULL;
    model_state *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->m = m;
    s->pool = pool;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    size_t kv = (size_t)m->n_layer * n_ctx * kv_dim_of(m);
    size_t q_dim = (size_t)m->n_head * m->head_dim, B = (size_t)n_batch;
    size_t widest = (size_t)(m->n_ff > (int)q_dim ? m->n_ff : (int)q_dim);
    if (widest < (size_t)m->n_embd) widest = (size_t)m->n_embd;
    /* room for the input in both quantized formats at once (each is smaller than f32) */
    s->act_cap = 2 * B * act_row_size(ACT_F32, (int)widest);
    s->k_cache = malloc(kv * sizeof(f16_t));
    s->v_cache = malloc(kv * sizeof(f16_t));
    s->rope_cos = malloc((size_t)n_ctx * (m->rope_dim / 2) * sizeof(float));
    s->rope_sin = malloc((size_t)n_ctx * (m->rope_dim / 2) * sizeof(float));
    s->x = malloc(B * m->n_embd * sizeof(float));
    s->h = malloc(B * m->n_embd * sizeof(float));
    s->q = malloc(B * q_dim * sizeof(float));
    s->k = malloc(B * kv_dim_of(m) * sizeof(float));
    s->v = malloc(B * kv_dim_of(m) * sizeof(float));
    s->att = malloc(B * q_dim * sizeof(float));
    s->gate = malloc(B * m->n_ff * sizeof(float));
    s->up = malloc(B * m->n_ff * sizeof(float));
    s->logits = malloc((size_t)m->n_vocab * sizeof(float));
    size_t att_rows = (size_t)attention_block_tokens(m) * (m->n_head / m->n_head_kv);
    s->att_scratch_floats = att_rows * ((size_t)n_ctx + 2 * m->head_dim);
    s->att_rows = (int)att_rows;
    s->scores = malloc((size_t)threads_count(pool) * s->att_scratch_floats * sizeof(float));
    s->n_keys = malloc((size_t)threads_count(pool) * att_rows * sizeof(int));
    s->decode_scores = malloc((size_t)m->n_head * n_ctx * sizeof(float));
    size_t n_shares = (size_t)decode_products(m) * threads_count(pool);
    s->shares = aligned_alloc(_Alignof(owned_share), n_shares * sizeof(owned_share));
    if (s->shares) memset(s->shares, 0, n_shares * sizeof(owned_share)); /* all empty */
    if (decode_scratch_new(s, widest) != 0) goto oom;
    s->act = malloc(s->act_cap);
    s->embd_row = malloc(quant_row_size(m->tok_embd.t->type, m->n_embd));
    if (model_has_float_weights(m)) { /* only F16/BF16/F32 matrices need the sgemm tiles */
        s->wtile_floats = (size_t)MATMUL_ROW_TILE * widest;
        s->wtile = malloc((size_t)threads_count(pool) * s->wtile_floats * sizeof(float));
        if (!s->wtile) goto oom;
    }
    if (!s->k_cache || !s->v_cache || !s->rope_cos || !s->rope_sin || !s->x || !s->h || !s->q || !s->k || !s->v ||
        !s->att || !s->gate || !s->up || !s->logits || !s->scores || !s->n_keys || !s->decode_scores || !s->shares ||
        !s->act || !s->embd_row)
        goto oom;
    rope_tables_fill(s);
    *out = s;
    return 0;
oom:
    snprintf(err, errlen, "out of memory allocating the KV cache and buffers for %d tokens of context", n_ctx);
    model_state_free(s);
    return -1;
}

void model_state_free(model_state *s)
{
    if (!s) return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->x);
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->gate);
    free(s->up);
    free(s->logits);
    free(s->scores);
    free(s->n_keys);
    free(s->decode_scores);
    free(s->shares);
    free(s->decode);
    free(s->decode_mem);
    free(s->act);
    free(s->embd_row);
    free(s->wtile);
    free(s);
}

void model_state_reset(model_state *s) { s->pos = 0; }
/* Every position of this cache stays where it was written until overwritten
 * by a later forward call at that position, so any prefix can be kept. */
int model_state_rewind(model_state *s, int pos)
{
    if (pos < 0) pos = 0;
    if (pos < s->pos) s->pos = pos;
    return s->pos;
}
int model_state_pos(const model_state *s) { return s->pos; }
int model_state_n_ctx(const model_state *s) { return s->n_ctx; }
float *model_state_logits(model_state *s) { return s->logits; }

/* ------------------------------------------------------------ math pieces */

/* The sum of squares runs in double as RMSNORM_CHAINS independent sums: one
 * chain of dependent adds made this serial step (twice per layer, between
 * two parallel regions, the other thread waiting) ~4x longer. */
#define RMSNORM_CHAINS 8
static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    double part[RMSNORM_CHAINS] = {0};
    int i = 0;
    for (; i + RMSNORM_CHAINS <= n; i += RMSNORM_CHAINS)
        for (int c = 0; c < RMSNORM_CHAINS; c++) part[c] += (double)(x[i + c] * x[i + c]);
    for (; i < n; i++) part[0] += (double)(x[i] * x[i]);
    double ss = 0;
    for (int c = 0; c < RMSNORM_CHAINS; c++) ss += part[c];
    float mean = (float)(ss / n), scale = 1.0f / sqrtf(mean + eps);
    for (i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

static void rmsnorm_rows(float *out, const float *x, const float *weight, int n_rows, int n, float eps)
{
    for (int t = 0; t < n_rows; t++) rmsnorm(out + (size_t)t * n, x + (size_t)t * n, weight, n, eps);
}

static void add_bias_rows(float *y, const float *bias, int n_rows, int n)
{
    if (!bias) return;
    for (int t = 0; t < n_rows; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] += bias[i];
}

/* Rotates each head of one token's q or k at position pos. */
static void rope_apply(const model_state *s, float *vec, int n_heads, int pos)
{
    const model *m = s->m;
    int half = m->rope_dim / 2;
    const float *cs = s->rope_cos + (size_t)pos * half, *sn = s->rope_sin + (size_t)pos * half;
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * m->head_dim;
        for (int i = 0; i < half; i++) {
            int a = m->arch->rope_neox ? i : 2 * i;
            int b = m->arch->rope_neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

/* ------------------------------------------------------ matrix multiply */

/*
 * Several products that share one input (q/k/v, or gate/up) run as one
 * parallel region: the input is quantized once per activation format, and
 * the output rows of all matrices form one range, so a decode step pays one
 * barrier per group, not per matrix. Each matrix's part of the range
 * is padded to a multiple of 16 rows, so every piece starts on a weight panel.
 *
 * Prefill takes 64-row tiles from an atomic counter (each tile is plenty of
 * work). Decode is a stream of weights from memory, and a stream is fastest
 * when it is long and sequential: the hardware prefetcher needs a few lines
 * to lock on, so a thread that hops between small chunks pays a memory
 * latency at every hop (measured: 4 chunks per thread 415 tok/s, 16 chunks
 * 330, one contiguous half 500 on SmolLM2-135M Q4_0). So each thread owns
 * an equal contiguous share of the range and walks it front to back a few
 * panels at a time; a thread that finishes first (a vCPU that was slower
 * this millisecond, or started later) takes panels from the back of the
 * others' shares. Owner and thief claim from opposite ends of one
 * atomic word (front | back << 32), so a claim is one compare-and-swap on a
 * line only the owner touches until the end.
 */
#define MATMUL_MAX 3

/* Work on one input row before it is quantized (an RMS norm into the input
 * buffer, or the SwiGLU gate): done inside the quantize step, which prefill
 * splits across the threads, instead of serially between regions. */
typedef struct {
    void (*fn)(const void *ctx, int tok);
    const void *ctx;
} row_prep;

#define OWNER_STEP_PANELS 64 /* decode: most panels an owner claims at once (3/4 of what is left, at most this) */

typedef struct {
    const matrix *w[MATMUL_MAX];
    float *y[MATMUL_MAX]; /* n_tok rows of that matrix's n_out */
    int n_mats, n_tok, n_in, total_rows; /* total_rows: the padded range */
    int tile_rows;
    atomic_int next_chunk;                /* prefill: next tile */
    owned_share *shares;                  /* decode: one per thread */
    const float *x;       /* n_tok f32 input rows */
    const row_prep *prep; /* or NULL */
    const uint8_t *act[3]; /* input rows in each act_format that is needed */
    size_t act_stride[3];
    int need[3];
    float *wtile;          /* per thread: MATMUL_ROW_TILE dequantized rows (F16/BF16/F32 prefill) */
    size_t wtile_floats;
} matmul_task;

static void matmul_quantize_worker(void *ctx, int ith, int nth)
{
    matmul_task *t = ctx;
    for (int r = ith; r < t->n_tok; r += nth) {
        if (t->prep) t->prep->fn(t->prep->ctx, r);
        for (int fmt = ACT_Q8_32; fmt <= ACT_Q8_K; fmt++)
            if (t->need[fmt])
                kernels.quantize_act[fmt](t->x + (size_t)r * t->n_in,
                                          (uint8_t *)t->act[fmt] + (size_t)r * t->act_stride[fmt], t->n_in);
    }
}

/* Float weights in prefill: dequantize a tile of rows and let OpenBLAS's
 * sgemm (single-threaded: our pool already splits the rows) do the product,
 * which measures faster than any dot-product loop for these types. */
static void matmul_rows_sgemm(const matmul_task *t, int m, int r0, int r1, float *wtile)
{
    const gguf_tensor *w = t->w[m]->t;
    size_t row_bytes = quant_row_size(w->type, t->n_in);
    int n_out = (int)w->ne[1];
    dequantize_row_fn dequantize = quant_traits_of(w->type)->dequantize_row;
    for (int r = r0; r < r1; r++)
        dequantize((const uint8_t *)w->data + (size_t)r * row_bytes, wtile + (size_t)(r - r0) * t->n_in, t->n_in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->n_tok, r1 - r0, t->n_in, 1.0f, t->x, t->n_in, wtile,
                t->n_in, 0.0f, t->y[m] + r0, n_out);
}

/* Rows [r0, r1) of matrix m for every token. */
static void matmul_rows(const matmul_task *t, int m, int r0, int r1, float *wtile)
{
    const gguf_tensor *w = t->w[m]->t;
    int fmt = quant_traits_of(w->type)->act, n_out = (int)w->ne[1];
    size_t row_bytes = quant_row_size(w->type, t->n_in);
    const uint8_t *wr = (const uint8_t *)w->data + (size_t)r0 * row_bytes, *act = t->act[fmt];
    size_t stride = t->act_stride[fmt];
    float *y = t->y[m];
    if (t->w[m]->panels) {
        kernels.gemm_panels[w->type](t->n_in, t->w[m]->panels, r0, r1 - r0, act, stride, t->n_tok, y + r0,
                                     (size_t)n_out);
        return;
    }
    if (t->n_tok > 1 && fmt == ACT_F32) {
        matmul_rows_sgemm(t, m, r0, r1, wtile);
        return;
    }
    if (t->n_tok == 1 || !kernels.gemm[w->type]) {
        vec_dot_fn dot = kernels.vec_dot[w->type];
        for (int tk = 0; tk < t->n_tok; tk++)
            for (int r = r0; r < r1; r++)
                y[(size_t)tk * n_out + r] = dot(t->n_in, wr + (size_t)(r - r0) * row_bytes, act + (size_t)tk * stride);
        return;
    }
    for (int tk0 = 0; tk0 < t->n_tok; tk0 += MATMUL_TOK_TILE) {
        int n_act = t->n_tok - tk0 < MATMUL_TOK_TILE ? t->n_tok - tk0 : MATMUL_TOK_TILE;
        kernels.gemm[w->type](t->n_in, wr, row_bytes, r1 - r0, act + (size_t)tk0 * stride, stride, n_act,
                              y + (size_t)tk0 * n_out + r0, (size_t)n_out);
    }
}

static int padded_rows(const matrix *w) { return ((int)w->t->ne[1] + MATVEC_ROW_TILE - 1) / MATVEC_ROW_TILE * MATVEC_ROW_TILE; }

/* Rows [g0, g1) of the padded concatenated range. */
static void matmul_range(const matmul_task *t, int g0, int g1, float *wtile)
{
    int base = 0;
    for (int m = 0; m < t->n_mats && g0 < g1; m++) {
        int n_out = (int)t->w[m]->t->ne[1], end = base + padded_rows(t->w[m]);
        if (g0 < end) {
            int r0 = g0 - base, r1 = (g1 < end ? g1 : end) - base;
            if (r1 > n_out) r1 = n_out;
            /* decode on panels: one call for the whole chunk, its per-call work shared by all panels */
            int step = t->n_tok == 1 && t->w[m]->panels ? r1 - r0 : t->tile_rows;
            for (int r = r0; r < r1; r += step) matmul_rows(t, m, r, r + step < r1 ? r + step : r1, wtile);
            g0 = end;
        }
        base = end;
    }
}

static uint64_t span_of(uint32_t front, uint32_t back) { return front | (uint64_t)back << 32; }

/* Claims panels from the front of a share (its owner: 3/4 of what is left,
 * at most OWNER_STEP_PANELS, so the last claims are small enough to leave
 * something to take; each claim is a locked instruction, which waits for the
 * loads in flight, so claims are few) or half of what is left from its back (a thread done
 * with its own: each steal is a compare-and-swap on a line the owner keeps
 * using, ~0.3 us when the two are on different core complexes, so a thief
 * takes enough to be worth it; one panel at a time lost 2-4 points of the
 * decode ceiling there); returns how many and sets *first, or 0 when the
 * share is empty. */
static int share_claim(owned_share *sh, int from_back, int *first)
{
    uint64_t span = atomic_load_explicit(&sh->span, memory_order_relaxed);
    for (;;) {
        uint32_t front = (uint32_t)span, back = (uint32_t)(span >> 32);
        if (front >= back) return 0;
        int left = (int)(back - front), most = (3 * left + 3) / 4;
        int n = from_back ? (left / 2 > 0 ? left / 2 : 1) : most < OWNER_STEP_PANELS ? most : OWNER_STEP_PANELS;
        uint64_t claimed = from_back ? span_of(front, back - (uint32_t)n) : span_of(front + (uint32_t)n, back);
        if (atomic_compare_exchange_weak_explicit(&sh->span, &span, claimed, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *first = from_back ? (int)(back - (uint32_t)n) : (int)front;
            return n;
        }
    }
}

static void matmul_panels(const matmul_task *t, int first, int n, float *wtile)
{
    int g1 = (first + n) * MATVEC_ROW_TILE;
    matmul_range(t, first * MATVEC_ROW_TILE, g1 < t->total_rows ? g1 : t->total_rows, wtile);
}

static void matmul_worker(void *ctx, int ith, int nth)
{
    matmul_task *t = ctx;
    /* no tiles at all when no matrix is F16/BF16/F32 (an offset on NULL is undefined) */
    float *wtile = t->wtile ? t->wtile + (size_t)ith * t->wtile_floats : NULL;
    if (!t->shares) {
        for (;;) {
            int g0 = atomic_fetch_add_explicit(&t->next_chunk, 1, memory_order_relaxed) * t->tile_rows;
            if (g0 >= t->total_rows) break;
            matmul_range(t, g0, g0 + t->tile_rows < t->total_rows ? g0 + t->tile_rows : t->total_rows, wtile);
        }
        return;
    }
    int first, n;
    while ((n = share_claim(&t->shares[ith], 0, &first))) matmul_panels(t, first, n, wtile);
    for (int k = 1; k < nth; k++) /* then help the others, nearest first */
        while ((n = share_claim(&t->shares[(ith + k) % nth], 1, &first)))
            matmul_panels(t, first, n, wtile);
}

/* The task for y_i[n_tok][n_out_i] = x[n_tok][n_in] · W_i^T, for each of up
 * to three matrices W_i (stored as n_out_i rows of n_in) sharing the input x,
 * whose quantized rows go to act_buf. */
static void matmul_task_init(matmul_task *t, const model_state *s, int n_mats, const matrix *const *w, float *const *y,
                             const float *x, int n_tok, const row_prep *prep, uint8_t *act_buf)
{
    *t = (matmul_task){.n_mats = n_mats, .n_tok = n_tok, .n_in = (int)w[0]->t->ne[0], .x = x, .prep = prep,
                       .wtile = s->wtile, .wtile_floats = s->wtile_floats,
                       .tile_rows = n_tok == 1 ? MATVEC_ROW_TILE : MATMUL_ROW_TILE};
    for (int m = 0; m < n_mats; m++) {
        t->w[m] = w[m];
        t->y[m] = y[m];
        t->total_rows += padded_rows(w[m]);
        t->need[quant_traits_of(w[m]->t->type)->act] = 1;
    }
    t->act[ACT_F32] = (const uint8_t *)x;
    t->act_stride[ACT_F32] = (size_t)t->n_in * sizeof(float);
    for (int fmt = ACT_Q8_32; fmt <= ACT_Q8_K; fmt++)
        if (t->need[fmt]) {
            t->act[fmt] = act_buf;
            t->act_stride[fmt] = act_row_size((act_format)fmt, t->n_in);
            act_buf += t->act_stride[fmt] * (size_t)n_tok;
        }
    atomic_init(&t->next_chunk, 0);
}

static int needs_quantize(const matmul_task *t) { return t->need[ACT_Q8_32] || t->need[ACT_Q8_K] || t->prep; }

/* Prefill: the group as two parallel regions, quantizing the input rows and
 * then taking 64-row tiles of the outputs. */
static void matmul_group(model_state *s, int n_mats, const matrix *const *w, float *const *y, const float *x,
                         int n_tok, const row_prep *prep)
{
    matmul_task t;
    matmul_task_init(&t, s, n_mats, w, y, x, n_tok, prep, s->act);
    if (needs_quantize(&t)) threads_run(s->pool, matmul_quantize_worker, &t);
    threads_run(s->pool, matmul_worker, &t);
}

static void matmul(model_state *s, const matrix *w, const float *x, float *y, int n_tok, const row_prep *prep)
{
    matmul_group(s, 1, &w, &y, x, n_tok, prep);
}

/* ------------------------------------------------------------- attention */

/*
 * Work items are (KV head, block of tokens): the query rows of every head
 * that shares that KV head, for a few consecutive tokens, go to the kernel
 * together so one pass over the cache serves them all. K and V are F16 in
 * the cache and queries are rounded to F16 values first, which is what the
 * reference implementation computes; matching it keeps our logits within a
 * hair of the golden ones.
 */
typedef struct {
    model_state *s;
    int il, n_tok, pos0, block_tokens;
} attention_task;

/* out[0, n) = x rounded to f16 values (n <= MAX_HEAD_DIM), as queries meet the F16 cache. */
static void round_to_f16(const float *x, int n, float *out)
{
    f16_t h[MAX_HEAD_DIM];
    kernels.f32_to_f16_row(n, x, h);
    kernels.f16_to_f32_row(n, h, out);
}

static void attention_item(model_state *s, int il, int kvh, int tok0, int n_tok, int pos0, float *q_rows,
                           float *out_rows, float *scores, int *n_keys)
{
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv, n_q = n_tok * group;
    for (int t = 0; t < n_tok; t++)
        for (int g = 0; g < group; g++) {
            const float *q = s->q + ((size_t)(tok0 + t) * m->n_head + kvh * group + g) * hd;
            float *row = q_rows + (size_t)(t * group + g) * hd;
            round_to_f16(q, hd, row);
            n_keys[t * group + g] = pos0 + tok0 + t + 1;
        }
    const f16_t *kc = kv_head_rows(s, s->k_cache, il, kvh), *vc = kv_head_rows(s, s->v_cache, il, kvh);
    kernels.attention_block(n_q, n_keys, hd, q_rows, kc, vc, (size_t)hd, 1.0f / sqrtf((float)hd), scores,
                            (size_t)s->n_ctx, out_rows);
    for (int t = 0; t < n_tok; t++)
        memcpy(s->att + ((size_t)(tok0 + t) * m->n_head + kvh * group) * hd, out_rows + (size_t)t * group * hd,
               (size_t)group * hd * sizeof(float));
}

static void attention_worker(void *ctx, int ith, int nth)
{
    attention_task *t = ctx;
    model_state *s = t->s;
    const model *m = s->m;
    size_t rows = (size_t)t->block_tokens * (m->n_head / m->n_head_kv);
    float *scores = s->scores + (size_t)ith * s->att_scratch_floats;
    float *q_rows = scores + rows * s->n_ctx, *out_rows = q_rows + rows * m->head_dim;
    int *n_keys = s->n_keys + (size_t)ith * s->att_rows;
    int n_blocks = (t->n_tok + t->block_tokens - 1) / t->block_tokens, n_items = n_blocks * m->n_head_kv;
    /* later tokens see more keys: interleave items so both threads get a fair share */
    for (int i = ith; i < n_items; i += nth) {
        int block = i / m->n_head_kv, kvh = i % m->n_head_kv, tok0 = block * t->block_tokens;
        int n_tok = t->n_tok - tok0 < t->block_tokens ? t->n_tok - tok0 : t->block_tokens;
        attention_item(s, t->il, kvh, tok0, n_tok, t->pos0, q_rows, out_rows, scores, n_keys);
    }
}

/*
 * Decode: one token's query heads over the whole cache. When the KV heads
 * divide evenly among the threads, or the context is short (up to
 * DECODE_SHORT_KEYS keys, where a head is a fraction of a microsecond of
 * work), each thread takes whole KV heads: it stores the new token's K and V
 * rows of its heads, then does scores, softmax and P x V for every query
 * head of the group, and one barrier follows. Otherwise three phases
 * separated by barriers, each split so that every thread reads a different
 * part of the cache and no KV head is read twice (with 3 KV heads on 2
 * threads, a split by heads would read one of them on both, and one thread
 * would do twice the work of the other):
 *   1. scores: each thread takes a range of keys (whole 16-key blocks) for
 *      every head, into the shared [n_head][n_ctx] score rows;
 *   2. softmax: each thread takes a range of heads (whole rows);
 *   3. P x V: each thread takes a range of (KV head, 16-column chunk) items,
 *      so it reads only its columns of every V row.
 * Every value is computed by one thread in one fixed order, and the kernels
 * give the same bits for a key or a column whichever part of a split it is
 * in, so the result depends neither on the number of threads nor on the way
 * chosen. (Two barriers a layer fewer: ~1.2 us when the threads are on two
 * core complexes.)
 */
#define DECODE_KEY_BLOCK 16
#define DECODE_COLUMN_CHUNK 16
#define DECODE_SHORT_KEYS 128

typedef struct {
    model_state *s;
    const float *q; /* every head's query, rounded to f16 values */
    int il, n_keys;
} decode_attention_task;

/* Where thread ith of nth starts when n items are split evenly. */
static int split_point(int n, int ith, int nth) { return (int)((long long)n * ith / nth); }

static void decode_scores(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    int n_blocks = (t->n_keys + DECODE_KEY_BLOCK - 1) / DECODE_KEY_BLOCK;
    int j0 = split_point(n_blocks, ith, nth) * DECODE_KEY_BLOCK;
    int j1 = split_point(n_blocks, ith + 1, nth) * DECODE_KEY_BLOCK;
    if (j1 > t->n_keys) j1 = t->n_keys;
    if (j0 >= j1) return;
    float scale = 1.0f / sqrtf((float)hd);
    for (int kvh = 0; kvh < m->n_head_kv; kvh++)
        kernels.attention_scores(group, j1 - j0, hd, t->q + (size_t)kvh * group * hd,
                                 kv_head_rows(s, s->k_cache, t->il, kvh) + (size_t)j0 * hd, (size_t)hd, scale,
                                 s->decode_scores + (size_t)kvh * group * s->n_ctx + j0, (size_t)s->n_ctx);
}

static void decode_values(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    int chunk = hd % DECODE_COLUMN_CHUNK ? hd : DECODE_COLUMN_CHUNK, n_chunks = hd / chunk;
    int i0 = split_point(m->n_head_kv * n_chunks, ith, nth), i1 = split_point(m->n_head_kv * n_chunks, ith + 1, nth);
    while (i0 < i1) { /* one call per run of chunks within one KV head */
        int kvh = i0 / n_chunks, end = (kvh + 1) * n_chunks < i1 ? (kvh + 1) * n_chunks : i1;
        int c0 = (i0 - kvh * n_chunks) * chunk;
        kernels.attention_values(group, t->n_keys, (end - i0) * chunk,
                                 s->decode_scores + (size_t)kvh * group * s->n_ctx, (size_t)s->n_ctx,
                                 kv_head_rows(s, s->v_cache, t->il, kvh) + c0, (size_t)hd,
                                 s->att + (size_t)kvh * group * hd + c0, (size_t)hd);
        i0 = end;
    }
}

/* The new token's K (bias, RoPE) or V (bias) row of KV head kvh into the cache. */
static void store_new_key(model_state *s, int il, int kvh)
{
    const layer_weights *L = &s->m->layers[il];
    size_t at = (size_t)kvh * s->m->head_dim;
    add_bias_rows(s->k + at, L->bk ? L->bk + at : NULL, 1, s->m->head_dim);
    rope_apply(s, s->k + at, 1, s->pos);
    kv_store_head(s, s->k_cache, il, kvh, s->pos, s->k + at);
}

static void store_new_value(model_state *s, int il, int kvh)
{
    const layer_weights *L = &s->m->layers[il];
    size_t at = (size_t)kvh * s->m->head_dim;
    add_bias_rows(s->v + at, L->bv ? L->bv + at : NULL, 1, s->m->head_dim);
    kv_store_head(s, s->v_cache, il, kvh, s->pos, s->v + at);
}

static int decode_attention_by_heads(const model *m, int n_keys, int nth)
{
    return m->n_head_kv % nth == 0 || n_keys <= DECODE_SHORT_KEYS;
}

/* Thread ith's whole KV heads: the new K and V rows, then every phase for the group's rows. */
static void decode_heads(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    const model *m = s->m;
    int hd = m->head_dim, group = m->n_head / m->n_head_kv;
    for (int kvh = split_point(m->n_head_kv, ith, nth); kvh < split_point(m->n_head_kv, ith + 1, nth); kvh++) {
        store_new_key(s, t->il, kvh);
        store_new_value(s, t->il, kvh);
        float *scores = s->decode_scores + (size_t)kvh * group * s->n_ctx;
        kernels.attention_scores(group, t->n_keys, hd, t->q + (size_t)kvh * group * hd,
                                 kv_head_rows(s, s->k_cache, t->il, kvh), (size_t)hd, 1.0f / sqrtf((float)hd),
                                 scores, (size_t)s->n_ctx);
        for (int g = 0; g < group; g++) kernels.attention_softmax(t->n_keys, scores + (size_t)g * s->n_ctx);
        kernels.attention_values(group, t->n_keys, hd, scores, (size_t)s->n_ctx, kv_head_rows(s, s->v_cache, t->il, kvh),
                                 (size_t)hd, s->att + (size_t)kvh * group * hd, (size_t)hd);
    }
}

/* Thread ith's part of decode attention (the barrier after it is the caller's). */
static void decode_attention(const decode_attention_task *t, int ith, int nth)
{
    model_state *s = t->s;
    if (decode_attention_by_heads(s->m, t->n_keys, nth)) {
        decode_heads(t, ith, nth);
        return;
    }
    if (ith == nth - 1) /* its range of keys holds the new position */
        for (int kvh = 0; kvh < s->m->n_head_kv; kvh++) store_new_key(s, t->il, kvh);
    if (ith == 0) /* read two barriers later */
        for (int kvh = 0; kvh < s->m->n_head_kv; kvh++) store_new_value(s, t->il, kvh);
    decode_scores(t, ith, nth);
    threads_barrier(s->pool, ith);
    for (int h = split_point(s->m->n_head, ith, nth); h < split_point(s->m->n_head, ith + 1, nth); h++)
        kernels.attention_softmax(t->n_keys, s->decode_scores + (size_t)h * s->n_ctx);
    threads_barrier(s->pool, ith);
    decode_values(t, ith, nth);
}

/* Prefill attention: n tokens at positions pos0.. against the cache. */
static void attention(model_state *s, int il, int n, int pos0)
{
    attention_task at = {s, il, n, pos0, attention_block_tokens(s->m)};
    threads_run(s->pool, attention_worker, &at);
}

/* -------------------------------------------------------------- forward */

static void embed_tokens(model_state *s, const int32_t *tokens, int n)
{
    const model *m = s->m;
    const gguf_tensor *e = m->tok_embd.t;
    const quant_traits *tr = quant_traits_of(e->type);
    size_t row_bytes = quant_row_size(e->type, m->n_embd);
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)e->data + (size_t)tokens[t] * row_bytes;
        if (m->tok_embd.panels) { /* tied to the packed output matrix: take the row back out */
            panels_unpack_row(e->type, m->n_embd, m->tok_embd.panels, tokens[t], s->embd_row);
            row = s->embd_row;
        }
        tr->dequantize_row(row, s->x + (size_t)t * m->n_embd, m->n_embd);
    }
}

/* Row preparations for matmul_group (row_prep). */
typedef struct {
    float *out;
    const float *x, *weight;
    int n;
    float eps;
} norm_prep;

static void norm_row(const void *ctx, int tok)
{
    const norm_prep *p = ctx;
    rmsnorm(p->out + (size_t)tok * p->n, p->x + (size_t)tok * p->n, p->weight, p->n, p->eps);
}

typedef struct {
    float *gate;
    const float *up;
    int n;
} gate_prep;

static void gate_row(const void *ctx, int tok)
{
    const gate_prep *p = ctx;
    kernels.silu_mul_row(p->n, p->gate + (size_t)tok * p->n, p->up + (size_t)tok * p->n);
}

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void layer_forward(model_state *s, int il, int n, int pos0)
{
    const model *m = s->m;
    const layer_weights *L = &m->layers[il];
    int E = m->n_embd, q_dim = m->n_head * m->head_dim, kv_dim = kv_dim_of(m);

    norm_prep attn_norm = {s->h, s->x, L->attn_norm, E, m->norm_eps};
    const matrix *qkv_w[3] = {&L->wq, &L->wk, &L->wv};
    float *qkv_y[3] = {s->q, s->k, s->v};
    matmul_group(s, 3, qkv_w, qkv_y, s->h, n, &(row_prep){norm_row, &attn_norm});
    add_bias_rows(s->q, L->bq, n, q_dim);
    add_bias_rows(s->k, L->bk, n, kv_dim);
    add_bias_rows(s->v, L->bv, n, kv_dim);
    for (int t = 0; t < n; t++) {
        rope_apply(s, s->q + (size_t)t * q_dim, m->n_head, pos0 + t);
        rope_apply(s, s->k + (size_t)t * kv_dim, m->n_head_kv, pos0 + t);
    }
    kv_cache_store(s, il, pos0, n);

    attention(s, il, n, pos0);
    matmul(s, &L->wo, s->att, s->h, n, NULL);
    add_rows(s->x, s->h, (size_t)n * E);

    norm_prep ffn_norm = {s->h, s->x, L->ffn_norm, E, m->norm_eps};
    const matrix *ffn_w[2] = {&L->w_gate, &L->w_up};
    float *ffn_y[2] = {s->gate, s->up};
    matmul_group(s, 2, ffn_w, ffn_y, s->h, n, &(row_prep){norm_row, &ffn_norm});
    gate_prep gate = {s->gate, s->up, m->n_ff};
    matmul(s, &L->w_down, s->gate, s->h, n, &(row_prep){gate_row, &gate});
    add_rows(s->x, s->h, (size_t)n * E);
}

/* ---------------------------------------------------------------- decode */

/*
 * Decode (one token) is one parallel region for the whole forward pass, not
 * one per product: with ~5 products per layer, handing each to the threads
 * and waiting for them cost two cache-line transfers each, with the serial
 * steps between them (norms, RoPE, SwiGLU, quantizing the next input) run by
 * one thread while the others waited. Here every thread keeps its own copy
 * of the residual stream and does those small steps itself, redundantly,
 * from the shared outputs of the last product, so the threads meet only at a
 * barrier after each product and after attention (and between its phases
 * when it has three). At each barrier a thread that is early asks for the
 * first weights of its next share (decode_barrier). Each
 * product's panels are split into the threads' shares as before (stealing
 * included). Each thread lays out its own share of the next product as soon
 * as it is done with the current one, before the barrier that lets anyone
 * look at it, so the line is in its own cache for its first claim (laid out
 * by the caller, every first claim was a miss to another core). The caller
 * lays out the first product's shares, so that a worker that starts late
 * (woken from sleep) can still be helped.
 *
 * After the q/k/v product, every thread adds the bias to its own copy of q
 * and rotates it; the new K and V go to the cache in attention (above).
 * Every thread computes the same values in the same order, so the result
 * does not depend on the number of threads.
 */
typedef struct {
    model_state *s;
    float *logits;
} decode_task;

static int group_panels(const matrix *const *w, int n_mats)
{
    int rows = 0;
    for (int i = 0; i < n_mats; i++) rows += padded_rows(w[i]);
    return rows / MATVEC_ROW_TILE;
}

/* Thread ith's equal contiguous share of the panels of decode product `step`. */
static void decode_share_init(model_state *s, int step, int ith, int nth)
{
    const matrix *w[3];
    int n_panels = group_panels(w, decode_product(s->m, step, w));
    uint32_t front = (uint32_t)split_point(n_panels, ith, nth), back = (uint32_t)split_point(n_panels, ith + 1, nth);
    atomic_store_explicit(&s->shares[(size_t)step * nth + ith].span, span_of(front, back), memory_order_relaxed);
}

/*
 * What a thread does at a barrier of decode: it asks for the first weights
 * of its share of the next product. The kernels prefetch a fixed distance
 * ahead of what they read, so without this a share's first lines would come
 * one demand miss at a time; and the time a thread waits for the others is
 * memory bandwidth nobody uses. So the first SHARE_PREFETCH_L1 bytes are
 * asked for at once (to L1), then more, to L2, a step at a time while some
 * thread has not arrived, up to SHARE_PREFETCH_MAX.
 */
#define SHARE_PREFETCH_L1 8192
#define SHARE_PREFETCH_MAX 65536
#define SHARE_PREFETCH_STEP 512

/* The front of thread ith's share of decode product `step`, up to the end of
 * the share or of its first matrix: *bytes long (0: nothing to ask for). */
static const char *share_front(const model_state *s, int step, int ith, int nth, size_t *bytes)
{
    const matrix *w[3];
    int n_mats = decode_product(s->m, step, w);
    uint64_t span = atomic_load_explicit(&s->shares[(size_t)step * nth + ith].span, memory_order_relaxed);
    int panel = (int)(uint32_t)span, end = (int)(span >> 32);
    *bytes = 0;
    for (int m = 0; m < n_mats && panel < end; m++) {
        int n_panels = padded_rows(w[m]) / MATVEC_ROW_TILE;
        if (panel >= n_panels) {
            panel -= n_panels;
            end -= n_panels;
            continue;
        }
        if (!w[m]->panels) return NULL;
        size_t panel_bytes = panels_size(w[m]->t->type, (int)w[m]->t->ne[0], MATVEC_ROW_TILE);
        *bytes = (size_t)((end < n_panels ? end : n_panels) - panel) * panel_bytes;
        return (const char *)w[m]->panels + (size_t)panel * panel_bytes;
    }
    return NULL;
}

/* Before the barrier after q/k/v: the cache rows (positions before pos, up to
 * SHARE_PREFETCH_MAX bytes of each) that attention will read for thread ith's
 * KV heads when it goes by heads. The cache is small next to the weights
 * streamed since the last token, so these rows come from memory. */
static void prefetch_own_kv(const model_state *s, int il, int ith, int nth)
{
    const model *m = s->m;
    if (!decode_attention_by_heads(m, s->pos + 1, nth)) return;
    size_t bytes = (size_t)s->pos * m->head_dim * sizeof(f16_t);
    if (bytes > SHARE_PREFETCH_MAX) bytes = SHARE_PREFETCH_MAX;
    for (int kvh = split_point(m->n_head_kv, ith, nth); kvh < split_point(m->n_head_kv, ith + 1, nth); kvh++) {
        const char *k = (const char *)kv_head_rows(s, s->k_cache, il, kvh);
        const char *v = (const char *)kv_head_rows(s, s->v_cache, il, kvh);
        for (size_t o = 0; o < bytes; o += 64) {
            __builtin_prefetch(k + o, 0, 3);
            __builtin_prefetch(v + o, 0, 3);
        }
    }
}

/* The barrier after a decode phase; while waiting, the front of this thread's share of product `next` (-1: none). */
static void decode_barrier(model_state *s, int next, int ith, int nth)
{
    unsigned ticket = threads_arrive(s->pool, ith);
    size_t bytes = 0, done = 0;
    const char *front = next >= 0 ? share_front(s, next, ith, nth, &bytes) : NULL;
    for (; done < bytes && done < SHARE_PREFETCH_L1; done += 64) __builtin_prefetch(front + done, 0, 3);
    while (done < bytes && done < SHARE_PREFETCH_MAX && !threads_all_arrived(s->pool, ticket))
        for (size_t step_end = done + SHARE_PREFETCH_STEP; done < step_end; done += 64)
            __builtin_prefetch(front + done, 0, 2);
    threads_wait_arrivals(s->pool, ticket);
}

/* Thread ith's part of decode product `step` on input x (quantized into its own buffer). */
static void decode_matmul(model_state *s, const decode_scratch *me, int step, int ith, int nth, float *const *y,
                          const float *x)
{
    const matrix *w[3];
    int n_mats = decode_product(s->m, step, w);
    matmul_task t;
    matmul_task_init(&t, s, n_mats, w, y, x, 1, NULL, me->act);
    t.shares = s->shares + (size_t)step * nth;
    if (needs_quantize(&t)) matmul_quantize_worker(&t, 0, 1);
    matmul_worker(&t, ith, nth);
    if (step + 1 < decode_products(s->m)) decode_share_init(s, step + 1, ith, nth);
}

/* After the q/k/v product: this thread's query (the new K and V go to the cache in attention). */
static void decode_query(model_state *s, decode_scratch *me, int il)
{
    const model *m = s->m;
    int q_dim = m->n_head * m->head_dim;
    memcpy(me->q, s->q, (size_t)q_dim * sizeof(float));
    add_bias_rows(me->q, m->layers[il].bq, 1, q_dim);
    rope_apply(s, me->q, m->n_head, s->pos);
    for (int i = 0; i < q_dim; i += m->head_dim) round_to_f16(me->q + i, m->head_dim, me->q + i);
}

static void decode_layer(model_state *s, decode_scratch *me, int il, int ith, int nth)
{
    const model *m = s->m;
    const layer_weights *L = &m->layers[il];
    int E = m->n_embd;
    rmsnorm(me->in, me->x, L->attn_norm, E, m->norm_eps);
    decode_matmul(s, me, decode_step(il, DECODE_QKV), ith, nth, (float *[]){s->q, s->k, s->v}, me->in);
    prefetch_own_kv(s, il, ith, nth);
    decode_barrier(s, -1, ith, nth);
    decode_query(s, me, il);
    decode_attention(&(decode_attention_task){s, me->q, il, s->pos + 1}, ith, nth);
    decode_barrier(s, decode_step(il, DECODE_O), ith, nth);

    decode_matmul(s, me, decode_step(il, DECODE_O), ith, nth, (float *[]){s->h}, s->att);
    decode_barrier(s, decode_step(il, DECODE_FFN_IN), ith, nth);
    add_rows(me->x, s->h, (size_t)E);

    rmsnorm(me->in, me->x, L->ffn_norm, E, m->norm_eps);
    decode_matmul(s, me, decode_step(il, DECODE_FFN_IN), ith, nth, (float *[]){s->gate, s->up}, me->in);
    decode_barrier(s, decode_step(il, DECODE_DOWN), ith, nth);
    memcpy(me->in, s->gate, (size_t)m->n_ff * sizeof(float));
    kernels.silu_mul_row(m->n_ff, me->in, s->up);
    decode_matmul(s, me, decode_step(il, DECODE_DOWN), ith, nth, (float *[]){s->h}, me->in);
    decode_barrier(s, decode_step(il + 1, DECODE_QKV), ith, nth);
    add_rows(me->x, s->h, (size_t)E);
}

static void decode_worker(void *ctx, int ith, int nth)
{
    decode_task *d = ctx;
    model_state *s = d->s;
    const model *m = s->m;
    decode_scratch *me = &s->decode[ith];
    memcpy(me->x, s->x, (size_t)m->n_embd * sizeof(float));
    for (int il = 0; il < m->n_layer; il++) decode_layer(s, me, il, ith, nth);
    rmsnorm(me->in, me->x, m->output_norm, m->n_embd, m->norm_eps);
    decode_matmul(s, me, decode_step(m->n_layer, 0), ith, nth, &d->logits, me->in);
}

/* The token at position s->pos, already embedded in s->x: logits into `logits`. */
static void decode_token(model_state *s, float *logits)
{
    int nth = threads_count(s->pool);
    for (int i = 0; i < nth; i++) decode_share_init(s, 0, i, nth);
    threads_run(s->pool, decode_worker, &(decode_task){s, logits});
}

/* One chunk of at most n_batch tokens. */
static void forward_chunk(model_state *s, const int32_t *tokens, int n, float *logits_all)
{
    const model *m = s->m;
    int E = m->n_embd, pos0 = s->pos;
    embed_tokens(s, tokens, n);
    if (n == 1) {
        decode_token(s, logits_all ? logits_all : s->logits);
        if (logits_all) memcpy(s->logits, logits_all, (size_t)m->n_vocab * sizeof(float));
        s->pos++;
        return;
    }
    for (int il = 0; il < m->n_layer; il++) layer_forward(s, il, n, pos0);
    s->pos += n;

    if (logits_all) {
        rmsnorm_rows(s->h, s->x, m->output_norm, n, E, m->norm_eps);
        matmul(s, &m->output, s->h, logits_all, n, NULL);
        memcpy(s->logits, logits_all + (size_t)(n - 1) * m->n_vocab, (size_t)m->n_vocab * sizeof(float));
    } else {
        rmsnorm(s->h, s->x + (size_t)(n - 1) * E, m->output_norm, E, m->norm_eps);
        matmul(s, &m->output, s->h, s->logits, 1, NULL);
    }
}

int model_forward(model_state *s, const int32_t *tokens, int n, float *logits_all, char *err, size_t errlen)
{
    const model *m = s->m;
    if (n <= 0) {
        snprintf(err, errlen, "nothing to evaluate (0 tokens)");
        return -1;
    }
    if (s->pos + n > s->n_ctx) {
        snprintf(err, errlen, "context full: %d + %d tokens exceed the context of %d", s->pos, n, s->n_ctx);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab) {
            snprintf(err, errlen, "token id %d out of range (vocabulary has %d tokens)", tokens[i], m->n_vocab);
            return -1;
        }
    for (int done = 0; done < n; done += s->n_batch) {
        int chunk = n - done < s->n_batch ? n - done : s->n_batch;
        forward_chunk(s, tokens + done, chunk, logits_all ? logits_all + (size_t)done * m->n_vocab : NULL);
    }
    return 0;
}
