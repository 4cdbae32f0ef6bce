/*
 * linemap.c - hunks and commentable lines of a unified patch.
 *
 * One pass over the patch: a line starting "@@ -a,b +c,d @@" opens a hunk
 * and resets the two line counters; inside a hunk '+' lines take the next
 * new number, '-' lines the next old number, ' ' lines both, and a "\ No
 * newline at end of file" line takes none. A line that fits none of these
 * (an empty line too: git never writes one inside a hunk) ends the current
 * hunk, and body lines before any header are ignored, so a damaged
 * patch yields fewer commentable lines, never wrong ones. Hunks come in
 * increasing order in any patch git or GitHub writes, which
 * linemap_hunk_of's binary search relies on; a patch whose hunks are out
 * of order is still answered correctly by a linear fallback.
 */
#include "linemap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "textbuf.h"

/* Parses one decimal number at *p (advancing it); -1 if there is none or it is too large. */
static int parse_num(const char **p, const char *end)
{
    long v = 0;
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9') return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 100000000) return -1;
        s++;
    }
    *p = s;
    return (int)v;
}

/* "-a[,b] +c[,d] @@" after the opening "@@ ". Returns 0 or -1. */
static int parse_header(const char *s, const char *end, linemap_hunk *h)
{
    if (end - s < 3 || memcmp(s, "@@ ", 3)) return -1;
    s += 3;
    if (s >= end || *s++ != '-') return -1;
    if ((h->old_start = parse_num(&s, end)) < 0) return -1;
    h->old_count = 1;
    if (s < end && *s == ',') {
        s++;
        if ((h->old_count = parse_num(&s, end)) < 0) return -1;
    }
    if (s >= end || *s++ != ' ' || s >= end || *s++ != '+') return -1;
    if ((h->new_start = parse_num(&s, end)) < 0) return -1;
    h->new_count = 1;
    if (s < end && *s == ',') {
        s++;
        if ((h->new_count = parse_num(&s, end)) < 0) return -1;
    }
    if (end - s < 3 || memcmp(s, " @@", 3)) return -1;
    return 0;
}

int linemap_parse(const char *patch, size_t len, linemap *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t hunk_cap = 0, line_cap = 0;
    int in_hunk = 0, old_no = 0, new_no = 0;
    const char *end = patch ? patch + len : NULL;
    for (const char *p = patch; p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        if (n && eol[-1] == '\r') n--; /* CRLF patches from the API */
        linemap_hunk h;
        int header = n >= 2 && p[0] == '@' && p[1] == '@' && parse_header(p, p + n, &h) == 0;
        if (header && out->n_hunks && h.new_start <= out->hunks[out->n_hunks - 1].last_new) {
            /* a hunk that starts inside or before the one before it: git never
             * writes one, and its lines would have two hunks, so a comment
             * range checked in one could leave the other (GitHub refuses the
             * whole review then). Malformed, like a bad line: skipped. */
            in_hunk = 0;
        } else if (header) {
            if (array_reserve((void **)&out->hunks, &hunk_cap, out->n_hunks, sizeof *out->hunks) < 0) goto oom;
            h.first_new = h.new_start;
            h.last_new = h.new_start - 1;
            h.first_line = out->n_lines;
            h.n_lines = 0;
            out->hunks[out->n_hunks++] = h;
            in_hunk = 1;
            old_no = h.old_start;
            new_no = h.new_start;
        } else if (in_hunk && n >= 1 && (p[0] == '+' || p[0] == '-' || p[0] == ' ')) {
            if (array_reserve((void **)&out->lines, &line_cap, out->n_lines, sizeof *out->lines) < 0) goto oom;
            linemap_hunk *h_cur = &out->hunks[out->n_hunks - 1];
            linemap_line *l = &out->lines[out->n_lines++];
            l->kind = p[0];
            l->old_no = p[0] == '+' ? 0 : old_no++;
            l->new_no = p[0] == '-' ? 0 : new_no++;
            l->hunk = (int)out->n_hunks - 1;
            l->offset = (size_t)(p + 1 - patch);
            l->len = n - 1;
            h_cur->n_lines++;
            if (l->new_no) {
                h_cur->last_new = l->new_no;
                if (l->new_no > out->max_new) out->max_new = l->new_no;
            }
        } else if (in_hunk && n >= 1 && p[0] == '\\') {
            /* "\ No newline at end of file": belongs to the line before */
        } else {
            in_hunk = 0;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
oom:
    linemap_free(out);
    err_set(err, errlen, "out of memory mapping the diff's lines");
    return -1;
}

void linemap_free(linemap *m)
{
    if (!m) return;
    free(m->hunks);
    free(m->lines);
    memset(m, 0, sizeof *m);
}

int linemap_hunk_of(const linemap *m, int line)
{
    if (line <= 0) return -1;
    size_t lo = 0, hi = m->n_hunks;
    while (lo < hi) { /* first hunk whose last_new >= line */
        size_t mid = lo + (hi - lo) / 2;
        if (m->hunks[mid].last_new < line) lo = mid + 1;
        else hi = mid;
    }
    if (lo < m->n_hunks && m->hunks[lo].first_new <= line && line <= m->hunks[lo].last_new) return (int)lo;
    for (size_t i = 0; i < m->n_hunks; i++) /* hunks out of order: look at all */
        if (m->hunks[i].first_new <= line && line <= m->hunks[i].last_new) return (int)i;
    return -1;
}

int linemap_commentable(const linemap *m, int line) { return linemap_hunk_of(m, line) >= 0; }

const linemap_line *linemap_right_line(const linemap *m, int line)
{
    int h = linemap_hunk_of(m, line);
    if (h < 0) return NULL;
    const linemap_hunk *hk = &m->hunks[h];
    for (size_t i = hk->first_line; i < hk->first_line + hk->n_lines; i++)
        if (m->lines[i].new_no == line) return &m->lines[i];
    return NULL;
}

static int accepted(const linemap *m, int line, linemap_accept_fn accept, void *user)
{
    return line > 0 && linemap_commentable(m, line) && (!accept || accept(user, line));
}

int linemap_anchor(const linemap *m, int line, int max_distance, linemap_accept_fn accept, void *user)
{
    if (line <= 0 || max_distance < 0) return 0;
    int h = linemap_hunk_of(m, line);
    if (h < 0) {
        /* the hunk the line borders: the nearest one within max_distance */
        int best = -1, best_d = max_distance + 1;
        for (size_t i = 0; i < m->n_hunks; i++) {
            const linemap_hunk *hk = &m->hunks[i];
            if (hk->last_new < hk->first_new) continue;
            int d = line < hk->first_new ? hk->first_new - line : line - hk->last_new;
            if (d < best_d) {
                best_d = d;
                best = (int)i;
            }
        }
        if (best < 0) return 0;
        h = best;
    }
    const linemap_hunk *hk = &m->hunks[h];
    for (int d = 0; d <= max_distance; d++) {
        int below = line - d, above = line + d;
        if (below >= hk->first_new && below <= hk->last_new && accepted(m, below, accept, user)) return below;
        if (above >= hk->first_new && above <= hk->last_new && accepted(m, above, accept, user)) return above;
    }
    return 0;
}

void linemap_render(const char *patch, size_t len, textbuf *out)
{
    linemap m;
    if (linemap_parse(patch, len, &m, NULL, 0) < 0) {
        out->failed = 1;
        return;
    }
    int width = 1;
    for (int v = m.max_new; v >= 10; v /= 10) width++;
    if (width < 4) width = 4;
    size_t line = 0;
    for (size_t h = 0; h < m.n_hunks; h++) {
        const linemap_hunk *hk = &m.hunks[h];
        textbuf_printf(out, "@@ -%d,%d +%d,%d @@\n", hk->old_start, hk->old_count, hk->new_start, hk->new_count);
        for (line = hk->first_line; line < hk->first_line + hk->n_lines; line++) {
            const linemap_line *l = &m.lines[line];
            if (l->new_no)
                textbuf_printf(out, "%*d %c", width, l->new_no, l->kind);
            else
                textbuf_printf(out, "%*s %c", width, "", l->kind);
            textbuf_add(out, patch + l->offset, l->len);
            textbuf_puts(out, "\n");
        }
    }
    linemap_free(&m);
}
