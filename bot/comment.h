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
#include "findings.h"

/* GitHub rejects comment bodies over 65536 characters; we cap bytes (which
 * are never fewer than characters). */
#define COMMENT_MAX_BYTES 65536

/* The footer's facts about the model run. */
typedef struct {
    const char *model_name;
    int prompt_tokens, generated_tokens;
    double prefill_tokens_per_s, decode_tokens_per_s; /* 0 = unknown: not shown */
    double total_seconds;
    const char *stop_reason; /* "eos", "max_tokens", "time_budget", ...; may be NULL */
    const char *origin;      /* footer's last words; NULL = "generated locally by prbot" */
} comment_stats;

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

/* The body of one inline review comment: severity and title, the body,
 * a ```suggestion block when the finding has one, and a hidden
 * "<!-- prbot:finding FINGERPRINT -->" by which prbot recognises it later.
 * malloc'ed, or NULL when out of memory. */
char *comment_render_inline(const finding *f);

/* The sticky summary comment of a review with findings. Everything but the
 * model's summary and the findings' titles and bodies is prbot's own text:
 * headings, counts, lists, "no problems found". */
typedef struct {
    const char *name;        /* marker name: <!-- prbot:NAME --> */
    const char *heading;     /* NULL = "prbot NAME" */
    const char *state;       /* hidden text placed right after the marker (an HTML comment); may be NULL */
    const char *summary;     /* the model's two sentences, cleaned; NULL = none */
    const char *scope;       /* prbot's line on what this run reviewed; may be NULL */
    const char *notice;      /* prbot's line before the findings (e.g. the output did not parse); may be NULL */
    const finding *findings; /* this run's new findings, ranked */
    size_t n_findings;
    const finding *earlier;  /* findings posted by earlier runs on this PR */
    size_t n_earlier;
    const char *review_url;  /* the review holding this run's inline comments; may be NULL */
    const diff_result *diff; /* the whole PR's files; may be NULL */
    const char *diff_source;
    comment_stats stats;
    size_t max_bytes;        /* 0 = COMMENT_MAX_BYTES */
} comment_summary;

int comment_render_summary(const comment_summary *in, char **out, char *err, size_t errlen);

/* The longest URL comment_link_ok accepts. */
#define COMMENT_LINK_MAX 500

/* 1 when url may go into a comment as a markdown link target: https://,
 * at most COMMENT_LINK_MAX bytes, printable ASCII only, and none of the
 * characters that end or escape a link or open HTML (space ( ) < > " ' `
 * [ ] \). URLs come from GitHub's API answers and from stored state, so
 * every place that writes or keeps a link asks this one function. */
int comment_link_ok(const char *url);

/* Length of the longest prefix of s[0..len) that is at most cap bytes and
 * does not end inside a UTF-8 sequence. */
size_t comment_utf8_prefix(const char *s, size_t len, size_t cap);

#endif
