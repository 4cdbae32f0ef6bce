/*
 * engine.h - the one public interface of the inference engine.
 *
 * bot/ uses only this header. An engine is a loaded model plus its KV cache,
 * thread pool and tokenizer. Typical use:
 *
 *   engine *e; engine_open(&e, "model.gguf", &params, err, sizeof err);
 *   engine_chat_format(e, msgs, n, 1, &prompt);         // model's own template
 *   n = engine_tokenize(e, prompt, strlen(prompt), 1, 1, ids, cap);
 *   engine_generate(e, ids, n, &sampling, on_token, user, &stats, err, sizeof err);
 *   engine_close(e);
 *
 * All functions return 0 (or a count) on success and -1 on error with one
 * line in `err`; nothing here exits or prints.
 */
#ifndef PRBOT_ENGINE_H
#define PRBOT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct engine engine;

typedef struct {
    int n_threads; /* 0 = what this process may use (affinity and cgroup quota) */
    int n_ctx;     /* 0 = min(model's training context, 4096) */
    int n_batch;   /* prompt tokens per forward chunk; 0 = 512 */
    int vocab_only; /* load only the tokenizer (tokenize works, eval/generate fail) */
} engine_params;

typedef struct {
    const char *arch;      /* "llama", "qwen2" */
    const char *name;      /* general.name or the file's base name */
    const char *file_type; /* dominant weight type, e.g. "Q4_K" */
    int n_vocab, n_ctx, n_ctx_train, n_layer, n_embd;
    int n_threads;
    uint64_t file_bytes;
    uint64_t weight_bytes; /* bytes of weights read per decoded token */
    uint64_t kv_bytes_per_position; /* bytes of K and V cache a decoded token reads per earlier position */
    int32_t bos, eos;
    int add_bos;
    int has_chat_template;
} engine_info;

typedef struct {
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    float min_p;       /* 0 = off */
    float repeat_penalty; /* 1 = off */
    int repeat_last_n;
    uint64_t seed;
    int max_tokens;
    double time_budget_s; /* 0 = none: stop decoding (gracefully) after this many seconds */
} engine_sampling;

typedef struct {
    int prompt_tokens, generated_tokens;
    double prefill_s, decode_s;
    double prefill_tokens_per_s, decode_tokens_per_s;
    const char *stop_reason; /* "eos", "max_tokens", "time_budget", "context_full", "callback" */
} engine_stats;

typedef struct {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} engine_chat_msg;

/* Called for each generated token with its complete-UTF-8 text (may be ""),
 * return non-zero to stop. At the end it is called once more with id -1 if
 * held-back bytes remain (an incomplete UTF-8 tail, replaced by U+FFFD). */
typedef int (*engine_token_cb)(int32_t id, const char *text, void *user);

/* Called after each prefill chunk with the tokens done so far, the total and
 * the seconds since the prefill began (for progress logs). */
typedef void (*engine_progress_cb)(int done, int total, double seconds, void *user);

void engine_sampling_defaults(engine_sampling *s);
void engine_set_progress(engine *e, engine_progress_cb cb, void *user);

int engine_open(engine **out, const char *model_path, const engine_params *params, char *err, size_t errlen);
void engine_close(engine *e);
const engine_info *engine_get_info(const engine *e);

/* As tokenizer_encode: returns the total count (may exceed cap) or -1. */
int engine_tokenize(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t *out, int cap);
/* Raw bytes of one token (see tokenizer_piece); returns length. */
int engine_token_piece(engine *e, int32_t id, char *buf, int cap);
/* Applies the model's chat template (ChatML when it has none it recognises).
 * *out is malloc'ed and NUL-terminated. */
int engine_chat_format(engine *e, const engine_chat_msg *msgs, int n_msgs, int add_assistant, char **out,
                       char *err, size_t errlen);

/* Clears the KV cache. */
void engine_reset(engine *e);
/* Evaluates tokens[0..n) at positions [n_past, n_past+n) in one batch, appending
 * to the KV cache. If logits != NULL it receives n rows of n_vocab floats (all
 * positions); otherwise only the last row is kept internally for sampling. */
int engine_eval(engine *e, const int32_t *tokens, int n, float *logits, char *err, size_t errlen);
/* Logits of the last evaluated position (n_vocab floats), valid until the next eval. */
const float *engine_last_logits(const engine *e);

/* Resets the cache, prefills the prompt, then samples up to max_tokens,
 * stopping at an end-of-generation token, the time budget, or the callback. */
int engine_generate(engine *e, const int32_t *prompt, int n_prompt, const engine_sampling *s, engine_token_cb cb,
                    void *user, int32_t *out_tokens, int out_cap, engine_stats *stats, char *err, size_t errlen);

#endif
