/*
 * comment.h - the markdown body of prbot's PR comment.
 *
 * Layout: the hidden marker `<!-- prbot:NAME -->` (how the next run finds the
 * comment to update), a heading, the model's text sanitised, a collapsed
 * <details> block listing the files reviewed and skipped with reasons, and a
 * one-line footer with model, token counts, speeds and seconds. The whole
 * body stays within GitHub's 65536-character limit.
 */
#ifndef PRBOT_COMMENT_H
#define PRBOT_COMMENT_H

#include <stddef.h>

#include "diff.h"

/* GitHub rejects comment bodies over 65536 characters; we cap bytes (which
 * are never fewer than characters). */
#define COMMENT_MAX_BYTES 65536

typedef struct {
    const char *name;       /* prompt name: the marker is <!-- prbot:NAME --> */
    const char *heading;    /* e.g. "prbot review"; NULL = "prbot NAME" */
    const char *model_text; /* generated text, raw */
    const diff_result *diff; /* files reviewed/skipped; may be NULL */
    const char *diff_source; /* optional remark, e.g. "from the PR files API (shallow checkout)" */
    const char *model_name;
    int prompt_tokens, generated_tokens;
    double prefill_tokens_per_s, decode_tokens_per_s;
    double total_seconds;
    const char *stop_reason; /* "eos", "max_tokens", "time_budget", ...; may be NULL */
    const char *origin;      /* footer's last words; NULL = "generated locally by prbot" */
    size_t max_bytes;        /* 0 = COMMENT_MAX_BYTES */
} comment_input;

/* Makes model text safe to post: @mentions do not ping (a zero-width space
 * after the @), HTML outside code is escaped (&lt;), code spans and fenced
 * code blocks are kept as they are, an unclosed fence is closed, anything
 * that looks like our marker is broken, control characters dropped and
 * invalid UTF-8 replaced by U+FFFD. Returns a malloc'ed string or NULL. */
char *comment_sanitize(const char *text, size_t len);

/* Writes "<!-- prbot:NAME -->" to buf. */
void comment_marker(const char *name, char *buf, size_t cap);

/* Renders the body (malloc'ed, NUL-terminated) into *out. Returns 0 or -1. */
int comment_render(const comment_input *in, char **out, char *err, size_t errlen);

/* Length of the longest prefix of s[0..len) that is at most cap bytes and
 * does not end inside a UTF-8 sequence. */
size_t comment_utf8_prefix(const char *s, size_t len, size_t cap);

#endif
