/*
 * engine.c - the public engine API (engine.h) over the GGUF file, model,
 * tokenizer, chat templates, sampler and thread pool.
 *
 * It owns the lifetime of those pieces and the generation loop: prefill the
 * prompt in batches, then sample one token at a time, streaming complete
 * UTF-8 text to the caller and stopping on end-of-generation, the token
 * limit, the time budget, a full context, or the caller's say-so.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "chat.h"
#include "gguf.h"
#include "kernels/kernels.h"
#include "model.h"
#include "quant.h"
#include "sampler.h"
#include "threads.h"
#include "tokenizer.h"

#define DEFAULT_N_CTX_CAP 4096
#define DEFAULT_N_BATCH 512

struct engine {
    gguf_file *file;
    tokenizer *tok;
    model model;
    int model_loaded;
    model_state *state;
    thread_pool *pool;
    engine_info info;
    char name[128];
    char file_type[16];
    int n_batch;
    engine_progress_cb progress;
    void *progress_user;
};

void engine_set_progress(engine *e, engine_progress_cb cb, void *user)
{
    e->progress = cb;
    e->progress_user = user;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void engine_sampling_defaults(engine_sampling *s)
{
    memset(s, 0, sizeof *s);
    s->temperature = 0.8f;
    s->top_k = 40;
    s->top_p = 0.95f;
    s->min_p = 0.05f;
    s->repeat_penalty = 1.0f;
    s->repeat_last_n = 64;
    s->seed = 0;
    s->max_tokens = 256;
}

/* Name of the weight type that holds most bytes, e.g. "Q4_K". */
static void dominant_type(const gguf_file *f, char *out, size_t cap)
{
    uint64_t bytes[QT_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].type < QT_COUNT) bytes[f->tensors[i].type] += f->tensors[i].nbytes;
    int best = 0;
    for (int t = 1; t < QT_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    const quant_traits *tr = quant_traits_of((uint32_t)best);
    snprintf(out, cap, "%s", tr && tr->name ? tr->name : "?");
}

static void fill_name(engine *e, const char *path)
{
    gguf_str name;
    if (gguf_get_str(e->file, "general.name", &name) == 0 && name.len > 0) {
        snprintf(e->name, sizeof e->name, "%.*s", (int)(name.len < 127 ? name.len : 127), name.ptr);
        return;
    }
    const char *slash = strrchr(path, '/');
    snprintf(e->name, sizeof e->name, "%s", slash ? slash + 1 : path);
}

static int choose_n_ctx(const engine_params *p, int n_ctx_train)
{
    if (p && p->n_ctx > 0) return p->n_ctx;
    return n_ctx_train < DEFAULT_N_CTX_CAP ? n_ctx_train : DEFAULT_N_CTX_CAP;
}

static int open_model(engine *e, const engine_params *params, char *err, size_t errlen)
{
    if (model_load(&e->model, e->file, err, errlen)) return -1;
    e->model_loaded = 1;
    if (e->model.n_vocab != tokenizer_n_vocab(e->tok)) {
        snprintf(err, errlen, "%s: the model has %d token embeddings but the vocabulary has %d tokens",
                 e->file->path, e->model.n_vocab, tokenizer_n_vocab(e->tok));
        return -1;
    }
    int n_threads = params && params->n_threads > 0 ? params->n_threads : threads_available();
    if (!(e->pool = threads_new(n_threads))) {
        snprintf(err, errlen, "cannot start %d threads", n_threads);
        return -1;
    }
    if (model_pack_weights(&e->model, e->pool, err, errlen)) return -1;
    int n_ctx = choose_n_ctx(params, e->model.n_ctx_train);
    int n_batch = params && params->n_batch > 0 ? params->n_batch : DEFAULT_N_BATCH;
    if (n_batch > n_ctx) n_batch = n_ctx;
    e->n_batch = n_batch;
    if (model_state_new(&e->state, &e->model, n_ctx, n_batch, e->pool, err, errlen)) return -1;
    e->info.n_threads = threads_count(e->pool);
    e->info.n_ctx = n_ctx;
    e->info.n_ctx_train = e->model.n_ctx_train;
    e->info.n_layer = e->model.n_layer;
    e->info.n_embd = e->model.n_embd;
    e->info.weight_bytes = e->model.weight_bytes;
    e->info.kv_bytes_per_position =
        (uint64_t)e->model.n_layer * e->model.n_head_kv * e->model.head_dim * 2 * sizeof(f16_t); /* K and V */
    e->info.arch = e->model.arch->name;
    return 0;
}

int engine_open(engine **out, const char *model_path, const engine_params *params, char *err, size_t errlen)
{
    *out = NULL;
    kernels_init();
    /* Our pool already splits every product across the threads we may use;
     * OpenBLAS spawning its own on top would oversubscribe the runner. */
    openblas_set_num_threads(1);
    engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (gguf_open(&e->file, model_path, err, errlen) || tokenizer_load(&e->tok, e->file, err, errlen)) goto fail;
    fill_name(e, model_path);
    dominant_type(e->file, e->file_type, sizeof e->file_type);
    e->info.name = e->name;
    e->info.file_type = e->file_type;
    e->info.file_bytes = e->file->size;
    e->info.n_vocab = tokenizer_n_vocab(e->tok);
    e->info.bos = tokenizer_bos(e->tok);
    e->info.eos = tokenizer_eos(e->tok);
    e->info.add_bos = tokenizer_add_bos(e->tok);
    e->info.has_chat_template = gguf_kv_find(e->file, "tokenizer.chat_template") != NULL;
    e->info.arch = "";
    if (!(params && params->vocab_only) && open_model(e, params, err, errlen)) goto fail;
    *out = e;
    return 0;
fail:
    engine_close(e);
    return -1;
}

void engine_close(engine *e)
{
    if (!e) return;
    model_state_free(e->state);
    if (e->model_loaded) model_free(&e->model);
    threads_free(e->pool);
    tokenizer_free(e->tok);
    gguf_close(e->file);
    free(e);
}

const engine_info *engine_get_info(const engine *e) { return &e->info; }

int engine_tokenize(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t *out, int cap)
{
    return tokenizer_encode(e->tok, text, len, add_bos, parse_special, out, cap);
}

int engine_token_piece(engine *e, int32_t id, char *buf, int cap)
{
    return tokenizer_piece(e->tok, id, 0, buf, cap);
}

int engine_chat_format(engine *e, const engine_chat_msg *msgs, int n_msgs, int add_assistant, char **out, char *err,
                       size_t errlen)
{
    gguf_str tmpl = {0};
    int has = gguf_get_str(e->file, "tokenizer.chat_template", &tmpl) == 0;
    const char *text = has ? tmpl.ptr : NULL;
    size_t len = has ? (size_t)tmpl.len : 0;
    char bos[64] = "";
    int32_t bos_id = tokenizer_bos(e->tok);
    if (bos_id >= 0) {
        int n = tokenizer_piece(e->tok, bos_id, 1, bos, sizeof bos - 1);
        bos[n >= 0 && n < (int)sizeof bos ? n : 0] = 0;
    }
    if (chat_template_render(text, len, msgs, n_msgs, add_assistant, bos, out)) {
        snprintf(err, errlen, "cannot format the chat with the %s template",
                 chat_template_name(chat_template_detect(text, len)));
        return -1;
    }
    return 0;
}

static int require_model(engine *e, char *err, size_t errlen)
{
    if (e->state) return 0;
    snprintf(err, errlen, "%s: opened vocabulary-only, cannot evaluate", e->file->path);
    return -1;
}

void engine_reset(engine *e)
{
    if (e->state) model_state_reset(e->state);
}

int engine_eval(engine *e, const int32_t *tokens, int n, float *logits, char *err, size_t errlen)
{
    if (require_model(e, err, errlen)) return -1;
    return model_forward(e->state, tokens, n, logits, err, errlen);
}

const float *engine_last_logits(const engine *e) { return e->state ? model_state_logits(e->state) : NULL; }

/* Streams one token's text; returns the callback's verdict (non-zero = stop). */
static int emit_token(engine *e, tokenizer_stream *stream, int32_t id, engine_token_cb cb, void *user)
{
    char text[256];
    tokenizer_stream_feed(e->tok, stream, id, text, sizeof text);
    return cb ? cb(id, text, user) : 0;
}

static void emit_tail(tokenizer_stream *stream, engine_token_cb cb, void *user)
{
    char text[64];
    if (tokenizer_stream_flush(stream, text, sizeof text) > 0 && cb) cb(-1, text, user);
}

int engine_generate(engine *e, const int32_t *prompt, int n_prompt, const engine_sampling *s, engine_token_cb cb,
                    void *user, int32_t *out_tokens, int out_cap, engine_stats *stats, char *err, size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    if (require_model(e, err, errlen)) return -1;
    int n_ctx = model_state_n_ctx(e->state);
    if (n_prompt >= n_ctx) {
        snprintf(err, errlen, "prompt of %d tokens does not fit the context of %d tokens", n_prompt, n_ctx);
        return -1;
    }
    sampler *smp = sampler_new(s, e->model.n_vocab);
    if (!smp) {
        snprintf(err, errlen, "out of memory creating the sampler");
        return -1;
    }
    engine_reset(e);
    double t0 = now_s();
    for (int done = 0; done < n_prompt; done += e->n_batch) {
        int chunk = n_prompt - done < e->n_batch ? n_prompt - done : e->n_batch;
        if (engine_eval(e, prompt + done, chunk, NULL, err, errlen)) {
            sampler_free(smp);
            return -1;
        }
        if (e->progress) e->progress(done + chunk, n_prompt, now_s() - t0, e->progress_user);
    }
    double t1 = now_s();
    for (int i = 0; i < n_prompt; i++) sampler_accept(smp, prompt[i]);

    tokenizer_stream stream;
    tokenizer_stream_init(&stream);
    int n_gen = 0, rc = 0;
    stats->stop_reason = "max_tokens";
    while (n_gen < s->max_tokens) {
        int32_t id = sampler_sample(smp, model_state_logits(e->state));
        if (tokenizer_is_eog(e->tok, id)) {
            stats->stop_reason = "eos";
            break;
        }
        sampler_accept(smp, id);
        if (out_tokens && n_gen < out_cap) out_tokens[n_gen] = id;
        n_gen++;
        if (emit_token(e, &stream, id, cb, user)) {
            stats->stop_reason = "callback";
            break;
        }
        if (n_gen >= s->max_tokens) break;
        if (s->time_budget_s > 0 && now_s() - t0 >= s->time_budget_s) {
            stats->stop_reason = "time_budget";
            break;
        }
        if (model_state_pos(e->state) >= n_ctx) {
            stats->stop_reason = "context_full";
            break;
        }
        if (engine_eval(e, &id, 1, NULL, err, errlen)) {
            rc = -1;
            break;
        }
    }
    emit_tail(&stream, cb, user);
    double t2 = now_s();
    sampler_free(smp);
    stats->prompt_tokens = n_prompt;
    stats->generated_tokens = n_gen;
    stats->prefill_s = t1 - t0;
    stats->decode_s = t2 - t1;
    stats->prefill_tokens_per_s = stats->prefill_s > 0 ? n_prompt / stats->prefill_s : 0;
    stats->decode_tokens_per_s = stats->decode_s > 0 && n_gen > 1 ? (n_gen - 1) / stats->decode_s : 0;
    return rc;
}
