/*
 * diff.h - the changes of a pull request, as a list of files with hunks.
 *
 * diff_collect opens a checkout with libgit2 and diffs merge-base(base, head)
 * against head with rename detection. Every changed file is recorded, also
 * the ones we do not show the model: those carry a skip_reason ("binary",
 * "lock file", "generated (.gitattributes linguist-generated)", "excluded by
 * --exclude GLOB", ...) so the comment can list them. The same diff_result
 * can be filled from GitHub's PR files API (diff_result_add_file +
 * diff_result_apply_filters) when the checkout lacks the base commit.
 */
#ifndef PRBOT_DIFF_H
#define PRBOT_DIFF_H

#include <stddef.h>

#include "errors.h"

/* Paths longer than this are skipped unmatched ("path longer than ..."): no
 * system can check them out, and every glob and attribute match is then
 * bounded by the pattern's length times this. */
#define DIFF_MAX_PATH 4096

typedef enum { DIFF_ADDED, DIFF_MODIFIED, DIFF_DELETED, DIFF_RENAMED, DIFF_COPIED, DIFF_TYPECHANGE } diff_status;

typedef struct {
    char *path;     /* new path (old path for deletions) */
    char *old_path; /* set for renames and copies, else NULL */
    diff_status status;
    int additions, deletions;
    char *patch;      /* unified hunks starting at the first "@@", NUL-terminated; NULL if skipped or empty */
    size_t patch_len;
    int patch_truncated; /* cut at the per-file or total cap: the tail of the patch is missing */
    char *skip_reason;   /* NULL = shown to the model; else why not (malloc'ed) */
    char *note;          /* extra remark for the comment, e.g. "hunks truncated: over token budget" */
    int not_shown;       /* skip_reason is a budget or cap (or "unchanged since the last review"), not a filter;
                            set by diff_file_set_not_shown */
} diff_file;

typedef struct {
    diff_file *files;
    size_t n_files, cap;
    size_t total_patch_bytes; /* bytes of patch text kept in memory */
    int total_truncated;      /* the total cap was reached: later patches were not loaded */
    char base_sha[41], head_sha[41], merge_base_sha[41];
} diff_result;

typedef struct {
    const char *const *include; /* if any: only paths matching one of these */
    size_t n_include;
    const char *const *exclude; /* paths matching any of these are skipped */
    size_t n_exclude;
    size_t max_file_bytes;  /* patch text kept per file; 0 = 256 KiB */
    size_t max_total_bytes; /* patch text kept in total; 0 = 8 MiB */
} diff_options;

/* Diffs merge-base(base, head)..head in the repository at repo_dir (any path
 * inside it). Returns PRBOT_OK; PRBOT_ENOTFOUND when the base or head commit
 * (or the history joining them) is not in the checkout, a shallow clone;
 * PRBOT_ENOREPO when repo_dir is not a git checkout at all (no
 * actions/checkout step); else PRBOT_ERROR. err gets one line. */
int diff_collect(const char *repo_dir, const char *base, const char *head, const diff_options *opt,
                 diff_result *out, char *err, size_t errlen);
void diff_result_free(diff_result *r);

/* The default base for a local review: HEAD's upstream branch if it has one,
 * else the first of origin/main, main, origin/master, master that resolves.
 * Writes the rev name to out. Returns 0 or -1. */
int diff_default_base(const char *repo_dir, char *out, size_t cap, char *err, size_t errlen);

/* 1 when commit `ancestor` is an ancestor of (or equal to) `descendant` in
 * the repository at repo_dir, 0 when it is not or is not in the checkout
 * (a force-push leaves the old head unreachable), -1 on other errors. */
int diff_is_ancestor(const char *repo_dir, const char *ancestor, const char *descendant, char *err, size_t errlen);

/* Appends a file (for the PR files API fallback); patch may be NULL. The
 * patch is copied and capped like diff_collect's. Returns 0 or -1. */
int diff_result_add_file(diff_result *r, const char *path, const char *old_path, diff_status status,
                         int additions, int deletions, const char *patch, const diff_options *opt);
/* Sets skip_reason on files excluded by name (lock/vendored/minified files,
 * --include/--exclude) that have none yet. Returns 0 or -1 (out of memory). */
int diff_result_apply_filters(diff_result *r, const diff_options *opt);

/* 1 when patch[0..len) has a line of the file (context, added or removed),
 * not only hunk headers: a patch cut to its headers shows the model nothing. */
int diff_patch_has_content(const char *patch, size_t len);
/* Why a path is skipped by default (lock file, vendored, minified), or NULL. */
const char *diff_default_skip_reason(const char *path);
/* The reason a .gitattributes with this text at the repository root gives
 * to skip path (linguist-generated, linguist-vendored, -diff), or NULL: the
 * parser and matcher diff_collect applies to the base commit's attributes,
 * for tests and fuzzing. */
const char *diff_attr_check(const char *attributes, size_t len, const char *path);
/* fnmatch-style glob on a path: '*' and '?' stay within one path component,
 * "**" matches any number of components, a pattern without '/' matches the
 * base name at any depth. Returns 1 on a match. */
int diff_glob_match(const char *glob, const char *path);
const char *diff_status_name(diff_status s);
/* Sets (replaces) a file's skip_reason; returns 0 or -1. */
int diff_file_set_skip(diff_file *f, const char *reason);
/* Marks a file not shown: a size cap, the token budget or an incremental
 * review left none of its patch for the model. The reason says which; the
 * comment and review.json list the file as "not shown", never as reviewed
 * or skipped. Every such path calls this, so none has to recognise another's
 * reason text. Returns 0 or -1. */
int diff_file_set_not_shown(diff_file *f, const char *reason);
int diff_file_set_note(diff_file *f, const char *note);

#endif
