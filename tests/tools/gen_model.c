/*
 * gen_model - writes a random-weight GGUF model with a real model's shapes.
 *
 *   gen_model --shape NAME --type Q4_0|Q8_0|Q4_K_M|F16 --out PATH [--seed S]
 *             [--chat-template FILE] [--add-bos] [--rope-factors full|rotary]
 *   gen_model --list
 *
 * Benchmarks need files exactly as big, and laid out exactly like, the real
 * SmolLM2-135M / Qwen2.5-0.5B / Qwen2.5-Coder-1.5B/3B/7B / Qwen3-1.7B / Gemma-3-1B /
 * Phi-4-mini quantizations: random weights run as fast as trained ones. The
 * tiny-* shapes are for tests: small models of each architecture, written
 * the same way, whose logits a reference engine computes once for a golden
 * file (tests/golden/), so that the test can write the model again from its
 * seed instead of storing it. Quantizing 1.5 billion random floats
 * would take minutes, so the weights are produced directly as valid blocks:
 * random quant bits with f16 scales chosen so that the weights come out with a
 * standard deviation of about 0.02, like a trained model's. Tensor data is
 * streamed through the GGUF writer's fill callback, block after block from
 * one seeded generator per tensor, so memory stays small and the same seed
 * always gives the same file.
 *
 * Type mixes follow the reference quantizer (llama.cpp):
 *  - Q8_0: every matrix Q8_0.
 *  - Q4_0: every matrix Q4_0 except the output matrix (token_embd when the
 *    embeddings are tied), which is Q6_K.
 *  - Q4_K_M: Q4_K, except the output matrix (tied token_embd) Q6_K, and
 *    attn_v / ffn_down Q6_K in the layers where use_more_bits(i, n) holds:
 *    i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2.
 *  - A K-quant needs rows that are a multiple of 256; where they are not
 *    (dim 576 and 896 are not) the reference falls back Q4_K -> Q5_0 and
 *    Q6_K -> Q8_0, and so do we.
 * Norm weights are F32 ones (random around 1 for the tiny-* test shapes, so
 * a test sees a norm applied with the wrong weight, and around 30 for their
 * output norm, so their logits spread like a real model's), QKV biases F32 small
 * random values, RoPE frequency factors F32 between 1 and 4. F16: every
 * matrix F16 with values of std ~0.02.
 *
 * The vocabulary is byte-level BPE ("gpt2"): the 256 byte symbols, then
 * two-symbol tokens (printable bytes first) with one merge each, then
 * three-symbol tokens, then <|endoftext|>, <|im_start|>, <|im_end|> as
 * control tokens, exactly n_vocab in all, with a ChatML template (or the
 * one given with --chat-template).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/gguf_writer.h"
#include "../../engine/quant.h"

typedef struct {
    const char *name, *arch, *pre;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx_train;
    float rope_base, rms_eps;
    int qkv_bias, tied;
    int head_dim;          /* written as attention.key_length when set (else n_embd / n_head) */
    int rope_dim;          /* written as rope.dimension_count when set (partial rotary) */
    int qk_norm;           /* attn_q_norm, attn_k_norm */
    int post_norms;        /* post_attention_norm, post_ffw_norm */
    int fused_qkv;         /* attn_qkv instead of attn_q, attn_k, attn_v */
    int fused_gate_up;     /* ffn_up of 2 n_ff rows instead of ffn_gate and ffn_up */
    int sliding_window;    /* attention.sliding_window */
    int longrope_orig_ctx; /* rope_factors_long/short and rope.scaling.original_context_length */
    float rope_attn_factor; /* rope.scaling.attn_factor when set */
    int random_norms;      /* norm weights random around 1 instead of ones */
} model_shape;

static const model_shape shapes[] = {
    {"smollm2-135m", "llama", "smollm", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f, .qkv_bias = 0, .tied = 1},
    {"qwen2.5-0.5b", "qwen2", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, .qkv_bias = 1, .tied = 1},
    {"qwen2.5-coder-1.5b", "qwen2", "qwen2", 1536, 28, 12, 2, 8960, 151936, 32768, 1000000.0f, 1e-6f, .qkv_bias = 1,
     .tied = 1},
    {"qwen2.5-coder-3b", "qwen2", "qwen2", 2048, 36, 16, 2, 11008, 151936, 32768, 1000000.0f, 1e-6f, .qkv_bias = 1,
     .tied = 1},
    {"qwen2.5-coder-7b", "qwen2", "qwen2", 3584, 28, 28, 4, 18944, 152064, 32768, 1000000.0f, 1e-6f, .qkv_bias = 1,
     .tied = 0},
    {"qwen3-1.7b", "qwen3", "qwen2", 2048, 28, 16, 8, 6144, 151936, 40960, 1000000.0f, 1e-6f, .tied = 1,
     .head_dim = 128, .qk_norm = 1},
    {"gemma3-1b", "gemma3", "llama-bpe", 1152, 26, 4, 1, 6912, 262144, 32768, 1000000.0f, 1e-6f, .tied = 1,
     .head_dim = 256, .qk_norm = 1, .post_norms = 1, .sliding_window = 512},
    {"phi4-mini", "phi3", "llama-bpe", 3072, 32, 24, 8, 8192, 200064, 131072, 10000.0f, 1e-5f, .tied = 1,
     .rope_dim = 96, .fused_qkv = 1, .fused_gate_up = 1, .sliding_window = 262144, .longrope_orig_ctx = 4096,
     .rope_attn_factor = 1.1902380714238083f},
    /* for tests: k-quant-sized rows with tied embeddings and QKV bias ... */
    {"tiny", "qwen2", "qwen2", 256, 2, 4, 2, 512, 2048, 4096, 1000000.0f, 1e-6f, .qkv_bias = 1, .tied = 1},
    /* ... and rows of 192 (the k-quant fallback) with a separate output matrix */
    {"tiny-llama", "llama", "smollm", 192, 2, 3, 1, 512, 1024, 4096, 10000.0f, 1e-5f, .qkv_bias = 0, .tied = 0},
    /* Phi-3.5-mini in small: fused matrices, LongRoPE (short factors at the default context), its
     * attention factor, a window beyond the context; and Phi-4-mini's partial rotary (3/4 of the head) */
    {"tiny-phi", "phi3", "qwen2", 256, 2, 4, 2, 512, 2048, 8192, 10000.0f, 1e-5f, .tied = 0, .fused_qkv = 1,
     .fused_gate_up = 1, .sliding_window = 262144, .longrope_orig_ctx = 4096, .rope_attn_factor = 1.19f,
     .random_norms = 1},
    {"tiny-phi4", "phi3", "qwen2", 256, 2, 4, 2, 512, 2048, 8192, 10000.0f, 1e-5f, .tied = 0, .rope_dim = 48,
     .fused_qkv = 1, .fused_gate_up = 1, .sliding_window = 262144, .longrope_orig_ctx = 4096,
     .rope_attn_factor = 1.19f, .random_norms = 1},
};

typedef enum { MIX_Q4_0, MIX_Q8_0, MIX_Q4_K_M, MIX_F16 } type_mix;

static const struct {
    const char *name;
    type_mix mix;
    uint32_t file_type; /* general.file_type as the reference numbers it */
} mixes[] = {{"Q4_0", MIX_Q4_0, 2}, {"Q8_0", MIX_Q8_0, 7}, {"Q4_K_M", MIX_Q4_K_M, 15}, {"F16", MIX_F16, 1}};

static const char chatml_template[] =
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- "
    "endif %}";

/* ------------------------------------------------------------ randomness */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_bytes(uint64_t *s, uint8_t *dst, size_t n)
{
    while (n >= 8) {
        uint64_t v = splitmix64(s);
        memcpy(dst, &v, 8);
        dst += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = splitmix64(s);
        memcpy(dst, &v, n);
    }
}

/* Uniform in [lo, hi). */
static float random_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((splitmix64(s) >> 40) * (1.0 / 16777216.0));
}

/* ------------------------------------------------------ random blocks */

/* Writes one valid block of `type` whose weights have a std of about 0.02. */
static void random_block(uint32_t type, uint64_t *s, uint8_t *out)
{
    switch (type) {
    case QT_Q4_0: { /* w = d * (q - 8), std(q) ~ 4.6 */
        block_q4_0 *b = (block_q4_0 *)out;
        b->d = f32_to_f16(random_uniform(s, 0.8f, 1.2f) * 0.02f / 4.6f);
        random_bytes(s, b->qs, sizeof b->qs);
        break;
    }
    case QT_Q5_0: { /* w = d * (q - 16), std(q) ~ 9.2 */
        block_q5_0 *b = (block_q5_0 *)out;
        b->d = f32_to_f16(random_uniform(s, 0.8f, 1.2f) * 0.02f / 9.2f);
        random_bytes(s, b->qh, sizeof b->qh);
        random_bytes(s, b->qs, sizeof b->qs);
        break;
    }
    case QT_Q8_0: { /* w = d * q, std(q) ~ 74 */
        block_q8_0 *b = (block_q8_0 *)out;
        b->d = f32_to_f16(random_uniform(s, 0.8f, 1.2f) * 0.02f / 74.0f);
        random_bytes(s, (uint8_t *)b->qs, sizeof b->qs);
        break;
    }
    case QT_Q4_K: { /* w = d*sc*q - dmin*m with 6-bit sc, m; q in 0..15 */
        block_q4_K *b = (block_q4_K *)out;
        float d = random_uniform(s, 0.8f, 1.2f) * 0.012f / (32.0f * 4.6f);
        b->d = f32_to_f16(d);
        b->dmin = f32_to_f16(d * 7.5f); /* keeps the mean near zero */
        random_bytes(s, b->scales, sizeof b->scales);
        random_bytes(s, b->qs, sizeof b->qs);
        break;
    }
    case QT_Q6_K: { /* w = d * sc * (q - 32), q in 0..63 (std ~ 18.5) */
        block_q6_K *b = (block_q6_K *)out;
        random_bytes(s, b->ql, sizeof b->ql);
        random_bytes(s, b->qh, sizeof b->qh);
        for (int i = 0; i < QK_K / 16; i++) {
            int mag = 8 + (int)(splitmix64(s) % 64);
            b->scales[i] = (int8_t)((splitmix64(s) & 1) ? -mag : mag);
        }
        b->d = f32_to_f16(random_uniform(s, 0.8f, 1.2f) * 0.02f / (40.0f * 18.5f));
        break;
    }
    case QT_F16: { /* uniform in +-0.0346: std 0.02 */
        f16_t h = f32_to_f16(random_uniform(s, -0.0346f, 0.0346f));
        memcpy(out, &h, sizeof h);
        break;
    }
    default:
        memset(out, 0, quant_traits_of(type)->type_size);
    }
}

/* --------------------------------------------------- streamed tensors */

typedef enum { FILL_BLOCKS, FILL_ONES, FILL_SMALL, FILL_NORM, FILL_WIDE_NORM, FILL_FACTORS } fill_kind;

/* One tensor's generator. Blocks are made in file order; the writer asks for
 * its data in order, so a block split across two requests is kept here. */
typedef struct {
    uint32_t type;
    fill_kind kind;
    uint64_t rng;
    size_t block_bytes;
    uint64_t block_index; /* index of the block in `block`, UINT64_MAX if none */
    uint8_t block[256];
} tensor_fill;

static void make_unit(tensor_fill *t, uint64_t index)
{
    if (t->kind == FILL_BLOCKS) {
        random_block(t->type, &t->rng, t->block);
    } else {
        float v = t->kind == FILL_ONES      ? 1.0f
                  : t->kind == FILL_NORM    ? random_uniform(&t->rng, 0.6f, 1.4f)
                  : t->kind == FILL_WIDE_NORM ? random_uniform(&t->rng, 20.0f, 40.0f)
                  : t->kind == FILL_FACTORS ? random_uniform(&t->rng, 1.0f, 4.0f)
                                            : random_uniform(&t->rng, -0.02f, 0.02f);
        memcpy(t->block, &v, sizeof v);
    }
    t->block_index = index;
}

static int fill_tensor(void *user, void *buf, uint64_t offset, size_t len)
{
    tensor_fill *t = user;
    uint8_t *dst = buf;
    while (len) {
        uint64_t index = offset / t->block_bytes;
        size_t within = (size_t)(offset % t->block_bytes);
        if (index != t->block_index) {
            if (t->block_index != UINT64_MAX && index != t->block_index + 1) return -1; /* out of order */
            if (t->block_index == UINT64_MAX && index != 0) return -1;
            make_unit(t, index);
        }
        size_t n = t->block_bytes - within;
        if (n > len) n = len;
        memcpy(dst, t->block + within, n);
        dst += n;
        offset += n;
        len -= n;
    }
    return 0;
}

/* All tensor generators of one file, kept alive until the file is written. */
typedef struct {
    tensor_fill *fills;
    int n, cap;
    uint64_t seed;
} fill_set;

static int add_tensor(gguf_writer *w, fill_set *set, const char *name, uint32_t type, fill_kind kind, int64_t ne0,
                      int64_t ne1)
{
    if (set->n == set->cap) return -1;
    tensor_fill *t = &set->fills[set->n++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->kind = kind;
    t->rng = set->seed * 1000003u + (uint64_t)set->n;
    t->block_bytes = kind == FILL_BLOCKS ? quant_traits_of(type)->type_size : sizeof(float);
    t->block_index = UINT64_MAX;
    int64_t ne[2] = {ne0, ne1};
    uint32_t n_dims = ne1 > 1 ? 2 : 1;
    size_t nbytes = gguf_tensor_nbytes(type, n_dims, ne);
    if (!nbytes) return -1;
    return gguf_writer_add_tensor_fill(w, name, type, n_dims, ne, nbytes, fill_tensor, t);
}

/* ------------------------------------------------------------ type mix */

static int use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The reference's fallback for rows that are not whole k-quant blocks. */
static uint32_t fit_row(uint32_t type, int64_t ne0)
{
    if (ne0 % quant_traits_of(type)->block_size == 0) return type;
    if (type == QT_Q4_K) return QT_Q5_0;
    if (type == QT_Q6_K) return QT_Q8_0;
    return type;
}

typedef enum { W_OUTPUT, W_EMBD, W_ATTN_V, W_FFN_DOWN, W_OTHER } weight_role;

static uint32_t weight_type(type_mix mix, weight_role role, int layer, int n_layer, int64_t ne0)
{
    if (mix == MIX_F16) return QT_F16;
    uint32_t base = mix == MIX_Q4_0 ? QT_Q4_0 : mix == MIX_Q8_0 ? QT_Q8_0 : QT_Q4_K;
    uint32_t t = base;
    if (role == W_OUTPUT && mix != MIX_Q8_0) t = QT_Q6_K;
    if (mix == MIX_Q4_K_M && (role == W_ATTN_V || role == W_FFN_DOWN) && use_more_bits(layer, n_layer)) t = QT_Q6_K;
    return fit_row(t, ne0);
}

/* ----------------------------------------------------------- vocabulary */

/* GPT-2's byte-to-symbol map: printable bytes stand for themselves, the rest
 * are shifted to U+0100 and up. Writes the UTF-8 of byte b's symbol. */
static int byte_symbol(int b, char *out)
{
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    out[2] = 0;
    return 2;
}

typedef struct {
    char **tokens;
    int32_t *types;
    char **merges;
    int n_tokens, n_merges;
} vocab;

static void vocab_free(vocab *v)
{
    for (int i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
}

static char *join(const char *a, const char *sep, const char *b)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

/* Appends token a+b with the merge "a b". */
static int add_merged(vocab *v, const char *a, const char *b)
{
    char *tok = join(a, "", b), *merge = join(a, " ", b);
    if (!tok || !merge) {
        free(tok);
        free(merge);
        return -1;
    }
    v->types[v->n_tokens] = 1;
    v->tokens[v->n_tokens++] = tok;
    v->merges[v->n_merges++] = merge;
    return 0;
}

static int build_vocab(vocab *v, int n_vocab)
{
    static const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    const int n_special = 3;
    memset(v, 0, sizeof *v);
    if (n_vocab < 256 + n_special) return -1;
    v->tokens = calloc((size_t)n_vocab, sizeof *v->tokens);
    v->types = calloc((size_t)n_vocab, sizeof *v->types);
    v->merges = calloc((size_t)n_vocab, sizeof *v->merges);
    if (!v->tokens || !v->types || !v->merges) return -1;
    /* bytes ordered printable ASCII first, so short text merges well */
    int order[256], n = 0;
    for (int b = 32; b < 127; b++) order[n++] = b;
    for (int b = 0; b < 256; b++)
        if (b < 32 || b >= 127) order[n++] = b;
    char sym[256][4];
    for (int b = 0; b < 256; b++) {
        byte_symbol(b, sym[b]);
        if (!(v->tokens[v->n_tokens] = strdup(sym[b]))) return -1;
        v->types[v->n_tokens++] = 1;
    }
    int limit = n_vocab - n_special;
    /* pairs, growing a square over `order`: (k, j) and (j, k) for j <= k */
    int first_pair = v->n_tokens;
    for (int k = 0; k < 256 && v->n_tokens < limit; k++) {
        for (int j = 0; j <= k && v->n_tokens < limit; j++) {
            if (add_merged(v, sym[order[k]], sym[order[j]])) return -1;
            if (j != k && v->n_tokens < limit && add_merged(v, sym[order[j]], sym[order[k]])) return -1;
        }
    }
    /* triples: pair + printable byte */
    for (int p = first_pair; p < first_pair + 65536 && v->n_tokens < limit; p++)
        for (int c = 0; c < 95 && v->n_tokens < limit; c++)
            if (add_merged(v, v->tokens[p], sym[order[c]])) return -1;
    if (v->n_tokens != limit) return -1;
    for (int i = 0; i < n_special; i++) {
        if (!(v->tokens[v->n_tokens] = strdup(specials[i]))) return -1;
        v->types[v->n_tokens++] = 3; /* control */
    }
    return 0;
}

/* What the command line adds to a shape. */
typedef struct {
    const char *chat_template; /* NULL: ChatML */
    int add_bos;
    int factors_full_head;     /* RoPE factors for every pair of the head, not just the rotated ones */
} gen_options;

static int add_tokenizer(gguf_writer *w, const model_shape *sh, vocab *v, const gen_options *o)
{
    if (build_vocab(v, sh->n_vocab)) return -1;
    int32_t eot = sh->n_vocab - 3, im_end = sh->n_vocab - 1;
    int rc = 0;
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.pre", sh->pre);
    rc |= gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (size_t)v->n_tokens);
    rc |= gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", v->types, (size_t)v->n_tokens);
    rc |= gguf_writer_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (size_t)v->n_merges);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)im_end);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)eot);
    rc |= gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", o->add_bos);
    rc |= gguf_writer_add_str(w, "tokenizer.chat_template", o->chat_template ? o->chat_template : chatml_template);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- model */

static int add_hparams(gguf_writer *w, const model_shape *sh, const char *mix_name, uint32_t file_type)
{
    char key[128], name[128];
    int rc = 0;
    snprintf(name, sizeof name, "%s random %s", sh->name, mix_name);
    rc |= gguf_writer_add_str(w, "general.architecture", sh->arch);
    rc |= gguf_writer_add_str(w, "general.name", name);
    rc |= gguf_writer_add_u32(w, "general.file_type", file_type);
    rc |= gguf_writer_add_u32(w, "general.alignment", 32);
#define ARCH_U32(suffix, v) (snprintf(key, sizeof key, "%s." suffix, sh->arch), gguf_writer_add_u32(w, key, (uint32_t)(v)))
#define ARCH_F32(suffix, v) (snprintf(key, sizeof key, "%s." suffix, sh->arch), gguf_writer_add_f32(w, key, (v)))
    rc |= ARCH_U32("context_length", sh->n_ctx_train);
    rc |= ARCH_U32("embedding_length", sh->n_embd);
    rc |= ARCH_U32("block_count", sh->n_layer);
    rc |= ARCH_U32("feed_forward_length", sh->n_ff);
    rc |= ARCH_U32("attention.head_count", sh->n_head);
    rc |= ARCH_U32("attention.head_count_kv", sh->n_head_kv);
    rc |= ARCH_F32("rope.freq_base", sh->rope_base);
    rc |= ARCH_F32("attention.layer_norm_rms_epsilon", sh->rms_eps);
    if (sh->head_dim) {
        rc |= ARCH_U32("attention.key_length", sh->head_dim);
        rc |= ARCH_U32("attention.value_length", sh->head_dim);
    }
    if (sh->rope_dim) rc |= ARCH_U32("rope.dimension_count", sh->rope_dim);
    if (sh->sliding_window) rc |= ARCH_U32("attention.sliding_window", sh->sliding_window);
    if (sh->longrope_orig_ctx) rc |= ARCH_U32("rope.scaling.original_context_length", sh->longrope_orig_ctx);
    if (sh->rope_attn_factor != 0) rc |= ARCH_F32("rope.scaling.attn_factor", sh->rope_attn_factor);
#undef ARCH_U32
#undef ARCH_F32
    return rc ? -1 : 0;
}

static int head_dim_of(const model_shape *sh) { return sh->head_dim ? sh->head_dim : sh->n_embd / sh->n_head; }

static int add_layer(gguf_writer *w, fill_set *set, const model_shape *sh, type_mix mix, int il)
{
    int64_t head_dim = head_dim_of(sh), q_dim = head_dim * sh->n_head, kv_dim = head_dim * sh->n_head_kv;
    fill_kind norm = sh->random_norms ? FILL_NORM : FILL_ONES;
    const struct {
        const char *name;
        weight_role role;
        int64_t in, out;
        int has_bias, present;
    } mats[] = {
        {"attn_qkv", W_OTHER, sh->n_embd, q_dim + 2 * kv_dim, 0, sh->fused_qkv},
        {"attn_q", W_OTHER, sh->n_embd, q_dim, sh->qkv_bias, !sh->fused_qkv},
        {"attn_k", W_OTHER, sh->n_embd, kv_dim, sh->qkv_bias, !sh->fused_qkv},
        {"attn_v", W_ATTN_V, sh->n_embd, kv_dim, sh->qkv_bias, !sh->fused_qkv},
        {"attn_output", W_OTHER, q_dim, sh->n_embd, 0, 1},
        {"ffn_gate", W_OTHER, sh->n_embd, sh->n_ff, 0, !sh->fused_gate_up},
        {"ffn_up", W_OTHER, sh->n_embd, (int64_t)sh->n_ff * (sh->fused_gate_up ? 2 : 1), 0, 1},
        {"ffn_down", W_FFN_DOWN, sh->n_ff, sh->n_embd, 0, 1},
    };
    char name[96];
    int rc = 0;
#define VECTOR(suffix, kind, n)                                                                            \
    (snprintf(name, sizeof name, "blk.%d.%s.weight", il, suffix), add_tensor(w, set, name, QT_F32, kind, n, 1))
    rc |= VECTOR("attn_norm", norm, sh->n_embd);
    if (sh->qk_norm) {
        rc |= VECTOR("attn_q_norm", norm, head_dim);
        rc |= VECTOR("attn_k_norm", norm, head_dim);
    }
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        if (!mats[i].present) continue;
        if (!strcmp(mats[i].name, "ffn_gate") || (sh->fused_gate_up && !strcmp(mats[i].name, "ffn_up"))) {
            if (sh->post_norms) rc |= VECTOR("post_attention_norm", norm, sh->n_embd);
            rc |= VECTOR("ffn_norm", norm, sh->n_embd);
        }
        uint32_t t = weight_type(mix, mats[i].role, il, sh->n_layer, mats[i].in);
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, mats[i].name);
        rc |= add_tensor(w, set, name, t, FILL_BLOCKS, mats[i].in, mats[i].out);
        if (mats[i].has_bias) {
            snprintf(name, sizeof name, "blk.%d.%s.bias", il, mats[i].name);
            rc |= add_tensor(w, set, name, QT_F32, FILL_SMALL, mats[i].out, 1);
        }
    }
    if (sh->post_norms) rc |= VECTOR("post_ffw_norm", norm, sh->n_embd);
#undef VECTOR
    return rc ? -1 : 0;
}

static int generate(const model_shape *sh, int mix_index, const char *path, uint64_t seed, const gen_options *o,
                    char *err, size_t errlen)
{
    type_mix mix = mixes[mix_index].mix;
    fill_set set = {.cap = 8 + sh->n_layer * 20, .seed = seed};
    vocab v = {0};
    gguf_writer *w = gguf_writer_new();
    set.fills = calloc((size_t)set.cap, sizeof *set.fills);
    int rc = -1;
    if (!w || !set.fills) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (add_hparams(w, sh, mixes[mix_index].name, mixes[mix_index].file_type) || add_tokenizer(w, sh, &v, o)) {
        snprintf(err, errlen, "cannot build the metadata (out of memory?)");
        goto done;
    }
    weight_role embd_role = sh->tied ? W_OUTPUT : W_EMBD;
    int bad = add_tensor(w, &set, "token_embd.weight", weight_type(mix, embd_role, 0, sh->n_layer, sh->n_embd),
                         FILL_BLOCKS, sh->n_embd, sh->n_vocab);
    /* the tiny test shapes' logits spread over ~10 (not ~0.3), so greedy steps are rarely near-ties */
    bad |= add_tensor(w, &set, "output_norm.weight", QT_F32, sh->random_norms ? FILL_WIDE_NORM : FILL_ONES, sh->n_embd,
                      1);
    if (sh->longrope_orig_ctx) {
        int pairs = (o->factors_full_head || !sh->rope_dim ? head_dim_of(sh) : sh->rope_dim) / 2;
        bad |= add_tensor(w, &set, "rope_factors_long.weight", QT_F32, FILL_FACTORS, pairs, 1);
        bad |= add_tensor(w, &set, "rope_factors_short.weight", QT_F32, FILL_FACTORS, pairs, 1);
    }
    if (!sh->tied)
        bad |= add_tensor(w, &set, "output.weight", weight_type(mix, W_OUTPUT, 0, sh->n_layer, sh->n_embd),
                          FILL_BLOCKS, sh->n_embd, sh->n_vocab);
    for (int il = 0; il < sh->n_layer; il++) bad |= add_layer(w, &set, sh, mix, il);
    if (bad) {
        snprintf(err, errlen, "cannot add the tensors (out of memory?)");
        goto done;
    }
    rc = gguf_writer_write(w, path, err, errlen);
done:
    gguf_writer_free(w);
    free(set.fills);
    vocab_free(&v);
    return rc;
}

/* ------------------------------------------------------------------ main */

static const char usage[] =
    "usage: gen_model --shape NAME --type Q4_0|Q8_0|Q4_K_M|F16 --out PATH [--seed S]\n"
    "                 [--chat-template FILE] [--add-bos] [--rope-factors full|rotary]\n"
    "       gen_model --list\n"
    "Writes a random-weight GGUF with the real shapes of NAME (see --list). --chat-template\n"
    "stores FILE as tokenizer.chat_template, --add-bos makes the tokenizer add BOS, and\n"
    "--rope-factors full writes LongRoPE factors for every pair of the head (the reference\n"
    "engine's layout) instead of only the rotated pairs (the converter's).\n";

/* The whole of a small text file, NUL-terminated, or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (text) text[n] = 0;
    return text;
}

int main(int argc, char **argv)
{
    const char *shape_name = NULL, *type_name = NULL, *out = NULL, *template_path = NULL, *factors = "rotary";
    uint64_t seed = 1;
    gen_options o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--list")) {
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                printf("%s %s dim %d layers %d heads %d/%d ffn %d vocab %d\n", shapes[s].name, shapes[s].arch,
                       shapes[s].n_embd, shapes[s].n_layer, shapes[s].n_head, shapes[s].n_head_kv, shapes[s].n_ff,
                       shapes[s].n_vocab);
            return 0;
        }
        if (!strcmp(a, "--add-bos")) {
            o.add_bos = 1;
            continue;
        }
        const char *const valued[] = {"--shape", "--type", "--out", "--seed", "--chat-template", "--rope-factors"};
        const char **dst[] = {&shape_name, &type_name, &out, NULL, &template_path, &factors};
        int k = -1;
        for (int j = 0; j < (int)(sizeof valued / sizeof valued[0]); j++)
            if (!strcmp(a, valued[j])) k = j;
        if (!val || k < 0) {
            fputs(usage, stderr);
            return 2;
        }
        if (dst[k]) *dst[k] = val;
        else seed = strtoull(val, NULL, 10);
        i++;
    }
    const model_shape *sh = NULL;
    int mix_index = -1;
    for (size_t s = 0; shape_name && s < sizeof shapes / sizeof shapes[0]; s++)
        if (!strcmp(shapes[s].name, shape_name)) sh = &shapes[s];
    for (int m = 0; type_name && m < (int)(sizeof mixes / sizeof mixes[0]); m++)
        if (!strcmp(mixes[m].name, type_name)) mix_index = m;
    if (!sh || mix_index < 0 || !out || (strcmp(factors, "full") && strcmp(factors, "rotary"))) {
        fprintf(stderr, "gen_model: needs a known --shape (see --list), --type Q4_0|Q8_0|Q4_K_M|F16 and --out\n");
        return 2;
    }
    o.factors_full_head = !strcmp(factors, "full");
    char *tmpl = NULL;
    if (template_path && !(tmpl = read_text(template_path))) {
        fprintf(stderr, "gen_model: cannot read %s\n", template_path);
        return 1;
    }
    o.chat_template = tmpl;
    char err[512];
    int rc = generate(sh, mix_index, out, seed, &o, err, sizeof err);
    free(tmpl);
    if (rc) {
        fprintf(stderr, "gen_model: %s\n", err);
        return 1;
    }
    return 0;
}
