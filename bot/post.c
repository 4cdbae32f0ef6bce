/*
 * post.c - `prbot post --from DIR`: post a review that another job wrote.
 *
 * The fork setup (workflows/): a pull_request job, whose token cannot write
 * to the base repository, runs `prbot review --output DIR` and uploads DIR as
 * an artifact; a workflow_run job with a write token downloads it and runs
 * this. That second job never checks out or runs the PR's code, but the
 * artifact itself was made by a job the PR controls (a fork can change the
 * first workflow), so it is untrusted input, checked before anything is
 * posted:
 *
 *   - DIR/review.json only (the rendered bodies next to it are ignored and
 *     everything is rendered again here): a regular file, not a link, at most
 *     REVIEW_DOC_MAX_BYTES, and a valid document (review_doc_parse: types,
 *     sizes, SHAs, paths, severities);
 *   - bound to this repository and PR: its repo is $GITHUB_REPOSITORY, its
 *     PR (from the document, or --pr) is open, the PR's head as the API
 *     reports it is the document's head_sha, and so is the head_sha of the
 *     workflow run that made the artifact (from the workflow_run event);
 *   - every finding's path is a file of the PR (GET /pulls/{n}/files); lines
 *     are checked against those files' patches like any review's, and a line
 *     GitHub would refuse goes to the summary only;
 *   - all text is cleaned and sanitised as the model's own output is.
 *
 * Then the same publishing as `prbot review` (publish.h): one review, the
 * summary comment, repeats of earlier findings dropped. A PR whose head
 * moved on since the artifact was made is left alone (exit 0): the run for
 * the newer head will post.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_options.h"
#include "errors.h"
#include "commands.h"
#include "event.h"
#include "findings.h"
#include "github.h"
#include "publish.h"

static const char usage_text[] =
    "usage: prbot post --from DIR [options]\n"
    "\n"
    "Posts the review that `prbot review --output DIR` wrote, after checking it against the pull\n"
    "request (for the workflow_run half of the fork setup in workflows/).\n"
    "\n"
    "options:\n"
    "  --from DIR           the directory holding review.json (required)\n"
    "  --pr N               the pull request (default: the document's; must agree with it)\n"
    "  --inline BOOL        true (default): inline comments in one review; false: summary only\n"
    "  --max-inline N       inline comments at most (default 8)\n"
    "  --dry-run            check everything, print what would be posted, post nothing\n"
    "  --strict             fail (exit 1) when the GitHub API fails instead of only warning\n"
    "\n"
    "environment: GITHUB_TOKEN (pull-requests: write; never printed), GITHUB_REPOSITORY,\n"
    "GITHUB_API_URL, GITHUB_EVENT_NAME and GITHUB_EVENT_PATH (a workflow_run event binds the\n"
    "artifact to the run that made it).\n"
    "exit status: 0 posted (or nothing to post), 1 refused or failed, 2 usage error.\n";

typedef struct {
    const char *from, *inline_opt;
    int pr, max_inline, dry_run, strict;
} post_options;

static int parse_options(int argc, char **argv, post_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_inline = PUBLISH_DEFAULT_MAX_INLINE;
    const cli_option table[] = {
        {"--from", CLI_STRING, &o->from},          {"--pr", CLI_INT, &o->pr},
        {"--inline", CLI_STRING, &o->inline_opt},  {"--max-inline", CLI_INT, &o->max_inline},
        {"--dry-run", CLI_FLAG, &o->dry_run},      {"--strict", CLI_FLAG, &o->strict},
        {NULL, CLI_FLAG, NULL},
    };
    int rc = cli_parse("post", argc, argv, table, usage_text, NULL);
    if (rc) return rc;
    if (!o->from || !*o->from) {
        fprintf(stderr, "prbot post: --from DIR is required\n");
        return 2;
    }
    if (o->pr < 0 || o->max_inline < 0) {
        fprintf(stderr, "prbot post: --pr and --max-inline must not be negative\n");
        return 2;
    }
    if (o->inline_opt && strcmp(o->inline_opt, "true") && strcmp(o->inline_opt, "false")) {
        fprintf(stderr, "prbot post: --inline takes true or false\n");
        return 2;
    }
    return 0;
}

/* DIR/review.json as text: a regular file (not a link) within the size limit. */
static char *read_document(const char *dir, size_t *len, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/review.json", dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        err_set(err, errlen, "cannot open %s: %s%s", path, strerror(errno),
                errno == ELOOP ? " (a symbolic link: refused)" : "");
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (unsigned long long)st.st_size > REVIEW_DOC_MAX_BYTES) {
        err_set(err, errlen, "%s is not a regular file of at most %u bytes", path, REVIEW_DOC_MAX_BYTES);
        close(fd);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (!text || got != (size_t)st.st_size) {
        free(text);
        err_set(err, errlen, "cannot read %s", path);
        return NULL;
    }
    text[got] = 0;
    *len = got;
    return text;
}

/* The PR's files as a diff_result for the summary's file list, classified
 * as the document says (a file it does not mention: "not in the review"). */
static int files_for_summary(const review_doc *d, const publish_files *pf, diff_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < pf->n; i++) {
        const publish_file *f = &pf->files[i];
        if (diff_result_add_file(out, f->path, NULL, DIFF_MODIFIED, 0, 0, NULL, NULL) < 0) goto oom;
        diff_file *df = &out->files[out->n_files - 1];
        int reviewed = 0;
        for (size_t k = 0; k < d->n_reviewed && !reviewed; k++) reviewed = !strcmp(d->reviewed[k], f->path);
        const char *reason = reviewed ? NULL : "not in the review";
        int not_shown = 0;
        for (size_t k = 0; !reviewed && k < d->n_not_shown; k++)
            if (!strcmp(d->not_shown[k].path, f->path)) {
                reason = d->not_shown[k].reason;
                not_shown = 1;
            }
        for (size_t k = 0; !reviewed && k < d->n_skipped; k++)
            if (!strcmp(d->skipped[k].path, f->path)) {
                reason = d->skipped[k].reason;
                not_shown = 0;
            }
        if (reason && (not_shown ? diff_file_set_not_shown(df, reason) : diff_file_set_skip(df, reason)) < 0) goto oom;
        /* counts and status as the API gave them */
        int adds = 0, dels = 0;
        for (size_t k = 0; k < f->map.n_lines; k++) {
            adds += f->map.lines[k].kind == '+';
            dels += f->map.lines[k].kind == '-';
        }
        df->additions = adds;
        df->deletions = dels;
    }
    return 0;
oom:
    diff_result_free(out);
    err_set(err, errlen, "out of memory");
    return -1;
}

/* Refuses an artifact that is not about this repository's PR at this head. Returns 0 ok, 1 stale (exit 0), -1 refused. */
static int check_binding(gh_client *gh, const review_doc *d, long pr, const char *repo, char *err, size_t errlen)
{
    if (strcasecmp(d->repo, repo) != 0) {
        err_set(err, errlen, "the review is for repository '%s', this is %s: refused", d->repo, repo);
        return -1;
    }
    if (!d->head_sha[0]) {
        err_set(err, errlen, "the review has no head_sha: refused");
        return -1;
    }
    const char *event_name = getenv("GITHUB_EVENT_NAME"), *event_path = getenv("GITHUB_EVENT_PATH");
    if (event_name && !strcmp(event_name, "workflow_run")) {
        event_workflow_run run;
        if (!event_path || event_parse_workflow_run(event_path, &run, err, errlen) < 0) {
            if (!event_path) err_set(err, errlen, "GITHUB_EVENT_PATH is not set for a workflow_run event");
            return -1;
        }
        if (strcmp(run.head_sha, d->head_sha) != 0) {
            err_set(err, errlen, "the review is for commit %.12s but the workflow run that made it was for %.12s: "
                    "refused", d->head_sha, run.head_sha);
            return -1;
        }
        int listed = run.n_prs == 0; /* fork PRs are not listed: the head check below binds them */
        for (int i = 0; i < run.n_prs; i++) listed |= run.prs[i] == pr;
        if (!listed) {
            err_set(err, errlen, "the workflow run belongs to other pull requests than #%ld: refused", pr);
            return -1;
        }
    }
    gh_pull p;
    int rc = gh_pull_get(gh, pr, &p, err, errlen);
    if (rc != PRBOT_OK) return -1;
    int result = 0;
    if (strcmp(p.state, "open") != 0) {
        err_set(err, errlen, "pull request #%ld is %s: nothing posted", pr, p.state);
        result = 1;
    } else if (strcmp(p.head_sha, d->head_sha) != 0) {
        err_set(err, errlen, "pull request #%ld has moved on to %.12s since this review of %.12s was made: nothing "
                "posted (the run for the new head will post)", pr, p.head_sha, d->head_sha);
        result = 1;
    }
    gh_pull_free(&p);
    return result;
}

static int check_paths(const review_doc *d, const publish_files *pf, long pr, char *err, size_t errlen)
{
    for (size_t i = 0; i < d->f.n; i++) {
        const char *path = d->f.items[i].path;
        int found = 0;
        for (size_t k = 0; k < pf->n && !found; k++) found = !strcmp(pf->files[k].path, path);
        if (!found) {
            err_set(err, errlen, "finding %zu is on '%.200s', which is not a file of pull request #%ld: refused", i + 1,
                    path, pr);
            return -1;
        }
    }
    return 0;
}

int cmd_post(int argc, char **argv)
{
    post_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    char err[1024] = "";
    const char *repo = getenv("GITHUB_REPOSITORY"), *token = getenv("GITHUB_TOKEN");
    size_t len = 0;
    char *text = read_document(o.from, &len, err, sizeof err);
    review_doc doc;
    memset(&doc, 0, sizeof doc);
    gh_client *gh = NULL;
    publish_files files = {0};
    publish_state prev = {0};
    publish_plan plan = {0};
    diff_result summary_files = {0};
    int exit_code = 1;
    if (!text) goto done;
    if (review_doc_parse(text, len, &doc, err, sizeof err) < 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s/review.json: %s", o.from, err);
        err_set(err, sizeof err, "%s", msg);
        goto done;
    }
    long pr = o.pr ? o.pr : doc.pr;
    if (!pr || (o.pr && doc.pr && doc.pr != o.pr)) {
        err_set(err, sizeof err, "the review is for PR #%ld%s: refused", doc.pr, o.pr ? ", not the one given by --pr" : "");
        goto done;
    }
    if (!repo || !*repo) {
        err_set(err, sizeof err, "GITHUB_REPOSITORY is not set: set it to owner/name");
        goto done;
    }
    if (!o.dry_run && (!token || !*token)) {
        err_set(err, sizeof err, "GITHUB_TOKEN is not set: the posting job needs a token with pull-requests: write");
        goto done;
    }
    if (gh_client_new(&gh, getenv("GITHUB_API_URL"), token, repo, err, sizeof err) < 0) goto done;
    int bound = check_binding(gh, &doc, pr, repo, err, sizeof err);
    if (bound != 0) {
        if (bound > 0) {
            fprintf(stderr, "prbot post: %s\n", err);
            exit_code = 0;
            err[0] = 0;
        }
        goto done;
    }
    if (publish_files_from_api(gh, pr, &files, err, sizeof err) != PRBOT_OK) goto done;
    if (check_paths(&doc, &files, pr, err, sizeof err) < 0) goto done;
    if (publish_state_read(gh, pr, "review", &prev, err, sizeof err) != PRBOT_OK) {
        fprintf(stderr, "prbot post: warning: %s; posting without the earlier reviews' state\n", err);
        memset(&prev, 0, sizeof prev);
    }
    if (files_for_summary(&doc, &files, &summary_files, err, sizeof err) < 0) goto done;
    publish_options po = {.name = "review", .max_inline = o.max_inline,
                          .no_inline = (o.inline_opt && !strcmp(o.inline_opt, "false")) || o.max_inline == 0,
                          .dry_run = o.dry_run};
    char scope[256] = "";
    if (doc.since_sha[0])
        publish_scope_line(scope, sizeof scope, doc.since_sha, doc.head_sha);
    publish_summary_info si = {.diff = &summary_files, .diff_source = NULL, .scope = scope[0] ? scope : NULL};
    si.stats = (comment_stats){doc.model, doc.prompt_tokens, doc.generated_tokens, 0, 0, doc.seconds, doc.stop_reason, NULL};
    if (publish_prepare(&doc, &files, &prev, &po, &plan, err, sizeof err) < 0) goto done;
    fprintf(stderr, "prbot post: %s/review.json checked against PR #%ld at %.12s: %zu findings, %zu inline\n", o.from,
            pr, doc.head_sha, doc.f.n, plan.n_comments);
    rc = publish_post(gh, pr, &doc, &prev, &po, &si, &plan, err, sizeof err);
    if (o.dry_run) {
        /* in Actions the runner would take "::command::" lines of the artifact's text as commands */
        char stop[33] = "";
        int in_actions = getenv("GITHUB_ACTIONS") && !strcmp(getenv("GITHUB_ACTIONS"), "true");
        if (in_actions && gh_action_stop_token(stop) < 0) {
            err_set(err, sizeof err, "cannot read /dev/urandom");
            goto done;
        }
        fflush(stderr);
        publish_print_plan(stdout, &plan, doc.head_sha, stop);
        exit_code = rc == PRBOT_OK ? 0 : 1;
        goto done;
    }
    if (plan.review_error[0]) {
        fprintf(stderr, "prbot post: warning: could not post the review (its findings are in the summary): %s\n",
                plan.review_error);
        if (o.strict && rc == PRBOT_OK) {
            rc = PRBOT_ERROR;
            err_set(err, sizeof err, "the review was not posted: %s", plan.review_error);
        }
    }
    if (plan.review_posted) {
        fprintf(stderr, "prbot post: review posted: %s\n", plan.review_url);
        gh_action_output("review-url", plan.review_url);
    }
    if (rc == PRBOT_OK) {
        fprintf(stderr, "prbot post: summary %s: %s\n", plan.summary_updated ? "updated" : "created", plan.summary_url);
        gh_action_output("comment-url", plan.summary_url);
        exit_code = 0;
        err[0] = 0;
    } else if (!o.strict && rc != PRBOT_EFORBIDDEN) {
        fprintf(stderr, "prbot post: warning: %s (not failing the job; pass --strict to)\n", err);
        exit_code = 0;
        err[0] = 0;
    }
done:
    if (err[0]) fprintf(stderr, "prbot post: %s\n", err);
    free(text);
    review_doc_free(&doc);
    publish_files_free(&files);
    publish_state_free(&prev);
    publish_plan_free(&plan);
    diff_result_free(&summary_files);
    gh_client_free(gh);
    return exit_code;
}
