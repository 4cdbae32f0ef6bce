/*
 * prompt.h - prompt templates and fitting a diff into the model's budget.
 *
 * A template is plain text with {{placeholders}}; an optional "[system]"
 * line starts the system message and "[user]" the user message (without
 * them the whole file is the user message). Built-in templates (review,
 * summary, joke) are embedded in the binary from prompts/NAME.txt; --prompt
 * FILE reads a user's own, and $PRBOT_PROMPTS_DIR overrides the built-ins.
 *
 * Placeholders: {{repo}} {{title}} {{author}} {{body}} {{base}} {{head}}
 * {{pr}} (whatever the caller passes as vars), plus {{files}} (the files
 * shown, one per line) and {{diff}} (their hunks) filled by prompt_build.
 *
 * A "[findings]" line (before "[system]") marks a template whose answer is
 * the findings JSON of bot/findings.h: prbot then constrains the output to
 * it, shows every diff line with its new-file number so the model can cite
 * lines, and posts the findings as a review instead of the raw text.
 */
#ifndef PRBOT_PROMPT_H
#define PRBOT_PROMPT_H

#include <stddef.h>

#include "diff.h"

typedef struct {
    char *name;   /* "review", or a file's base name without ".txt" */
    char *system; /* may be NULL */
    char *user;
    int findings; /* a "[findings]" line: the model answers with the findings JSON (findings.h) */
} prompt_template;

typedef struct {
    const char *key; /* without braces: "title" */
    const char *value;
} prompt_var;

/* Built-in template text by name, or NULL. */
const char *prompt_builtin(const char *name);
/* Comma-separated names of the built-in templates, for messages. */
const char *prompt_builtin_names(void);

/* name_or_file: a built-in name ("review"), or a path (contains '/' or ends
 * in ".txt"). Returns 0 or -1. */
int prompt_template_load(const char *name_or_file, prompt_template *t, char *err, size_t errlen);
/* Splits template text into system/user parts. Returns 0 or -1 (no memory). */
int prompt_template_parse(const char *name, const char *text, prompt_template *t);
void prompt_template_free(prompt_template *t);

/* Replaces every {{key}} found in vars; unknown placeholders are left as
 * they are. Returns a malloc'ed string or NULL. */
char *prompt_substitute(const char *text, const prompt_var *vars, size_t n_vars);

/* Token count of text (or -1), e.g. engine_tokenize without BOS. */
typedef int (*prompt_count_fn)(void *user, const char *text, size_t len);
/* The complete model input for a system + user message (the model's chat
 * template applied); malloc'ed, or NULL on error. */
typedef char *(*prompt_format_fn)(void *user, const char *system, const char *user_msg);

typedef struct {
    int n_ctx;      /* model context, tokens */
    int max_tokens; /* tokens to generate; clamped to n_ctx/2 */
    int margin;     /* safety tokens; 0 = 16 */
    double time_budget_s;        /* 0 = no time limit */
    double prefill_tokens_per_s; /* estimates for the time budget */
    double decode_tokens_per_s;
    prompt_count_fn count;
    prompt_format_fn format; /* NULL: system + "\n\n" + user */
    void *user;
    int numbered; /* {{diff}} shows new-file line numbers (linemap_render) */
} prompt_budget;

typedef struct {
    char *system, *user_msg; /* the filled-in messages (system may be NULL) */
    char *formatted;         /* format(system, user_msg): what to tokenize */
    int prompt_tokens;       /* count(formatted) */
    int token_budget;        /* tokens the prompt was allowed */
    int max_tokens;          /* generation budget after clamping */
    int n_shown, n_truncated, n_dropped;
    const char *limit;       /* "token budget" or "time budget": what bounded the prompt */
} prompt_result;

/* Fills the template with vars and as much of the diff as fits, most
 * relevant files first (source, then tests, then docs/config; smaller
 * changes first). Files left out get skip_reason "over token budget" (or
 * "over time budget"); a file cut short gets a note. Returns 0 or -1. */
int prompt_build(const prompt_template *t, const prompt_var *vars, size_t n_vars, diff_result *diff,
                 const prompt_budget *b, prompt_result *out, char *err, size_t errlen);
void prompt_result_free(prompt_result *r);

/* 0 source, 1 tests, 2 docs, 3 config/build data: the order files are shown in. */
int prompt_file_rank(const char *path);

/* Conservative speed estimates from the bytes of weights read per token. */
void prompt_estimate_speed(unsigned long long weight_bytes, int n_threads, double *prefill_tps, double *decode_tps);

#endif
