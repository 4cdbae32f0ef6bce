/*
 * markdown_check.h - what GitHub would make of a comment, as far as safety goes.
 *
 * An independent model of the parts of GitHub's markdown (CommonMark + GFM)
 * that decide whether text is code or prose, used to check comment.c's
 * output (test_comment.c, tests/fuzz/fuzz_comment.c):
 *
 *  - fenced code blocks (``` / ~~~, up to 3 spaces of indent; a backtick
 *    fence's info string has no backtick; the closer is the same character,
 *    at least as long, followed by blanks only);
 *  - paragraphs: runs of non-blank lines outside fences. Inside one, code
 *    spans pair across lines as CommonMark pairs them: a backslash escapes the
 *    ASCII punctuation after it, an unescaped backtick run opens a span that
 *    closes at the next run of the same length anywhere later in the
 *    paragraph, or is literal when there is none;
 *  - GFM tables: in a paragraph with a delimiter-like row ('|', '-', ':',
 *    blanks and list/quote markers only), every line is split into cells at
 *    each '|' first (escaped or not: the stricter reading) and spans pair only
 *    within a cell.
 *
 * Then in prose (not code): an '@' after anything but an ASCII word character
 * and before an ASCII letter or digit is a mention GitHub would link (the
 * sanitiser's zero-width space after the '@' is what prevents it), and so is
 * a character reference that decodes to '@' ("&#64;", "&#x40;", "&commat;"):
 * GitHub looks for mentions in the rendered text; a '<' before a letter,
 * '/', '!' or '?' may start raw HTML unless it is escaped ("\<") or one of
 * the tags the caller allows. "<!--" may appear nowhere but where the caller
 * allows it. Every fence must be closed at the end.
 *
 * md_check() returns NULL when the text is safe, else a static description
 * of the first problem ("mention at byte 12: @everyone").
 */
#ifndef PRBOT_MARKDOWN_CHECK_H
#define PRBOT_MARKDOWN_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *const *allowed_tags; /* exact strings like "<details>" allowed in prose, NULL-terminated */
    size_t comment_allowed_until;    /* "<!--" may start before this byte (the body's first line) */
} md_check_options;

static char md_problem[160];

static int md_is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int md_is_alnum(unsigned char c) { return md_is_word(c) && c != '_'; }

static int md_is_punct(unsigned char c) { return c > 0x20 && c < 0x7F && !md_is_alnum(c); }

/* Fence run at the start of a line: its character and length, or 0. */
static char md_fence(const char *l, size_t n, size_t *run, size_t *after)
{
    size_t i = 0;
    while (i < n && i < 3 && l[i] == ' ') i++;
    if (i >= n || (l[i] != '`' && l[i] != '~')) return 0;
    size_t j = i;
    while (j < n && l[j] == l[i]) j++;
    if (j - i < 3) return 0;
    *run = j - i;
    *after = j;
    return l[i];
}

static int md_delimiter_like(const char *l, size_t n)
{
    int pipe = 0, dash = 0;
    for (size_t i = 0; i < n; i++) {
        if (l[i] == '|') pipe = 1;
        else if (l[i] == '-') dash = 1;
        else if (!strchr(" \t:>*+.)0123456789", l[i])) return 0;
    }
    return pipe && dash;
}

/* Marks code bytes of the paragraph p[0..n) (lines joined by '\n'). With
 * `table`, '|' and '\n' end every cell: spans pair only inside one. */
static void md_mark_spans(const char *p, size_t n, int table, unsigned char *code)
{
    size_t cell_end = 0;
    for (size_t i = 0; i < n;) {
        if (table && i >= cell_end) {
            cell_end = i;
            while (cell_end < n && p[cell_end] != '|' && p[cell_end] != '\n') cell_end++;
            if (cell_end == i) {
                i++;
                continue;
            }
        }
        size_t end = table ? cell_end : n;
        if (p[i] == '\\' && i + 1 < end && md_is_punct((unsigned char)p[i + 1])) {
            i += 2;
            continue;
        }
        if (p[i] != '`') {
            i++;
            continue;
        }
        size_t run = 0;
        while (i + run < end && p[i + run] == '`') run++;
        size_t j = i + run, close = 0;
        while (j < end && !close) {
            if (p[j] != '`') {
                j++;
                continue;
            }
            size_t r = 0;
            while (j + r < end && p[j + r] == '`') r++;
            if (r == run) close = j + r;
            j += r;
        }
        if (close) {
            memset(code + i, 1, close - i);
            i = close;
        } else {
            i += run;
        }
    }
}

static const char *md_check(const char *text, size_t len, const md_check_options *opt)
{
    unsigned char *code = calloc(len + 1, 1);
    if (!code) return "out of memory";
    const char *problem = NULL;
    char fence = 0;
    size_t fence_len = 0, para_start = 0;
    int in_para = 0, para_table = 0;
    /* pass 1: fences and paragraphs mark code */
    for (size_t pos = 0; pos <= len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, run = 0, after = 0;
        const char *l = text + pos;
        size_t n = end - pos;
        char f = md_fence(l, n, &run, &after);
        int blank = 1;
        for (size_t i = 0; i < n; i++) blank &= l[i] == ' ' || l[i] == '\t';
        int is_code = 0;
        if (fence) {
            is_code = 1;
            if (f == fence && run >= fence_len) {
                int only_blanks = 1;
                for (size_t i = after; i < n; i++) only_blanks &= l[i] == ' ' || l[i] == '\t';
                if (only_blanks) fence = 0;
            }
        } else if (f && !(f == '`' && memchr(l + after, '`', n - after))) {
            fence = f, fence_len = run, is_code = 1;
        }
        if ((is_code || blank) && in_para) {
            md_mark_spans(text + para_start, pos - 1 - para_start, para_table, code + para_start);
            in_para = 0;
        }
        if (is_code) memset(code + pos, 1, n);
        if (!is_code && !blank) {
            if (!in_para) in_para = 1, para_start = pos, para_table = 0;
            para_table |= md_delimiter_like(l, n);
        }
        if (!nl) {
            if (in_para) md_mark_spans(text + para_start, end - para_start, para_table, code + para_start);
            break;
        }
        pos = end + 1;
    }
    if (fence) {
        snprintf(md_problem, sizeof md_problem, "a %c%c%c fence is left open", fence, fence, fence);
        problem = md_problem;
    }
    /* pass 2: what prose and code may not contain */
    for (size_t i = 0; i < len && !problem; i++) {
        unsigned char c = (unsigned char)text[i], next = i + 1 < len ? (unsigned char)text[i + 1] : 0;
        if (c == '<' && i + 3 < len && !memcmp(text + i, "<!--", 4) && i >= opt->comment_allowed_until) {
            snprintf(md_problem, sizeof md_problem, "\"<!--\" at byte %zu", i);
            problem = md_problem;
        }
        if (code[i]) continue;
        if (c == '@' && md_is_alnum(next) && (i == 0 || !md_is_word((unsigned char)text[i - 1]))) {
            snprintf(md_problem, sizeof md_problem, "mention at byte %zu: %.20s", i, text + i);
            problem = md_problem;
        }
        if (c == '&') { /* a reference that decodes to '@' */
            static const char *const at_refs[] = {"&#64;", "&#064;", "&#x40;", "&#X40;", "&commat;", NULL};
            for (const char *const *r = at_refs; *r && !problem; r++) {
                size_t m = strlen(*r);
                if (i + m < len && !strncasecmp(text + i, *r, m) && md_is_alnum((unsigned char)text[i + m])) {
                    snprintf(md_problem, sizeof md_problem, "mention by reference at byte %zu: %.20s", i, text + i);
                    problem = md_problem;
                }
            }
        }
        if (c == '<' && (md_is_alnum(next) || next == '/' || next == '!' || next == '?') &&
            !(i > 0 && text[i - 1] == '\\') && !(i < opt->comment_allowed_until)) {
            int allowed = 0;
            for (const char *const *t = opt->allowed_tags; t && *t && !allowed; t++)
                allowed = !strncmp(text + i, *t, strlen(*t));
            if (!allowed) {
                snprintf(md_problem, sizeof md_problem, "raw HTML at byte %zu: %.20s", i, text + i);
                problem = md_problem;
            }
        }
    }
    free(code);
    return problem;
}

#endif
