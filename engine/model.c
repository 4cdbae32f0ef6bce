/*
 * model.c - transformer weights and the math of the forward pass.
 *
 * To add an architecture: add a row to arch_table below (named fields, zero
 * meaning "as llama"); if it needs something no field describes yet (a new
 * norm, activation, scaling), add the field to arch_traits (model.h), bind
 * its tensors in load_layer and its metadata in load_hparams (adding the
 * keys it honours to known_keys), and write the step once in the math
 * below, where prefill and decode both run it. Then give it a test against a
 * reference: goldens in the test data set ($PRBOT_TESTDATA), or a model from
 * tests/tools/gen_model.c with logits from a reference engine, and the
 * float64 pass of tests/test_reference_forward.py.
 *
 * Loading reads the hyper-parameters from `{arch}.*` metadata, binds every
 * tensor by name and checks its shape and type, so the forward pass never
 * meets a surprise. Nothing that would change the result is ignored: a
 * metadata key under `{arch}.` that is not in known_keys, or a tensor that
 * no field binds, makes the load fail with its name. Small vectors (norms,
 * biases, RoPE factors) are copied to f32; big matrices stay in the mmap in
 * their own quant type, or are repacked once into 16-row panels where the
 * kernels have a panel form (model_pack_weights).
 *
 * transformer() is the forward pass, top to bottom, for the tokens of a
 * pass (a batch in prefill, one token per thread in decode):
 *
 *   x = embed(tokens) (* embd_scale)
 *   for each layer:
 *     q, k, v = rmsnorm(x) Wq, Wk, Wv  (+ biases; per-head rmsnorm; RoPE)
 *     x += [rmsnorm] (attention(q, k, v over the cache) Wo)
 *     x += [rmsnorm] ((act(rmsnorm(x) Wgate) * rmsnorm(x) Wup) Wdown)
 *   logits = (rmsnorm(x) * output_norm) Wout
 *
 * Matrix products quantize the activations once into the weight type's
 * activation format and call the dispatch table's kernels; schedule.c splits
 * them, and attention, across the threads. The KV cache is F16, one
 * contiguous run of rows per (layer, KV head); a sliding-window layer keeps
 * only a ring of the positions it can still see.
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

#include "errors.h"
#include "forward.h"
#include "kernels/kernels.h"
#include "kernels/panels.h"
#include "quant.h"

static const arch_traits arch_table[] = {
    {.name = "llama", .rope = ROPE_ADJACENT, .ffn = FFN_SILU},
    {.name = "qwen2", .rope = ROPE_NEOX, .ffn = FFN_SILU, .qkv_bias = 1},
    {.name = "qwen3", .rope = ROPE_NEOX, .ffn = FFN_SILU, .qk_norm = 1},
    {.name = "gemma3",
     .rope = ROPE_NEOX,
     .ffn = FFN_GELU_TANH,
     .qk_norm = 1,
     .post_norms = 1,
     .embd_scale_sqrt = 1,
     .swa_pattern = 6,
     .swa_rope_base = 10000.0f},
    {.name = "phi3", .rope = ROPE_NEOX, .ffn = FFN_SILU, .fused_qkv = 1, .fused_gate_up = 1, .scaled_query = 1},
};

#define N_ARCHS (sizeof arch_table / sizeof arch_table[0])

const char *model_supported_archs(void)
{
    static char list[256];
    if (!list[0])
        for (size_t i = 0; i < N_ARCHS; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", arch_table[i].name);
        }
    return list;
}

/* ---------------------------------------------------------------- loading */

/* Metadata under `{arch}.` that loading reads (every other key there is
 * refused, since it would describe math this engine does not do). */
static const char *const known_keys[] = {
    "context_length", "embedding_length", "block_count", "feed_forward_length", "vocab_size",
    "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon",
    "attention.key_length", "attention.value_length", "rope.dimension_count", "rope.freq_base",
    "rope.scaling.type", "rope.scaling.factor", "rope.scale_linear", "rope.scaling.original_context_length",
    "rope.scaling.finetuned", "rope.scaling.attn_factor", "attention.sliding_window",
};
static const char *const scale_keys[] = {"embedding_scale", "residual_scale", "attention.scale", "logit_scale"};

static int key_in(gguf_str suffix, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (gguf_str_eq(suffix, list[i])) return 1;
    return 0;
}

static int check_metadata(const model *m, const gguf_file *f, char *err, size_t errlen)
{
    size_t arch_len = strlen(m->arch->name);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_str key = f->kv[i].key;
        if (key.len <= arch_len || memcmp(key.ptr, m->arch->name, arch_len) != 0 || key.ptr[arch_len] != '.')
            continue;
        gguf_str suffix = {key.ptr + arch_len + 1, key.len - arch_len - 1};
        if (key_in(suffix, known_keys, sizeof known_keys / sizeof known_keys[0])) continue;
        if (m->arch->scales && key_in(suffix, scale_keys, sizeof scale_keys / sizeof scale_keys[0])) continue;
        err_set(err, errlen, "%s: metadata %.*s is not supported (it would change the results)", f->path,
                (int)(key.len > 96 ? 96 : key.len), key.ptr);
        return -1;
    }
    return 0;
}

static int get_arch_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out, int required,
                        char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_get_u32(f, key, out) == 0) return 0;
    if (!required && !gguf_kv_find(f, key)) return 1;
    err_set(err, errlen, "%s: missing or invalid metadata %s", f->path, key);
    return -1;
}

/* 0: read into *out; 1: absent (*out untouched); -1: present but not a number. */
static int get_arch_f32(const gguf_file *f, const char *arch, const char *suffix, float *out, char *err,
                        size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_get_f32(f, key, out) == 0) return 0;
    if (!gguf_kv_find(f, key)) return 1;
    err_set(err, errlen, "%s: invalid metadata %s", f->path, key);
    return -1;
}

/* Binds tensors by name and remembers which ones were, so that loading can
 * refuse a file with a tensor nothing reads. */
typedef struct {
    const gguf_file *f;
    uint8_t *used; /* per tensor of f */
    char *err;
    size_t errlen;
} binder;

/* The tensor `name` of shape [ne0, ne1]; NULL when it is absent (an error
 * unless optional) or wrong (always an error: *failed is set). */
static const gguf_tensor *bind(binder *b, const char *name, int64_t ne0, int64_t ne1, int optional, int *failed)
{
    const gguf_tensor *t = gguf_tensor_find(b->f, name);
    if (!t) {
        if (!optional) {
            snprintf(b->err, b->errlen, "%s: tensor %s is missing", b->f->path, name);
            *failed = 1;
        }
        return NULL;
    }
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (t->ne[0] != ne0 || rows != ne1) {
        snprintf(b->err, b->errlen, "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", b->f->path, name,
                 (long long)t->ne[0], (long long)rows, (long long)ne0, (long long)ne1);
        *failed = 1;
        return NULL;
    }
    if (!quant_traits_of(t->type)) {
        snprintf(b->err, b->errlen, "%s: tensor %s has unsupported type %u", b->f->path, name, t->type);
        *failed = 1;
        return NULL;
    }
    b->used[t - b->f->tensors] = 1;
    return t;
}

/* A 1-D tensor of any type copied to a fresh f32 array, or NULL (absent, or *failed). */
static float *bind_vector(binder *b, const char *name, int64_t n, int optional, int *failed)
{
    const gguf_tensor *t = bind(b, name, n, 1, optional, failed);
    if (!t) return NULL;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        snprintf(b->err, b->errlen, "out of memory loading %s", name);
        *failed = 1;
        return NULL;
    }
    quant_traits_of(t->type)->dequantize_row(t->data, v, n);
    return v;
}

static int bind_matrix(binder *b, model *m, matrix *w, const char *name, int64_t ne0, int64_t ne1, int optional,
                       int *failed)
{
    w->t = bind(b, name, ne0, ne1, optional, failed);
    if (w->t) m->weight_bytes += w->t->nbytes;
    if (w->t && w != &m->output) m->layer_macs += (uint64_t)ne0 * (uint64_t)ne1;
    return w->t != NULL;
}

/* RoPE scaling: linear (rope.scaling.factor), LongRoPE (factor tensors), or none. */
static int load_rope(model *m, const gguf_file *f, const char *arch, uint32_t n_ctx_train, char *err, size_t errlen)
{
    rope_params *g = &m->rope[ROPE_GLOBAL];
    *g = (rope_params){.base = 10000.0f, .scale = 1.0f, .mscale = 1.0f};
    float factor = 0;
    int rc;
    if (get_arch_f32(f, arch, "rope.freq_base", &g->base, err, errlen) < 0) return -1;
    if ((rc = get_arch_f32(f, arch, "rope.scaling.factor", &factor, err, errlen)) < 0) return -1;
    if (rc == 1 && get_arch_f32(f, arch, "rope.scale_linear", &factor, err, errlen) < 0) return -1;
    if (get_arch_f32(f, arch, "rope.scaling.attn_factor", &g->mscale, err, errlen) < 0) return -1;
    uint32_t orig = n_ctx_train;
    if (get_arch_u32(f, arch, "rope.scaling.original_context_length", &orig, 0, err, errlen) < 0) return -1;
    m->n_ctx_orig = (int)orig;
    char key[128];
    gguf_str type = {"linear", 6};
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (gguf_kv_find(f, key) && gguf_get_str(f, key, &type)) {
        err_set(err, errlen, "%s: invalid metadata %s", f->path, key);
        return -1;
    }
    if (gguf_str_eq(type, "none")) factor = 0;
    else if (!gguf_str_eq(type, "linear") && !gguf_str_eq(type, "longrope")) {
        err_set(err, errlen, "%s: rope.scaling.type '%.*s' is not supported (linear, longrope or none)", f->path,
                (int)(type.len > 32 ? 32 : type.len), type.ptr);
        return -1;
    }
    if (factor < 0 || !isfinite(factor) || !isfinite(g->base) || g->base <= 0 || !isfinite(g->mscale)) {
        err_set(err, errlen, "%s: implausible RoPE parameters (base %g, factor %g)", f->path, (double)g->base,
                (double)factor);
        return -1;
    }
    if (factor > 0) g->scale = 1.0f / factor;
    return 0;
}

static int load_hparams(model *m, const gguf_file *f, const char *arch, char *err, size_t errlen)
{
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, rope_dim, key_len, value_len, window = 0;
    if (get_arch_u32(f, arch, "embedding_length", &n_embd, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "block_count", &n_layer, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "attention.head_count", &n_head, 1, err, errlen) < 0 ||
        get_arch_u32(f, arch, "feed_forward_length", &n_ff, 1, err, errlen) < 0)
        return -1;
    int rc;
    if ((rc = get_arch_u32(f, arch, "attention.head_count_kv", &n_head_kv, 0, err, errlen)) < 0) return -1;
    if (rc) n_head_kv = n_head;
    if ((rc = get_arch_u32(f, arch, "context_length", &n_ctx, 0, err, errlen)) < 0) return -1;
    if (rc) n_ctx = 2048;
    if (n_embd == 0 || n_embd > 65536 || n_layer == 0 || n_layer > 1024 || n_head == 0 || n_head > 1024 ||
        n_head_kv == 0 || n_head % n_head_kv || n_ff == 0 || n_ff > 1 << 20 || n_ctx == 0) {
        err_set(err, errlen, "%s: implausible model dimensions (embd %u, layers %u, heads %u/%u, ffn %u)", f->path,
                n_embd, n_layer, n_head, n_head_kv, n_ff);
        return -1;
    }
    if ((rc = get_arch_u32(f, arch, "attention.key_length", &key_len, 0, err, errlen)) < 0) return -1;
    if (rc) key_len = n_embd / n_head;
    if ((rc = get_arch_u32(f, arch, "attention.value_length", &value_len, 0, err, errlen)) < 0) return -1;
    if (rc) value_len = key_len;
    if ((rc = get_arch_u32(f, arch, "rope.dimension_count", &rope_dim, 0, err, errlen)) < 0) return -1;
    if (rc) rope_dim = key_len;
    if (key_len == 0 || key_len % 2 || key_len > MAX_HEAD_DIM || rope_dim > key_len || rope_dim % 2 ||
        rope_dim == 0) {
        err_set(err, errlen, "%s: implausible head size %u (rope dims %u)", f->path, key_len, rope_dim);
        return -1;
    }
    if (value_len != key_len) {
        err_set(err, errlen, "%s: value heads of %u differ from key heads of %u (not supported)", f->path,
                value_len, key_len);
        return -1;
    }
    if (get_arch_u32(f, arch, "attention.sliding_window", &window, 0, err, errlen) < 0) return -1;
    m->norm_eps = 1e-5f;
    if (get_arch_f32(f, arch, "attention.layer_norm_rms_epsilon", &m->norm_eps, err, errlen) < 0) return -1;
    m->n_embd = (int)n_embd;
    m->n_layer = (int)n_layer;
    m->n_head = (int)n_head;
    m->n_head_kv = (int)n_head_kv;
    m->n_ff = (int)n_ff;
    m->n_ctx_train = (int)n_ctx;
    m->head_dim = (int)key_len;
    m->rope_dim = (int)rope_dim;
    if (load_rope(m, f, arch, n_ctx, err, errlen)) return -1;

    m->embd_scale = m->arch->embd_scale_sqrt ? sqrtf((float)n_embd) : 1.0f;
    m->residual_scale = 1.0f;
    m->attn_scale = 1.0f / sqrtf((float)key_len);
    /* Gemma 3 27B scales queries by n_embd / n_head, not its head size; the file
     * has no key for it, so it is recognised by its 62 layers, as the reference does */
    if (m->arch->embd_scale_sqrt && n_layer == 62) m->attn_scale = 1.0f / sqrtf((float)n_embd / n_head);
    m->logit_scale = 1.0f;
    if (m->arch->scales) {
        float *dst[] = {&m->embd_scale, &m->residual_scale, &m->attn_scale, &m->logit_scale};
        for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++)
            if (get_arch_f32(f, arch, scale_keys[i], dst[i], err, errlen) < 0) return -1;
        if (!(m->logit_scale > 0)) {
            err_set(err, errlen, "%s: implausible %s.logit_scale %g", f->path, arch, (double)m->logit_scale);
            return -1;
        }
    }
    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    if (!m->layers) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    for (int il = 0; il < m->n_layer; il++) {
        int slides = window > 0 && (m->arch->swa_pattern == 0 || (il + 1) % m->arch->swa_pattern != 0);
        m->layers[il].window = slides ? (int)window : 0;
        m->layers[il].rope = slides ? ROPE_SLIDING : ROPE_GLOBAL;
    }
    return 0;
}

static int load_layer(binder *b, model *m, int il)
{
    layer_weights *L = &m->layers[il];
    int E = m->n_embd, hd = m->head_dim, q_dim = q_dim_of(m), kv_dim = kv_dim_of(m), failed = 0;
    const arch_traits *a = m->arch;
    char name[96];
#define NAME(suffix, kind) (snprintf(name, sizeof name, "blk.%d.%s.%s", il, suffix, kind), name)
    if (!a->fused_qkv || !bind_matrix(b, m, &L->wqkv, NAME("attn_qkv", "weight"), E, q_dim + 2 * kv_dim, 1, &failed)) {
        if (failed) return -1;
        if (a->fused_qkv && !gguf_tensor_find(b->f, NAME("attn_q", "weight"))) {
            snprintf(b->err, b->errlen, "%s: tensor blk.%d.attn_qkv.weight is missing", b->f->path, il);
            return -1;
        }
        bind_matrix(b, m, &L->wq, NAME("attn_q", "weight"), E, q_dim, 0, &failed);
        bind_matrix(b, m, &L->wk, NAME("attn_k", "weight"), E, kv_dim, 0, &failed);
        bind_matrix(b, m, &L->wv, NAME("attn_v", "weight"), E, kv_dim, 0, &failed);
        if (failed) return -1;
        L->bq = bind_vector(b, NAME("attn_q", "bias"), q_dim, !a->qkv_bias, &failed);
        L->bk = bind_vector(b, NAME("attn_k", "bias"), kv_dim, !a->qkv_bias, &failed);
        L->bv = bind_vector(b, NAME("attn_v", "bias"), kv_dim, !a->qkv_bias, &failed);
    }
    bind_matrix(b, m, &L->wo, NAME("attn_output", "weight"), q_dim, E, 0, &failed);
    if (a->fused_gate_up) {
        bind_matrix(b, m, &L->w_up, NAME("ffn_up", "weight"), E, 2 * (int64_t)m->n_ff, 0, &failed);
    } else {
        bind_matrix(b, m, &L->w_gate, NAME("ffn_gate", "weight"), E, m->n_ff, 0, &failed);
        bind_matrix(b, m, &L->w_up, NAME("ffn_up", "weight"), E, m->n_ff, 0, &failed);
    }
    bind_matrix(b, m, &L->w_down, NAME("ffn_down", "weight"), m->n_ff, E, 0, &failed);
    if (failed) return -1;
    L->attn_norm = bind_vector(b, NAME("attn_norm", "weight"), E, 0, &failed);
    L->ffn_norm = bind_vector(b, NAME("ffn_norm", "weight"), E, 0, &failed);
    if (a->post_norms) {
        L->attn_post_norm = bind_vector(b, NAME("post_attention_norm", "weight"), E, 0, &failed);
        L->ffn_post_norm = bind_vector(b, NAME("post_ffw_norm", "weight"), E, 0, &failed);
    }
    if (a->qk_norm) {
        L->q_norm = bind_vector(b, NAME("attn_q_norm", "weight"), hd, 0, &failed);
        L->k_norm = bind_vector(b, NAME("attn_k_norm", "weight"), hd, 0, &failed);
    }
#undef NAME
    return failed ? -1 : 0;
}

/* A RoPE factor vector: one per rotated pair, or (as some files carry it with
 * partial rotary) one per pair of the whole head, of which the rotated pairs
 * use the first rope_dim / 2. */
static float *bind_factors(binder *b, const model *m, const char *name, int *failed)
{
    const gguf_tensor *t = gguf_tensor_find(b->f, name);
    int64_t n = t && t->ne[0] == m->head_dim / 2 ? m->head_dim / 2 : m->rope_dim / 2;
    return bind_vector(b, name, n, 1, failed);
}

/* RoPE frequency factors: Llama 3.x's rope_freqs, or LongRoPE's long and short ones. */
static int load_rope_factors(binder *b, model *m)
{
    int failed = 0, n = m->rope_dim / 2;
    m->rope_freqs = bind_factors(b, m, "rope_freqs.weight", &failed);
    m->rope_long = bind_factors(b, m, "rope_factors_long.weight", &failed);
    m->rope_short = bind_factors(b, m, "rope_factors_short.weight", &failed);
    if (failed) return -1;
    if (!m->rope_long != !m->rope_short || (m->rope_freqs && m->rope_long)) {
        snprintf(b->err, b->errlen, "%s: RoPE factor tensors must be rope_freqs, or both rope_factors_long and "
                 "rope_factors_short", b->f->path);
        return -1;
    }
    const float *factors[] = {m->rope_freqs, m->rope_long, m->rope_short};
    for (size_t i = 0; i < sizeof factors / sizeof factors[0]; i++)
        for (int j = 0; factors[i] && j < n; j++)
            if (!(factors[i][j] > 0) || !isfinite(factors[i][j])) {
                snprintf(b->err, b->errlen, "%s: RoPE frequency factor %d is %g", b->f->path, j, (double)factors[i][j]);
                return -1;
            }
    m->rope[ROPE_GLOBAL].factors = m->rope_freqs;
    m->rope[ROPE_GLOBAL].longrope = m->rope_long != NULL; /* long or short: by context size (model_state_new) */
    m->rope[ROPE_SLIDING] = m->rope[ROPE_GLOBAL];
    if (m->arch->swa_rope_base > 0)
        m->rope[ROPE_SLIDING] = (rope_params){.base = m->arch->swa_rope_base, .scale = 1.0f, .mscale = 1.0f};
    return 0;
}

static int load_tensors(binder *b, model *m)
{
    int failed = 0;
    const gguf_tensor *embd = gguf_tensor_find(b->f, "token_embd.weight");
    if (!embd) {
        snprintf(b->err, b->errlen, "%s: tensor token_embd.weight is missing", b->f->path);
        return -1;
    }
    m->n_vocab = (int)embd->ne[1];
    if (!(m->tok_embd.t = bind(b, "token_embd.weight", m->n_embd, m->n_vocab, 0, &failed))) return -1;
    if (!bind_matrix(b, m, &m->output, "output.weight", m->n_embd, m->n_vocab, 1, &failed)) {
        if (failed) return -1;
        m->output = m->tok_embd; /* tied embeddings */
        m->weight_bytes += m->output.t->nbytes;
    }
    m->output_norm = bind_vector(b, "output_norm.weight", m->n_embd, 0, &failed);
    if (failed || load_rope_factors(b, m)) return -1;
    for (int il = 0; il < m->n_layer; il++)
        if (load_layer(b, m, il)) return -1;
    for (uint64_t i = 0; i < b->f->n_tensors; i++)
        if (!b->used[i]) {
            gguf_str name = b->f->tensors[i].name;
            snprintf(b->err, b->errlen, "%s: tensor %.*s is not used by the %s architecture (refusing to ignore it)",
                     b->f->path, (int)(name.len > 96 ? 96 : name.len), name.ptr, m->arch->name);
            return -1;
        }
    return 0;
}

int model_load(model *m, const gguf_file *f, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch)) {
        err_set(err, errlen, "%s: missing general.architecture", f->path);
        return -1;
    }
    for (size_t i = 0; i < N_ARCHS; i++)
        if (gguf_str_eq(arch, arch_table[i].name)) m->arch = &arch_table[i];
    if (!m->arch) {
        char name[96];
        err_set(err, errlen, "%s: unsupported architecture '%s' (supported: %s)", f->path,
                gguf_str_printable(name, sizeof name, arch), model_supported_archs());
        return -1;
    }
    binder b = {.f = f, .used = calloc(f->n_tensors ? f->n_tensors : 1, 1), .err = err, .errlen = errlen};
    int rc = -1;
    if (!b.used) err_set(err, errlen, "out of memory");
    else if (!check_metadata(m, f, err, errlen) && !load_hparams(m, f, m->arch->name, err, errlen))
        rc = load_tensors(&b, m);
    free(b.used);
    if (rc) model_free(m);
    return rc;
}

/* Every matrix of layer il (unused ones have no tensor); returns how many. */
static int layer_matrices(layer_weights *L, matrix *w[8])
{
    matrix *all[] = {&L->wqkv, &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
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
            matrix *w[8];
            for (int i = 0, n = layer_matrices(L, w); i < n; i++) free(w[i]->panels);
            float *vectors[] = {L->attn_norm, L->ffn_norm, L->attn_post_norm, L->ffn_post_norm,
                                L->q_norm,    L->k_norm,   L->bq,             L->bk,
                                L->bv};
            for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) free(vectors[i]);
        }
    if (m->output.panels != m->tok_embd.panels) free(m->output.panels);
    free(m->tok_embd.panels);
    m->output.panels = m->tok_embd.panels = NULL;
    free(m->layers);
    free(m->output_norm);
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->rope_short);
    m->layers = NULL;
    m->output_norm = m->rope_freqs = m->rope_long = m->rope_short = NULL;
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
    pack_task task = {.mats = malloc(((size_t)m->n_layer * 8 + 1) * sizeof(matrix *))};
    if (!task.mats) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    if (wants_panels(&m->output)) task.mats[task.n_mats++] = &m->output;
    for (int il = 0; il < m->n_layer; il++) {
        matrix *w[8];
        for (int i = 0, n = layer_matrices(&m->layers[il], w); i < n; i++)
            if (wants_panels(w[i])) task.mats[task.n_mats++] = w[i];
    }
    atomic_init(&task.next, 0);
    atomic_init(&task.failed, 0);
    threads_run(pool, pack_worker, &task);
    free(task.mats);
    if (m->output.t == m->tok_embd.t) m->tok_embd.panels = m->output.panels; /* tied: one copy serves both */
    if (atomic_load(&task.failed)) {
        err_set(err, errlen, "out of memory repacking the weights");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ run state */

/*
 * KV cache layout: layer il, KV head kvh holds kv_slots[il] rows of head_dim,
 * contiguous, so attention streams each head's keys and values as one
 * sequential run. A global layer gives every position its own row. A
 * sliding-window layer of window W needs only the last W positions, plus the
 * n_batch - 1 a prefill chunk stores before its first token attends: a ring
 * of R = W + n_batch - 1 rows, position p at row p % R. So that the keys a
 * query reads are still one contiguous run where they wrap past the end of
 * the ring, the first W - 1 rows are written a second time after it (rows R
 * .. R + W - 2): a run starting at row r < R of up to W rows ends before
 * R + W - 1. Memory then stays flat however long the context.
 */
f16_t *kv_row(const model_state *s, f16_t *cache, int il, int kvh, int pos)
{
    int ring = s->kv_ring[il], slot = ring ? pos % ring : pos;
    return cache + (s->kv_offset[il] + (size_t)kvh * s->kv_slots[il] + (size_t)slot) * s->m->head_dim;
}

int key_range(const model_state *s, int il, int pos, int *first)
{
    int window = s->m->layers[il].window;
    *first = window && pos >= window ? pos - window + 1 : 0;
    return pos - *first + 1;
}

static void kv_store(model_state *s, f16_t *cache, int il, int kvh, int pos, const float *head)
{
    int hd = s->m->head_dim, ring = s->kv_ring[il];
    f16_t *row = kv_row(s, cache, il, kvh, pos);
    kernels.f32_to_f16_row(hd, head, row);
    if (ring && pos % ring < s->m->layers[il].window - 1) memcpy(row + (size_t)ring * hd, row, (size_t)hd * sizeof *row);
}

/* Lays out the cache; returns its rows. */
static size_t kv_layout(model_state *s)
{
    const model *m = s->m;
    size_t rows = 0;
    for (int il = 0; il < m->n_layer; il++) {
        int window = m->layers[il].window, ring = window + s->n_batch - 1;
        s->kv_ring[il] = window && ring < s->n_ctx ? ring : 0;
        s->kv_slots[il] = s->kv_ring[il] ? ring + window - 1 : s->n_ctx;
        s->kv_offset[il] = rows;
        rows += (size_t)m->n_head_kv * s->kv_slots[il];
    }
    return rows;
}

/* cos/sin per position and pair, computed in float with the angle advanced
 * by repeated multiplication exactly as the reference does, so that q and k
 * round to the same F16 values as the reference's. */
static void rope_table_fill(const model_state *s, const rope_params *r, rope_table *t)
{
    const model *m = s->m;
    int half = m->rope_dim / 2;
    float theta_scale = powf(r->base, -2.0f / m->rope_dim);
    for (int p = 0; p < s->n_ctx; p++) {
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            float angle = r->scale * (r->factors ? theta / r->factors[i] : theta);
            t->cos[(size_t)p * half + i] = cosf(angle) * r->mscale;
            t->sin[(size_t)p * half + i] = sinf(angle) * r->mscale;
            theta *= theta_scale;
        }
    }
}

static int is_float_matrix(const matrix *w) { return quant_traits_of(w->t->type)->act == ACT_F32; }

static int model_has_float_weights(const model *m)
{
    if (is_float_matrix(&m->output)) return 1;
    for (int il = 0; il < m->n_layer; il++) {
        matrix *w[8];
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
    s->kv_offset = calloc((size_t)m->n_layer, sizeof *s->kv_offset);
    s->kv_slots = calloc((size_t)m->n_layer, sizeof *s->kv_slots);
    s->kv_ring = calloc((size_t)m->n_layer, sizeof *s->kv_ring);
    if (!s->kv_offset || !s->kv_slots || !s->kv_ring) goto oom;
    size_t kv = kv_layout(s) * m->head_dim, B = (size_t)n_batch, E = (size_t)m->n_embd;
    size_t q_dim = (size_t)q_dim_of(m), ff = (size_t)m->n_ff;
    size_t widest = ff > q_dim ? ff : q_dim;
    if (widest < E) widest = E;
    s->k_cache = malloc(kv * sizeof(f16_t));
    s->v_cache = malloc(kv * sizeof(f16_t));
    size_t rope_floats = (size_t)n_ctx * (m->rope_dim / 2);
    for (int r = 0; r < 2; r++) {
        s->rope[r].cos = malloc(rope_floats * sizeof(float));
        s->rope[r].sin = malloc(rope_floats * sizeof(float));
        if (!s->rope[r].cos || !s->rope[r].sin) goto oom;
    }
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
    if (!s->k_cache || !s->v_cache || !s->x || !s->in || !s->qkv || !s->att || !s->o || !s->ffn || !s->logits ||
        !s->act || !s->embd_row || schedule_state_init(s, widest, model_has_float_weights(m)))
        goto oom;
    for (int r = 0; r < 2; r++) {
        rope_params params = m->rope[r];
        if (params.longrope) params.factors = n_ctx > m->n_ctx_orig ? m->rope_long : m->rope_short;
        rope_table_fill(s, &params, &s->rope[r]);
    }
    s->kq_scale = m->arch->scaled_query ? 1.0f : m->attn_scale;
    *out = s;
    return 0;
oom:
    err_set(err, errlen, "out of memory allocating the KV cache and buffers for %d tokens of context", n_ctx);
    model_state_free(s);
    return -1;
}

void model_state_free(model_state *s)
{
    if (!s) return;
    schedule_state_free(s);
    for (int r = 0; r < 2; r++) {
        free(s->rope[r].cos);
        free(s->rope[r].sin);
    }
    void *buffers[] = {s->kv_offset, s->kv_slots, s->kv_ring, s->k_cache, s->v_cache, s->x,
                       s->in,        s->qkv,      s->att,     s->o,       s->ffn,     s->logits,
                       s->act,       s->embd_row};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(s);
}

void model_state_reset(model_state *s) { s->pos = 0; }
/* A global layer keeps every position, so any prefix can be kept. A sliding
 * layer's ring of R rows holds position x until position x + R is written:
 * continuing from pos needs the window before it, [pos - window + 1, pos),
 * which is intact only if none of it is older than R positions before the
 * newest; otherwise nothing can be kept. */
int model_state_rewind(model_state *s, int pos)
{
    if (pos < 0) pos = 0;
    if (pos >= s->pos) return s->pos;
    for (int il = 0; il < s->m->n_layer && pos > 0; il++) {
        int ring = s->kv_ring[il], first = pos - s->m->layers[il].window + 1;
        if (ring && (first > 0 ? first : 0) < s->pos - ring) pos = 0;
    }
    s->pos = pos;
    return pos;
}
int model_state_pos(const model_state *s) { return s->pos; }
float *model_state_logits(model_state *s) { return s->logits; }

uint64_t model_state_kv_bytes(const model_state *s)
{
    size_t rows = 0;
    for (int il = 0; il < s->m->n_layer; il++) rows += (size_t)s->m->n_head_kv * s->kv_slots[il];
    return 2 * (uint64_t)rows * s->m->head_dim * sizeof(f16_t);
}

/* ------------------------------------------------------------ math pieces */

/* The sum of squares runs in double as RMSNORM_CHAINS independent sums: one
 * chain of dependent adds made this step (repeated by every decode thread)
 * several times longer, one add latency per element. */
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

/* Rotates one head of q or k at position pos by the layer's RoPE table;
 * dimensions past rope_dim are left as they are. */
static void rope_rotate(const model_state *s, int il, float *v, int pos)
{
    const model *m = s->m;
    const rope_table *t = &s->rope[m->layers[il].rope];
    int half = m->rope_dim / 2, neox = m->arch->rope == ROPE_NEOX;
    const float *cs = t->cos + (size_t)pos * half, *sn = t->sin + (size_t)pos * half;
    for (int i = 0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

/* One head of q or k: + bias, rmsnorm over the head, RoPE. */
static void prepare_head(const model_state *s, int il, float *head, const float *bias, const float *norm, int pos)
{
    int hd = s->m->head_dim;
    if (bias)
        for (int i = 0; i < hd; i++) head[i] += bias[i];
    if (norm) rmsnorm(head, head, norm, hd, s->m->norm_eps);
    rope_rotate(s, il, head, pos);
}

void prepare_query(const model_state *s, int il, float *q, int pos)
{
    const model *m = s->m;
    const layer_weights *L = &m->layers[il];
    int hd = m->head_dim;
    for (int h = 0; h < m->n_head; h++) {
        float *head = q + (size_t)h * hd;
        prepare_head(s, il, head, L->bq ? L->bq + (size_t)h * hd : NULL, L->q_norm, pos);
        if (m->arch->scaled_query)
            for (int i = 0; i < hd; i++) head[i] *= m->attn_scale;
    }
}

void store_key(model_state *s, int il, int kvh, float *k, int pos)
{
    const layer_weights *L = &s->m->layers[il];
    prepare_head(s, il, k, L->bk ? L->bk + (size_t)kvh * s->m->head_dim : NULL, L->k_norm, pos);
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
        if (L->wqkv.t) {
            w[0] = &L->wqkv;
            return 1;
        }
        w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv;
        return 3;
    case PRODUCT_O:
        w[0] = &L->wo, *y = s->o;
        return 1;
    case PRODUCT_FFN_IN:
        *y = s->ffn;
        if (!L->w_gate.t) {
            w[0] = &L->w_up;
            return 1;
        }
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
        if (m->embd_scale != 1.0f)
            for (int i = 0; i < m->n_embd; i++) x[i] *= m->embd_scale;
    }
}

/* A product's input: rmsnorm(x) * weight. */
static void norm_input(const pass *p, int t, float *dst, const void *weight)
{
    rmsnorm(dst, pass_x(p, t), weight, p->m->n_embd, p->m->norm_eps);
}

/* The down projection's input: act(gate) * up (in place of the gate in prefill). */
static void gated_input(const pass *p, int t, float *dst, const void *unused)
{
    (void)unused;
    int ff = p->m->n_ff;
    const float *gate = p->s->ffn + (size_t)t * 2 * ff;
    if (dst != gate) memcpy(dst, gate, (size_t)ff * sizeof *dst);
    if (p->m->arch->ffn == FFN_GELU_TANH) kernels.gelu_mul_row(ff, dst, gate + ff);
    else kernels.silu_mul_row(ff, dst, gate + ff);
}

/* x += residual_scale * [rmsnorm(o) * post_norm | o], o the last product's output. */
static void add_residual(const pass *p, int t, const void *post_norm)
{
    const model *m = p->m;
    int E = m->n_embd;
    float *x = pass_x(p, t);
    const float *o = p->s->o + (size_t)t * E;
    if (post_norm) {
        float *normed = p->decode ? p->me->in : p->s->in + (size_t)t * E;
        rmsnorm(normed, o, post_norm, E, m->norm_eps);
        o = normed;
    }
    if (m->residual_scale != 1.0f)
        for (int i = 0; i < E; i++) x[i] += m->residual_scale * o[i];
    else
        for (int i = 0; i < E; i++) x[i] += o[i];
}

void transformer(pass *p)
{
    const model *m = p->m;
    for (int il = 0; il < m->n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        /* attention: x += [norm] (attention(q, k, v) Wo), q, k, v = rmsnorm(x) Wq, Wk, Wv */
        run_product(p, product_step(il, PRODUCT_QKV), &(row_input){.fn = norm_input, .arg = L->attn_norm});
        run_attention(p, il);
        run_product(p, product_step(il, PRODUCT_O), NULL);
        run_rows(p, add_residual, L->attn_post_norm);
        /* feed-forward: x += [norm] ((act(h Wgate) * h Wup) Wdown), h = rmsnorm(x) */
        run_product(p, product_step(il, PRODUCT_FFN_IN), &(row_input){.fn = norm_input, .arg = L->ffn_norm});
        run_product(p, product_step(il, PRODUCT_DOWN),
                    &(row_input){.fn = gated_input, .rows = p->s->ffn, .stride = 2 * (size_t)m->n_ff});
        run_rows(p, add_residual, L->ffn_post_norm);
    }
    run_product(p, output_step(m), &(row_input){.fn = norm_input, .arg = m->output_norm});
}

/* One chunk of at most n_batch tokens. */
static void forward_chunk(model_state *s, const int32_t *tokens, int n, float *logits_all)
{
    const model *m = s->m;
    embed_tokens(s, tokens, n);
    float *logits = logits_all ? logits_all : s->logits;
    schedule_forward(s, n, logits_all ? 0 : n - 1, logits);
    s->pos += n;
    if (m->logit_scale != 1.0f)
        for (size_t i = 0, rows = logits_all ? (size_t)n : 1; i < rows * m->n_vocab; i++) logits[i] /= m->logit_scale;
    if (logits_all) memcpy(s->logits, logits_all + (size_t)(n - 1) * m->n_vocab, (size_t)m->n_vocab * sizeof(float));
}

int model_forward(model_state *s, const int32_t *tokens, int n, float *logits_all, char *err, size_t errlen)
{
    const model *m = s->m;
    if (n <= 0) {
        err_set(err, errlen, "nothing to evaluate (0 tokens)");
        return -1;
    }
    if (s->pos + n > s->n_ctx) {
        err_set(err, errlen, "context full: %d + %d tokens exceed the context of %d", s->pos, n, s->n_ctx);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab) {
            err_set(err, errlen, "token id %d out of range (vocabulary has %d tokens)", tokens[i], m->n_vocab);
            return -1;
        }
    for (int done = 0; done < n; done += s->n_batch) {
        int chunk = n - done < s->n_batch ? n - done : s->n_batch;
        forward_chunk(s, tokens + done, chunk, logits_all ? logits_all + (size_t)done * m->n_vocab : NULL);
    }
    return 0;
}
