/*
 * diff.c - a pull request's changes from a git checkout, with libgit2.
 *
 * How it works: resolve base and head to commits, take their merge base (what
 * GitHub's "Files changed" shows), diff the two trees, run rename detection,
 * then walk the deltas one by one. For each file we first decide whether the
 * model should see it at all: by name (lock files, vendored directories,
 * minified bundles, --include/--exclude globs) and by .gitattributes as of the
 * base commit (linguist-generated, linguist-vendored, -diff; see below for
 * why not the head's). Only files we
 * keep get their patch text built, hunk by hunk, and only up to a per-file and
 * a total byte cap, so a PR with a million changed lines costs a few MiB.
 *
 * A missing base commit (a shallow `actions/checkout`) is reported as
 * PRBOT_ENOTFOUND and a directory that is no checkout as PRBOT_ENOREPO
 * (errors.h), because the caller can recover from both by asking GitHub's PR
 * files API instead.
 */
#include "diff.h"

#include <git2.h>
#include <git2/sys/repository.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "sha256.h"
#include "textbuf.h"

#define DEFAULT_MAX_FILE_BYTES ((size_t)256 * 1024)
#define DEFAULT_MAX_TOTAL_BYTES ((size_t)8 * 1024 * 1024)

static const char *git_last_message(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown libgit2 error";
}

const char *diff_status_name(diff_status s)
{
    switch (s) {
    case DIFF_ADDED: return "added";
    case DIFF_MODIFIED: return "modified";
    case DIFF_DELETED: return "deleted";
    case DIFF_RENAMED: return "renamed";
    case DIFF_COPIED: return "copied";
    case DIFF_TYPECHANGE: return "type changed";
    }
    return "changed";
}

/* ---- glob matching ----------------------------------------------------
 *
 * A glob is compiled into tokens and run as an NFA over the path: the list
 * of tokens still alive is advanced one path byte at a time, so a match
 * costs O(tokens x path bytes) whatever the glob (a backtracking matcher
 * takes exponential time on globs like "*a*a*a*a*a*b" against a long path).
 * Globs are at most GLOB_MAX bytes and paths at most DIFF_MAX_PATH (longer
 * paths are skipped before any matching): at most 4M steps per match. Most
 * globs begin or end with literal text ("*.pb.go", "vendor/" and a "**"),
 * which is compared first, so most paths are turned down in a few compares. */

#define GLOB_MAX 1024

typedef enum {
    GT_CHAR,       /* one literal byte */
    GT_ANY,        /* '?': one byte but '/' */
    GT_CLASS,      /* '[...]': one byte of the set, never '/' */
    GT_STAR,       /* '*': any run of bytes without '/' */
    GT_GLOBSTAR,   /* '**': any run of bytes */
    GT_DIRS_ENTER, /* '**' + '/': nothing, or (next token) any run ending in '/' */
    GT_DIRS_LOOP   /* the run of whole components after GT_DIRS_ENTER */
} glob_token_kind;

typedef struct {
    unsigned char kind, c;
    unsigned char set[32]; /* GT_CLASS: bit per byte value */
} glob_token;

typedef struct {
    glob_token *tok;
    size_t n;
    size_t prefix, suffix; /* how many tokens at either end are GT_CHAR */
    unsigned *cur, *next;  /* the alive tokens (n + 1 is "matched") */
    unsigned *mark;        /* per token: the step it was last added at */
} glob_program;

/* Parses a bracket expression at *pp (at '[') into set; advances *pp past
 * ']'. Returns 0, or -1 when it is malformed (then '[' is a literal). */
static int parse_bracket(const char **pp, unsigned char *set)
{
    const char *p = *pp + 1;
    int negate = 0;
    memset(set, 0, 32);
    if (*p == '!' || *p == '^') {
        negate = 1;
        p++;
    }
    const char *start = p;
    while (*p && (*p != ']' || p == start)) {
        unsigned char lo = (unsigned char)*p, hi = lo;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            hi = (unsigned char)p[2];
            p += 2;
        }
        for (unsigned c = lo; c <= hi; c++) set[c >> 3] |= (unsigned char)(1u << (c & 7));
        p++;
    }
    if (*p != ']') return -1;
    if (negate)
        for (int i = 0; i < 32; i++) set[i] = (unsigned char)~set[i];
    *pp = p + 1;
    return 0;
}

static void glob_free(glob_program *g)
{
    free(g->tok);
    free(g->cur);
    free(g->mark);
    memset(g, 0, sizeof *g);
}

/* Compiles glob (at most GLOB_MAX bytes). Returns 0 or -1 (too long, no memory). */
static int glob_compile(glob_program *g, const char *glob)
{
    size_t len = strlen(glob);
    memset(g, 0, sizeof *g);
    if (len > GLOB_MAX) return -1;
    g->tok = malloc((len + 1) * sizeof *g->tok);
    g->cur = malloc(2 * (len + 2) * sizeof *g->cur);
    g->mark = malloc((len + 2) * sizeof *g->mark);
    if (!g->tok || !g->cur || !g->mark) {
        glob_free(g);
        return -1;
    }
    g->next = g->cur + len + 2;
    for (const char *p = glob; *p;) {
        glob_token *t = &g->tok[g->n++];
        t->c = 0;
        if (p[0] == '*' && p[1] == '*') {
            while (*p == '*') p++;
            t->kind = GT_GLOBSTAR;
            if (*p == '/') { /* two tokens for three bytes at least */
                t->kind = GT_DIRS_ENTER;
                g->tok[g->n++].kind = GT_DIRS_LOOP;
                p++;
            }
        } else if (*p == '*') {
            t->kind = GT_STAR;
            p++;
        } else if (*p == '?') {
            t->kind = GT_ANY;
            p++;
        } else if (*p == '[' && parse_bracket(&p, t->set) == 0) {
            t->kind = GT_CLASS;
        } else {
            if (*p == '\\' && p[1]) p++;
            t->kind = GT_CHAR;
            t->c = (unsigned char)*p++;
        }
    }
    while (g->prefix < g->n && g->tok[g->prefix].kind == GT_CHAR) g->prefix++;
    while (g->suffix < g->n - g->prefix && g->tok[g->n - 1 - g->suffix].kind == GT_CHAR) g->suffix++;
    return 0;
}

/* Adds token i to the alive list of step `step`, with what it reaches
 * without consuming a byte: a star may match nothing, "**" + "/" may match
 * nothing or go on to its loop. These moves only go forward (the recursion
 * is at most GLOB_MAX deep). */
static void glob_add(glob_program *g, unsigned *list, size_t *len, size_t i, unsigned step)
{
    if (g->mark[i] == step) return;
    g->mark[i] = step;
    list[(*len)++] = (unsigned)i;
    if (i == g->n) return;
    int k = g->tok[i].kind;
    if (k == GT_STAR || k == GT_GLOBSTAR) glob_add(g, list, len, i + 1, step);
    if (k == GT_DIRS_ENTER) {
        glob_add(g, list, len, i + 1, step);
        glob_add(g, list, len, i + 2, step);
    }
}

/* 1 when the compiled glob matches all of s[0..n). */
static int glob_run(glob_program *g, const char *s, size_t n)
{
    const glob_token *tok = g->tok;
    if (g->prefix == g->n) { /* no wildcard: the glob is the text */
        if (n != g->n) return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] != tok[i].c) return 0;
        return 1;
    }
    if (n < g->prefix + g->suffix) return 0;
    for (size_t i = 0; i < g->prefix; i++)
        if ((unsigned char)s[i] != tok[i].c) return 0;
    for (size_t i = 0; i < g->suffix; i++)
        if ((unsigned char)s[n - g->suffix + i] != tok[g->n - g->suffix + i].c) return 0;
    memset(g->mark, 0, (g->n + 1) * sizeof *g->mark);
    unsigned *cur = g->cur, *next = g->next, step = 1;
    size_t n_cur = 0, n_next;
    glob_add(g, cur, &n_cur, 0, step);
    for (size_t k = 0; k < n && n_cur; k++) {
        unsigned char c = (unsigned char)s[k];
        n_next = 0;
        step++;
        for (size_t j = 0; j < n_cur; j++) {
            size_t i = cur[j];
            if (i == g->n) continue;
            const glob_token *t = &tok[i];
            switch (t->kind) {
            case GT_CHAR:
                if (c == t->c) glob_add(g, next, &n_next, i + 1, step);
                break;
            case GT_ANY:
                if (c != '/') glob_add(g, next, &n_next, i + 1, step);
                break;
            case GT_CLASS:
                if (c != '/' && (t->set[c >> 3] >> (c & 7) & 1)) glob_add(g, next, &n_next, i + 1, step);
                break;
            case GT_STAR:
                if (c != '/') glob_add(g, next, &n_next, i, step);
                break;
            case GT_GLOBSTAR: glob_add(g, next, &n_next, i, step); break;
            case GT_DIRS_ENTER: break;
            case GT_DIRS_LOOP:
                glob_add(g, next, &n_next, i, step);
                if (c == '/') glob_add(g, next, &n_next, i + 1, step);
                break;
            }
        }
        unsigned *tmp = cur;
        cur = next;
        next = tmp;
        n_cur = n_next;
    }
    return n_cur && g->mark[g->n] == step;
}

/* One glob against one path or component, compiled for the call. */
static int glob_match_n(const char *glob, const char *s, size_t n)
{
    glob_program g;
    if (glob_compile(&g, glob) < 0) return 0;
    int m = glob_run(&g, s, n);
    glob_free(&g);
    return m;
}

int diff_glob_match(const char *glob, const char *path)
{
    if (!glob || !*glob || !path) return 0;
    while (glob[0] == '.' && glob[1] == '/') glob += 2;
    if (*glob == '/') glob++; /* anchored at the repository root */
    size_t n = strlen(glob);
    if (n && glob[n - 1] == '/') {
        /* "dir/" : everything below that directory (at any depth if "dir" has no slash) */
        char buf[GLOB_MAX + 8];
        int anywhere = memchr(glob, '/', n - 1) == NULL;
        if (n + 6 > GLOB_MAX) return 0;
        snprintf(buf, sizeof buf, "%s%s**", anywhere ? "**/" : "", glob);
        return glob_match_n(buf, path, strlen(path));
    }
    if (strchr(glob, '/')) return glob_match_n(glob, path, strlen(path));
    /* No slash: match any single path component (base name or directory). */
    glob_program g;
    if (glob_compile(&g, glob) < 0) return 0;
    int m = 0;
    for (const char *comp = path; !m;) {
        const char *slash = strchr(comp, '/');
        size_t len = slash ? (size_t)(slash - comp) : strlen(comp);
        m = glob_run(&g, comp, len);
        if (!slash) break;
        comp = slash + 1;
    }
    glob_free(&g);
    return m;
}

/* ---- default excludes by name ---------------------------------------- */

static const char *const lock_file_names[] = {
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",  "Cargo.lock",
    "poetry.lock",       "Pipfile.lock",        "uv.lock",   "Gemfile.lock",   "composer.lock", "go.sum",
    "mix.lock",          "pubspec.lock",        "Podfile.lock", "flake.lock",  "packages.lock.json",
    "gradle.lockfile",   "Package.resolved",
};

static const char *const vendored_dirs[] = {"vendor", "third_party", "third-party", "node_modules", "bower_components"};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int has_directory_component(const char *path, const char *dir)
{
    size_t m = strlen(dir);
    for (const char *p = path; (p = strstr(p, dir)) != NULL; p++) {
        int at_start = p == path || p[-1] == '/';
        if (at_start && p[m] == '/') return 1;
    }
    return 0;
}

const char *diff_default_skip_reason(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof lock_file_names / sizeof lock_file_names[0]; i++)
        if (!strcmp(base, lock_file_names[i])) return "lock file";
    if (ends_with(base, ".lock") || ends_with(base, ".lockb")) return "lock file";
    for (size_t i = 0; i < sizeof vendored_dirs / sizeof vendored_dirs[0]; i++)
        if (has_directory_component(path, vendored_dirs[i])) return "vendored";
    if (ends_with(base, ".min.js") || ends_with(base, ".min.css") || ends_with(base, ".min.mjs")) return "minified";
    if (ends_with(base, ".map")) return "source map";
    return NULL;
}

/* The reason given by user globs, written to buf, or NULL to keep the file. */
static const char *user_glob_reason(const char *path, const diff_options *opt, char *buf, size_t cap)
{
    if (!opt) return NULL;
    for (size_t i = 0; i < opt->n_exclude; i++)
        if (diff_glob_match(opt->exclude[i], path)) {
            snprintf(buf, cap, "excluded by --exclude %s", opt->exclude[i]);
            return buf;
        }
    if (opt->n_include) {
        for (size_t i = 0; i < opt->n_include; i++)
            if (diff_glob_match(opt->include[i], path)) return NULL;
        snprintf(buf, cap, "not matched by --include");
        return buf;
    }
    return NULL;
}

/* Why a path is skipped before its content is looked at (too long, user
 * globs, default excludes), written to buf or static; NULL to go on. */
static const char *name_skip_reason(const char *path, const diff_options *opt, char *buf, size_t cap)
{
    if (strlen(path) > DIFF_MAX_PATH) return "path longer than 4096 bytes";
    const char *reason = user_glob_reason(path, opt, buf, cap);
    return reason ? reason : diff_default_skip_reason(path);
}

/* ---- diff_result building ---------------------------------------------- */

/* *slot = a copy of s; the old string is freed only once the copy exists. */
static int replace_string(char **slot, const char *s)
{
    char *copy = strdup(s);
    if (!copy) return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

int diff_file_set_skip(diff_file *f, const char *reason) { return replace_string(&f->skip_reason, reason); }

int diff_file_set_not_shown(diff_file *f, const char *reason)
{
    if (replace_string(&f->skip_reason, reason) < 0) return -1;
    f->not_shown = 1;
    return 0;
}

int diff_file_set_note(diff_file *f, const char *note) { return replace_string(&f->note, note); }

static diff_file *result_append(diff_result *r)
{
    if (array_reserve((void **)&r->files, &r->cap, r->n_files, sizeof *r->files)) return NULL;
    diff_file *f = &r->files[r->n_files++];
    memset(f, 0, sizeof *f);
    return f;
}

static void file_free(diff_file *f)
{
    free(f->path);
    free(f->old_path);
    free(f->patch);
    free(f->skip_reason);
    free(f->note);
}

void diff_result_free(diff_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_files; i++) file_free(&r->files[i]);
    free(r->files);
    memset(r, 0, sizeof *r);
}

static size_t max_file_bytes(const diff_options *opt)
{
    return opt && opt->max_file_bytes ? opt->max_file_bytes : DEFAULT_MAX_FILE_BYTES;
}

static size_t max_total_bytes(const diff_options *opt)
{
    return opt && opt->max_total_bytes ? opt->max_total_bytes : DEFAULT_MAX_TOTAL_BYTES;
}

/* Bytes of the patch we may still keep for one file, given both caps. */
static size_t patch_allowance(const diff_result *r, const diff_options *opt)
{
    size_t total = max_total_bytes(opt);
    size_t left = r->total_patch_bytes < total ? total - r->total_patch_bytes : 0;
    size_t per_file = max_file_bytes(opt);
    return left < per_file ? left : per_file;
}

int diff_patch_has_content(const char *patch, size_t len)
{
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(patch + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - patch) : len;
        if (end > i && patch[i] != '\\' && !(end - i >= 2 && patch[i] == '@' && patch[i + 1] == '@')) return 1;
        i = end + 1;
    }
    return 0;
}

/* Why a file none of whose patch lines fit in `allowance` bytes is not shown. */
static const char *not_shown_reason(size_t allowance, const diff_options *opt)
{
    return allowance < max_file_bytes(opt) ? "its first line is over what is left of the total size cap"
                                           : "its first line is over the per-file size cap";
}

/* Length of the longest prefix of text[0..len) that ends at a line end and
 * is at most cap bytes (0 if the first line is already longer). */
static size_t prefix_at_line_end(const char *text, size_t len, size_t cap)
{
    if (len <= cap) return len;
    size_t n = cap;
    while (n > 0 && text[n - 1] != '\n') n--;
    return n;
}

int diff_result_add_file(diff_result *r, const char *path, const char *old_path, diff_status status,
                         int additions, int deletions, const char *patch, const diff_options *opt)
{
    diff_file *f = result_append(r);
    if (!f) return -1;
    f->status = status;
    f->additions = additions;
    f->deletions = deletions;
    f->path = strdup(path);
    if (!f->path) return -1;
    if (old_path && !(f->old_path = strdup(old_path))) return -1;
    if (!patch || !*patch) return 0;
    size_t len = strlen(patch), allowance = patch_allowance(r, opt);
    size_t keep = prefix_at_line_end(patch, len, allowance);
    if (keep < len) {
        f->patch_truncated = 1;
        if (allowance < max_file_bytes(opt)) r->total_truncated = 1;
    }
    if (keep < len && !diff_patch_has_content(patch, keep)) {
        char buf[1100];
        const char *reason = name_skip_reason(path, opt, buf, sizeof buf);
        return reason ? diff_file_set_skip(f, reason) : diff_file_set_not_shown(f, not_shown_reason(allowance, opt));
    }
    if (!(f->patch = malloc(keep + 1))) return -1;
    memcpy(f->patch, patch, keep);
    f->patch[keep] = 0;
    f->patch_len = keep;
    r->total_patch_bytes += keep;
    return 0;
}

int diff_result_apply_filters(diff_result *r, const diff_options *opt)
{
    char buf[1100];
    for (size_t i = 0; i < r->n_files; i++) {
        diff_file *f = &r->files[i];
        if (f->skip_reason) continue;
        const char *reason = name_skip_reason(f->path, opt, buf, sizeof buf);
        if (reason && diff_file_set_skip(f, reason) < 0) return -1;
    }
    return 0;
}

/* ---- libgit2 ----------------------------------------------------------- */

/* A full or abbreviated commit SHA (7 to 40 hex digits). */
static int is_hex_sha(const char *s)
{
    size_t n = strlen(s);
    return n >= 7 && n <= 40 && hex_is(s, n);
}

static int resolve_commit(git_repository *repo, const char *rev, git_commit **out)
{
    git_object *obj = NULL;
    int rc = git_revparse_single(&obj, repo, rev);
    if (rc < 0) return rc;
    rc = git_object_peel((git_object **)out, obj, GIT_OBJECT_COMMIT);
    git_object_free(obj);
    return rc;
}

/* ---- .gitattributes, as of the base commit -----------------------------
 *
 * Which files the model sees must not be up to the pull request, so the
 * attributes that skip files come from the base commit (the trusted side),
 * never from the head commit, the index or the working tree, which a PR
 * controls in a pull_request checkout. We read them ourselves: the
 * .gitattributes of each directory along the path in the base tree (deeper
 * files override shallower ones, later lines earlier ones, as in git), then
 * $GIT_DIR/info/attributes (local, highest precedence), and match their
 * patterns with the glob matcher above, so a lookup costs O(rules x pattern
 * x path). Only linguist-generated, linguist-vendored and diff (-diff, or
 * the `binary` macro) matter; `[attr]` macro definitions are ignored. A
 * pattern without '/' matches the base name, one with '/' the path relative
 * to its .gitattributes; patterns ending in '/' match directories only and
 * so no file. Parsed files are cached by blob id. A file over
 * ATTRS_MAX_BYTES is ignored (attributes only ever skip files, so ignoring
 * one shows more), which bounds a lookup by 64 KiB of patterns per
 * directory along the path times DIFF_MAX_PATH. */

#define ATTRS_MAX_BYTES ((size_t)64 << 10) /* bigger .gitattributes files are ignored: they can only hide files */

enum { ATTR_NONE, ATTR_TRUE, ATTR_FALSE, ATTR_UNSPECIFIED, ATTR_VALUE }; /* what a line says */
enum { A_GENERATED, A_VENDORED, A_DIFF, A_COUNT };

typedef struct {
    char *pattern;
    int has_slash; /* match the relative path, else the base name */
    unsigned char state[A_COUNT];
} attr_rule;

typedef struct {
    git_oid id; /* blob id; zero for info/attributes */
    attr_rule *rules;
    size_t n;
} attr_file;

typedef struct {
    git_repository *repo;
    git_tree *base; /* NULL: no base tree, no attributes */
    attr_file *files;
    size_t n_files;
    attr_file info; /* $GIT_DIR/info/attributes */
} attr_reader;

static void attr_file_free(attr_file *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->rules[i].pattern);
    free(f->rules);
}

static void attr_reader_free(attr_reader *a)
{
    for (size_t i = 0; i < a->n_files; i++) attr_file_free(&a->files[i]);
    free(a->files);
    attr_file_free(&a->info);
    git_tree_free(a->base);
}

/* Unquotes the C-style quoted pattern at s (at '"') in place, NUL-terminated
 * at s; returns what follows the closing quote. */
static char *unquote_in_place(char *s)
{
    char *out = s, *p = s + 1;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *out++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
        } else {
            *out++ = *p;
        }
    }
    char *rest = *p ? p + 1 : p;
    *out = 0;
    return rest;
}

static void attr_assign(attr_rule *r, const char *name, size_t len, int state)
{
    static const char *const names[A_COUNT] = {"linguist-generated", "linguist-vendored", "diff"};
    if (len == 6 && !memcmp(name, "binary", 6) && state == ATTR_TRUE) { /* the built-in macro: -diff -merge -text */
        r->state[A_DIFF] = ATTR_FALSE;
        return;
    }
    for (int a = 0; a < A_COUNT; a++)
        if (strlen(names[a]) == len && !memcmp(name, names[a], len)) r->state[a] = (unsigned char)state;
}

/* Parses one line into r; returns 1 when it is a rule we use. */
static int attr_parse_line(char *line, attr_rule *r)
{
    memset(r, 0, sizeof *r);
    while (*line == ' ' || *line == '\t') line++;
    if (!*line || *line == '#' || *line == '!' || !strncmp(line, "[attr]", 6)) return 0;
    char *pat = line;
    if (*line == '"') {
        line = unquote_in_place(line);
    } else {
        while (*line && *line != ' ' && *line != '\t') line++;
        if (*line) *line++ = 0;
    }
    size_t plen = strlen(pat);
    if (!plen || pat[plen - 1] == '/') return 0;
    int used = 0;
    while (*line) {
        while (*line == ' ' || *line == '\t') line++;
        char *name = line;
        while (*line && *line != ' ' && *line != '\t') line++;
        size_t len = (size_t)(line - name);
        if (!len) break;
        int state = ATTR_TRUE;
        if (*name == '-' || *name == '!') {
            state = *name == '-' ? ATTR_FALSE : ATTR_UNSPECIFIED;
            name++, len--;
        }
        const char *eq = memchr(name, '=', len);
        if (eq && state == ATTR_TRUE) {
            size_t vlen = len - (size_t)(eq - name) - 1;
            state = vlen == 4 && !memcmp(eq + 1, "true", 4) ? ATTR_TRUE
                    : vlen == 5 && !memcmp(eq + 1, "false", 5) ? ATTR_FALSE
                                                               : ATTR_VALUE;
            len = (size_t)(eq - name);
        }
        attr_assign(r, name, len, state);
    }
    for (int a = 0; a < A_COUNT; a++) used |= r->state[a] != ATTR_NONE;
    if (!used) return 0;
    if (*pat == '/') pat++;
    r->has_slash = strchr(pat, '/') != NULL;
    r->pattern = strdup(pat);
    return r->pattern ? 1 : -1;
}

/* Parses a .gitattributes text into f. Returns 0 or -1 (out of memory). */
static int attr_parse(attr_file *f, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    int rc = 0;
    for (char *line = copy; line && rc == 0;) {
        char *nl = memchr(line, '\n', len - (size_t)(line - copy));
        if (nl) *nl = 0;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[n - 1] = 0;
        attr_rule r;
        int used = attr_parse_line(line, &r);
        if (used < 0) rc = -1;
        if (used > 0) {
            attr_rule *rules = realloc(f->rules, (f->n + 1) * sizeof *rules);
            if (!rules) {
                free(r.pattern);
                rc = -1;
            } else {
                f->rules = rules;
                f->rules[f->n++] = r;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    return rc;
}

static void attr_reader_init(attr_reader *a, git_repository *repo, git_commit *base)
{
    memset(a, 0, sizeof *a);
    a->repo = repo;
    if (base && git_commit_tree(&a->base, base) < 0) a->base = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%sinfo/attributes", git_repository_path(repo));
    FILE *fp = fopen(path, "rb");
    if (fp) {
        char *text = malloc(ATTRS_MAX_BYTES);
        size_t n = text ? fread(text, 1, ATTRS_MAX_BYTES, fp) : 0;
        if (text && n < ATTRS_MAX_BYTES) attr_parse(&a->info, text, n);
        free(text);
        fclose(fp);
    }
}

/* The parsed .gitattributes of a tree, or NULL when it has none (or it is unusable). */
static const attr_file *attr_file_of_tree(attr_reader *a, const git_tree *tree)
{
    const git_tree_entry *e = git_tree_entry_byname(tree, ".gitattributes");
    if (!e || git_tree_entry_type(e) != GIT_OBJECT_BLOB) return NULL;
    const git_oid *id = git_tree_entry_id(e);
    for (size_t i = 0; i < a->n_files; i++)
        if (git_oid_equal(&a->files[i].id, id)) return &a->files[i];
    git_blob *blob = NULL;
    if (git_blob_lookup(&blob, a->repo, id) < 0) return NULL;
    attr_file f = {0};
    git_oid_cpy(&f.id, id);
    size_t size = (size_t)git_blob_rawsize(blob);
    int rc = size <= ATTRS_MAX_BYTES ? attr_parse(&f, git_blob_rawcontent(blob), size) : 0;
    git_blob_free(blob);
    attr_file *files = rc == 0 ? realloc(a->files, (a->n_files + 1) * sizeof *files) : NULL;
    if (!files) {
        attr_file_free(&f);
        return NULL;
    }
    a->files = files;
    a->files[a->n_files] = f;
    return &a->files[a->n_files++];
}

/* Applies the rules of f, whose directory is path[0..dir_len) (0: the root), to state. */
static void attr_apply(const attr_file *f, const char *path, size_t dir_len, unsigned char *state)
{
    const char *rel = path + (dir_len ? dir_len + 1 : 0);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    for (size_t i = 0; i < f->n; i++) {
        const attr_rule *r = &f->rules[i];
        const char *s = r->has_slash ? rel : base;
        if (!glob_match_n(r->pattern, s, strlen(s))) continue;
        for (int k = 0; k < A_COUNT; k++)
            if (r->state[k] != ATTR_NONE) state[k] = r->state[k];
    }
}

/* The reason attribute states give to skip a file, or NULL. */
static const char *attr_reason(const unsigned char *state)
{
    if (state[A_GENERATED] == ATTR_TRUE) return "generated (linguist-generated in .gitattributes)";
    if (state[A_VENDORED] == ATTR_TRUE) return "vendored (linguist-vendored in .gitattributes)";
    if (state[A_DIFF] == ATTR_FALSE) return "marked -diff in .gitattributes";
    return NULL;
}

const char *diff_attr_check(const char *attributes, size_t len, const char *path)
{
    unsigned char state[A_COUNT] = {ATTR_UNSPECIFIED, ATTR_UNSPECIFIED, ATTR_UNSPECIFIED};
    attr_file f = {0};
    const char *reason = NULL;
    if (strlen(path) <= DIFF_MAX_PATH && attr_parse(&f, attributes, len) == 0) {
        attr_apply(&f, path, 0, state);
        reason = attr_reason(state);
    }
    attr_file_free(&f);
    return reason;
}

/* The attribute-based reason to skip a path, as of the base commit. */
static const char *attr_skip_reason(attr_reader *a, const char *path)
{
    unsigned char state[A_COUNT] = {ATTR_UNSPECIFIED, ATTR_UNSPECIFIED, ATTR_UNSPECIFIED};
    git_tree *tree = NULL;
    const git_tree *cur = a->base;
    for (const char *p = path; cur;) {
        const attr_file *f = attr_file_of_tree(a, cur);
        if (f) attr_apply(f, path, p == path ? 0 : (size_t)(p - path - 1), state);
        const char *slash = strchr(p, '/');
        if (!slash) break;
        char name[DIFF_MAX_PATH + 1];
        size_t len = (size_t)(slash - p);
        const git_tree_entry *e = NULL;
        if (len < sizeof name) {
            memcpy(name, p, len);
            name[len] = 0;
            e = git_tree_entry_byname(cur, name);
        }
        git_tree *sub = NULL;
        if (!e || git_tree_entry_type(e) != GIT_OBJECT_TREE || git_tree_lookup(&sub, a->repo, git_tree_entry_id(e)) < 0)
            sub = NULL;
        git_tree_free(tree);
        cur = tree = sub;
        p = slash + 1;
    }
    git_tree_free(tree);
    attr_apply(&a->info, path, 0, state);
    return attr_reason(state);
}

static diff_status status_of(git_delta_t t)
{
    switch (t) {
    case GIT_DELTA_ADDED: return DIFF_ADDED;
    case GIT_DELTA_DELETED: return DIFF_DELETED;
    case GIT_DELTA_RENAMED: return DIFF_RENAMED;
    case GIT_DELTA_COPIED: return DIFF_COPIED;
    case GIT_DELTA_TYPECHANGE: return DIFF_TYPECHANGE;
    default: return DIFF_MODIFIED;
    }
}

/* A growable byte buffer that refuses to grow past its limit. */
typedef struct {
    textbuf text;
    size_t limit;
    int full;
} capped_buf;

/* Appends one whole line (or nothing if it would pass the limit). */
static int capped_append(capped_buf *b, const char *s, size_t n)
{
    if (b->full) return 0;
    if (b->text.len + n > b->limit) {
        b->full = 1;
        return 0;
    }
    textbuf_add(&b->text, s, n);
    return b->text.failed ? -1 : 0;
}

static int append_diff_line(capped_buf *b, const git_diff_line *line)
{
    if (line->origin == GIT_DIFF_LINE_CONTEXT_EOFNL || line->origin == GIT_DIFF_LINE_ADD_EOFNL ||
        line->origin == GIT_DIFF_LINE_DEL_EOFNL) {
        static const char eofnl[] = "\\ No newline at end of file\n";
        return capped_append(b, eofnl, sizeof eofnl - 1);
    }
    /* prefix + content (+ newline if the content lacks one) as one unit */
    char small[512];
    size_t n = line->content_len;
    int needs_nl = n == 0 || line->content[n - 1] != '\n';
    size_t total = 1 + n + (size_t)needs_nl;
    char *tmp = total <= sizeof small ? small : malloc(total);
    if (!tmp) return -1;
    tmp[0] = line->origin;
    memcpy(tmp + 1, line->content, n);
    if (needs_nl) tmp[1 + n] = '\n';
    int rc = capped_append(b, tmp, total);
    if (tmp != small) free(tmp);
    return rc;
}

/* Builds the hunks text of a patch within `limit` bytes. */
static int patch_text(git_patch *patch, size_t limit, capped_buf *b)
{
    b->limit = limit;
    size_t n_hunks = git_patch_num_hunks(patch);
    for (size_t h = 0; h < n_hunks && !b->full; h++) {
        const git_diff_hunk *hunk;
        size_t n_lines;
        if (git_patch_get_hunk(&hunk, &n_lines, patch, h) < 0) return -1;
        if (capped_append(b, hunk->header, hunk->header_len) < 0) return -1;
        for (size_t l = 0; l < n_lines && !b->full; l++) {
            const git_diff_line *line;
            if (git_patch_get_line_in_hunk(&line, patch, h, l) < 0) return -1;
            if (append_diff_line(b, line) < 0) return -1;
        }
    }
    return 0;
}

/* Records delta i of the diff into r. */
static int collect_delta(attr_reader *attrs, git_diff *diff, size_t i, const diff_options *opt, diff_result *r,
                         char *err, size_t errlen)
{
    const git_diff_delta *d = git_diff_get_delta(diff, i);
    diff_status status = status_of(d->status);
    const char *path = d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path;
    const char *old_path = (status == DIFF_RENAMED || status == DIFF_COPIED) ? d->old_file.path : NULL;
    char buf[1100];

    const char *reason = name_skip_reason(path, opt, buf, sizeof buf);
    if (!reason) reason = attr_skip_reason(attrs, path);

    git_patch *patch = NULL;
    if (git_patch_from_diff(&patch, diff, i) < 0) {
        err_set(err, errlen, "diff of %s: %s", path, git_last_message());
        return -1;
    }
    size_t ctx_lines, adds = 0, dels = 0;
    if (patch) git_patch_line_stats(&ctx_lines, &adds, &dels, patch);
    if (!reason && (d->flags & GIT_DIFF_FLAG_BINARY)) reason = "binary";

    capped_buf b = {0};
    int rc = 0;
    size_t allowance = patch_allowance(r, opt);
    const char *cap_reason = NULL; /* a size cap left nothing of the patch to show */
    if (!reason && patch && allowance == 0) cap_reason = "the diff is over the total size cap";
    if (!reason && !cap_reason && patch) rc = patch_text(patch, allowance, &b);
    if (rc == 0 && !reason && b.full && !diff_patch_has_content(b.text.data, b.text.len)) {
        cap_reason = not_shown_reason(allowance, opt);
        textbuf_free(&b.text);
    }
    git_patch_free(patch);
    if (rc < 0) {
        free(b.text.data);
        err_set(err, errlen, "diff of %s: %s", path, git_last_message());
        return -1;
    }
    diff_file *f = result_append(r);
    if (!f) {
        free(b.text.data);
        err_set(err, errlen, "out of memory collecting the diff");
        return -1;
    }
    f->status = status;
    f->additions = (int)adds;
    f->deletions = (int)dels;
    f->patch = b.text.data;
    f->patch_len = b.text.len;
    f->patch_truncated = b.full;
    if (b.full && allowance < max_file_bytes(opt)) r->total_truncated = 1;
    r->total_patch_bytes += b.text.len;
    if (!(f->path = strdup(path)) || (old_path && !(f->old_path = strdup(old_path))) ||
        (reason && diff_file_set_skip(f, reason) < 0) || (cap_reason && diff_file_set_not_shown(f, cap_reason) < 0)) {
        err_set(err, errlen, "out of memory collecting the diff");
        return -1;
    }
    return 0;
}

/* Diffs from..to; attributes come from `trusted` (the base commit). */
static int diff_trees(git_repository *repo, git_commit *from, git_commit *to, git_commit *trusted,
                      const diff_options *opt, diff_result *out, char *err, size_t errlen)
{
    attr_reader attrs;
    attr_reader_init(&attrs, repo, trusted);
    git_tree *t_from = NULL, *t_to = NULL;
    git_diff *diff = NULL;
    int rc = -1;
    git_diff_options dopt;
    git_diff_find_options fopt;
    git_diff_options_init(&dopt, GIT_DIFF_OPTIONS_VERSION);
    git_diff_find_options_init(&fopt, GIT_DIFF_FIND_OPTIONS_VERSION);
    fopt.flags = GIT_DIFF_FIND_RENAMES;
    if (git_commit_tree(&t_from, from) < 0 || git_commit_tree(&t_to, to) < 0 ||
        git_diff_tree_to_tree(&diff, repo, t_from, t_to, &dopt) < 0 || git_diff_find_similar(diff, &fopt) < 0) {
        err_set(err, errlen, "diff: %s", git_last_message());
        goto done;
    }
    size_t n = git_diff_num_deltas(diff);
    for (size_t i = 0; i < n; i++)
        if (collect_delta(&attrs, diff, i, opt, out, err, errlen) < 0) goto done;
    rc = 0;
done:
    attr_reader_free(&attrs);
    git_diff_free(diff);
    git_tree_free(t_from);
    git_tree_free(t_to);
    return rc;
}

/* Opens the repository as if bare, with an empty in-memory index: libgit2
 * then never reads the working tree or the index, whose .gitattributes a
 * pull request controls (its diff would otherwise look up diff drivers
 * there for every file). Only objects, refs and $GIT_DIR files are used. */
static int open_repo(git_repository **repo, const char *repo_dir, char *err, size_t errlen)
{
    git_index *index = NULL;
    git_buf gitdir = {0};
    if (git_repository_discover(&gitdir, repo_dir, 0, NULL) < 0) {
        err_set(err, errlen, "%s is not a git repository (%s); pass --repo DIR", repo_dir, git_last_message());
        return -1;
    }
    int rc = git_repository_open_ext(repo, gitdir.ptr, GIT_REPOSITORY_OPEN_BARE | GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    git_buf_dispose(&gitdir);
    if (rc < 0) {
        err_set(err, errlen, "%s: cannot open the repository: %s", repo_dir, git_last_message());
        return -1;
    }
    if (git_index_new(&index) < 0 || git_repository_set_index(*repo, index) < 0) {
        err_set(err, errlen, "%s: %s", repo_dir, git_last_message());
        git_index_free(index);
        git_repository_free(*repo);
        *repo = NULL;
        return -1;
    }
    git_index_free(index);
    return 0;
}

static int resolve_base(git_repository *repo, const char *base, git_commit **out, char *err, size_t errlen)
{
    int rc = resolve_commit(repo, base, out);
    if (rc == 0) return 0;
    if (rc == GIT_ENOTFOUND && (is_hex_sha(base) || git_repository_is_shallow(repo))) {
        err_set(err, errlen,
                "base commit %s is not in this checkout (shallow clone?); use actions/checkout with fetch-depth: 0",
                base);
        return PRBOT_ENOTFOUND;
    }
    err_set(err, errlen, "cannot resolve base '%s': %s; pass --base REV", base, git_last_message());
    return PRBOT_ERROR;
}

int diff_collect(const char *repo_dir, const char *base, const char *head, const diff_options *opt,
                 diff_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    git_libgit2_init();
    git_repository *repo = NULL;
    git_commit *c_base = NULL, *c_head = NULL, *c_merge = NULL;
    int rc = PRBOT_ERROR;
    if (open_repo(&repo, repo_dir, err, errlen) < 0) {
        rc = PRBOT_ENOREPO;
        goto done;
    }
    int hrc = resolve_commit(repo, head, &c_head);
    if (hrc == GIT_ENOTFOUND && is_hex_sha(head)) {
        /* actions/checkout of a pull_request fetches only the merge commit */
        err_set(err, errlen, "head commit %s is not in this checkout; use actions/checkout with fetch-depth: 0",
                head);
        rc = PRBOT_ENOTFOUND;
        goto done;
    }
    if (hrc < 0) {
        err_set(err, errlen, "cannot resolve head '%s': %s; pass --head REV", head, git_last_message());
        goto done;
    }
    if ((rc = resolve_base(repo, base, &c_base, err, errlen)) < 0) goto done;
    rc = PRBOT_ERROR;
    git_oid merge_base;
    int mrc = git_merge_base(&merge_base, repo, git_commit_id(c_base), git_commit_id(c_head));
    if (mrc == GIT_ENOTFOUND && git_repository_is_shallow(repo)) {
        err_set(err, errlen,
                "the history joining base %.12s and head %.12s is not in this shallow checkout; "
                "use actions/checkout with fetch-depth: 0",
                git_oid_tostr_s(git_commit_id(c_base)), git_oid_tostr_s(git_commit_id(c_head)));
        rc = PRBOT_ENOTFOUND;
        goto done;
    }
    if (mrc < 0) {
        err_set(err, errlen, "base '%s' and head '%s' have no common ancestor: %s", base, head, git_last_message());
        goto done;
    }
    if (git_commit_lookup(&c_merge, repo, &merge_base) < 0) {
        err_set(err, errlen, "merge base: %s", git_last_message());
        goto done;
    }
    git_oid_tostr(out->base_sha, sizeof out->base_sha, git_commit_id(c_base));
    git_oid_tostr(out->head_sha, sizeof out->head_sha, git_commit_id(c_head));
    git_oid_tostr(out->merge_base_sha, sizeof out->merge_base_sha, &merge_base);
    rc = diff_trees(repo, c_merge, c_head, c_base, opt, out, err, errlen);
done:
    if (rc < 0) diff_result_free(out);
    git_commit_free(c_base);
    git_commit_free(c_head);
    git_commit_free(c_merge);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

int diff_is_ancestor(const char *repo_dir, const char *ancestor, const char *descendant, char *err, size_t errlen)
{
    git_libgit2_init();
    git_repository *repo = NULL;
    git_commit *a = NULL, *d = NULL;
    int rc = -1;
    if (open_repo(&repo, repo_dir, err, errlen) < 0) goto done;
    if (resolve_commit(repo, ancestor, &a) < 0 || resolve_commit(repo, descendant, &d) < 0) {
        rc = 0; /* not in the checkout: cannot be built upon */
        goto done;
    }
    if (git_oid_equal(git_commit_id(a), git_commit_id(d))) {
        rc = 1;
        goto done;
    }
    rc = git_graph_descendant_of(repo, git_commit_id(d), git_commit_id(a));
    if (rc < 0) err_set(err, errlen, "ancestry of %s: %s", ancestor, git_last_message());
done:
    git_commit_free(a);
    git_commit_free(d);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

/* HEAD's upstream, as a short name like "origin/feature", or -1. */
static int upstream_of_head(git_repository *repo, char *out, size_t cap)
{
    git_reference *head = NULL, *up = NULL;
    int rc = -1;
    if (git_repository_head(&head, repo) == 0 && git_reference_is_branch(head) &&
        git_branch_upstream(&up, head) == 0) {
        snprintf(out, cap, "%s", git_reference_shorthand(up));
        rc = 0;
    }
    git_reference_free(up);
    git_reference_free(head);
    return rc;
}

int diff_default_base(const char *repo_dir, char *out, size_t cap, char *err, size_t errlen)
{
    static const char *const candidates[] = {"origin/main", "main", "origin/master", "master"};
    git_libgit2_init();
    git_repository *repo = NULL;
    int rc = -1;
    if (open_repo(&repo, repo_dir, err, errlen) < 0) goto done;
    if (upstream_of_head(repo, out, cap) == 0) {
        rc = 0;
        goto done;
    }
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        git_commit *c = NULL;
        if (resolve_commit(repo, candidates[i], &c) == 0) {
            git_commit_free(c);
            snprintf(out, cap, "%s", candidates[i]);
            rc = 0;
            goto done;
        }
    }
    err_set(err, errlen, "no base to compare with: HEAD has no upstream and none of origin/main, main, "
                         "origin/master, master exists; pass --base REV");
done:
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

/* libgit2 as packaged by Debian compiles hunk-header regexes with pcre2 and
 * never frees pcre2's match data; tell LeakSanitizer (only consulted in
 * `make test-asan` builds) that this leak is not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libpcre2-8.so\n"; }
