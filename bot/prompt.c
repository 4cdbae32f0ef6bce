/*
 * prompt.c - templates, and choosing which parts of a diff the model sees.
 *
 * The budget: a prompt may use n_ctx - max_tokens - margin tokens, and with
 * a --time-budget also only as many as prefill can get through while leaving
 * time to decode (speeds are estimates passed in by the caller). We measure
 * the fixed part first: the template with an empty diff, chat-formatted and
 * tokenized by the model's own tokenizer. Then files are taken in order of
 * relevance (source, tests, docs, config; within a group smaller changes
 * first so more files fit whole). A file that fits is shown whole; the first
 * file that does not fit while a useful amount of room is left is cut at a
 * line end to fill that room; everything else is dropped with a reason.
 * Token counts of separate pieces are not exactly additive, so the final
 * prompt is counted again and the last file dropped until it fits.
 *
 * Tokenizing is the expensive step for huge diffs, so a section is only
 * tokenized if its size could plausibly fit, and the total bytes tokenized
 * are capped: a 100k-line PR costs about as much as the context it fills.
 */
#include "prompt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "linemap.h"
#include "textbuf.h"

#define DEFAULT_MARGIN 16
#define MIN_TRUNCATED_TOKENS 48 /* below this, a cut-down file is not worth showing */
#define MIN_DECODE_TOKENS 16
#define MAX_BYTES_PER_TOKEN 12 /* a section longer than budget*this is treated as not fitting */

/* ---- built-in templates ------------------------------------------------ */

/* prompts/NAME.txt are embedded by the assembler (.incbin), NUL-terminated, so
 * the binary is self-contained and needs no generated sources. The paths are
 * relative to the directory the compiler runs in: the repository root. */
#define EMBED_PROMPT(sym, file)                                                                              \
    __asm__(".pushsection .rodata\n"                                                                          \
            ".global " #sym "\n"                                                                              \
            ".type " #sym ", @object\n" #sym ":\n"                                                            \
            ".incbin \"" file "\"\n"                                                                          \
            ".byte 0\n"                                                                                       \
            ".popsection\n");                                                                                 \
    extern const char sym[]

EMBED_PROMPT(prbot_prompt_review, "prompts/review.txt");
EMBED_PROMPT(prbot_prompt_summary, "prompts/summary.txt");
EMBED_PROMPT(prbot_prompt_joke, "prompts/joke.txt");

static const struct {
    const char *name;
    const char *text;
} builtin_prompts[] = {
    {"review", prbot_prompt_review},
    {"summary", prbot_prompt_summary},
    {"joke", prbot_prompt_joke},
};

const char *prompt_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtin_prompts / sizeof builtin_prompts[0]; i++)
        if (!strcmp(name, builtin_prompts[i].name)) return builtin_prompts[i].text;
    return NULL;
}

const char *prompt_builtin_names(void) { return "review, summary, joke"; }

/* ---- loading and parsing ----------------------------------------------- */

static char *read_text_file(const char *path, char *err, size_t errlen)
{
    char *text = textbuf_read_file(path, NULL);
    if (!text) err_set(err, errlen, "cannot read prompt template %s: %s", path, strerror(errno));
    return text;
}

/* Copies s[0..n) without leading/trailing blank lines. */
static char *trimmed_copy(const char *s, size_t n)
{
    while (n && (*s == '\n' || *s == '\r')) s++, n--;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

/* Position of a line that is exactly `tag`, or NULL. */
static const char *find_tag_line(const char *text, const char *tag)
{
    size_t n = strlen(tag);
    for (const char *p = text; (p = strstr(p, tag)) != NULL; p += n) {
        int at_line_start = p == text || p[-1] == '\n';
        int at_line_end = p[n] == '\n' || p[n] == 0 || (p[n] == '\r' && p[n + 1] == '\n');
        if (at_line_start && at_line_end) return p;
    }
    return NULL;
}

int prompt_template_parse(const char *name, const char *text, prompt_template *t)
{
    memset(t, 0, sizeof *t);
    const char *sys = find_tag_line(text, "[system]"), *usr = find_tag_line(text, "[user]");
    if (!(t->name = strdup(name))) goto oom;
    const char *tag = find_tag_line(text, "[findings]");
    t->findings = tag && (!sys || tag < sys) && (!usr || tag < usr);
    if (sys && usr && sys < usr) {
        const char *s = sys + strlen("[system]");
        if (!(t->system = trimmed_copy(s, (size_t)(usr - s)))) goto oom;
    }
    const char *u = usr ? usr + strlen("[user]") : text;
    if (!(t->user = trimmed_copy(u, strlen(u)))) goto oom;
    return 0;
oom:
    prompt_template_free(t);
    return -1;
}

void prompt_template_free(prompt_template *t)
{
    free(t->name);
    free(t->system);
    free(t->user);
    memset(t, 0, sizeof *t);
}

static int looks_like_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') != NULL || (n > 4 && !strcmp(s + n - 4, ".txt"));
}

/* "dir/my-review.txt" -> "my-review" */
static void name_from_path(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    size_t n = strlen(out);
    if (n > 4 && !strcmp(out + n - 4, ".txt")) out[n - 4] = 0;
    for (char *p = out; *p; p++) /* the name goes into an HTML comment marker */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            *p = '-';
}

int prompt_template_load(const char *name_or_file, prompt_template *t, char *err, size_t errlen)
{
    char name[128];
    char *text = NULL;
    const char *dir = getenv("PRBOT_PROMPTS_DIR");
    if (looks_like_path(name_or_file)) {
        name_from_path(name_or_file, name, sizeof name);
        text = read_text_file(name_or_file, err, errlen);
        if (!text) return -1;
    } else if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.txt", dir, name_or_file);
        name_from_path(path, name, sizeof name);
        text = read_text_file(path, err, errlen);
        if (!text) return -1;
    } else {
        const char *builtin = prompt_builtin(name_or_file);
        if (!builtin) {
            err_set(err, errlen, "unknown prompt '%s': use one of %s, or a template file path", name_or_file,
                    prompt_builtin_names());
            return -1;
        }
        name_from_path(name_or_file, name, sizeof name);
        if (!(text = strdup(builtin))) {
            err_set(err, errlen, "out of memory");
            return -1;
        }
    }
    int rc = prompt_template_parse(name, text, t);
    free(text);
    if (rc < 0) err_set(err, errlen, "out of memory");
    else if (!*t->user) {
        err_set(err, errlen, "prompt template '%s' is empty", name_or_file);
        prompt_template_free(t);
        return -1;
    }
    return rc;
}

char *prompt_substitute(const char *text, const prompt_var *vars, size_t n_vars)
{
    textbuf b = {0};
    const char *p = text;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) break;
        const char *close = strstr(open + 2, "}}");
        if (!close) break;
        textbuf_add(&b, p, (size_t)(open - p));
        size_t key_len = (size_t)(close - open - 2);
        const prompt_var *v = NULL;
        for (size_t i = 0; i < n_vars && !v; i++)
            if (strlen(vars[i].key) == key_len && !memcmp(vars[i].key, open + 2, key_len)) v = &vars[i];
        if (v)
            textbuf_puts(&b, v->value ? v->value : "");
        else
            textbuf_add(&b, open, (size_t)(close + 2 - open));
        p = close + 2;
    }
    textbuf_puts(&b, p);
    return textbuf_take(&b);
}

/* ---- ranking ----------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int has_component(const char *path, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        for (const char *p = path; (p = strstr(p, names[i])) != NULL; p++)
            if ((p == path || p[-1] == '/') && p[len] == '/') return 1;
    }
    return 0;
}

int prompt_file_rank(const char *path)
{
    static const char *const test_dirs[] = {"test", "tests", "testing", "spec", "specs", "__tests__", "testdata"};
    static const char *const doc_dirs[] = {"doc", "docs", "documentation"};
    static const char *const doc_ext[] = {".md", ".rst", ".txt", ".adoc", ".markdown"};
    static const char *const config_ext[] = {".json", ".yml", ".yaml", ".toml", ".ini", ".cfg", ".conf", ".xml",
                                             ".csv", ".lock", ".properties", ".env"};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (has_component(path, test_dirs, sizeof test_dirs / sizeof test_dirs[0]) || !strncmp(base, "test_", 5) ||
        strstr(base, "_test.") || strstr(base, ".test.") || strstr(base, ".spec.") || strstr(base, "_spec."))
        return 1;
    for (size_t i = 0; i < sizeof doc_ext / sizeof doc_ext[0]; i++)
        if (ends_with(base, doc_ext[i])) return 2;
    if (has_component(path, doc_dirs, sizeof doc_dirs / sizeof doc_dirs[0]) || !strncmp(base, "LICENSE", 7)) return 2;
    for (size_t i = 0; i < sizeof config_ext / sizeof config_ext[0]; i++)
        if (ends_with(base, config_ext[i])) return 3;
    if (base[0] == '.') return 3; /* dotfiles: .gitignore, .editorconfig ... */
    return 0;
}

void prompt_estimate_speed(unsigned long long weight_bytes, int n_threads, double *prefill_tps, double *decode_tps)
{
    /* Decode reads every weight once per token: assume a modest 6 GB/s of
     * memory bandwidth per thread, up to 12 GB/s. Batched prefill is
     * compute-bound and runs several times faster; 4x decode is cautious. */
    double threads = n_threads > 0 ? n_threads : 1;
    double bandwidth = 6e9 * (threads < 2 ? threads : 2);
    double bytes = weight_bytes ? (double)weight_bytes : 1e6;
    double decode = bandwidth / bytes;
    if (decode > 2000) decode = 2000;
    *decode_tps = decode;
    *prefill_tps = decode * 4;
}

/* ---- building ---------------------------------------------------------- */

typedef struct {
    size_t index;    /* into diff->files */
    int rank;
    size_t shown_len; /* bytes of the patch shown; 0 = not shown */
    int tokens;
} candidate;

static int candidate_cmp(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->rank != y->rank) return x->rank - y->rank;
    if (x->tokens != y->tokens) return x->tokens < y->tokens ? -1 : 1; /* tokens holds the patch size here */
    return x->index < y->index ? -1 : x->index > y->index;
}

static void append_file_heading(textbuf *b, const diff_file *f)
{
    textbuf_printf(b, "%s (%s", f->path, diff_status_name(f->status));
    if (f->old_path) textbuf_printf(b, " from %s", f->old_path);
    textbuf_printf(b, ", +%d -%d)", f->additions, f->deletions);
}

/* One file's part of {{diff}}: heading and a fenced block of hunks (with
 * new-file line numbers when numbered). */
static void append_file_section(textbuf *b, const diff_file *f, size_t shown_len, int numbered)
{
    textbuf_puts(b, "### ");
    append_file_heading(b, f);
    textbuf_puts(b, "\n```diff\n");
    if (numbered) {
        linemap_render(f->patch, shown_len, b);
    } else {
        textbuf_add(b, f->patch, shown_len);
        if (shown_len && f->patch[shown_len - 1] != '\n') textbuf_puts(b, "\n");
    }
    textbuf_puts(b, "```\n");
    if (shown_len < f->patch_len || f->patch_truncated) textbuf_puts(b, "(the rest of this file's diff is not shown)\n");
    textbuf_puts(b, "\n");
}

static int count_text(const prompt_budget *b, const char *s, size_t n) { return b->count(b->user, s, n); }

/* Tokens of one file's section with shown_len bytes of its patch, or -1. */
static int section_tokens(const prompt_budget *b, const diff_file *f, size_t shown_len, size_t *bytes_counted)
{
    textbuf t = {0};
    append_file_section(&t, f, shown_len, b->numbered);
    if (t.failed) return -1;
    *bytes_counted += t.len;
    int n = count_text(b, t.data, t.len);
    textbuf_free(&t);
    return n;
}

/* Longest line-end prefix of the patch whose section fits in `room` tokens;
 * 0 if none worth showing. */
static size_t fit_prefix(const prompt_budget *b, const diff_file *f, int room, size_t *bytes_counted, int *tokens)
{
    size_t cut = (size_t)room * 4;
    for (int attempt = 0; attempt < 6 && cut > 0; attempt++) {
        if (cut > f->patch_len) cut = f->patch_len;
        while (cut > 0 && f->patch[cut - 1] != '\n') cut--;
        if (!diff_patch_has_content(f->patch, cut)) return 0; /* headers alone show nothing */
        int n = section_tokens(b, f, cut, bytes_counted);
        if (n < 0) return 0;
        if (n <= room) {
            *tokens = n;
            return cut;
        }
        cut = (size_t)((double)cut * room / n * 0.9);
    }
    return 0;
}

/* Renders {{files}} and {{diff}} for the chosen candidates. */
static int render_sections(const diff_result *d, const candidate *c, size_t n, int numbered, char **files,
                           char **diff_text)
{
    textbuf fb = {0}, db = {0};
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].shown_len) continue;
        const diff_file *f = &d->files[c[i].index];
        textbuf_puts(&fb, "- ");
        append_file_heading(&fb, f);
        textbuf_puts(&fb, "\n");
        append_file_section(&db, f, c[i].shown_len, numbered);
        any = 1;
    }
    if (!any) {
        textbuf_puts(&fb, "(none)");
        textbuf_puts(&db, "(no reviewable changes)");
    }
    *files = textbuf_take(&fb);
    *diff_text = textbuf_take(&db);
    if (!*files || !*diff_text) {
        free(*files);
        free(*diff_text);
        return -1;
    }
    return 0;
}

static char *default_format(const char *system, const char *user_msg)
{
    textbuf b = {0};
    if (system) {
        textbuf_puts(&b, system);
        textbuf_puts(&b, "\n\n");
    }
    textbuf_puts(&b, user_msg);
    return textbuf_take(&b);
}

/* Fills the messages and formatted prompt for the current choice; returns
 * its token count or -1. */
static int assemble(const prompt_template *t, const prompt_var *vars, size_t n_vars, const diff_result *d,
                    const candidate *c, size_t n, const prompt_budget *b, prompt_result *out)
{
    char *files = NULL, *diff_text = NULL;
    if (render_sections(d, c, n, b->numbered, &files, &diff_text) < 0) return -1;
    prompt_var *all = malloc((n_vars + 2) * sizeof *all);
    if (!all) {
        free(files);
        free(diff_text);
        return -1;
    }
    all[0] = (prompt_var){"files", files};
    all[1] = (prompt_var){"diff", diff_text};
    if (n_vars) memcpy(all + 2, vars, n_vars * sizeof *vars);
    free(out->system);
    free(out->user_msg);
    free(out->formatted);
    out->system = t->system ? prompt_substitute(t->system, all, n_vars + 2) : NULL;
    out->user_msg = prompt_substitute(t->user, all, n_vars + 2);
    out->formatted = NULL;
    free(all);
    free(files);
    free(diff_text);
    if ((t->system && !out->system) || !out->user_msg) return -1;
    out->formatted = b->format ? b->format(b->user, out->system, out->user_msg) : default_format(out->system, out->user_msg);
    if (!out->formatted) return -1;
    return count_text(b, out->formatted, strlen(out->formatted));
}

/* Tokens the prompt may use, and which limit decides. */
static int prompt_token_limit(const prompt_budget *b, int max_tokens, int margin, const char **limit)
{
    int by_ctx = b->n_ctx - max_tokens - margin;
    *limit = "token budget";
    if (b->time_budget_s > 0 && b->prefill_tokens_per_s > 0 && b->decode_tokens_per_s > 0) {
        double decode_s = max_tokens / b->decode_tokens_per_s;
        double prefill_s = b->time_budget_s * 0.8 - decode_s;
        if (prefill_s < b->time_budget_s * 0.25) prefill_s = b->time_budget_s * 0.25;
        double by_time = prefill_s * b->prefill_tokens_per_s;
        if (by_time < by_ctx) {
            *limit = "time budget";
            return (int)by_time;
        }
    }
    return by_ctx;
}

/* Chooses how much of each candidate to show within `room` tokens. */
static int choose_files(const prompt_budget *b, const diff_result *d, candidate *c, size_t n, int room)
{
    size_t bytes_counted = 0, max_bytes = (size_t)(room > 0 ? room : 0) * 64 + 65536;
    int truncated_one = 0;
    for (size_t i = 0; i < n; i++) {
        const diff_file *f = &d->files[c[i].index];
        c[i].shown_len = 0;
        if (room <= 0 || bytes_counted > max_bytes) continue;
        if (f->patch_len <= (size_t)room * MAX_BYTES_PER_TOKEN) {
            int tokens = section_tokens(b, f, f->patch_len, &bytes_counted);
            if (tokens < 0) return -1;
            if (tokens <= room) {
                c[i].shown_len = f->patch_len;
                c[i].tokens = tokens;
                room -= tokens;
                continue;
            }
        }
        if (!truncated_one && room >= MIN_TRUNCATED_TOKENS) {
            int tokens = 0;
            size_t cut = fit_prefix(b, f, room, &bytes_counted, &tokens);
            if (cut) {
                c[i].shown_len = cut;
                c[i].tokens = tokens;
                room -= tokens;
                truncated_one = 1;
            }
        }
    }
    return 0;
}

/* Records reasons on the files not shown and notes on the cut ones. */
static int record_choice(diff_result *d, const candidate *c, size_t n, const char *limit, prompt_result *out)
{
    char reason[64];
    snprintf(reason, sizeof reason, "over %s", limit);
    for (size_t i = 0; i < n; i++) {
        diff_file *f = &d->files[c[i].index];
        if (!c[i].shown_len) {
            if (diff_file_set_not_shown(f, reason) < 0) return -1;
            out->n_dropped++;
        } else if (c[i].shown_len < f->patch_len) {
            char note[96];
            snprintf(note, sizeof note, "hunks truncated: %s", reason);
            if (diff_file_set_note(f, note) < 0) return -1;
            out->n_truncated++;
            out->n_shown++;
        } else {
            if (f->patch_truncated && diff_file_set_note(f, "hunks truncated: diff size cap") < 0) return -1;
            out->n_shown++;
        }
    }
    return 0;
}

/* Returns 1 if a file was dropped, 0 if none was shown. */
static int drop_last_shown(candidate *c, size_t n)
{
    for (size_t i = n; i-- > 0;)
        if (c[i].shown_len) {
            c[i].shown_len = 0;
            return 1;
        }
    return 0;
}

int prompt_build(const prompt_template *t, const prompt_var *vars, size_t n_vars, diff_result *diff,
                 const prompt_budget *b, prompt_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int margin = b->margin > 0 ? b->margin : DEFAULT_MARGIN;
    int max_tokens = b->max_tokens > 0 ? b->max_tokens : 256;
    if (max_tokens > b->n_ctx / 2) max_tokens = b->n_ctx / 2;

    /* candidates: files with a patch and no skip reason, in relevance order */
    candidate *c = calloc(diff->n_files ? diff->n_files : 1, sizeof *c);
    if (!c) goto oom;
    size_t n = 0;
    for (size_t i = 0; i < diff->n_files; i++) {
        const diff_file *f = &diff->files[i];
        if (f->skip_reason || !f->patch_len) continue;
        c[n] = (candidate){.index = i, .rank = prompt_file_rank(f->path), .tokens = (int)(f->patch_len > 1u << 30 ? 1 << 30 : f->patch_len)};
        n++;
    }
    qsort(c, n, sizeof *c, candidate_cmp);

    int fixed = assemble(t, vars, n_vars, diff, c, 0, b, out);
    if (fixed < 0) goto count_failed;
    const char *limit;
    int allowed = prompt_token_limit(b, max_tokens, margin, &limit);
    if (fixed > allowed) {
        /* the template alone does not fit: give generation less room */
        int could = b->n_ctx - margin - fixed;
        if (could < MIN_DECODE_TOKENS) {
            err_set(err, errlen, "the prompt without any diff needs %d tokens but the model's context is %d; "
                                 "use a shorter --prompt or a model with a longer context", fixed, b->n_ctx);
            goto fail;
        }
        if (could < max_tokens) max_tokens = could;
        allowed = prompt_token_limit(b, max_tokens, margin, &limit);
        if (allowed < fixed) allowed = fixed;
    }
    if (choose_files(b, diff, c, n, allowed - fixed) < 0) goto count_failed;
    for (;;) {
        int total = assemble(t, vars, n_vars, diff, c, n, b, out);
        if (total < 0) goto count_failed;
        out->prompt_tokens = total;
        /* pieces counted apart are not exactly additive */
        if (total <= allowed || !drop_last_shown(c, n)) break;
    }
    if (record_choice(diff, c, n, limit, out) < 0) goto oom;
    out->token_budget = allowed;
    out->max_tokens = max_tokens;
    out->limit = limit;
    free(c);
    return 0;
count_failed:
    err_set(err, errlen, "could not build or tokenize the prompt (out of memory?)");
    goto fail;
oom:
    err_set(err, errlen, "out of memory building the prompt");
fail:
    free(c);
    prompt_result_free(out);
    return -1;
}

void prompt_result_free(prompt_result *r)
{
    free(r->system);
    free(r->user_msg);
    free(r->formatted);
    memset(r, 0, sizeof *r);
}
