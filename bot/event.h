/*
 * event.h - where prbot review runs: a GitHub Actions event, or a checkout.
 *
 * In Actions (GITHUB_ACTIONS=true) the context comes from the environment
 * and the event JSON at GITHUB_EVENT_PATH: pull_request and
 * pull_request_target carry the PR number, base/head SHAs, fork and draft
 * flags; workflow_dispatch carries only a PR number input (pr-number,
 * pr_number or number; --pr overrides), and the caller fetches the SHAs with
 * gh_pull_get. Locally the context is just --repo/--base/--head.
 */
#ifndef PRBOT_EVENT_H
#define PRBOT_EVENT_H

#include <stddef.h>

typedef enum { EVENT_LOCAL, EVENT_PULL_REQUEST, EVENT_PULL_REQUEST_TARGET, EVENT_WORKFLOW_DISPATCH } event_kind;

typedef struct {
    event_kind kind;
    int in_actions;          /* GITHUB_ACTIONS=true */
    char event_name[64];     /* GITHUB_EVENT_NAME, or "local" */
    char repository[256];    /* owner/name (GITHUB_REPOSITORY), may be "" locally */
    char api_url[512];       /* GITHUB_API_URL or https://api.github.com */
    char *token;             /* GITHUB_TOKEN (malloc'ed, may be NULL); never print it */
    long pr_number;          /* 0 = unknown */
    char base_sha[64], head_sha[64]; /* "" until known */
    int fork, draft;
    char author[128];
    char *title, *body;      /* malloc'ed, "" when unknown */
    char repo_dir[4096];     /* checkout directory */
    char base_rev[256], head_rev[256]; /* local revs (as given, or defaults) */
} event_context;

typedef struct {
    const char *repo_dir; /* --repo; NULL = "." (or GITHUB_WORKSPACE in Actions) */
    const char *base;     /* --base; NULL = default */
    const char *head;     /* --head; NULL = "HEAD" */
    long pr;              /* --pr; 0 = none */
} event_options;

/* Reads the environment (and event file) into ctx. Returns 0 or -1 with one
 * line naming the variable or field at fault and how to fix it. */
int event_load(event_context *ctx, const event_options *opt, char *err, size_t errlen);
/* Parses an event JSON file for event_name into ctx (used by event_load). */
int event_parse_file(event_context *ctx, const char *event_name, const char *path, char *err, size_t errlen);
void event_context_free(event_context *ctx);

/* What `prbot post` needs from a workflow_run event: the run that produced
 * an artifact (its head commit, the repository it came from, the PRs GitHub
 * associates with it: none for a fork's PR, a known GitHub limitation). */
typedef struct {
    char head_sha[41];
    char head_repo[256]; /* "owner/name" of the head repository, "" when absent */
    char event[64];      /* the event that triggered that run, e.g. "pull_request" */
    char conclusion[32];
    long prs[16];
    int n_prs;
} event_workflow_run;
int event_parse_workflow_run(const char *path, event_workflow_run *out, char *err, size_t errlen);
/* Sets (replaces) title/body; returns 0 or -1. */
int event_set_text(char **field, const char *value);

#endif
