/*
 * model.c - transformer weights and the math of the forward pass.
 *
 * To add an architecture: add a row to arch_table below (named fields, zero
 * meaning "as llama"); if it needs something no field describes yet (a new
 * norm, activation, scaling), add the field to arch_traits (model.h), bind
 * its tensors in load_layer and its metadata in load_hparams, and write the
 * step once in the math below, where prefill and decode both run it. Then
 * give it a test against a reference: goldens in ../shared/testdata, and the
 * float64 pass of tests/test_reference_forward.py.
 *
 * Loading reads the hyper-parameters from `{arch}.*` metadata, binds every
 * tensor by name and checks its shape and type, so the forward pass never
 * meets a surprise. Small vectors (norms, biases) are copied to f32; big
 * matrices stay in the mmap in their own quant type, or are repacked once
 * into 16-row panels where the kernels have a panel form
 * (model_pack_weights).
 *
 * transformer() is the forward pass, top to bottom, for the tokens of a
 * pass (a batch in prefill, one token per thread in decode):
 *
 *   x = embed(tokens)
 *   for each layer:
 *     q, k, v = rmsnorm(x) Wq, Wk, Wv  (+ biases; RoPE)
 *     x += attention(q, k, v over the cache) Wo
 *     x += (silu(rmsnorm(x) Wgate) * rmsnorm(x) Wup) Wdown
 *   logits = (rmsnorm(x) * output_norm) Wout
 *
 * Matrix products quantize the activations once into the weight type's
 * activation format and call the dispatch table's kernels; schedule.c splits
 * them, and attention, across the threads. The KV cache is F16, one
 * contiguous run of rows per (layer, KV head).
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

#include "forward.h"
#include "kernels/kernels.h"
#include "kernels/panels.h"
#include "quant.h"

static const arch_traits arch_table[] = {
    {.name = "llama", .rope = ROPE_ADJACENT},
    {.name = "qwen2", .rope = ROPE_NEOX, .qkv_bias = 1},
};

#define N_ARCHS (sizeof arch_table / sizeof arch_table[0])

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
    for (size_t i = 0; i < N_ARCHS; i++)
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

/* Every matrix of layer il (unused ones have no tensor); returns how many. */
static int layer_matrices(layer_weights *L, matrix *w[7])
{
    matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->t) w[n++] = all[i];
    return n;
}

void model_free(model *m)
{
    if (m->layers)
        for (int il = 0; il < m->n_layer; il++) {
            layer_weights *L = &m->layers[il];
            matrix *w[7];
            for (int i = 0, n = layer_matrices(L, w); i < n; i++) free(w[i]->panels);
            float *vectors[] = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv};
            for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) free(vectors[i]);
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
        matrix *w[7];
        for (int i = 0, n = layer_matrices(&m->layers[il], w); i < n; i++)
            if (wants_panels(w[i])) task.mats[task.n_mats++] = w[i];
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

/* KV cache layout: layer il, KV head kvh holds n_ctx rows of head_dim,
 * contiguous, so attention streams each head's keys and values as one
 * sequential run. */
f16_t *kv_row(const model_state *s, f16_t *cache, int il, int kvh, int pos)
{
    return cache + (((size_t)il * s->m->n_head_kv + kvh) * s->n_ctx + (size_t)pos) * s->m->head_dim;
}

int key_range(const model_state *s, int il, int pos, int *first)
{
    (void)s, (void)il;
    *first = 0;
    return pos + 1;
}

static void kv_store(model_state *s, f16_t *cache, int il, int kvh, int pos, const float *head)
{
    kernels.f32_to_f16_row(s->m->head_dim, head, kv_row(s, cache, il, kvh, pos));
}

/* cos/sin per position and pair, computed in float with the angle advanced
 * by repeated multiplication exactly as the reference does, so that q and k
 * round to the same F16 values as the reference's. */
static void rope_table_fill(model_state *s)
{
    const model *m = s->m;
    int half = m->rope_dim / 2;
    float theta_scale = powf(m->rope_base, -2.0f / m->rope_dim);
    for (int p = 0; p < s->n_ctx; p++) {
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            s->rope.cos[(size_t)p * half + i] = cosf(theta);
            s->rope.sin[(size_t)p * half + i] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

static int is_float_matrix(const matrix *w) { return quant_traits_of(w->t->type)->act == ACT_F32; }

static int model_has_float_weights(const model *m)
{
    if (is_float_matrix(&m->output)) return 1;
    for (int il = 0; il < m->n_layer; il++) {
        matrix *w[7];
        for (int i = 0, n = layer_matrices(&m->layers[il], w); i < n; i++)
            if (is_float_matrix(w[i])) return 1;
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
    size_t kv = (size_t)m->n_layer * n_ctx * kv_dim_of(m), B = (size_t)n_batch, E = (size_t)m->n_embd;
    size_t q_dim = (size_t)q_dim_of(m), ff = (size_t)m->n_ff;
    size_t widest = ff > q_dim ? ff : q_dim;
    if (widest < E) widest = E;
    s->k_cache = malloc(kv * sizeof(f16_t));
    s->v_cache = malloc(kv * sizeof(f16_t));
    size_t rope_floats = (size_t)n_ctx * (m->rope_dim / 2);
    s->rope.cos = malloc(rope_floats * sizeof(float));
    s->rope.sin = malloc(rope_floats * sizeof(float));
    s->x = malloc(B * E * sizeof(float));
    s->in = malloc(B * widest * sizeof(float));
    s->qkv = malloc(B * qkv_dim_of(m) * sizeof(float));
    s->att = malloc(B * q_dim * sizeof(float));
    s->o = malloc(B * E * sizeof(float));
    s->ffn = malloc(B * 2 * ff * sizeof(float));
    s->logits = malloc((size_t)m->n_vocab * sizeof(float));
    /* room for the input in both quantized formats at once (each is smaller than f32) */
    s->act = malloc(2 * B * act_row_size(ACT_F32, (int)widest));
    s->embd_row = malloc(quant_row_size(m->tok_embd.t->type, m->n_embd));
    if (!s->k_cache || !s->v_cache || !s->rope.cos || !s->rope.sin || !s->x || !s->in || !s->qkv || !s->att ||
        !s->o || !s->ffn || !s->logits || !s->act || !s->embd_row ||
        schedule_state_init(s, widest, model_has_float_weights(m)))
        goto oom;
    rope_table_fill(s);
    s->kq_scale = 1.0f / sqrtf((float)m->head_dim);
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
    schedule_state_free(s);
    void *buffers[] = {s->rope.cos, s->rope.sin, s->k_cache, s->v_cache, s->x,   s->in,       s->qkv,
                       s->att,      s->o,        s->ffn,     s->logits,  s->act, s->embd_row};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
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
 * chain of dependent adds made this step (repeated by every decode thread)
 * ~4x longer. */
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

/* Rotates one head of q or k at position pos; dimensions past rope_dim are
 * left as they are. */
static void rope_rotate(const model_state *s, float *v, int pos)
{
    const model *m = s->m;
    const rope_table *t = &s->rope;
    int half = m->rope_dim / 2, neox = m->arch->rope == ROPE_NEOX;
    const float *cs = t->cos + (size_t)pos * half, *sn = t->sin + (size_t)pos * half;
    for (int i = 0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

/* One head of q or k: + bias, RoPE. */
static void prepare_head(const model_state *s, float *head, const float *bias, int pos)
{
    int hd = s->m->head_dim;
    if (bias)
        for (int i = 0; i < hd; i++) head[i] += bias[i];
    rope_rotate(s, head, pos);
}

void prepare_query(const model_state *s, int il, float *q, int pos)
{
    const model *m = s->m;
    const layer_weights *L = &m->layers[il];
    int hd = m->head_dim;
    for (int h = 0; h < m->n_head; h++) prepare_head(s, q + (size_t)h * hd, L->bq ? L->bq + (size_t)h * hd : NULL, pos);
}

void store_key(model_state *s, int il, int kvh, float *k, int pos)
{
    const layer_weights *L = &s->m->layers[il];
    prepare_head(s, k, L->bk ? L->bk + (size_t)kvh * s->m->head_dim : NULL, pos);
    kv_store(s, s->k_cache, il, kvh, pos, k);
}

void store_value(model_state *s, int il, int kvh, float *v, int pos)
{
    const layer_weights *L = &s->m->layers[il];
    int hd = s->m->head_dim;
    if (L->bv)
        for (int i = 0; i < hd; i++) v[i] += L->bv[(size_t)kvh * hd + i];
    kv_store(s, s->v_cache, il, kvh, pos, v);
}

int product_matrices(const model_state *s, int step, const matrix *w[3], float **y)
{
    const model *m = s->m;
    if (step == output_step(m)) {
        w[0] = &m->output, *y = NULL;
        return 1;
    }
    const layer_weights *L = &m->layers[step / PRODUCTS_PER_LAYER];
    switch (step % PRODUCTS_PER_LAYER) {
    case PRODUCT_QKV:
        *y = s->qkv;
        w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv;
        return 3;
    case PRODUCT_O:
        w[0] = &L->wo, *y = s->o;
        return 1;
    case PRODUCT_FFN_IN:
        *y = s->ffn;
        w[0] = &L->w_gate, w[1] = &L->w_up;
        return 2;
    default:
        w[0] = &L->w_down, *y = s->o;
        return 1;
    }
}

/* ------------------------------------------------------------- forward */

static void embed_tokens(model_state *s, const int32_t *tokens, int n)
{
    const model *m = s->m;
    const gguf_tensor *e = m->tok_embd.t;
    const quant_traits *tr = quant_traits_of(e->type);
    size_t row_bytes = quant_row_size(e->type, m->n_embd);
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)e->data + (size_t)tokens[t] * row_bytes;
        float *x = s->x + (size_t)t * m->n_embd;
        if (m->tok_embd.panels) { /* tied to the packed output matrix: take the row back out */
            panels_unpack_row(e->type, m->n_embd, m->tok_embd.panels, tokens[t], s->embd_row);
            row = s->embd_row;
        }
        tr->dequantize_row(row, x, m->n_embd);
    }
}

/* A product's input: rmsnorm(x) * weight. */
static void norm_input(const pass *p, int t, float *dst, const void *weight)
{
    rmsnorm(dst, pass_x(p, t), weight, p->m->n_embd, p->m->norm_eps);
}

/* The down projection's input: silu(gate) * up (in place of the gate in prefill). */
static void gated_input(const pass *p, int t, float *dst, const void *unused)
{
    (void)unused;
    int ff = p->m->n_ff;
    const float *gate = p->s->ffn + (size_t)t * 2 * ff;
    if (dst != gate) memcpy(dst, gate, (size_t)ff * sizeof *dst);
    kernels.silu_mul_row(ff, dst, gate + ff);
}

/* x += o, o the last product's output. */
static void add_residual(const pass *p, int t, const void *unused)
{
    (void)unused;
    int E = p->m->n_embd;
    float *x = pass_x(p, t);
    const float *o = p->s->o + (size_t)t * E;
    for (int i = 0; i < E; i++) x[i] += o[i];
}

void transformer(pass *p)
{
    const model *m = p->m;
    for (int il = 0; il < m->n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        /* attention: x += attention(q, k, v) Wo, q, k, v = rmsnorm(x) Wq, Wk, Wv */
        run_product(p, product_step(il, PRODUCT_QKV), &(row_input){.fn = norm_input, .arg = L->attn_norm});
        run_attention(p, il);
        run_product(p, product_step(il, PRODUCT_O), NULL);
        run_rows(p, add_residual, NULL);
        /* feed-forward: x += (silu(h Wgate) * h Wup) Wdown, h = rmsnorm(x) */
        run_product(p, product_step(il, PRODUCT_FFN_IN), &(row_input){.fn = norm_input, .arg = L->ffn_norm});
        run_product(p, product_step(il, PRODUCT_DOWN),
                    &(row_input){.fn = gated_input, .rows = p->s->ffn, .stride = 2 * (size_t)m->n_ff});
        run_rows(p, add_residual, NULL);
    }
    run_product(p, output_step(m), &(row_input){.fn = norm_input, .arg = m->output_norm});
}

/* One chunk of at most n_batch tokens. */
static void forward_chunk(model_state *s, const int32_t *tokens, int n, float *logits_all)
{
    const model *m = s->m;
    embed_tokens(s, tokens, n);
    schedule_forward(s, n, logits_all ? 0 : n - 1, logits_all ? logits_all : s->logits);
    s->pos += n;
    if (logits_all) memcpy(s->logits, logits_all + (size_t)(n - 1) * m->n_vocab, (size_t)m->n_vocab * sizeof(float));
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
