/*
 * comment.c - render and sanitise prbot's PR comment.
 *
 * The model's text is untrusted: a PR author can steer a model into writing
 * "@everyone", <img onerror=...>, "</details>" or our own hidden marker. So
 * sanitising is a small line-based markdown scanner that knows just enough:
 * fenced code blocks (``` or ~~~, CommonMark's opening/closing rules) and
 * inline code spans are copied verbatim because GitHub shows them literally;
 * everywhere else '<' becomes "&lt;" (no raw HTML at all, which also means
 * nothing can close our <details>) and an @mention gets a zero-width space
 * after the '@' so it renders the same but pings no one. "<!--" is broken up
 * everywhere, code included, so no text can carry a prbot marker.
 *
 * Size: GitHub refuses bodies over 65536 characters. The marker, heading,
 * file list and footer are rendered first (the file list shortened if it is
 * huge); the model text gets what is left, cut at a line end where possible,
 * never inside a UTF-8 sequence, with an open code fence closed and a note.
 */
#include "comment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "textbuf.h"

#define ZWSP "\xE2\x80\x8B" /* U+200B ZERO WIDTH SPACE */
#define REPLACEMENT_CHAR "\xEF\xBF\xBD"

void comment_marker(const char *name, char *buf, size_t cap) { snprintf(buf, cap, "<!-- prbot:%s -->", name); }

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80) return 1;
    size_t len;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t comment_utf8_prefix(const char *s, size_t len, size_t cap)
{
    if (len <= cap) return len;
    size_t n = cap;
    /* step back over continuation bytes to the start of the cut character */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* Valid UTF-8 without control characters (tabs and newlines stay; CR goes). */
static void append_clean_utf8(textbuf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_sequence_len(s + i, len - i);
        if (n == 0) {
            textbuf_puts(b, REPLACEMENT_CHAR);
            i++;
            continue;
        }
        if (n == 1 && ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || s[i] == 0x7F)) {
            i++;
            continue;
        }
        textbuf_add(b, text + i, n);
        i += n;
    }
}

/* ---- markdown scanning --------------------------------------------------- */

typedef struct {
    char ch;    /* '`' or '~'; 0 = not in a fence */
    size_t len; /* length of the opening run */
} fence_state;

/* If line (without its newline) is a fence line, returns the run's char and
 * sets *run and *rest (what follows the run); else 0. */
static char fence_run(const char *line, size_t len, size_t *run, const char **rest)
{
    size_t i = 0;
    while (i < len && i < 3 && line[i] == ' ') i++;
    if (i >= len || (line[i] != '`' && line[i] != '~')) return 0;
    char c = line[i];
    size_t j = i;
    while (j < len && line[j] == c) j++;
    if (j - i < 3) return 0;
    *run = j - i;
    *rest = line + j;
    return c;
}

/* Updates the fence state for one line; returns 1 if the line is a fence line. */
static int fence_update(fence_state *f, const char *line, size_t len)
{
    size_t run;
    const char *rest;
    char c = fence_run(line, len, &run, &rest);
    if (!c) return 0;
    size_t rest_len = len - (size_t)(rest - line);
    if (!f->ch) {
        if (c == '`' && memchr(rest, '`', rest_len)) return 0; /* backticks in the info string: not a fence */
        f->ch = c;
        f->len = run;
        return 1;
    }
    if (c != f->ch || run < f->len) return 0;
    for (size_t k = 0; k < rest_len; k++)
        if (rest[k] != ' ' && rest[k] != '\t') return 0;
    f->ch = 0;
    return 1;
}

/* Copies code verbatim except that "<!--" is broken up. */
static void append_code(textbuf *b, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i + 4 <= n; i++) {
        if (!memcmp(s + i, "<!--", 4)) {
            textbuf_add(b, s + start, i + 2 - start);
            textbuf_puts(b, ZWSP);
            start = i + 2;
        }
    }
    textbuf_add(b, s + start, n - start);
}

static int is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static int is_login_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Length of the backtick run at s[i..n). */
static size_t backtick_run(const char *s, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && s[j] == '`') j++;
    return j - i;
}

/* Where the code span opened by a run of `run` backticks at i closes (index
 * after the closing run), or 0 if it does not close on this line. */
static size_t code_span_end(const char *s, size_t i, size_t n, size_t run)
{
    for (size_t j = i + run; j < n;) {
        if (s[j] != '`') {
            j++;
            continue;
        }
        size_t r = backtick_run(s, j, n);
        if (r == run) return j + r;
        j += r;
    }
    return 0;
}

/* One line of prose: code spans verbatim, '<' escaped, mentions defused. */
static void append_prose_line(textbuf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '`') {
            size_t run = backtick_run(s, i, n);
            size_t end = code_span_end(s, i, n, run);
            if (end) {
                append_code(b, s + i, end - i);
                i = end;
            } else {
                textbuf_add(b, s + i, run);
                i += run;
            }
            continue;
        }
        if (c == '<') {
            textbuf_puts(b, "&lt;");
        } else if (c == '@' && (i == 0 || !is_word_char((unsigned char)s[i - 1])) && i + 1 < n &&
                   is_login_char((unsigned char)s[i + 1])) {
            textbuf_puts(b, "@" ZWSP);
        } else {
            textbuf_add(b, &c, 1);
        }
        i++;
    }
}

char *comment_sanitize(const char *text, size_t len)
{
    textbuf clean = {0}, out = {0};
    append_clean_utf8(&clean, text, len);
    if (clean.failed) {
        textbuf_free(&clean);
        return NULL;
    }
    fence_state fence = {0};
    const char *s = clean.data ? clean.data : "";
    size_t n = clean.len;
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t line_len = nl ? (size_t)(nl - (s + pos)) : n - pos;
        int was_in_fence = fence.ch != 0;
        if (fence_update(&fence, s + pos, line_len) || was_in_fence)
            append_code(&out, s + pos, line_len);
        else
            append_prose_line(&out, s + pos, line_len);
        if (nl) textbuf_add(&out, "\n", 1);
        pos += line_len + (nl ? 1 : 0);
    }
    if (fence.ch) {
        if (out.len && out.data[out.len - 1] != '\n') textbuf_add(&out, "\n", 1);
        for (size_t k = 0; k < fence.len; k++) textbuf_add(&out, &fence.ch, 1);
        textbuf_add(&out, "\n", 1);
    }
    textbuf_free(&clean);
    return textbuf_take(&out);
}

/* The fence left open at the end of s[0..n), if any. */
static fence_state fence_at_end(const char *s, size_t n)
{
    fence_state fence = {0};
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t line_len = nl ? (size_t)(nl - (s + pos)) : n - pos;
        fence_update(&fence, s + pos, line_len);
        pos += line_len + (nl ? 1 : 0);
    }
    return fence;
}

/* ---- rendering ---------------------------------------------------------- */

/* A path as an inline code span that renders it literally. */
static void append_path(textbuf *b, const char *path)
{
    int has_tick = strchr(path, '`') != NULL;
    textbuf_puts(b, has_tick ? "`` " : "`");
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        textbuf_add(b, c < 0x20 || c == 0x7F ? "?" : p, 1);
    }
    textbuf_puts(b, has_tick ? " ``" : "`");
}

static void append_file_entry(textbuf *b, const diff_file *f, int skipped)
{
    textbuf_puts(b, "- ");
    append_path(b, f->path);
    if (f->old_path) {
        textbuf_puts(b, " (from ");
        append_path(b, f->old_path);
        textbuf_puts(b, ")");
    }
    textbuf_printf(b, " %s, +%d −%d", diff_status_name(f->status), f->additions, f->deletions);
    if (skipped) {
        textbuf_puts(b, ": ");
        append_prose_line(b, f->skip_reason, strlen(f->skip_reason)); /* may quote a user's glob */
    }
    if (f->note) {
        textbuf_puts(b, " (");
        append_prose_line(b, f->note, strlen(f->note));
        textbuf_puts(b, ")");
    }
    textbuf_puts(b, "\n");
}

/* The <details> file list, at most `limit` entries per group. */
static void append_file_list(textbuf *b, const comment_input *in, size_t limit)
{
    const diff_result *d = in->diff;
    size_t n_reviewed = 0, n_skipped = 0;
    for (size_t i = 0; i < d->n_files; i++) {
        if (d->files[i].skip_reason)
            n_skipped++;
        else
            n_reviewed++;
    }
    textbuf_printf(b, "<details><summary>Files: %zu reviewed, %zu skipped</summary>\n\n", n_reviewed, n_skipped);
    if (in->diff_source) textbuf_printf(b, "Diff %s.\n\n", in->diff_source);
    for (int group = 0; group < 2; group++) {
        size_t total = group ? n_skipped : n_reviewed, shown = 0;
        if (!total) continue;
        textbuf_puts(b, group ? "**Skipped**\n\n" : "**Reviewed**\n\n");
        for (size_t i = 0; i < d->n_files; i++) {
            const diff_file *f = &d->files[i];
            if ((f->skip_reason != NULL) != group) continue;
            if (shown == limit) break;
            append_file_entry(b, f, group);
            shown++;
        }
        if (shown < total) textbuf_printf(b, "- … and %zu more\n", total - shown);
        textbuf_puts(b, "\n");
    }
    textbuf_puts(b, "</details>\n");
}

static void append_footer(textbuf *b, const comment_input *in)
{
    textbuf_puts(b, "\n<sub>");
    if (in->model_name) {
        textbuf_puts(b, "Model ");
        append_path(b, in->model_name);
        textbuf_puts(b, " · ");
    }
    textbuf_printf(b, "%d prompt tokens, %d generated · prefill %.1f tok/s, decode %.1f tok/s · %.1f s",
                   in->prompt_tokens, in->generated_tokens, in->prefill_tokens_per_s, in->decode_tokens_per_s,
                   in->total_seconds);
    if (in->stop_reason && strcmp(in->stop_reason, "eos") != 0)
        textbuf_printf(b, " · stopped: %s", in->stop_reason);
    textbuf_printf(b, " · %s</sub>\n", in->origin ? in->origin : "generated locally by prbot");
}

static const char truncation_note[] = "\n\n*(truncated: the text was longer than a GitHub comment allows)*\n";

/* Appends as much of the sanitised text as fits in `room` bytes. */
static void append_text_within(textbuf *b, const char *text, size_t room)
{
    size_t len = strlen(text);
    if (len <= room) {
        textbuf_add(b, text, len);
        return;
    }
    size_t reserve = sizeof truncation_note + 64; /* note + a closing fence */
    size_t cut = room > reserve ? comment_utf8_prefix(text, len, room - reserve) : 0;
    size_t line_cut = cut;
    while (line_cut > 0 && text[line_cut - 1] != '\n') line_cut--;
    if (line_cut + 2048 >= cut && line_cut > 0) cut = line_cut;
    textbuf_add(b, text, cut);
    fence_state open = fence_at_end(text, cut);
    if (open.ch) {
        if (cut && text[cut - 1] != '\n') textbuf_puts(b, "\n");
        for (size_t k = 0; k < open.len && k < 32; k++) textbuf_add(b, &open.ch, 1);
        textbuf_puts(b, "\n");
    }
    textbuf_puts(b, truncation_note);
}

int comment_render(const comment_input *in, char **out, char *err, size_t errlen)
{
    size_t max_bytes = in->max_bytes ? in->max_bytes : COMMENT_MAX_BYTES;
    const char *name = in->name && *in->name ? in->name : "review";
    char marker[256];
    comment_marker(name, marker, sizeof marker);
    char *text = comment_sanitize(in->model_text ? in->model_text : "", in->model_text ? strlen(in->model_text) : 0);
    textbuf head = {0}, tail = {0}, body = {0};
    if (!text) goto oom;
    textbuf_printf(&head, "%s\n### ", marker);
    if (in->heading)
        append_prose_line(&head, in->heading, strlen(in->heading));
    else
        textbuf_printf(&head, "prbot %s", name);
    textbuf_puts(&head, "\n\n");

    /* the file list and footer, shortened until they leave room for text */
    for (size_t limit = 2000;; limit /= 2) {
        textbuf_free(&tail);
        textbuf_puts(&tail, "\n\n");
        if (in->diff && in->diff->n_files) append_file_list(&tail, in, limit);
        append_footer(&tail, in);
        if (tail.failed) goto oom;
        if (head.len + tail.len + 1024 <= max_bytes / 2 || limit == 0) break;
    }
    if (head.failed || head.len + tail.len + sizeof truncation_note + 128 > max_bytes) {
        err_set(err, errlen, "comment limit of %zu bytes is too small for the heading and footer", max_bytes);
        goto fail;
    }
    textbuf_add(&body, head.data, head.len);
    size_t text_len = strlen(text);
    while (text_len && text[text_len - 1] == '\n') text[--text_len] = 0;
    append_text_within(&body, *text ? text : "*(the model produced no text)*", max_bytes - head.len - tail.len);
    textbuf_add(&body, tail.data, tail.len);
    if (body.failed) goto oom;
    free(text);
    textbuf_free(&head);
    textbuf_free(&tail);
    *out = textbuf_take(&body);
    return 0;
oom:
    err_set(err, errlen, "out of memory rendering the comment");
fail:
    free(text);
    textbuf_free(&head);
    textbuf_free(&tail);
    textbuf_free(&body);
    return -1;
}
