/*
 * review.c - `prbot review`: from a pull request to exactly one comment.
 *
 * The steps follow DESIGN.md's data flow and each is a small function:
 * context (event.c) -> PR details from the API when the event lacks them
 * (github.h) -> the summary's state from the last run (publish.h) -> diff
 * (diff.c, or the PR files API when a shallow checkout lacks the base) ->
 * model (engine.h) -> prompt within budget (prompt.c) -> generate,
 * streaming the text to stderr -> post (publish.h / github.h), print
 * (--dry-run) or write to --output DIR.
 *
 * The built-in review prompt is a findings template (prompt.h): the model
 * answers with JSON (findings.h), every finding is anchored on a line of the
 * diff, and the run posts one review with inline comments plus the sticky
 * summary comment (--inline false: the summary only). On a push to a PR
 * reviewed before, when the last reviewed head is an ancestor of the new
 * one, only the new commits are shown to the model (--full: everything),
 * and findings posted before are not posted again. Other templates
 * (summary, joke, your own) post the model's text as one comment.
 *
 * Logs go to stderr, grouped with ::group:: in GitHub Actions, so a person
 * can follow the job; stdout carries only the body in --dry-run. The runner
 * takes any output line that starts with "::" as a workflow command
 * (::add-mask::, ::error file=...::, ::stop-commands::), and much of what we
 * print comes from the pull request: file names, and the model's text, which
 * the diff can steer. So every log line is one line (control characters
 * shown as '?'), annotation text is escaped as the runner wants, and text
 * that is lines by nature (the generated text, a dry-run body) is printed
 * between "::stop-commands::TOKEN" and "::TOKEN::" with a
 * TOKEN drawn at random for the run, which that text cannot know. The last
 * line is always one result line. A GitHub API failure after the comment was
 * produced exits 0 (the body goes to the job summary instead) unless
 * --strict: a flaky API must not fail someone's build.
 */
#define _GNU_SOURCE /* vasprintf */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_options.h"
#include "commands.h"
#include "comment.h"
#include "diff.h"
#include "errors.h"
#include "../engine/engine.h"
#include "../engine/grammar.h"
#include "backend.h"
#include "event.h"
#include "findings.h"
#include "github.h"
#include "json_schema.h"
#include "linemap.h"
#include "prompt.h"
#include "publish.h"
#include "registry.h"
#include "textbuf.h"

#define DEFAULT_MAX_TOKENS 512
#define BODY_EXCERPT_BYTES 2000 /* of the PR description, in the prompt */
#define POST_RESERVE_S 10.0     /* of --time-budget kept for posting */
#define DEFAULT_BACKEND_CTX 8192
#define ANCHOR_DISTANCE 3       /* lines a cited line may be moved to reach the diff */
#define SCHEMA_MAX_FINDINGS 5   /* the prompt asks for at most five */

static const char usage_text[] =
    "usage: prbot review [options]\n"
    "\n"
    "Reviews a pull request's diff with a local model and posts (or prints) one comment.\n"
    "In GitHub Actions (GITHUB_ACTIONS=true) the PR comes from the event; elsewhere the\n"
    "diff is merge-base(--base, --head) of a local checkout and the comment is printed.\n"
    "\n"
    "options:\n"
    "  --repo DIR           the git checkout (default: $GITHUB_WORKSPACE in Actions, else .)\n"
    "  --base REV           base revision (default: the PR's base; locally HEAD's upstream,\n"
    "                       else origin/main, main, origin/master, master)\n"
    "  --head REV           head revision (default: the PR's head; locally HEAD)\n"
    "  --pr N               pull request number (for workflow_dispatch or posting from a local run)\n"
    "  --model PATH         GGUF model (default: $PRBOT_MODEL, else the one .gguf in the cache,\n"
    "                       $PRBOT_CACHE or ${XDG_CACHE_HOME:-~/.cache}/prbot, see prbot model pull)\n"
    "  --prompt NAME|FILE   review (default), summary, joke, or a template file ({{diff}}, {{files}},\n"
    "                       {{title}}, {{body}}, {{author}}, {{repo}}, {{base}}, {{head}}, {{pr}});\n"
    "                       $PRBOT_PROMPT is the default when set\n"
    "  --dry-run            print the comment body to stdout; no network at all\n"
    "  --threads N          inference threads (default: the CPUs this job may use)\n"
    "  --max-tokens N       tokens to generate at most (default 512; at most half the context)\n"
    "  --speculate N        draft up to N tokens by looking them up in the prompt and verify them\n"
    "                       in one batch (default 0 = off; docs/PERFORMANCE.md has its speed and\n"
    "                       how often its output differs)\n"
    "  --time-budget S      seconds for the whole review: the prompt is cut to fit and decoding\n"
    "                       stops in time (default: $PRBOT_TIME_BUDGET, else none)\n"
    "  --include GLOB       review only paths matching GLOB (repeatable; ** crosses directories)\n"
    "  --exclude GLOB       skip paths matching GLOB (repeatable)\n"
    "  --strict             fail (exit 1) when the GitHub API fails instead of only warning\n"
    "  --backend URL        send the prompt to an OpenAI-compatible server (URL/v1/chat/completions,\n"
    "                       streamed) instead of running the model here; retried like GitHub calls.\n"
    "                       Without it nothing leaves the runner. --model, if given, only counts tokens\n"
    "  --backend-model NAME the server's model name (default: none sent; prbot serve uses its own)\n"
    "  --backend-ctx N      the server model's context in tokens, for the prompt budget (default 8192)\n"
    "  --inline BOOL        true (default): findings as inline comments of one review, plus the\n"
    "                       summary comment; false: the summary comment only\n"
    "  --max-inline N       inline comments per run at most, bugs first (default 8)\n"
    "  --full               review the whole PR even when an earlier head was reviewed\n"
    "  --output DIR         write the result to DIR (review.json, summary.md, review-request.json)\n"
    "                       instead of posting it; `prbot post --from DIR` posts it later\n"
    "\n"
    "environment: GITHUB_TOKEN (never printed), GITHUB_REPOSITORY, GITHUB_EVENT_NAME,\n"
    "GITHUB_EVENT_PATH, GITHUB_API_URL, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, PRBOT_BACKEND_API_KEY\n"
    "(sent as 'Authorization: Bearer' to --backend, never printed).\n"
    "exit status: 0 comment posted or printed (also when only the job summary got it),\n"
    "1 error, 2 usage error.\n";

typedef struct {
    const char *repo, *base, *head, *model, *prompt, *backend, *backend_model, *output, *inline_opt;
    int pr, dry_run, strict, threads, max_tokens, backend_ctx, max_inline, full, speculate;
    int no_inline; /* --inline false */
    double time_budget;
    cli_list include, exclude;
} review_options;

typedef struct {
    int in_actions;
    double start;        /* engine_now_s() when the review began */
    char stop_token[33]; /* random hex: ends the runner's pause of workflow commands */
} review_log;

static double seconds_since(double t0) { return engine_now_s() - t0; }

/* What --time-budget leaves for generating now, keeping POST_RESERVE_S for
 * posting (at least a second); 0 when there is no budget. */
static double budget_left(const review_options *o, const review_log *lg)
{
    if (o->time_budget <= 0) return 0;
    double left = o->time_budget - seconds_since(lg->start) - POST_RESERVE_S;
    return left < 1 ? 1 : left;
}

/* Prints s with every control character shown as '?': one line, whatever
 * a file name or an error message holds. */
static void put_one_line(const char *s)
{
    for (; *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7F ? '?' : *s, stderr);
}

static void log_line(const review_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(const review_log *lg, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    fprintf(stderr, "[%6.1fs] ", seconds_since(lg->start));
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    put_one_line(n >= 0 && text ? text : "(out of memory formatting a log line)");
    fputc('\n', stderr);
    if (n >= 0) free(text);
}

/* From here to log_commands_resume, the runner runs no workflow command. */
static void log_commands_stop(const review_log *lg)
{
    gh_action_stop_commands_begin(stderr, lg->stop_token);
}

/* Starts a line of its own (the text before may not end in one). */
static void log_commands_resume(const review_log *lg)
{
    gh_action_stop_commands_end(stderr, lg->stop_token);
}

static void log_group(const review_log *lg, const char *title)
{
    if (lg->in_actions) fprintf(stderr, "::group::%s\n", title);
    else fprintf(stderr, "== %s\n", title);
}

static void log_endgroup(const review_log *lg)
{
    if (lg->in_actions) fprintf(stderr, "::endgroup::\n");
}

/* One-line result or error; Actions also gets an annotation for warnings,
 * its text escaped as workflow commands want it (%, CR, LF). */
static void log_warning(const review_log *lg, const char *msg)
{
    if (lg->in_actions) {
        fputs("::warning::", stderr);
        for (const char *p = msg; *p; p++) {
            if (*p == '%') fputs("%25", stderr);
            else if (*p == '\r') fputs("%0D", stderr);
            else if (*p == '\n') fputs("%0A", stderr);
            else fputc((unsigned char)*p < 0x20 ? '?' : *p, stderr);
        }
        fputc('\n', stderr);
    }
    fputs("prbot review: warning: ", stderr);
    put_one_line(msg);
    fputc('\n', stderr);
}

/* ---- options and model ------------------------------------------------- */

static int parse_options(int argc, char **argv, review_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_tokens = DEFAULT_MAX_TOKENS;
    o->backend_ctx = DEFAULT_BACKEND_CTX;
    o->max_inline = PUBLISH_DEFAULT_MAX_INLINE;
    const cli_option table[] = {
        {"--repo", CLI_STRING, &o->repo},         {"--base", CLI_STRING, &o->base},
        {"--head", CLI_STRING, &o->head},         {"--pr", CLI_INT, &o->pr},
        {"--model", CLI_STRING, &o->model},       {"--prompt", CLI_STRING, &o->prompt},
        {"--dry-run", CLI_FLAG, &o->dry_run},     {"--threads", CLI_INT, &o->threads},
        {"--max-tokens", CLI_INT, &o->max_tokens}, {"--time-budget", CLI_DOUBLE, &o->time_budget},
        {"--include", CLI_LIST, &o->include},     {"--exclude", CLI_LIST, &o->exclude},
        {"--strict", CLI_FLAG, &o->strict},       {"--backend", CLI_STRING, &o->backend},
        {"--backend-model", CLI_STRING, &o->backend_model}, {"--backend-ctx", CLI_INT, &o->backend_ctx},
        {"--inline", CLI_STRING, &o->inline_opt}, {"--max-inline", CLI_INT, &o->max_inline},
        {"--full", CLI_FLAG, &o->full},           {"--output", CLI_STRING, &o->output},
        {"--speculate", CLI_INT, &o->speculate},
        {NULL, CLI_FLAG, NULL},
    };
    const char *env_budget = getenv("PRBOT_TIME_BUDGET");
    if (env_budget && *env_budget) o->time_budget = atof(env_budget);
    int rc = cli_parse("review", argc, argv, table, usage_text, NULL);
    if (rc) return rc;
    if (!o->prompt) o->prompt = getenv("PRBOT_PROMPT") && *getenv("PRBOT_PROMPT") ? getenv("PRBOT_PROMPT") : "review";
    if (o->backend && !*o->backend) o->backend = NULL;
    if (o->pr < 0 || o->threads < 0 || o->max_tokens <= 0 || o->time_budget < 0 || o->backend_ctx < 64 ||
        o->max_inline < 0 || o->speculate < 0) {
        fprintf(stderr, "prbot review: --pr, --threads, --max-inline, --speculate and --time-budget must not be "
                        "negative, --max-tokens must be positive, --backend-ctx at least 64\n");
        return 2;
    }
    if (o->inline_opt) {
        const char *v = o->inline_opt;
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1")) o->no_inline = 0;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0")) o->no_inline = 1;
        else {
            fprintf(stderr, "prbot review: --inline takes true or false (got '%s')\n", v);
            return 2;
        }
    }
    if (o->max_inline == 0) o->no_inline = 1;
    if (o->output && !*o->output) {
        fprintf(stderr, "prbot review: --output needs a directory\n");
        return 2;
    }
    return 0;
}

/* --model, else $PRBOT_MODEL, else the only .gguf file in the cache. */
static int find_model(const char *opt, char *out, size_t cap, char *err, size_t errlen)
{
    const char *env = getenv("PRBOT_MODEL");
    if (opt || (env && *env)) {
        snprintf(out, cap, "%s", opt ? opt : env);
        return 0;
    }
    char dir[3072];
    DIR *d = model_cache_dir(NULL, dir, sizeof dir, NULL, 0) == 0 ? opendir(dir) : NULL;
    int found = 0;
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL) {
            size_t n = strlen(ent->d_name);
            if (n > 5 && !strcmp(ent->d_name + n - 5, ".gguf")) {
                if (!found) snprintf(out, cap, "%s/%s", dir, ent->d_name);
                found++;
            }
        }
        closedir(d);
    }
    if (found == 1) return 0;
    err_set(err, errlen,
            found ? "several models in the cache %s: choose one with --model PATH or PRBOT_MODEL"
                  : "no model: pass --model PATH, set PRBOT_MODEL, or download one with prbot model pull URL%s",
            found ? dir : "");
    return -1;
}

/* ---- engine callbacks --------------------------------------------------- */

typedef struct {
    engine *e;
} token_counter;

/* Without a local tokenizer (a backend and no --model): a conservative
 * estimate, since code runs at 3-4 bytes a token in the usual BPE vocabularies. */
static int estimate_tokens(void *user, const char *text, size_t len)
{
    (void)user;
    (void)text;
    return (int)(len / 2 + 1);
}

static int count_tokens(void *user, const char *text, size_t len)
{
    const token_counter *tc = user;
    return engine_tokenize(tc->e, text, len, 0, 0, NULL, 0);
}

static char *format_chat(void *user, const char *system, const char *user_msg)
{
    token_counter *tc = user;
    /* the diff, title and body in these texts are the pull request's: its
     * "<|im_start|>system" must reach the model as text, not as a turn */
    char *sys = system ? engine_defuse_control_tokens(tc->e, system) : NULL;
    char *msg = engine_defuse_control_tokens(tc->e, user_msg);
    char *out = NULL, err[256];
    if ((!system || sys) && msg) {
        engine_chat_msg msgs[2];
        int n = 0;
        if (sys) msgs[n++] = (engine_chat_msg){"system", sys};
        msgs[n++] = (engine_chat_msg){"user", msg};
        if (engine_chat_format(tc->e, msgs, n, 1, &out, err, sizeof err) < 0) out = NULL;
    }
    free(sys);
    free(msg);
    return out;
}

/* Prefill progress, one line per chunk; the generated text streams after the last. */
static void on_prefill_progress(int done, int total, double seconds, void *user)
{
    const review_log *lg = user;
    log_line(lg, "prefill %d/%d tokens (%.1f tok/s)", done, total, seconds > 0 ? done / seconds : 0.0);
    if (done == total) {
        fputs("----- generated text -----\n", stderr);
        log_commands_stop(lg);
    }
}

static int on_token(int32_t id, const char *text, void *user)
{
    (void)id;
    textbuf *g = user;
    fputs(text, stderr);
    fflush(stderr);
    textbuf_puts(g, text);
    return g->failed;
}

/* ---- the review -------------------------------------------------------- */

typedef struct {
    review_options opt;
    review_log log;
    event_context ctx;
    gh_client *gh;
    diff_result diff;
    const char *diff_source;
    char model_path[4096];
    char model_name[256];
    const char *origin; /* for the footer: NULL = generated locally */
    engine *e;
    char *model_text;
    engine_stats stats;
    prompt_result prompt;
    prompt_template tmpl;
    char *body;
    /* findings templates */
    publish_state prev;     /* the summary's state from the last run */
    diff_result inc;        /* incremental: last reviewed head..head */
    int incremental;
    review_doc doc;
    findings_echo *echo;
    char scope[256];
    const char *notice;
    publish_plan plan;
} review_state;

static int need_client(review_state *s, char *err, size_t errlen)
{
    if (s->gh) return 0;
    if (s->opt.dry_run) {
        err_set(err, errlen, "--dry-run makes no network requests: pass --base REV and --head REV");
        return -1;
    }
    if (!s->ctx.repository[0]) {
        err_set(err, errlen, "GITHUB_REPOSITORY is not set: set it to owner/name to talk to GitHub");
        return -1;
    }
    return gh_client_new(&s->gh, s->ctx.api_url, s->ctx.token, s->ctx.repository, err, errlen);
}

/* workflow_dispatch (or --pr): the PR's SHAs, title and author from the API. */
static int fetch_pull(review_state *s, char *err, size_t errlen)
{
    if (need_client(s, err, errlen) < 0) return -1;
    log_line(&s->log, "fetching PR #%ld from the GitHub API", s->ctx.pr_number);
    gh_pull pr;
    int rc = gh_pull_get(s->gh, s->ctx.pr_number, &pr, err, errlen);
    if (rc != PRBOT_OK) return -1;
    snprintf(s->ctx.base_sha, sizeof s->ctx.base_sha, "%s", pr.base_sha);
    snprintf(s->ctx.head_sha, sizeof s->ctx.head_sha, "%s", pr.head_sha);
    if (!s->opt.base) snprintf(s->ctx.base_rev, sizeof s->ctx.base_rev, "%s", pr.base_sha);
    if (!s->opt.head) snprintf(s->ctx.head_rev, sizeof s->ctx.head_rev, "%s", pr.head_sha);
    snprintf(s->ctx.author, sizeof s->ctx.author, "%s", pr.author);
    s->ctx.fork = pr.fork;
    s->ctx.draft = pr.draft;
    rc = event_set_text(&s->ctx.title, pr.title) | event_set_text(&s->ctx.body, pr.body);
    gh_pull_free(&pr);
    if (rc) err_set(err, errlen, "out of memory");
    return rc ? -1 : 0;
}

static diff_status status_from_api(const char *s)
{
    if (!strcmp(s, "added")) return DIFF_ADDED;
    if (!strcmp(s, "removed")) return DIFF_DELETED;
    if (!strcmp(s, "renamed")) return DIFF_RENAMED;
    if (!strcmp(s, "copied")) return DIFF_COPIED;
    return DIFF_MODIFIED;
}

static int diff_from_api(review_state *s, const diff_options *dopt, char *err, size_t errlen)
{
    if (need_client(s, err, errlen) < 0) return -1;
    gh_pull_file *files = NULL;
    size_t n = 0;
    if (gh_pull_files(s->gh, s->ctx.pr_number, &files, &n, err, errlen) != PRBOT_OK) return -1;
    memset(&s->diff, 0, sizeof s->diff);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gh_pull_file *f = &files[i];
        rc = diff_result_add_file(&s->diff, f->filename, f->previous_filename, status_from_api(f->status),
                                  (int)f->additions, (int)f->deletions, f->patch, dopt);
        if (rc == 0 && !f->patch && (f->additions || f->deletions))
            rc = diff_file_set_skip(&s->diff.files[s->diff.n_files - 1], "no patch from the API (binary or too large)");
    }
    gh_pull_files_free(files, n);
    if (rc == 0) rc = diff_result_apply_filters(&s->diff, dopt);
    if (rc) err_set(err, errlen, "out of memory reading the PR files");
    snprintf(s->diff.base_sha, sizeof s->diff.base_sha, "%.40s", s->ctx.base_sha);
    snprintf(s->diff.head_sha, sizeof s->diff.head_sha, "%.40s", s->ctx.head_sha);
    return rc ? -1 : 0;
}

static int collect_diff(review_state *s, char *err, size_t errlen)
{
    diff_options dopt = {.include = s->opt.include.items, .n_include = (size_t)s->opt.include.n,
                         .exclude = s->opt.exclude.items, .n_exclude = (size_t)s->opt.exclude.n};
    if (!s->ctx.base_rev[0] && diff_default_base(s->ctx.repo_dir, s->ctx.base_rev, sizeof s->ctx.base_rev, err, errlen) < 0)
        return -1;
    log_line(&s->log, "diffing merge-base(%s, %s)..%s in %s", s->ctx.base_rev, s->ctx.head_rev, s->ctx.head_rev,
             s->ctx.repo_dir);
    int rc = diff_collect(s->ctx.repo_dir, s->ctx.base_rev, s->ctx.head_rev, &dopt, &s->diff, err, errlen);
    int recoverable = rc == PRBOT_ENOTFOUND || (rc == PRBOT_ENOREPO && s->ctx.kind != EVENT_LOCAL);
    if (recoverable && s->ctx.pr_number && !s->opt.dry_run) {
        log_warning(&s->log, err);
        log_line(&s->log, "falling back to the PR files API (GET /pulls/%ld/files)", s->ctx.pr_number);
        s->diff_source = rc == PRBOT_ENOREPO ? "from GitHub's PR files API (no git checkout)"
                                                : "from GitHub's PR files API (the checkout lacks the base commit)";
        return diff_from_api(s, &dopt, err, errlen);
    }
    return rc == 0 ? 0 : -1;
}

static void log_diff_summary(review_state *s)
{
    size_t skipped = 0;
    for (size_t i = 0; i < s->diff.n_files; i++) {
        const diff_file *f = &s->diff.files[i];
        if (f->skip_reason) skipped++;
        log_line(&s->log, "  %-9s %s%s%s", diff_status_name(f->status), f->path, f->skip_reason ? "  -- skipped: " : "",
                 f->skip_reason ? f->skip_reason : "");
    }
    log_line(&s->log, "%zu files changed, %zu skipped, %zu bytes of patch text", s->diff.n_files, skipped,
             s->diff.total_patch_bytes);
}

/* ---- incremental reviews ------------------------------------------------- */

/* The summary comment's state from the last run, when there is a PR to read. */
static void read_state(review_state *s)
{
    if (!s->tmpl.findings || s->opt.dry_run || !s->ctx.pr_number || !s->ctx.repository[0]) return;
    char err[512];
    if (need_client(s, err, sizeof err) < 0) return;
    int rc = publish_state_read(s->gh, s->ctx.pr_number, s->tmpl.name, &s->prev, err, sizeof err);
    if (rc != PRBOT_OK) {
        log_warning(&s->log, err);
        log_line(&s->log, "could not read the last review's state: reviewing the whole PR");
        return;
    }
    if (s->prev.head_sha[0])
        log_line(&s->log, "last reviewed head %.12s, %zu findings posted so far", s->prev.head_sha, s->prev.n_fps);
}

/* When the last reviewed head is an ancestor of this head, the diff of the
 * new commits only (s->inc); a force-push or --full reviews everything. */
static int incremental_diff(review_state *s, char *err, size_t errlen)
{
    const char *last = s->prev.head_sha, *head = s->diff.head_sha;
    if (!last[0] || !head[0] || !strcmp(last, head)) return 0;
    if (s->opt.full) {
        log_line(&s->log, "--full: reviewing the whole PR (last reviewed %.12s)", last);
        return 0;
    }
    char aerr[512] = "";
    int anc = s->diff_source ? 0 : diff_is_ancestor(s->ctx.repo_dir, last, head, aerr, sizeof aerr);
    if (anc <= 0) {
        if (anc < 0) log_warning(&s->log, aerr);
        log_line(&s->log, "last reviewed head %.12s is not an ancestor of %.12s (force-push?): reviewing the whole PR",
                 last, head);
        return 0;
    }
    diff_options dopt = {.include = s->opt.include.items, .n_include = (size_t)s->opt.include.n,
                         .exclude = s->opt.exclude.items, .n_exclude = (size_t)s->opt.exclude.n};
    if (diff_collect(s->ctx.repo_dir, last, head, &dopt, &s->inc, err, errlen) < 0) return -1;
    /* only the PR's files, and none the whole PR's diff skips */
    for (size_t i = 0; i < s->inc.n_files; i++) {
        diff_file *f = &s->inc.files[i];
        const diff_file *whole = NULL;
        for (size_t k = 0; k < s->diff.n_files && !whole; k++)
            if (!strcmp(s->diff.files[k].path, f->path)) whole = &s->diff.files[k];
        if (!f->skip_reason && (!whole || whole->skip_reason) &&
            diff_file_set_skip(f, whole ? whole->skip_reason : "not part of the pull request's diff") < 0)
            goto oom;
    }
    s->incremental = 1;
    publish_scope_line(s->scope, sizeof s->scope, last, head);
    log_line(&s->log, "incremental review: only the commits %.12s..%.12s go to the model (%zu files changed)", last,
             head, s->inc.n_files);
    return 0;
oom:
    err_set(err, errlen, "out of memory");
    return -1;
}

/* The whole PR's file list says what this run showed: files of the new
 * commits as the prompt chose them, the rest "unchanged since". */
static int carry_choice(review_state *s)
{
    char unchanged[96];
    snprintf(unchanged, sizeof unchanged, "unchanged since the last review (%.7s)", s->prev.head_sha);
    for (size_t k = 0; k < s->diff.n_files; k++) {
        diff_file *whole = &s->diff.files[k];
        if (whole->skip_reason) continue;
        const diff_file *f = NULL;
        for (size_t i = 0; i < s->inc.n_files && !f; i++)
            if (!strcmp(s->inc.files[i].path, whole->path)) f = &s->inc.files[i];
        if (!f && diff_file_set_not_shown(whole, unchanged) < 0) return -1;
        if (f && f->skip_reason &&
            (f->not_shown ? diff_file_set_not_shown(whole, f->skip_reason) : diff_file_set_skip(whole, f->skip_reason)) < 0)
            return -1;
        if (f && f->note && diff_file_set_note(whole, f->note) < 0) return -1;
    }
    return 0;
}

static int build_prompt(review_state *s, token_counter *tc, char *err, size_t errlen)
{
    const engine_info *info = s->e ? engine_get_info(s->e) : NULL;
    char pr[32], body[BODY_EXCERPT_BYTES + 1];
    snprintf(pr, sizeof pr, "%ld", s->ctx.pr_number);
    snprintf(body, sizeof body, "%s", s->ctx.body && *s->ctx.body ? s->ctx.body : "(none)");
    prompt_var vars[] = {
        {"repo", s->ctx.repository[0] ? s->ctx.repository : "this repository"},
        {"title", s->ctx.title && *s->ctx.title ? s->ctx.title : "(no title)"},
        {"author", s->ctx.author[0] ? s->ctx.author : "(unknown)"},
        {"body", body},
        {"base", s->ctx.base_rev},
        {"head", s->ctx.head_rev},
        {"pr", pr},
    };
    prompt_budget b = {.n_ctx = info ? info->n_ctx : 0, .max_tokens = s->opt.max_tokens, .count = count_tokens,
                       .format = format_chat, .user = tc, .numbered = s->tmpl.findings};
    if (s->opt.backend) { /* the server's context; the local model, if any, only counts */
        b.n_ctx = s->opt.backend_ctx;
        if (!s->e) b.count = estimate_tokens, b.format = NULL;
    }
    if (s->opt.time_budget > 0 && !s->opt.backend) {
        b.time_budget_s = budget_left(&s->opt, &s->log);
        prompt_estimate_speed(info->weight_bytes, info->n_threads, &b.prefill_tokens_per_s, &b.decode_tokens_per_s);
    }
    diff_result *shown = s->incremental ? &s->inc : &s->diff;
    if (prompt_build(&s->tmpl, vars, sizeof vars / sizeof vars[0], shown, &b, &s->prompt, err, errlen) < 0)
        return -1;
    if (s->incremental && carry_choice(s) < 0) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    log_line(&s->log, "prompt: %d tokens (budget %d, bounded by the %s), %d files shown (%d truncated), %d left out",
             s->prompt.prompt_tokens, s->prompt.token_budget, s->prompt.limit, s->prompt.n_shown,
             s->prompt.n_truncated, s->prompt.n_dropped);
    return 0;
}

/* The grammar of the findings answer (findings_schema): paths only of the
 * files shown that have new-side lines, lines within their hunks' range
 * widened by ANCHOR_DISTANCE. Anchoring still checks every line; the
 * grammar makes the answer parse and keeps the model on the shown files. */
static int findings_grammar(review_state *s, grammar **out, char *err, size_t errlen)
{
    const diff_result *shown = s->incremental ? &s->inc : &s->diff;
    const char **paths = calloc(shown->n_files + 1, sizeof *paths);
    int *lo = calloc(shown->n_files + 1, sizeof *lo), *hi = calloc(shown->n_files + 1, sizeof *hi);
    json_t *schema = NULL;
    char *text = NULL;
    size_t n = 0;
    int rc = -1;
    if (!paths || !lo || !hi) goto oom;
    for (size_t i = 0; i < shown->n_files; i++) {
        const diff_file *f = &shown->files[i];
        linemap m;
        if (f->skip_reason || !f->patch_len) continue;
        if (linemap_parse(f->patch, f->patch_len, &m, err, errlen) < 0) goto done;
        int first = 0, last = 0;
        for (size_t h = 0; h < m.n_hunks; h++) {
            if (m.hunks[h].last_new < m.hunks[h].first_new) continue;
            if (!first || m.hunks[h].first_new < first) first = m.hunks[h].first_new;
            if (m.hunks[h].last_new > last) last = m.hunks[h].last_new;
        }
        linemap_free(&m);
        if (!first) continue; /* only deleted lines: nothing a comment may target */
        paths[n] = f->path;
        lo[n] = first > ANCHOR_DISTANCE ? first - ANCHOR_DISTANCE : 1;
        hi[n] = last + ANCHOR_DISTANCE;
        n++;
    }
    schema = findings_schema(paths, lo, hi, n, SCHEMA_MAX_FINDINGS, 1);
    if (!schema) goto oom;
    if (json_schema_to_grammar(schema, JSON_SCHEMA_DEFAULT_SPACE, &text, err, errlen) < 0) goto done;
    if (grammar_parse(out, text, strlen(text), err, errlen) < 0) goto done;
    rc = 0;
    goto done;
oom:
    err_set(err, errlen, "out of memory building the findings grammar");
done:
    free(text);
    json_decref(schema);
    free(paths);
    free(lo);
    free(hi);
    return rc;
}

static int generate(review_state *s, char *err, size_t errlen)
{
    const engine_info *info = engine_get_info(s->e);
    const char *formatted = s->prompt.formatted;
    int32_t *ids;
    int n = engine_tokenize_alloc(s->e, formatted, strlen(formatted), info->add_bos, 1, &ids);
    if (n <= 0) {
        free(ids);
        err_set(err, errlen, "could not tokenize the prompt");
        return -1;
    }
    engine_sampling sp;
    engine_sampling_defaults(&sp);
    sp.temperature = 0; /* reviews should be reproducible */
    sp.repeat_penalty = 1.1f;
    sp.repeat_last_n = 64;
    sp.max_tokens = s->prompt.max_tokens;
    sp.speculate = s->opt.speculate;
    sp.time_budget_s = budget_left(&s->opt, &s->log);
    grammar *g_findings = NULL;
    if (s->tmpl.findings && findings_grammar(s, &g_findings, err, errlen) < 0) {
        free(ids);
        return -1;
    }
    sp.grammar = g_findings;
    log_line(&s->log, "prefilling %d prompt tokens, then generating up to %d tokens%s", n, sp.max_tokens,
             sp.grammar ? " of findings JSON (constrained)" : "");
    textbuf g = {0};
    engine_session *ses;
    if (engine_session_new(&ses, s->e, 0, err, errlen) < 0) {
        grammar_free(g_findings);
        free(ids);
        return -1;
    }
    engine_set_progress(ses, on_prefill_progress, &s->log);
    int rc = engine_generate(ses, ids, n, &sp, on_token, &g, NULL, 0, &s->stats, err, errlen);
    engine_session_free(ses);
    free(ids);
    grammar_free(g_findings);
    log_commands_resume(&s->log);
    fputs("\n--------------------------\n", stderr);
    if (rc < 0 || g.failed) {
        if (g.failed) err_set(err, errlen, "out of memory collecting the generated text");
        textbuf_free(&g);
        return -1;
    }
    s->model_text = g.data ? g.data : strdup("");
    log_line(&s->log, "prefill %d tokens in %.2f s (%.1f tok/s), decode %d tokens in %.2f s (%.1f tok/s), stop: %s",
             s->stats.prompt_tokens, s->stats.prefill_s, s->stats.prefill_tokens_per_s, s->stats.generated_tokens,
             s->stats.decode_s, s->stats.decode_tokens_per_s, s->stats.stop_reason ? s->stats.stop_reason : "?");
    if (sp.speculate > 0)
        log_line(&s->log, "speculation: %d tokens drafted, %d accepted", s->stats.drafted_tokens,
                 s->stats.accepted_tokens);
    return s->model_text ? 0 : -1;
}

/* A backend's answer streams to stderr as a local one does; a retried one starts over. */
static int on_backend_text(const char *text, void *user)
{
    textbuf *g = user;
    if (!text) {
        fputs("\n----- retrying: the text above is discarded -----\n", stderr);
        g->len = 0;
        if (g->data) g->data[0] = 0;
        return 0;
    }
    return on_token(0, text, g);
}

static int generate_backend(review_state *s, char *err, size_t errlen)
{
    backend_options bo = {.url = s->opt.backend, .model = s->opt.backend_model,
                          .api_key = getenv("PRBOT_BACKEND_API_KEY")};
    engine_chat_msg msgs[2];
    int n = 0;
    if (s->prompt.system) msgs[n++] = (engine_chat_msg){"system", s->prompt.system};
    msgs[n++] = (engine_chat_msg){"user", s->prompt.user_msg};
    double budget = budget_left(&s->opt, &s->log);
    log_line(&s->log, "sending about %d prompt tokens to %s, up to %d tokens back", s->prompt.prompt_tokens,
             s->opt.backend, s->prompt.max_tokens);
    fputs("----- generated text -----\n", stderr);
    log_commands_stop(&s->log);
    textbuf g = {0};
    backend_result res;
    double t0 = seconds_since(s->log.start);
    int rc = backend_chat(&bo, msgs, n, s->prompt.max_tokens, 0.0, budget, on_backend_text, &g, &res, err, errlen);
    log_commands_resume(&s->log);
    fputs("\n--------------------------\n", stderr);
    if (rc < 0 || g.failed) {
        if (rc == 0) err_set(err, errlen, "out of memory collecting the generated text");
        textbuf_free(&g);
        return -1;
    }
    s->model_text = g.data ? g.data : strdup("");
    double seconds = seconds_since(s->log.start) - t0;
    s->stats.prompt_tokens = res.prompt_tokens >= 0 ? res.prompt_tokens : s->prompt.prompt_tokens;
    s->stats.generated_tokens = res.completion_tokens >= 0 ? res.completion_tokens : 0;
    s->stats.decode_s = seconds;
    s->stats.decode_tokens_per_s = seconds > 0 ? s->stats.generated_tokens / seconds : 0;
    s->stats.stop_reason = !strcmp(res.finish_reason, "length") ? "max_tokens" : "eos";
    snprintf(s->model_name, sizeof s->model_name, "%s", res.model[0] ? res.model : s->opt.backend_model ? s->opt.backend_model : "?");
    s->origin = "generated by a model server through prbot";
    log_line(&s->log, "%s answered %d tokens in %.2f s (%s)", s->model_name, s->stats.generated_tokens, seconds,
             res.finish_reason[0] ? res.finish_reason : "?");
    return s->model_text ? 0 : -1;
}

static int run_model(review_state *s, char *err, size_t errlen)
{
    engine_params ep = {.n_threads = s->opt.threads, .n_ctx = 0, .vocab_only = s->opt.backend != NULL};
    if (s->model_path[0]) {
        log_line(&s->log, "loading %s%s", s->model_path, s->opt.backend ? " (its tokenizer, to count tokens)" : "");
        if (engine_open(&s->e, s->model_path, &ep, err, errlen) < 0) return -1;
        const engine_info *info = engine_get_info(s->e);
        snprintf(s->model_name, sizeof s->model_name, "%s", info->name);
        if (!s->opt.backend)
            log_line(&s->log, "model %s (%s, %s), context %d, %d threads", info->name, info->arch, info->file_type,
                     info->n_ctx, info->n_threads);
    }
    token_counter tc = {.e = s->e};
    int rc = build_prompt(s, &tc, err, errlen);
    if (rc == 0 && s->prompt.n_shown == 0) {
        log_line(&s->log, "nothing to review: every changed file was skipped");
        s->notice = s->incremental ? "Nothing new to review: no file changed by the new commits could be shown to the "
                                     "model (see the list below for the reasons)."
                                   : "Nothing to review: no changed file could be shown to the model (see the list "
                                     "below for the reasons).";
        s->model_text = strdup(s->tmpl.findings ? "" : s->notice);
        rc = s->model_text ? 0 : -1;
    } else if (rc == 0) {
        rc = s->opt.backend ? generate_backend(s, err, errlen) : generate(s, err, errlen);
    }
    return rc;
}

static int render(review_state *s, char *err, size_t errlen)
{
    char heading[160];
    snprintf(heading, sizeof heading, "prbot %s", s->tmpl.name);
    comment_input in = {.name = s->tmpl.name, .heading = heading, .model_text = s->model_text, .diff = &s->diff,
                        .diff_source = s->diff_source, .model_name = s->model_name[0] ? s->model_name : NULL,
                        .origin = s->origin,
                        .prompt_tokens = s->stats.prompt_tokens, .generated_tokens = s->stats.generated_tokens,
                        .prefill_tokens_per_s = s->stats.prefill_tokens_per_s,
                        .decode_tokens_per_s = s->stats.decode_tokens_per_s,
                        .total_seconds = seconds_since(s->log.start), .stop_reason = s->stats.stop_reason};
    return comment_render(&in, &s->body, err, errlen);
}

/* ---- findings ----------------------------------------------------------- */

/* Condition on an anchored line in an incremental review: the whole PR's
 * diff must show it too (GitHub checks comments against that diff). */
typedef struct {
    const char *const *paths;
    const linemap *whole; /* per shown path: its map in the whole diff, or NULL */
    const int *has_whole;
} whole_diff;

static int on_whole_diff(void *user, size_t file, int line)
{
    const whole_diff *w = user;
    return w->has_whole[file] && linemap_commentable(&w->whole[file], line);
}

/* The model's answer as a review document: findings read, checked and
 * anchored on the lines the model was shown. */
static int build_doc(review_state *s, char *err, size_t errlen)
{
    const diff_result *shown = s->incremental ? &s->inc : &s->diff;
    size_t n = 0;
    const char **paths = calloc(shown->n_files + 1, sizeof *paths);
    linemap *maps = calloc(shown->n_files + 1, sizeof *maps), *whole = calloc(shown->n_files + 1, sizeof *whole);
    const linemap **map_ptrs = calloc(shown->n_files + 1, sizeof *map_ptrs);
    int *has_whole = calloc(shown->n_files + 1, sizeof *has_whole);
    int rc = -1;
    if (!paths || !maps || !whole || !map_ptrs || !has_whole) goto oom;
    for (size_t i = 0; i < shown->n_files; i++) {
        const diff_file *f = &shown->files[i];
        if (f->skip_reason) continue;
        paths[n] = f->path;
        if (linemap_parse(f->patch, f->patch_len, &maps[n], err, errlen) < 0) goto done;
        map_ptrs[n] = &maps[n];
        for (size_t k = 0; s->incremental && k < s->diff.n_files; k++)
            if (!strcmp(s->diff.files[k].path, f->path)) {
                if (linemap_parse(s->diff.files[k].patch, s->diff.files[k].patch_len, &whole[n], err, errlen) < 0)
                    goto done;
                has_whole[n] = 1;
            }
        n++;
    }
    findings_list *l = &s->doc.f;
    if (findings_parse(s->model_text, strlen(s->model_text), paths, n, s->echo, l, err, errlen) < 0) goto done;
    whole_diff w = {paths, whole, has_whole};
    findings_anchor(l, paths, map_ptrs, n, ANCHOR_DISTANCE, s->incremental ? on_whole_diff : NULL, &w);
    findings_rank(l);
    if (s->prompt.n_shown == 0) l->status = FINDINGS_PARSED; /* the model was not asked */
    else if (l->status == FINDINGS_UNPARSED)
        s->notice = "The model's answer could not be read as a review, so this run has no findings. Try a larger "
                    "model, or a larger --max-tokens if the answer was cut short.";
    log_line(&s->log, "findings: %s, %zu kept, %d dropped as invalid", l->status == FINDINGS_PARSED ? "parsed"
             : l->status == FINDINGS_REPAIRED ? "parsed after closing a cut-short answer" : "answer not readable",
             l->n, l->dropped);
    for (size_t i = 0; i < l->n; i++) {
        const finding *f = &l->items[i];
        log_line(&s->log, "  %-4s %s:%d%s %s", findings_severity_name(f->severity), f->path, f->line,
                 f->line != f->model_line ? f->line ? " (moved)" : " (not in the diff)" : "", f->title);
    }
    review_doc *d = &s->doc;
    d->version = 1;
    snprintf(d->repo, sizeof d->repo, "%s", s->ctx.pr_number ? s->ctx.repository : "");
    d->pr = s->ctx.pr_number;
    snprintf(d->base_sha, sizeof d->base_sha, "%.40s", s->ctx.base_sha[0] ? s->ctx.base_sha : s->diff.base_sha);
    snprintf(d->head_sha, sizeof d->head_sha, "%.40s", s->diff.head_sha[0] ? s->diff.head_sha : s->ctx.head_sha);
    if (s->incremental) snprintf(d->since_sha, sizeof d->since_sha, "%s", s->prev.head_sha);
    d->model = strdup(s->model_name);
    d->prompt = strdup(s->tmpl.name);
    d->stop_reason = s->stats.stop_reason ? strdup(s->stats.stop_reason) : NULL;
    d->prompt_tokens = s->stats.prompt_tokens;
    d->generated_tokens = s->stats.generated_tokens;
    d->seconds = seconds_since(s->log.start);
    if (!d->model || !d->prompt || review_doc_set_files(d, &s->diff) < 0) goto oom;
    rc = 0;
    goto done;
oom:
    err_set(err, errlen, "out of memory building the review document");
done:
    for (size_t i = 0; maps && whole && i < n; i++) {
        linemap_free(&maps[i]);
        linemap_free(&whole[i]);
    }
    free(paths);
    free(maps);
    free(whole);
    free(map_ptrs);
    free(has_whole);
    return rc;
}

static publish_summary_info summary_info(review_state *s)
{
    publish_summary_info si = {.diff = &s->diff, .diff_source = s->diff_source,
                               .scope = s->scope[0] ? s->scope : NULL, .notice = s->notice};
    si.stats = (comment_stats){s->model_name[0] ? s->model_name : NULL, s->stats.prompt_tokens,
                               s->stats.generated_tokens, s->stats.prefill_tokens_per_s, s->stats.decode_tokens_per_s,
                               seconds_since(s->log.start), s->stats.stop_reason, s->origin};
    return si;
}

/* Plans and renders the review against our own diff (no network). */
static int plan_locally(review_state *s, char *err, size_t errlen)
{
    publish_files files;
    if (publish_files_from_diff(&s->diff, &files, err, errlen) < 0) return -1;
    publish_options po = {.name = s->tmpl.name, .max_inline = s->opt.max_inline, .no_inline = s->opt.no_inline,
                          .dry_run = 1};
    publish_summary_info si = summary_info(s);
    int rc = publish_prepare(&s->doc, &files, &s->prev, &po, &s->plan, err, errlen);
    if (rc == 0) rc = publish_render_summary(&s->doc, &s->prev, &po, &si, &s->plan, err, errlen);
    publish_files_free(&files);
    if (rc == 0 && !(s->body = strdup(s->plan.summary_body))) rc = -1;
    return rc;
}

/* Writes text to dir/name through a temporary file, so a reader never sees half a file. */
static int write_file_in(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        err_set(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        err_set(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* --output DIR: review.json (the contract), summary.md and review-request.json. */
static int write_output_dir(review_state *s, char *err, size_t errlen)
{
    const char *dir = s->opt.output;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        err_set(err, errlen, "cannot create --output directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char *json = review_doc_to_json(&s->doc), *request = publish_review_request_json(&s->doc, &s->plan);
    int rc = -1;
    if (!json || !request) err_set(err, errlen, "out of memory writing %s", dir);
    else if (write_file_in(dir, "review.json", json, err, errlen) == 0 &&
             write_file_in(dir, "summary.md", s->plan.summary_body, err, errlen) == 0 &&
             write_file_in(dir, "review-request.json", request, err, errlen) == 0)
        rc = 0;
    free(json);
    free(request);
    if (rc == 0) {
        fprintf(stderr, "prbot review: wrote %s/review.json, summary.md and review-request.json\n", dir);
        gh_action_output("output-dir", dir);
    }
    return rc;
}

/* --dry-run of a findings template: the summary, then the inline comments. */
static void print_findings(review_state *s)
{
    fflush(stderr);
    publish_print_plan(stdout, &s->plan, s->doc.head_sha, s->log.stop_token);
}


/* Writes the body to $RUNNER_TEMP/prbot-NAME.md for the action's body-file output. */
static void write_body_file(review_state *s)
{
    const char *dir = getenv("RUNNER_TEMP");
    if (!dir || !*dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/prbot-%s.md", dir, s->tmpl.name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    int ok = fputs(s->body, f) >= 0;
    if (fclose(f) == 0 && ok) gh_action_output("body-file", path);
}

/* The exit status after posting ended with rc; s->body goes to the job
 * summary when the API would not take it. */
static int post_outcome(review_state *s, int rc, const char *err, const char *url, int updated)
{
    if (rc == PRBOT_OK) {
        gh_action_output("comment-url", url);
        fprintf(stderr, "prbot review: comment %s: %s\n", updated ? "updated" : "created", url);
        return 0;
    }
    char summary_err[512] = "";
    int summarised = gh_step_summary_write(s->body, summary_err, sizeof summary_err) == 0;
    if (rc == PRBOT_EFORBIDDEN) {
        fprintf(stderr, "prbot review: the token cannot comment on PR #%ld (read-only token, e.g. a fork PR): %s\n",
                s->ctx.pr_number, summarised ? "the review is in the job summary" : summary_err);
        if (s->ctx.in_actions)
            fprintf(stderr, "::notice::prbot could not comment (read-only token); the review is in the job summary\n");
        return summarised ? 0 : (s->opt.strict ? 1 : 0);
    }
    char msg[1200];
    snprintf(msg, sizeof msg, "could not post the comment: %s%s", err,
             summarised ? " (the review is in the job summary)" : "");
    if (s->opt.strict) {
        fprintf(stderr, "prbot review: %s\n", msg);
        return 1;
    }
    log_warning(&s->log, msg);
    fprintf(stderr, "prbot review: not failing the job (pass --strict to fail on API errors)\n");
    return 0;
}

static int need_token(review_state *s, char *err, size_t errlen)
{
    if (!s->ctx.token) {
        err_set(err, errlen, "GITHUB_TOKEN is not set: add `env: GITHUB_TOKEN: ${{ github.token }}` to the step "
                             "(permissions: pull-requests: write)");
        return -1;
    }
    return need_client(s, err, errlen);
}

/* Posts the body as one comment; returns the exit status. */
static int post(review_state *s)
{
    char err[1024] = "", url[512] = "", marker[256];
    comment_marker(s->tmpl.name, marker, sizeof marker);
    int updated = 0, rc = PRBOT_ERROR;
    if (need_token(s, err, sizeof err) == 0)
        rc = gh_comment_upsert(s->gh, s->ctx.pr_number, marker, s->body, url, sizeof url, &updated, err, sizeof err);
    return post_outcome(s, rc, err, url, updated);
}

/* Posts the findings: one review, then the summary; returns the exit status. */
static int post_findings(review_state *s)
{
    char err[1024] = "";
    int rc = PRBOT_ERROR;
    publish_files files = {0};
    publish_options po = {.name = s->tmpl.name, .max_inline = s->opt.max_inline, .no_inline = s->opt.no_inline};
    publish_summary_info si = summary_info(s);
    if (need_token(s, err, sizeof err) == 0) {
        rc = publish_files_from_api(s->gh, s->ctx.pr_number, &files, err, sizeof err);
        if (rc != PRBOT_OK && rc != PRBOT_EFORBIDDEN) { /* check against our own diff instead */
            log_warning(&s->log, err);
            rc = publish_files_from_diff(&s->diff, &files, err, sizeof err) == 0 ? PRBOT_OK : PRBOT_ERROR;
        }
    }
    if (rc == PRBOT_OK) rc = publish_prepare(&s->doc, &files, &s->prev, &po, &s->plan, err, sizeof err) == 0 ? PRBOT_OK : PRBOT_ERROR;
    if (rc == PRBOT_OK) {
        log_line(&s->log, "posting a review with %zu inline comment%s on %.12s", s->plan.n_comments,
                 s->plan.n_comments == 1 ? "" : "s", s->doc.head_sha);
        rc = publish_post(s->gh, s->ctx.pr_number, &s->doc, &s->prev, &po, &si, &s->plan, err, sizeof err);
    }
    publish_files_free(&files);
    if (s->plan.review_error[0]) {
        char msg[700];
        snprintf(msg, sizeof msg, "could not post the review (its findings are in the summary): %s", s->plan.review_error);
        log_warning(&s->log, msg);
        if (s->opt.strict && rc == PRBOT_OK) {
            rc = PRBOT_ERROR;
            err_set(err, sizeof err, "%s", msg);
        }
    }
    if (s->plan.review_posted) {
        fprintf(stderr, "prbot review: review posted: %s (%zu inline comment%s%s)\n", s->plan.review_url,
                s->plan.n_comments - (size_t)s->plan.refused, s->plan.n_comments - (size_t)s->plan.refused == 1 ? "" : "s",
                s->plan.refused ? ", the ones GitHub refused went to the summary" : "");
        gh_action_output("review-url", s->plan.review_url);
    }
    /* the body for the job summary and the body-file output */
    if (!s->plan.summary_body) {
        char err2[256];
        publish_render_summary(&s->doc, &s->prev, &po, &si, &s->plan, err2, sizeof err2);
    }
    if (s->plan.summary_body && !(s->body = strdup(s->plan.summary_body))) {
        fprintf(stderr, "prbot review: out of memory\n");
        return 1;
    }
    if (!s->body) return post_outcome(s, rc == PRBOT_OK ? PRBOT_ERROR : rc, err, "", 0);
    write_body_file(s);
    return post_outcome(s, rc, err, s->plan.summary_url, s->plan.summary_updated);
}

static void review_state_free(review_state *s)
{
    publish_plan_free(&s->plan);
    review_doc_free(&s->doc);
    findings_echo_free(s->echo);
    publish_state_free(&s->prev);
    diff_result_free(&s->inc);
    free(s->body);
    free(s->model_text);
    prompt_result_free(&s->prompt);
    prompt_template_free(&s->tmpl);
    diff_result_free(&s->diff);
    if (s->e) engine_close(s->e);
    gh_client_free(s->gh);
    event_context_free(&s->ctx);
}

static int fail(review_state *s, const char *err)
{
    fputs("prbot review: ", stderr);
    put_one_line(err);
    fputc('\n', stderr);
    review_state_free(s);
    return 1;
}

/* The findings path after the model: document, then --output, print or post. */
static int finish_findings(review_state *s, int local_print)
{
    char err[1024] = "";
    if (build_doc(s, err, sizeof err) < 0) return fail(s, err);
    int rc;
    if (s->opt.output || s->opt.dry_run || local_print) {
        if (plan_locally(s, err, sizeof err) < 0 || (s->opt.output && write_output_dir(s, err, sizeof err) < 0))
            return fail(s, err);
        write_body_file(s);
        if (s->opt.dry_run || local_print) {
            print_findings(s);
            fprintf(stderr, "prbot review: %s: printed to stdout\n",
                    s->opt.dry_run ? "dry-run" : "local review (pass --pr N with GITHUB_TOKEN to post)");
        }
        rc = 0;
    } else {
        rc = post_findings(s);
    }
    review_state_free(s);
    return rc;
}

int cmd_review(int argc, char **argv)
{
    review_state s;
    memset(&s, 0, sizeof s);
    s.log.start = engine_now_s();
    int rc = parse_options(argc, argv, &s.opt);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    char err[1024] = "";
    event_options eo = {.repo_dir = s.opt.repo, .base = s.opt.base, .head = s.opt.head, .pr = s.opt.pr};
    if (event_load(&s.ctx, &eo, err, sizeof err) < 0) return fail(&s, err);
    s.log.in_actions = s.ctx.in_actions;
    if (s.log.in_actions && gh_action_stop_token(s.log.stop_token) < 0) return fail(&s, "cannot read /dev/urandom");
    int model_given = s.opt.model || (getenv("PRBOT_MODEL") && *getenv("PRBOT_MODEL"));
    if ((!s.opt.backend || model_given) && find_model(s.opt.model, s.model_path, sizeof s.model_path, err, sizeof err) < 0)
        return fail(&s, err);
    if (prompt_template_load(s.opt.prompt, &s.tmpl, err, sizeof err) < 0) return fail(&s, err);
    if (s.tmpl.findings) {
        textbuf t = {0};
        textbuf_puts(&t, s.tmpl.system ? s.tmpl.system : "");
        textbuf_puts(&t, "\n");
        textbuf_puts(&t, s.tmpl.user);
        s.echo = t.data ? findings_echo_new(t.data) : NULL;
        textbuf_free(&t);
        if (!s.echo) return fail(&s, "out of memory");
    }

    log_group(&s.log, "prbot: pull request");
    if (s.ctx.kind != EVENT_LOCAL && !s.ctx.base_sha[0] && fetch_pull(&s, err, sizeof err) < 0) {
        log_endgroup(&s.log);
        return fail(&s, err);
    }
    if (s.ctx.kind == EVENT_LOCAL)
        log_line(&s.log, "local review of %s", s.ctx.repo_dir);
    else
        log_line(&s.log, "%s: %s PR #%ld by %s%s%s, base %.12s, head %.12s", s.ctx.event_name, s.ctx.repository,
                 s.ctx.pr_number, s.ctx.author[0] ? s.ctx.author : "?", s.ctx.fork ? " (from a fork)" : "",
                 s.ctx.draft ? " (draft)" : "", s.ctx.base_sha, s.ctx.head_sha);
    read_state(&s);
    rc = collect_diff(&s, err, sizeof err);
    if (rc == 0) log_diff_summary(&s);
    if (rc == 0 && s.tmpl.findings) rc = incremental_diff(&s, err, sizeof err);
    log_endgroup(&s.log);
    if (rc < 0) return fail(&s, err);

    log_group(&s.log, "prbot: model");
    rc = run_model(&s, err, sizeof err);
    log_endgroup(&s.log);
    if (rc < 0) return fail(&s, err);
    int local_print = s.ctx.kind == EVENT_LOCAL && !s.ctx.pr_number;
    if (s.tmpl.findings) return finish_findings(&s, local_print);

    if (render(&s, err, sizeof err) < 0) return fail(&s, err);
    write_body_file(&s);
    if (s.opt.dry_run || local_print) {
        fflush(stderr);
        gh_action_stop_commands_begin(stdout, s.log.stop_token);
        fputs(s.body, stdout);
        gh_action_stop_commands_end(stdout, s.log.stop_token);
        fflush(stdout);
        fprintf(stderr, "prbot review: %s: printed to stdout\n",
                s.opt.dry_run ? "dry-run" : "local review (pass --pr N with GITHUB_TOKEN to post)");
        review_state_free(&s);
        return 0;
    }
    rc = post(&s);
    review_state_free(&s);
    return rc;
}
