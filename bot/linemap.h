/*
 * linemap.h - the line map of one file's diff: its hunks, and which lines a
 * review comment may target.
 *
 * A GitHub review comment sits on a line of the diff: with side RIGHT, on a
 * line of the new file that one of the file's hunks shows (an added line or
 * a context line). Anything else is refused with 422, and one bad comment
 * rejects the whole review. linemap_parse reads the unified hunks of a
 * patch (diff_file.patch from libgit2, or the "patch" field of GitHub's PR
 * files API: the same text) and records every hunk with its old and new
 * ranges and every line with its kind and old/new numbers, so callers can:
 *
 *   - show the model each hunk with new-file line numbers (linemap_render),
 *   - check a line (linemap_commentable) and the hunk it is in,
 *   - move a cited line that is just outside a hunk onto it (linemap_anchor).
 *
 * The new-side lines of a hunk are contiguous (each is context or added), so
 * the commentable set of a hunk is the range of new numbers its lines cover.
 * A patch cut short by a size cap simply has fewer lines in its last hunk:
 * the map records what is there, never what the header promises.
 */
#ifndef PRBOT_LINEMAP_H
#define PRBOT_LINEMAP_H

#include <stddef.h>

#include "textbuf.h"

typedef struct {
    int old_start, old_count, new_start, new_count; /* from the @@ header */
    int first_new, last_new; /* new-side lines actually present; last_new < first_new: none */
    size_t first_line, n_lines; /* into linemap.lines */
} linemap_hunk;

typedef struct {
    char kind;          /* '+' added, '-' deleted, ' ' context */
    int old_no, new_no; /* 0 when the line has no number on that side */
    int hunk;           /* index into linemap.hunks */
    size_t offset, len; /* the line's text in the patch, without the prefix and newline */
} linemap_line;

typedef struct {
    linemap_hunk *hunks;
    size_t n_hunks;
    linemap_line *lines;
    size_t n_lines;
    int max_new; /* highest new-side line number present; 0 if none */
} linemap;

/* Parses patch[0..len). Text before the first "@@" and malformed lines are
 * ignored; returns 0, or -1 when out of memory (err set). */
int linemap_parse(const char *patch, size_t len, linemap *out, char *err, size_t errlen);
void linemap_free(linemap *m);

/* The hunk whose new-side lines include `line`, or -1. */
int linemap_hunk_of(const linemap *m, int line);
/* 1 when a RIGHT-side comment may sit on new line `line`. */
int linemap_commentable(const linemap *m, int line);
/* The entry for new line `line` (added or context), or NULL. */
const linemap_line *linemap_right_line(const linemap *m, int line);

/* Optional extra condition on a target line (e.g. "also commentable in the
 * whole PR's diff" for an incremental review). */
typedef int (*linemap_accept_fn)(void *user, int line);

/* The nearest commentable line to `line` within max_distance lines, in the
 * hunk that line is in or borders (a line inside a hunk is itself the
 * answer when accepted). Ties go to the lower line. Returns the line, or 0
 * when none qualifies. */
int linemap_anchor(const linemap *m, int line, int max_distance, linemap_accept_fn accept, void *user);

/* Appends the hunks of patch[0..len) with new-file line numbers, one line
 * per diff line: "  12 +text", "  13  text", "     -text" (deleted lines have
 * no new number), each hunk after its "@@ ... @@" header. */
void linemap_render(const char *patch, size_t len, textbuf *out);

#endif
