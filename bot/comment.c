/*
 * comment.c - render and sanitise prbot's PR comment.
 *
 * The model's text is untrusted: a PR author can steer a model into writing
 * "@everyone", <img onerror=...>, "</details>" or our own hidden marker. So
 * sanitising is a small line-based markdown scanner that knows just enough:
 * fenced code blocks (``` or ~~~, CommonMark's opening/closing rules) and
 * inline code spans are copied verbatim because GitHub shows them literally;
 * everywhere else '<' becomes "&lt;" (no raw HTML at all, which also means
 * nothing can close our <details>), '&' becomes "&amp;" (no character
 * reference can spell an '@' or a tag) and an @mention gets a zero-width space
 * after the '@' so it renders the same but pings no one. "<!--" is broken up
 * everywhere, code included, so no text can carry a prbot marker.
 *
 * The rule that keeps this safe: whatever we copy verbatim as code, GitHub
 * must parse as code too. Treating code as prose only costs looks, the other
 * way round is a bypass. So the scanner decides conservatively and then
 * writes text GitHub cannot pair differently: a backtick run that does not
 * open a span on its own line is escaped ("\`"), so no span can start or end
 * on another line; a backslash before a backtick is CommonMark's escape, not
 * an opener; and in a block that has a table delimiter row (GFM splits table
 * cells at '|' before it looks for code spans) a span never crosses a '|'.
 * Control characters become U+FFFD rather than vanishing, so dropping one
 * can never join the bytes around it into something new; the scan runs on
 * exactly the bytes that are posted.
 *
 * Size: GitHub refuses bodies over 65536 characters. The marker, heading,
 * file list and footer are rendered first (the file list shortened if it is
 * huge); the model text gets what is left: the longest prefix of the raw text
 * (cut at a line end where possible) whose sanitised form fits, with a note.
 * Cutting the raw text, never the sanitised one, means a cut cannot fall
 * inside a code span and turn its verbatim content into prose.
 *
 * Cost: sanitising is linear in the text (code spans are paired through
 * per-length buckets of backtick runs, see span_finder), and fitting a text
 * into the limit sanitises prefixes of it O(log n) times.
 */
#include "comment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "errors.h"
#include "textbuf.h"

#define ZWSP "\xE2\x80\x8B" /* U+200B ZERO WIDTH SPACE */
#define REPLACEMENT_CHAR "\xEF\xBF\xBD"

void comment_marker(const char *name, char *buf, size_t cap) { snprintf(buf, cap, "<!-- prbot:%s -->", name); }

/* ---- UTF-8 ------------------------------------------------------------- */

size_t comment_utf8_prefix(const char *s, size_t len, size_t cap)
{
    if (len <= cap) return len;
    size_t n = cap;
    /* step back over continuation bytes to the start of the cut character */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* Valid UTF-8 without control characters: tabs and newlines stay, a CR
 * before a newline goes, any other control character or invalid byte
 * becomes U+FFFD (a replacement, not a removal, so nothing gets joined). */
static void append_clean_utf8(textbuf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t n = engine_utf8_len(text + i, len - i);
        if (n == 1 && s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
            i++;
            continue;
        }
        if (n == 0 || (n == 1 && ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || s[i] == 0x7F))) {
            textbuf_puts(b, REPLACEMENT_CHAR);
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

/* GitHub links a mention after anything but an ASCII word character, so a
 * non-ASCII byte before the '@' does not protect it. */
static int is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
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

/* Finds where code spans close on one line, in linear time. The line's
 * maximal backtick runs are bucketed by length (positions ascending); a span
 * opened by a run of length L closes at the first run of length L after it,
 * and since openers only move forward, each bucket is read through a cursor
 * that only moves forward too. (Searching forward from every opener instead
 * costs a scan of the rest of the line per length that has no closer:
 * O(n^1.5) for runs of lengths 1, 2, 3, ...) */
typedef struct {
    size_t *pos;        /* run starts, grouped by length */
    size_t *start;      /* bucket L is pos[start[L] .. start[L + 1]) */
    size_t *cursor;     /* next candidate in bucket L */
    size_t max_run;
    size_t pipe;        /* table rows: the first '|' at or after the last lookup (n: none) */
    int pipe_known, failed;
} span_finder;

static void span_finder_free(span_finder *f)
{
    free(f->pos);
    free(f->start);
    free(f->cursor);
}

static int span_finder_init(span_finder *f, const char *s, size_t n)
{
    memset(f, 0, sizeof *f);
    size_t n_runs = 0;
    for (size_t i = 0; i < n;) {
        size_t r = backtick_run(s, i, n);
        if (r > f->max_run) f->max_run = r;
        n_runs += r > 0;
        i += r ? r : 1;
    }
    if (!n_runs) return 0;
    f->pos = malloc(n_runs * sizeof *f->pos);
    f->start = calloc(f->max_run + 2, sizeof *f->start);
    f->cursor = malloc((f->max_run + 1) * sizeof *f->cursor);
    if (!f->pos || !f->start || !f->cursor) {
        span_finder_free(f);
        memset(f, 0, sizeof *f);
        f->failed = 1;
        return -1;
    }
    for (size_t i = 0; i < n;) { /* counting sort by length, stable */
        size_t r = backtick_run(s, i, n);
        f->start[r + 1] += r > 0;
        i += r ? r : 1;
    }
    for (size_t l = 1; l <= f->max_run + 1; l++) f->start[l] += f->start[l - 1];
    memcpy(f->cursor, f->start, (f->max_run + 1) * sizeof *f->cursor);
    for (size_t i = 0; i < n;) {
        size_t r = backtick_run(s, i, n);
        if (r) f->pos[f->cursor[r]++] = i;
        i += r ? r : 1;
    }
    memcpy(f->cursor, f->start, (f->max_run + 1) * sizeof *f->cursor);
    return 0;
}

/* Where the code span opened by a run of `run` backticks at i closes (index
 * after the closing run), or 0 if it does not close on this line (or, in a
 * table, before the next '|'). Calls come with i increasing. */
static size_t code_span_end(span_finder *f, const char *s, size_t i, size_t n, size_t run, int table)
{
    if (run > f->max_run || f->failed) return 0;
    size_t *c = &f->cursor[run], end = f->start[run + 1];
    while (*c < end && f->pos[*c] < i + run) (*c)++;
    if (*c == end) return 0;
    if (table) {
        if (!f->pipe_known || f->pipe < i) { /* each stretch between '|'s is searched once */
            const char *bar = memchr(s + i, '|', n - i);
            f->pipe = bar ? (size_t)(bar - s) : n;
            f->pipe_known = 1;
        }
        if (f->pos[*c] > f->pipe) return 0;
    }
    return f->pos[*c] + run;
}

/* One line of prose: code spans verbatim, other backticks escaped, '<'
 * escaped, mentions defused. `table`: the line may be a GFM table row. */
static void append_prose_line(textbuf *b, const char *s, size_t n, int table)
{
    span_finder spans;
    span_finder_init(&spans, s, n); /* on failure, no span closes: every backtick is escaped */
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && (s[i + 1] == '`' || s[i + 1] == '\\')) {
            textbuf_add(b, s + i, 2); /* an escaped backtick opens nothing; an escaped backslash escapes nothing */
            i += 2;
            continue;
        }
        if (c == '\\' && i + 1 < n && s[i + 1] == '<') {
            textbuf_puts(b, "&lt;"); /* what "\<" shows, without the escape turning into "\&" */
            i += 2;
            continue;
        }
        if (c == '`') {
            size_t run = backtick_run(s, i, n);
            size_t end = code_span_end(&spans, s, i, n, run, table);
            if (end) {
                append_code(b, s + i, end - i);
                i = end;
            } else {
                for (size_t k = 0; k < run; k++) textbuf_puts(b, "\\`");
                i += run;
            }
            continue;
        }
        if (c == '~' && i + 2 < n && s[i + 1] == '~' && s[i + 2] == '~') {
            /* three tildes where a line (or a list item, a quote) starts open a
             * code fence that would swallow the rest of the comment; "\~~~" shows
             * the same text and opens nothing */
            textbuf_puts(b, "\\~");
            i++;
            while (i < n && s[i] == '~') textbuf_add(b, s + i++, 1);
            continue;
        }
        if (c == '<') {
            textbuf_puts(b, "&lt;");
        } else if (c == '&') {
            textbuf_puts(b, "&amp;"); /* no entity: "&#64;everyone" would render as a live mention */
        } else if (c == '@' && (i == 0 || !is_word_char((unsigned char)s[i - 1])) && i + 1 < n &&
                   is_login_char((unsigned char)s[i + 1])) {
            textbuf_puts(b, "@" ZWSP);
        } else {
            textbuf_add(b, &c, 1);
        }
        i++;
    }
    span_finder_free(&spans);
}

/* One line of prose from a string we did not write (a skip reason quoting a
 * user's glob or a path, a heading): made valid UTF-8 first, its line breaks
 * made spaces (a new line could end the list item or start a table), then
 * escaped as prose. */
static void append_prose_text(textbuf *b, const char *s)
{
    textbuf clean = {0};
    append_clean_utf8(&clean, s, strlen(s));
    for (size_t i = 0; i < clean.len; i++)
        if (clean.data[i] == '\n') clean.data[i] = ' ';
    if (clean.failed) b->failed = 1;
    else append_prose_line(b, clean.data ? clean.data : "", clean.len, 0);
    textbuf_free(&clean);
}

/* A line GFM could take for a table's delimiter row ("| --- | :-: |"),
 * allowing for blockquote and list markers in front: only '|', '-', ':',
 * blanks and marker characters, with at least one '|' and one '-'. Taking
 * more lines for tables than GFM would only makes code spans stricter. */
static int is_delimiter_row(const char *s, size_t n)
{
    int pipe = 0, dash = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '|') pipe = 1;
        else if (c == '-') dash = 1;
        else if (!strchr(" \t:>*+.)0123456789", c)) return 0;
    }
    return pipe && dash;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

enum { LINE_CODE = 1, LINE_TABLE = 2 };

/* Classifies every line of s[0..n): code (a fence line or inside a fence) or
 * in a table block (a run of non-blank prose lines with a delimiter row).
 * Returns a malloc'ed array of flags, one per line, or NULL. */
static unsigned char *classify_lines(const char *s, size_t n, size_t *n_lines)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    unsigned char *flags = calloc(lines, 1);
    if (!flags) return NULL;
    fence_state fence = {0};
    size_t block_start = 0, k = 0;
    int block_table = 0;
    for (size_t pos = 0; k < lines; k++) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (s + pos)) : n - pos;
        int was_in_fence = fence.ch != 0;
        int code = fence_update(&fence, s + pos, len) || was_in_fence;
        if (code || is_blank(s + pos, len)) { /* the block before this line ends */
            for (size_t j = block_start; j < k && block_table; j++) flags[j] |= LINE_TABLE;
            block_start = k + 1;
            block_table = 0;
        } else if (is_delimiter_row(s + pos, len)) {
            block_table = 1;
        }
        if (code) flags[k] |= LINE_CODE;
        pos += len + 1;
    }
    for (size_t j = block_start; j < lines && block_table; j++) flags[j] |= LINE_TABLE;
    *n_lines = lines;
    return flags;
}

char *comment_sanitize(const char *text, size_t len)
{
    textbuf clean = {0}, out = {0};
    append_clean_utf8(&clean, text, len);
    const char *s = clean.data ? clean.data : "";
    size_t n = clean.len, n_lines = 0;
    unsigned char *flags = clean.failed ? NULL : classify_lines(s, n, &n_lines);
    if (!flags) {
        textbuf_free(&clean);
        return NULL;
    }
    fence_state fence = {0};
    for (size_t pos = 0, k = 0; pos < n; k++) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t line_len = nl ? (size_t)(nl - (s + pos)) : n - pos;
        fence_update(&fence, s + pos, line_len); /* tracked again for the closing fence below */
        if (flags[k] & LINE_CODE)
            append_code(&out, s + pos, line_len);
        else
            append_prose_line(&out, s + pos, line_len, flags[k] & LINE_TABLE);
        if (nl) textbuf_add(&out, "\n", 1);
        pos += line_len + (nl ? 1 : 0);
    }
    free(flags);
    if (fence.ch) {
        if (out.len && out.data[out.len - 1] != '\n') textbuf_add(&out, "\n", 1);
        for (size_t k = 0; k < fence.len; k++) textbuf_add(&out, &fence.ch, 1);
        textbuf_add(&out, "\n", 1);
    }
    textbuf_free(&clean);
    return textbuf_take(&out);
}

/* ---- rendering ---------------------------------------------------------- */

#define PATH_SHOWN_BYTES 300 /* longer paths are shortened in the comment */

/* A path as an inline code span that renders it literally: delimited by a
 * backtick run longer than any run inside it (CommonMark's rule, so no run
 * in the path can close it), control characters shown as '?', invalid UTF-8
 * as U+FFFD (git allows any bytes in a name; GitHub takes only UTF-8 in a
 * body), "<!--" broken like everywhere else, a long path cut with "…", an
 * empty one (not a git path, but a model name can be) written as words. */
static void append_path(textbuf *b, const char *path)
{
    size_t len = strlen(path), shown = comment_utf8_prefix(path, len, PATH_SHOWN_BYTES);
    const unsigned char *s = (const unsigned char *)path;
    textbuf clean = {0};
    for (size_t i = 0; i < shown;) {
        size_t n = engine_utf8_len(path + i, shown - i);
        if (n == 0) textbuf_puts(&clean, REPLACEMENT_CHAR);
        else if (n == 1 && (s[i] < 0x20 || s[i] == 0x7F)) textbuf_puts(&clean, "?");
        else textbuf_add(&clean, path + i, n);
        i += n ? n : 1;
    }
    if (shown < len) textbuf_puts(&clean, "…");
    if (!clean.len) { /* "``" would open a span that pairs with a later one */
        textbuf_puts(b, "(empty name)");
        textbuf_free(&clean);
        return;
    }
    const char *p = clean.data;
    size_t longest = 0;
    for (size_t i = 0; p[i];) {
        size_t run = backtick_run(p, i, clean.len);
        if (run > longest) longest = run;
        i += run ? run : 1;
    }
    for (size_t k = 0; k <= longest; k++) textbuf_puts(b, "`");
    if (longest) textbuf_puts(b, " "); /* so a backtick at either end is not part of the delimiter */
    append_code(b, p, clean.len);
    if (longest) textbuf_puts(b, " ");
    for (size_t k = 0; k <= longest; k++) textbuf_puts(b, "`");
    textbuf_free(&clean);
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
        /* a file a cap or the budget kept from the model is "not shown", whatever its reason says */
        textbuf_puts(b, f->not_shown ? ": not shown: " : ": ");
        append_prose_text(b, f->skip_reason); /* may quote a user's glob */
    }
    if (f->note) {
        textbuf_puts(b, " (");
        append_prose_text(b, f->note);
        textbuf_puts(b, ")");
    }
    textbuf_puts(b, "\n");
}

/* The <details> file list, at most `limit` entries per group. */
static void append_file_list(textbuf *b, const diff_result *d, const char *diff_source, size_t limit)
{
    size_t n_reviewed = 0, n_skipped = 0, n_not_shown = 0;
    for (size_t i = 0; i < d->n_files; i++) {
        if (d->files[i].skip_reason)
            n_skipped++;
        else
            n_reviewed++;
        n_not_shown += d->files[i].skip_reason && d->files[i].not_shown;
    }
    textbuf_printf(b, "<details><summary>Files: %zu reviewed, ", n_reviewed);
    if (n_not_shown) textbuf_printf(b, "%zu not shown, ", n_not_shown);
    textbuf_printf(b, "%zu skipped</summary>\n\n", n_skipped - n_not_shown);
    if (diff_source) textbuf_printf(b, "Diff %s.\n\n", diff_source);
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

static void append_footer(textbuf *b, const comment_stats *st)
{
    textbuf_puts(b, "\n<sub>");
    if (st->model_name) {
        textbuf_puts(b, "Model ");
        append_path(b, st->model_name);
        textbuf_puts(b, " · ");
    }
    textbuf_printf(b, "%d prompt tokens, %d generated", st->prompt_tokens, st->generated_tokens);
    if (st->prefill_tokens_per_s > 0 || st->decode_tokens_per_s > 0)
        textbuf_printf(b, " · prefill %.1f tok/s, decode %.1f tok/s", st->prefill_tokens_per_s, st->decode_tokens_per_s);
    textbuf_printf(b, " · %.1f s", st->total_seconds);
    /* "eos" and "grammar" are the two ways a model finishes on its own */
    if (st->stop_reason && strcmp(st->stop_reason, "eos") != 0 && strcmp(st->stop_reason, "grammar") != 0) {
        textbuf_puts(b, " · stopped: ");
        append_prose_text(b, st->stop_reason);
    }
    textbuf_printf(b, " · %s</sub>\n", st->origin ? st->origin : "generated locally by prbot");
}

static const char truncation_note[] = "\n\n*(truncated: the text was longer than a GitHub comment allows)*\n";

/* The sanitised form of raw[0..len) without trailing newlines, or NULL. */
static char *sanitize_trimmed(const char *raw, size_t len)
{
    char *text = comment_sanitize(raw, len);
    size_t n = text ? strlen(text) : 0;
    while (n && text[n - 1] == '\n') text[--n] = 0;
    return text;
}

/* Appends the sanitised model text within `room` bytes: all of it when it
 * fits, else the sanitised form of the longest prefix of the raw text that
 * fits with the note (binary search: the sanitised length grows with the
 * prefix), moved back to a line end when one is within 2 KiB. Returns 0 or
 * -1 (out of memory). */
static int append_text_within(textbuf *b, const char *raw, size_t room)
{
    size_t len = strlen(raw);
    char *text = sanitize_trimmed(raw, len);
    if (!text) return -1;
    if (strlen(text) <= room) {
        textbuf_puts(b, *text ? text : "*(the model produced no text)*");
        free(text);
        return 0;
    }
    free(text);
    size_t budget = room > sizeof truncation_note ? room - sizeof truncation_note : 0, lo = 0, hi = len;
    while (lo < hi) { /* invariant: the prefix of lo bytes fits */
        size_t mid = lo + (hi - lo + 1) / 2;
        if (!(text = sanitize_trimmed(raw, mid))) return -1;
        if (strlen(text) <= budget)
            lo = mid;
        else
            hi = mid - 1;
        free(text);
    }
    size_t cut = comment_utf8_prefix(raw, len, lo), line_cut = cut;
    while (line_cut > 0 && raw[line_cut - 1] != '\n') line_cut--;
    if (line_cut > 0 && line_cut + 2048 >= cut) cut = line_cut;
    if (!(text = sanitize_trimmed(raw, cut))) return -1;
    textbuf_puts(b, text);
    textbuf_puts(b, truncation_note);
    free(text);
    return 0;
}

static void free_parts(textbuf *head, textbuf *middle, textbuf *tail)
{
    textbuf_free(head);
    textbuf_free(middle);
    textbuf_free(tail);
}

/* A comment is head + middle + tail, each built to fit: *out gets them
 * joined, and the parts are freed either way. Returns 0, or -1 when an
 * append to any of them failed (out of memory). */
static int join_parts(textbuf *head, textbuf *middle, textbuf *tail, char **out)
{
    textbuf body = {.failed = head->failed || middle->failed || tail->failed};
    textbuf_add(&body, head->data, head->len);
    textbuf_add(&body, middle->data, middle->len);
    textbuf_add(&body, tail->data, tail->len);
    free_parts(head, middle, tail);
    *out = textbuf_take(&body); /* NULL when an append failed */
    return *out ? 0 : -1;
}

/* The head every comment starts with: the marker that finds it again, an
 * optional state line, and the heading (prose-escaped; "prbot NAME" when the
 * caller gave none). The name defaults to "review". */
static void append_head(textbuf *head, const char *name, const char *state, const char *heading)
{
    if (!name || !*name) name = "review";
    char marker[256];
    comment_marker(name, marker, sizeof marker);
    textbuf_printf(head, "%s\n", marker);
    if (state) textbuf_printf(head, "%s\n", state);
    textbuf_puts(head, "### ");
    if (heading)
        append_prose_text(head, heading);
    else
        textbuf_printf(head, "prbot %s", name);
    textbuf_puts(head, "\n\n");
}

/* The tail: lead, the changed files and the footer, the file list shortened
 * until head and tail leave at least half of max_bytes to the text. Returns
 * 0, or -1 when an append failed. */
static int append_tail(textbuf *tail, const char *lead, const diff_result *d, const char *diff_source,
                       const comment_stats *st, size_t head_len, size_t max_bytes)
{
    for (size_t limit = 2000;; limit /= 2) {
        textbuf_free(tail);
        textbuf_puts(tail, lead);
        if (d && d->n_files) append_file_list(tail, d, diff_source, limit);
        append_footer(tail, st);
        if (tail->failed) return -1;
        if (head_len + tail->len + 1024 <= max_bytes / 2 || limit == 0) return 0;
    }
}

int comment_render(const comment_input *in, char **out, char *err, size_t errlen)
{
    size_t max_bytes = in->max_bytes ? in->max_bytes : COMMENT_MAX_BYTES;
    textbuf head = {0}, middle = {0}, tail = {0};
    append_head(&head, in->name, NULL, in->heading);
    comment_stats st = {in->model_name, in->prompt_tokens, in->generated_tokens, in->prefill_tokens_per_s,
                        in->decode_tokens_per_s, in->total_seconds, in->stop_reason, in->origin};
    if (append_tail(&tail, "\n\n", in->diff, in->diff_source, &st, head.len, max_bytes) < 0) goto oom;
    if (head.failed || head.len + tail.len + sizeof truncation_note + 128 > max_bytes) {
        err_set(err, errlen, "comment limit of %zu bytes is too small for the heading and footer", max_bytes);
        goto fail;
    }
    if (append_text_within(&middle, in->model_text ? in->model_text : "", max_bytes - head.len - tail.len) < 0)
        goto oom;
    if (join_parts(&head, &middle, &tail, out) == 0) return 0;
oom:
    err_set(err, errlen, "out of memory rendering the comment");
fail:
    free_parts(&head, &middle, &tail);
    return -1;
}

/* ---- findings: inline comments and the summary ----------------------------- */

static const char *const severity_labels[] = {"Bug", "Risk", "Nit"};

static const char *severity_label(int severity)
{
    return severity >= 0 && severity <= SEVERITY_NIT ? severity_labels[severity] : "Risk";
}

char *comment_render_inline(const finding *f)
{
    textbuf b = {0};
    textbuf_printf(&b, "**%s: ", severity_label(f->severity));
    append_prose_text(&b, f->title);
    textbuf_puts(&b, "**\n");
    if (f->body && *f->body) {
        textbuf_puts(&b, "\n");
        append_prose_text(&b, f->body);
        textbuf_puts(&b, "\n");
    }
    if (f->suggestion && *f->suggestion) {
        /* findings_parse and review_doc_parse refuse fences inside a suggestion */
        textbuf_puts(&b, "\n```suggestion\n");
        append_code(&b, f->suggestion, strlen(f->suggestion));
        textbuf_puts(&b, "\n```\n");
    }
    if (f->fingerprint[0]) textbuf_printf(&b, "\n<!-- prbot:finding %.16s -->\n", f->fingerprint);
    return textbuf_take(&b);
}

int comment_link_ok(const char *url)
{
    if (!url || strncmp(url, "https://", 8)) return 0;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)url + 8; *p; p++, n++)
        if (*p <= ' ' || *p >= 0x7f || strchr("()<>\"'`[]\\", *p)) return 0;
    return n > 0 && n + 8 <= COMMENT_LINK_MAX;
}

/* "`path:line`" (or "`path`" when the finding has no line), linked when url is set. */
static void append_location(textbuf *b, const finding *f, const char *url)
{
    char line[32] = "";
    if (f->line > 0 && f->end_line > f->line) snprintf(line, sizeof line, ":%d-%d", f->line, f->end_line);
    else if (f->line > 0) snprintf(line, sizeof line, ":%d", f->line);
    size_t n = strlen(f->path) + strlen(line) + 1;
    char *loc = malloc(n);
    if (!loc) {
        b->failed = 1;
        return;
    }
    snprintf(loc, n, "%s%s", f->path, line);
    if (comment_link_ok(url)) {
        textbuf_puts(b, "[");
        append_path(b, loc);
        textbuf_printf(b, "](%s)", url);
    } else {
        append_path(b, loc);
    }
    free(loc);
}

static void append_finding_entry(textbuf *b, const finding *f, int with_body)
{
    textbuf_printf(b, "- **%s** ", findings_severity_name(f->severity));
    append_location(b, f, f->url);
    textbuf_puts(b, " ");
    append_prose_text(b, f->title);
    if (with_body && !f->inline_comment && f->body && *f->body) { /* an inline comment carries its own body */
        textbuf_puts(b, ": ");
        append_prose_text(b, f->body);
    }
    if (with_body && !f->inline_comment && f->why_not_inline) {
        if (!f->line && f->model_line > 0) textbuf_printf(b, " *(line %d: %s)*", f->model_line, f->why_not_inline);
        else textbuf_printf(b, " *(%s)*", f->why_not_inline);
    }
    textbuf_puts(b, "\n");
}

static void append_counts(textbuf *b, const finding *items, size_t n)
{
    size_t count[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) count[items[i].severity >= 0 && items[i].severity <= 2 ? items[i].severity : 1]++;
    const char *names[3][2] = {{"bug", "bugs"}, {"risk", "risks"}, {"nit", "nits"}};
    int first = 1;
    for (int k = 0; k < 3; k++) {
        if (!count[k]) continue;
        textbuf_printf(b, "%s%zu %s", first ? "" : ", ", count[k], names[k][count[k] != 1]);
        first = 0;
    }
}

/* The part between the heading and the file list: summary, scope, findings.
 * detail 2: everything; 1: without the earlier findings; 0: also without
 * the summary-only findings' bodies. */
static void append_summary_middle(textbuf *b, const comment_summary *in, int detail)
{
    if (in->summary && *in->summary) {
        append_prose_text(b, in->summary);
        textbuf_puts(b, "\n\n");
    }
    if (in->scope) textbuf_printf(b, "<sub>%s</sub>\n\n", in->scope);
    if (in->notice) textbuf_printf(b, "%s\n\n", in->notice);
    size_t n_inline = 0;
    for (size_t i = 0; i < in->n_findings; i++) n_inline += in->findings[i].inline_comment != 0;
    if (in->n_findings == 0) {
        if (!in->notice) textbuf_puts(b, "No problems found in the changes shown to the model.\n\n");
    } else {
        textbuf_printf(b, "**Findings: %zu** (", in->n_findings);
        append_counts(b, in->findings, in->n_findings);
        textbuf_puts(b, ")");
        const char *as = n_inline == 1 ? "an inline comment" : "inline comments";
        if (n_inline && comment_link_ok(in->review_url))
            textbuf_printf(b, ", %zu as %s in [the review](%s)", n_inline, as, in->review_url);
        else if (n_inline)
            textbuf_printf(b, ", %zu as %s", n_inline, as);
        textbuf_puts(b, "\n\n");
        for (size_t i = 0; i < in->n_findings; i++) append_finding_entry(b, &in->findings[i], detail > 0);
        textbuf_puts(b, "\n");
    }
    if (in->n_earlier && detail < 2) {
        textbuf_printf(b, "Earlier findings on this pull request: %zu (not listed: the comment would be too long).\n\n",
                       in->n_earlier);
    } else if (in->n_earlier) {
        textbuf_printf(b, "<details><summary>Earlier findings on this pull request: %zu</summary>\n\n", in->n_earlier);
        for (size_t i = 0; i < in->n_earlier; i++) append_finding_entry(b, &in->earlier[i], 0);
        textbuf_puts(b, "\n</details>\n\n");
    }
}

int comment_render_summary(const comment_summary *in, char **out, char *err, size_t errlen)
{
    size_t max_bytes = in->max_bytes ? in->max_bytes : COMMENT_MAX_BYTES;
    textbuf head = {0}, middle = {0}, tail = {0};
    append_head(&head, in->name, in->state, in->heading);
    if (append_tail(&tail, "", in->diff, in->diff_source, &in->stats, head.len, max_bytes) < 0) goto oom;
    if (head.failed || head.len + tail.len + 128 > max_bytes) {
        if (head.failed) goto oom;
        err_set(err, errlen, "comment limit of %zu bytes is too small for the heading and footer", max_bytes);
        goto fail;
    }
    /* every line of the middle is whole markdown: less detail until it fits,
     * then whole lines only (a list entry, never half of one) */
    for (int detail = 2; detail >= 0; detail--) {
        textbuf_free(&middle);
        append_summary_middle(&middle, in, detail);
        if (middle.failed) goto oom;
        if (head.len + middle.len + tail.len <= max_bytes) break;
    }
    size_t room = max_bytes - head.len - tail.len, keep = middle.len;
    if (keep > room) {
        static const char more[] = "- … (the rest does not fit in a comment)\n";
        keep = room > sizeof more ? room - sizeof more : 0;
        while (keep > 0 && middle.data[keep - 1] != '\n') keep--;
        middle.len = keep;
        textbuf_puts(&middle, more);
    }
    if (join_parts(&head, &middle, &tail, out) == 0) return 0;
oom:
    err_set(err, errlen, "out of memory rendering the summary");
fail:
    free_parts(&head, &middle, &tail);
    return -1;
}
