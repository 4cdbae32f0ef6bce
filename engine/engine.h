/*
 * engine.h - the one public interface of the inference engine.
 *
 * bot/ uses only this header. Two kinds of handle, as curl has a share
 * handle and per-transfer handles:
 *
 *   engine          a loaded model: weights, tokenizer, chat template and the
 *                   thread pool. Read-only once open; shared by its sessions.
 *   engine_session  one conversation's state: KV cache, the tokens it holds,
 *                   the generation under way. Cheap next to the model.
 *
 *   engine *e;          engine_open(&e, "model.gguf", &params, err, sizeof err);
 *   engine_session *s;  engine_session_new(&s, e, 0, err, sizeof err);
 *   engine_chat_format(e, msgs, n, 1, &prompt);         // model's own template
 *   n = engine_tokenize_alloc(e, prompt, strlen(prompt), 1, 1, &ids);
 *   engine_generate(s, ids, n, &sampling, on_token, user, NULL, 0, &stats, err, sizeof err);
 *   engine_session_free(s);
 *   engine_close(e);
 *
 * A session keeps its cache between calls: engine_generate evaluates only
 * the part of a prompt after the longest prefix it shares with the tokens
 * the session already holds, so a chat that continues (or a request that
 * repeats an earlier prompt and adds to it) skips the prefill of what it has
 * in common. How far back a cache can be cut is the model's to say
 * (model_state_rewind): a sliding-window cache may only keep recent
 * positions, and then less (or nothing) is reused.
 *
 * Generation also runs one step at a time (engine_start, engine_step), so a
 * server can interleave several sessions token by token on one thread pool.
 * The sessions of one model share its pool: calls that evaluate (eval,
 * generate, step) on sessions of the same model must not overlap in time; a
 * second one that tries fails with an error instead of corrupting the pool.
 *
 * All functions return 0 (or a count) on success and -1 on error with one
 * line in `err`; nothing here exits or prints.
 */
#ifndef PRBOT_ENGINE_H
#define PRBOT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct engine engine;
typedef struct engine_session engine_session;
struct grammar;       /* engine/grammar.h */
struct grammar_vocab;

typedef struct {
    int n_threads; /* 0 = what this process may use (affinity and cgroup quota) */
    int n_ctx;     /* sessions' default context; 0 = min(model's training context, 4096) */
    int n_batch;   /* prompt tokens per forward chunk; 0 = 512 */
    int vocab_only; /* load only the tokenizer (tokenize works, eval/generate fail) */
} engine_params;

typedef struct {
    const char *arch;      /* "llama", "qwen2" */
    const char *name;      /* general.name or the file's base name */
    const char *file_type; /* dominant weight type, e.g. "Q4_K" */
    int n_vocab, n_ctx, n_ctx_train, n_layer, n_embd; /* n_ctx: sessions' default */
    int n_threads;
    uint64_t file_bytes;
    uint64_t weight_bytes; /* bytes of weights read per decoded token */
    uint64_t kv_bytes_per_position; /* bytes of K and V cache a decoded token reads per earlier position */
    uint64_t layer_macs; /* weight products per prompt token in the layers' matrices, the int8 work of prefill
                          * (without attention, and the output head that runs for the last token) */
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
    /* NULL = free text. Otherwise only tokens that continue this grammar are
     * sampled (masked before repetition penalty, top-k, top-p and min-p),
     * end-of-generation only where it accepts, and generation stops with
     * "grammar" once nothing may follow. It must outlive the generation.
     * See engine/grammar.h. */
    const struct grammar *grammar;
    /* 0 = off. Otherwise prompt-lookup speculation: after each token, up to
     * this many following tokens are drafted from the latest earlier
     * occurrence of the last few tokens in the prompt and the output, all
     * are evaluated in one batch, and the drafted ones the sampler picks
     * itself are kept. The sampler, grammar, random draws and stops are
     * those of plain decoding; the batch path's arithmetic is not
     * bit-identical to the one-token path's on every model, so a near-tie
     * can come out differently (docs/PERFORMANCE.md). */
    int speculate;
} engine_sampling;

typedef struct {
    int prompt_tokens, generated_tokens;
    int cached_tokens; /* of prompt_tokens, how many the session's cache already held (not prefilled) */
    double prefill_s, decode_s;
    double prefill_tokens_per_s, decode_tokens_per_s;
    double grammar_s; /* of decode_s, the time spent masking tokens by the grammar */
    int drafted_tokens, accepted_tokens; /* speculation: tokens drafted, and of those generated as drafted */
    /* "eos", "grammar" (complete), "max_tokens", "time_budget", "context_full",
     * "callback"; under a grammar only the first two mean the output is complete */
    const char *stop_reason;
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

/* ---- the machine (process-wide; engine/machine.c) ------------------------ */

/* Caps the SIMD kernels every engine of this process uses at `isa`:
 * "scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot" (NEON with
 * the dot-product extension) or "neoni8mm" (and the int8 matrix-multiply
 * one) (NULL or "" = the best the CPU has). It never raises the level above what the CPU has, and only
 * counts before the first engine_open or engine_isa. An unknown name is -1
 * and changes nothing. prbot takes it from PRBOT_ISA (bot/main.c). */
int engine_set_isa(const char *isa, char *err, size_t errlen);
/* The kernels in use ("scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot", "neoni8mm"). */
const char *engine_isa(void);
/* Monotonic seconds, for timing. */
double engine_now_s(void);

/* A memory bandwidth probe: `mib` MiB of buffer (far more than the last-level
 * cache) read by n_threads threads (0 = what the process may use) the way
 * decode reads weights, so bandwidth / weight bytes bounds decode tokens/s. */
typedef struct engine_membw engine_membw;
int engine_membw_new(engine_membw **out, int n_threads, int mib, char *err, size_t errlen);
/* One timed pass over the buffer: GB/s (1e9 bytes per second). */
double engine_membw_pass(engine_membw *b);
/* What one empty parallel region on the probe's threads costs, in ns (decode
 * pays it several times per layer). */
double engine_membw_handoff_ns(engine_membw *b);
/* The compute ceiling of prefill: int8 multiply-accumulates per second (1e9)
 * the probe's threads sustain in the kernels' int8 step alone, over about
 * `seconds`; prefill tokens/s can never beat it / engine_info.layer_macs.
 * 0 when the kernels in use have no int8 step (scalar). */
double engine_membw_int8_pass(engine_membw *b, double seconds);
void engine_membw_free(engine_membw *b);

/* ---- the model (shared) ----------------------------------------------- */

int engine_open(engine **out, const char *model_path, const engine_params *params, char *err, size_t errlen);
/* Frees the model; its sessions must be freed first. */
void engine_close(engine *e);
const engine_info *engine_get_info(const engine *e);

/* As tokenizer_encode: writes up to cap ids, returns the total count (may
 * exceed cap; out may be NULL when cap is 0, to count) or -1. */
int engine_tokenize(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t *out, int cap);
/* The same into an array of the right size: *out is malloc'ed (NULL on
 * failure); returns the count or -1. */
int engine_tokenize_alloc(engine *e, const char *text, size_t len, int add_bos, int parse_special, int32_t **out);
/* text with every control token's text (e.g. "<|im_start|>") broken by a
 * zero-width space after its first byte, so that text from someone else
 * stays text when the prompt holding it is tokenized with parse_special.
 * malloc'ed; NULL when out of memory. */
char *engine_defuse_control_tokens(engine *e, const char *text);
/* Bytes of the well-formed UTF-8 character at s (len > 0 bytes there):
 * 1..4, or 0 for an invalid, overlong, surrogate or cut-off sequence. The
 * tokenizer's rule, shared so that the bot cleans text by the same one. */
size_t engine_utf8_len(const char *s, size_t len);
/* Raw bytes of one token (see tokenizer_piece); returns length. */
int engine_token_piece(engine *e, int32_t id, char *buf, int cap);
/* 1 when id ends a generation (end of turn, end of text). */
int engine_token_is_eog(engine *e, int32_t id);
/* The vocabulary as engine/grammar.h wants it (built on first use, owned by
 * the engine): end-of-generation tokens end, normal and byte tokens are
 * text, every other special token is never allowed. */
int engine_grammar_vocab(engine *e, const struct grammar_vocab **out, char *err, size_t errlen);
/* Applies the model's chat template (ChatML when it has none it recognises).
 * *out is malloc'ed and NUL-terminated. */
int engine_chat_format(engine *e, const engine_chat_msg *msgs, int n_msgs, int add_assistant, char **out,
                       char *err, size_t errlen);

/* ---- sessions ------------------------------------------------------------ */

/* A session of model e with n_ctx positions of KV cache (0 = info.n_ctx).
 * Fails on a vocabulary-only engine. */
int engine_session_new(engine_session **out, engine *e, int n_ctx, char *err, size_t errlen);
void engine_session_free(engine_session *s);
engine *engine_session_model(const engine_session *s);
int engine_session_n_ctx(const engine_session *s);
/* Tokens the cache holds (the evaluated positions). */
int engine_session_n_past(const engine_session *s);
/* How many of tokens[0..n) engine_start would find in the cache already (at
 * most n - 1: the last prompt token is evaluated again for its logits), for
 * a caller choosing among several sessions. Cheap: compares ids only. */
int engine_session_common_prefix(const engine_session *s, const int32_t *tokens, int n);
void engine_set_progress(engine_session *s, engine_progress_cb cb, void *user);

/* Clears the KV cache. */
void engine_reset(engine_session *s);
/* Evaluates tokens[0..n) at positions [n_past, n_past+n) in one batch, appending
 * to the KV cache. If logits != NULL it receives n rows of n_vocab floats (all
 * positions); otherwise only the last row is kept internally for sampling. */
int engine_eval(engine_session *s, const int32_t *tokens, int n, float *logits, char *err, size_t errlen);
/* Logits of the last evaluated position (n_vocab floats), valid until the next eval. */
const float *engine_last_logits(const engine_session *s);

/* Prefills the prompt (reusing the longest prefix the cache already holds),
 * then samples up to max_tokens, stopping at an end-of-generation token, the
 * time budget, a full context, the callback, or where sp->grammar is
 * complete. out_tokens (may be NULL) receives up to out_cap generated ids.
 * A grammar that no token can continue is an error (-1, err says where), as
 * is one that outgrows its limits. */
int engine_generate(engine_session *s, const int32_t *prompt, int n_prompt, const engine_sampling *sp,
                    engine_token_cb cb, void *user, int32_t *out_tokens, int out_cap, engine_stats *stats, char *err,
                    size_t errlen);

/* The same generation one step at a time. engine_start checks the prompt,
 * keeps what the cache shares with it and sets the sampler up; each
 * engine_step then evaluates one prefill chunk or produces one token
 * (calling cb as engine_generate does). engine_step returns 1 while there is
 * more to do, 0 once finished (the stats are final; the callback has had the
 * UTF-8 tail), -1 on error. A caller may stop stepping at any time (a client
 * that went away): the next engine_start starts over, keeping the cache. */
int engine_start(engine_session *s, const int32_t *prompt, int n_prompt, const engine_sampling *sp, char *err,
                 size_t errlen);
int engine_step(engine_session *s, engine_token_cb cb, void *user, char *err, size_t errlen);
/* The current (or last) generation's figures so far. */
void engine_session_stats(const engine_session *s, engine_stats *stats);

#endif
