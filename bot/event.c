/*
 * event.c - the review's context from GitHub Actions' environment and event
 * JSON (jansson), or from the command line for a local checkout.
 *
 * Every failure names the variable or JSON field and says how to fix it,
 * because the person reading it is looking at a red CI job, not our code.
 * The token is copied out of the environment and otherwise never touched
 * here: nothing in this file prints it or puts it in an error.
 */
#include "event.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "sha256.h"

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int event_set_text(char **field, const char *value)
{
    char *copy = strdup(value ? value : "");
    if (!copy) return -1;
    free(*field);
    *field = copy;
    return 0;
}

void event_context_free(event_context *ctx)
{
    if (ctx->token) memset(ctx->token, 0, strlen(ctx->token));
    free(ctx->token);
    free(ctx->title);
    free(ctx->body);
    memset(ctx, 0, sizeof *ctx);
}

/* A string member at a dotted path ("head.repo.full_name"), or NULL. */
static json_t *json_at(json_t *root, const char *dotted)
{
    char key[128];
    json_t *cur = root;
    for (const char *p = dotted; cur && *p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

static const char *json_string_at(json_t *root, const char *dotted)
{
    json_t *v = json_at(root, dotted);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A commit SHA as GitHub sends it: 40 lower-case hex digits, nothing longer. */
static int is_sha(const char *s) { return hex_is(s, 40); }

/* A positive PR number from a JSON number or numeric string; 0 otherwise. */
static long pr_number_of(json_t *v)
{
    if (json_is_integer(v)) return json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s == '#' || *s == ' ') s++;
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (*s && !errno && n > 0 && (*end == 0 || *end == ' ')) return n;
    }
    return 0;
}

static int parse_pull_request(event_context *ctx, json_t *root, const char *path, char *err, size_t errlen)
{
    json_t *pr = json_object_get(root, "pull_request");
    if (!json_is_object(pr)) {
        err_set(err, errlen, "%s: no \"pull_request\" object in the %s event", path, ctx->event_name);
        return -1;
    }
    ctx->pr_number = pr_number_of(json_object_get(pr, "number"));
    if (!ctx->pr_number) ctx->pr_number = pr_number_of(json_object_get(root, "number"));
    const char *base = json_string_at(pr, "base.sha"), *head = json_string_at(pr, "head.sha");
    if (!ctx->pr_number || !is_sha(base) || !is_sha(head)) {
        err_set(err, errlen, "%s: pull_request.%s is missing or malformed; is GITHUB_EVENT_PATH the event file?",
                path, !ctx->pr_number ? "number" : !is_sha(base) ? "base.sha" : "head.sha");
        return -1;
    }
    snprintf(ctx->base_sha, sizeof ctx->base_sha, "%s", base);
    snprintf(ctx->head_sha, sizeof ctx->head_sha, "%s", head);
    const char *head_repo = json_string_at(pr, "head.repo.full_name");
    const char *base_repo = json_string_at(pr, "base.repo.full_name");
    json_t *head_fork = json_at(pr, "head.repo.fork");
    ctx->fork = !head_repo || !base_repo || strcmp(head_repo, base_repo) != 0 || json_is_true(head_fork);
    ctx->draft = json_is_true(json_object_get(pr, "draft"));
    const char *login = json_string_at(pr, "user.login");
    snprintf(ctx->author, sizeof ctx->author, "%s", login ? login : "");
    if (event_set_text(&ctx->title, json_string_at(pr, "title")) < 0 ||
        event_set_text(&ctx->body, json_string_at(pr, "body")) < 0) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_workflow_dispatch(event_context *ctx, json_t *root)
{
    static const char *const keys[] = {"inputs.pr-number", "inputs.pr_number", "inputs.number", "inputs.pr"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !ctx->pr_number; i++)
        ctx->pr_number = pr_number_of(json_at(root, keys[i]));
    return 0;
}

/* The event JSON at path, or NULL with err set. */
static json_t *load_event(const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        err_set(err, errlen, "GITHUB_EVENT_PATH=%s: cannot parse the event JSON (line %d: %s)", path, jerr.line,
                jerr.text);
    return root;
}

int event_parse_file(event_context *ctx, const char *event_name, const char *path, char *err, size_t errlen)
{
    json_t *root = load_event(path, err, errlen);
    if (!root) return -1;
    int rc = 0;
    if (!json_is_object(root)) {
        err_set(err, errlen, "GITHUB_EVENT_PATH=%s: the event JSON is not an object", path);
        rc = -1;
    } else if (!strcmp(event_name, "pull_request") || !strcmp(event_name, "pull_request_target")) {
        ctx->kind = strcmp(event_name, "pull_request") ? EVENT_PULL_REQUEST_TARGET : EVENT_PULL_REQUEST;
        rc = parse_pull_request(ctx, root, path, err, errlen);
    } else {
        ctx->kind = EVENT_WORKFLOW_DISPATCH;
        rc = parse_workflow_dispatch(ctx, root);
    }
    json_decref(root);
    return rc;
}

int event_parse_workflow_run(const char *path, event_workflow_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *root = load_event(path, err, errlen);
    if (!root) return -1;
    json_t *run = json_at(root, "workflow_run");
    const char *sha = json_string_at(run, "head_sha");
    int rc = 0;
    if (!json_is_object(run) || !is_sha(sha)) {
        err_set(err, errlen, "GITHUB_EVENT_PATH=%s: not a workflow_run event (workflow_run.head_sha missing)", path);
        rc = -1;
    } else {
        snprintf(out->head_sha, sizeof out->head_sha, "%s", sha);
        const char *v = json_string_at(run, "head_repository.full_name");
        snprintf(out->head_repo, sizeof out->head_repo, "%s", v ? v : "");
        v = json_string_at(run, "event");
        snprintf(out->event, sizeof out->event, "%s", v ? v : "");
        v = json_string_at(run, "conclusion");
        snprintf(out->conclusion, sizeof out->conclusion, "%s", v ? v : "");
        size_t i;
        json_t *pr;
        json_array_foreach(json_object_get(run, "pull_requests"), i, pr)
        {
            long n = pr_number_of(json_object_get(pr, "number"));
            if (n && out->n_prs < (int)(sizeof out->prs / sizeof out->prs[0])) out->prs[out->n_prs++] = n;
        }
    }
    json_decref(root);
    return rc;
}

static int load_actions(event_context *ctx, const event_options *opt, char *err, size_t errlen)
{
    const char *name = env_nonempty("GITHUB_EVENT_NAME");
    const char *path = env_nonempty("GITHUB_EVENT_PATH");
    const char *repo = env_nonempty("GITHUB_REPOSITORY");
    if (!name || !path) {
        err_set(err, errlen, "%s is not set although GITHUB_ACTIONS=true: run prbot review as a step of a "
                             "GitHub Actions job (or unset GITHUB_ACTIONS to review a local checkout)",
                !name ? "GITHUB_EVENT_NAME" : "GITHUB_EVENT_PATH");
        return -1;
    }
    if (!repo || !strchr(repo, '/')) {
        err_set(err, errlen, "GITHUB_REPOSITORY is %s: set it to owner/name", repo ? "not owner/name" : "not set");
        return -1;
    }
    snprintf(ctx->event_name, sizeof ctx->event_name, "%s", name);
    snprintf(ctx->repository, sizeof ctx->repository, "%s", repo);
    const char *api = env_nonempty("GITHUB_API_URL");
    snprintf(ctx->api_url, sizeof ctx->api_url, "%s", api ? api : "https://api.github.com");
    const char *token = env_nonempty("GITHUB_TOKEN");
    if (token && !(ctx->token = strdup(token))) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    int is_pr = !strcmp(name, "pull_request") || !strcmp(name, "pull_request_target");
    if (!is_pr && strcmp(name, "workflow_dispatch") != 0 && opt->pr <= 0) {
        err_set(err, errlen, "GITHUB_EVENT_NAME=%s is not a pull request event: trigger the workflow on "
                             "pull_request, pull_request_target or workflow_dispatch, or pass --pr N", name);
        return -1;
    }
    if (event_parse_file(ctx, name, path, err, errlen) < 0) return -1;
    if (opt->pr > 0 && ctx->pr_number != opt->pr) {
        /* --pr names another PR than the event: its SHAs come from the API */
        ctx->pr_number = opt->pr;
        ctx->kind = EVENT_WORKFLOW_DISPATCH;
        ctx->base_sha[0] = ctx->head_sha[0] = 0;
    }
    if (!ctx->pr_number) {
        err_set(err, errlen, "%s: no PR number in the event inputs (pr-number, pr_number or number): add a "
                             "pr-number input to the workflow or pass --pr N", path);
        return -1;
    }
    const char *workspace = env_nonempty("GITHUB_WORKSPACE");
    snprintf(ctx->repo_dir, sizeof ctx->repo_dir, "%s", opt->repo_dir ? opt->repo_dir : workspace ? workspace : ".");
    snprintf(ctx->base_rev, sizeof ctx->base_rev, "%s", opt->base ? opt->base : ctx->base_sha);
    snprintf(ctx->head_rev, sizeof ctx->head_rev, "%s", opt->head ? opt->head : ctx->head_sha);
    return 0;
}

static int load_local(event_context *ctx, const event_options *opt, char *err, size_t errlen)
{
    ctx->kind = EVENT_LOCAL;
    snprintf(ctx->event_name, sizeof ctx->event_name, "local");
    snprintf(ctx->repo_dir, sizeof ctx->repo_dir, "%s", opt->repo_dir ? opt->repo_dir : ".");
    snprintf(ctx->base_rev, sizeof ctx->base_rev, "%s", opt->base ? opt->base : "");
    snprintf(ctx->head_rev, sizeof ctx->head_rev, "%s", opt->head ? opt->head : "HEAD");
    ctx->pr_number = opt->pr > 0 ? opt->pr : 0;
    /* posting from a local run is possible with --pr and these variables */
    const char *repo = env_nonempty("GITHUB_REPOSITORY"), *api = env_nonempty("GITHUB_API_URL");
    const char *token = env_nonempty("GITHUB_TOKEN");
    snprintf(ctx->repository, sizeof ctx->repository, "%s", repo ? repo : "");
    snprintf(ctx->api_url, sizeof ctx->api_url, "%s", api ? api : "https://api.github.com");
    if (token && !(ctx->token = strdup(token))) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int event_load(event_context *ctx, const event_options *opt, char *err, size_t errlen)
{
    memset(ctx, 0, sizeof *ctx);
    if (event_set_text(&ctx->title, "") < 0 || event_set_text(&ctx->body, "") < 0) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    const char *actions = getenv("GITHUB_ACTIONS");
    ctx->in_actions = actions && !strcmp(actions, "true");
    int rc = ctx->in_actions ? load_actions(ctx, opt, err, errlen) : load_local(ctx, opt, err, errlen);
    if (rc < 0) event_context_free(ctx);
    return rc;
}
