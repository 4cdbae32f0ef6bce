/*
 * github.h - the small GitHub REST client prbot needs (libcurl + jansson).
 *
 * What it does: read a pull request, list its files, and keep exactly one
 * comment per marker on it up to date ("upsert"); when the token may not
 * write, the caller puts the body in the job summary instead.
 *
 * Typical use (bot/review.c):
 *
 *   gh_client *gh;
 *   if (gh_client_new(&gh, getenv("GITHUB_API_URL"), token, "owner/repo", err, sizeof err)) ...
 *   gh_pull pr;
 *   int rc = gh_pull_get(gh, 42, &pr, err, sizeof err);    // PRBOT_OK / PRBOT_E* (errors.h)
 *   ...
 *   char url[512];
 *   int updated;
 *   rc = gh_comment_upsert(gh, 42, "<!-- prbot:review -->", body, url, sizeof url, &updated,
 *                          err, sizeof err);
 *   if (rc == PRBOT_EFORBIDDEN) gh_step_summary_write(body, err2, sizeof err2);
 *   gh_pull_free(&pr);
 *   gh_client_free(gh);
 *
 * Every request carries `Authorization: Bearer TOKEN`, `Accept:
 * application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` and
 * `User-Agent: prbot`. URLs are built by appending "/repos/..." to the API
 * base as given, so a GitHub Enterprise Server base like
 * https://ghe.example.com/api/v3 works (a trailing slash is dropped).
 *
 * Retries: 5xx, 429, network errors/timeouts, and 403s that are rate limits
 * (body mentions "rate limit", `x-ratelimit-remaining: 0`, or a `Retry-After`
 * header) are retried with capped exponential backoff plus jitter, honouring
 * `Retry-After` (seconds) and `x-ratelimit-reset` (epoch seconds), at most
 * PRBOT_RETRY_ATTEMPTS attempts (default 5) and never waiting longer than
 * PRBOT_RETRY_MAX_WAIT seconds (default 60; tests set it to 0 or a fraction
 * like 0.05) per wait. Each retry prints one line on stderr, e.g.
 * "prbot: GitHub API POST .../comments: HTTP 502, retry 2/5 in 2s".
 *
 * Writes (POST, PATCH, DELETE) are spaced PRBOT_WRITE_INTERVAL seconds apart
 * (default 1, as GitHub asks; tests set 0), so a run never bursts into a
 * secondary rate limit.
 *
 * Debugging: PRBOT_DEBUG=1 prints each request and response header on stderr
 * with the Authorization header redacted. The token never appears in `err`,
 * in logs, or anywhere else this module writes.
 *
 * Return codes: errors.h's prbot_result, with one line in `err`. A call to
 * the API maps GitHub's answer: 2xx PRBOT_OK, 404 PRBOT_ENOTFOUND, a 403
 * that is not a rate limit PRBOT_EFORBIDDEN, 422 PRBOT_EINVALID, anything
 * else (after the retries) PRBOT_ERROR.
 */
#ifndef PRBOT_GITHUB_H
#define PRBOT_GITHUB_H

#include <stddef.h>
#include <stdio.h>

#include "errors.h"

typedef struct gh_client gh_client;

/* A pull request as prbot needs it. Strings are malloc'ed, never NULL
 * (empty string when GitHub sent null/nothing). Free with gh_pull_free. */
typedef struct {
    long number;
    char *title, *body, *author, *html_url, *state;
    char *base_sha, *head_sha;
    char *base_ref, *head_ref;
    char *head_repo;  /* "owner/repo" of the head (the fork's name for fork PRs) */
    int draft;        /* 1 when a draft */
    int fork;         /* 1 when head repo differs from base repo (or the head repo is gone) */
    int author_is_bot; /* 1 when user.type == "Bot" or the login ends in "[bot]" */
} gh_pull;

/* One entry of GET /pulls/{n}/files. `patch` is NULL when GitHub omits it
 * (binary or too large); `previous_filename` is NULL unless renamed. */
typedef struct {
    char *filename;
    char *previous_filename;
    char *status; /* "added", "removed", "modified", "renamed", "copied", "changed", "unchanged" */
    char *patch;
    long additions, deletions, changes;
} gh_pull_file;

/* Creates a client. api_url NULL or "" means https://api.github.com; token
 * may be NULL/"" (anonymous: reads of public repos only); repo is
 * "owner/name". Returns 0, or -1 with err set (bad repo or URL, no memory). */
/* 1 when repo is "owner/name": one slash, both parts non-empty, only
 * letters, digits and -_. (the only names a URL path gets built from). */
int gh_repo_name_valid(const char *repo);

int gh_client_new(gh_client **out, const char *api_url, const char *token, const char *repo,
                  char *err, size_t errlen);
void gh_client_free(gh_client *c);

/* GET /repos/{repo}/pulls/{number}. On PRBOT_OK fills *pull (free with gh_pull_free). */
int gh_pull_get(gh_client *c, long number, gh_pull *pull, char *err, size_t errlen);
void gh_pull_free(gh_pull *pull);

/* GET /repos/{repo}/pulls/{number}/files, all pages (per_page=100, following
 * the Link rel="next" header). On PRBOT_OK *files is a malloc'ed array of *n
 * entries (possibly 0); free with gh_pull_files_free. */
int gh_pull_files(gh_client *c, long number, gh_pull_file **files, size_t *n, char *err,
                  size_t errlen);
void gh_pull_files_free(gh_pull_file *files, size_t n);

/* Keeps exactly one comment containing `marker` (e.g. "<!-- prbot:review -->")
 * on issue/PR `number`: scans ALL pages of issue comments (per_page=100,
 * following Link rel="next") for our comment (gh_comment_is_ours: the body
 * starts with the marker line, the author is the token's identity, from
 * GET /user);
 * PATCHes the first one found with `body`, else POSTs a new comment. The
 * body should itself contain the marker, or the next run will not find it.
 * On PRBOT_OK writes the comment's html_url into url_out (if url_out/url_cap
 * are non-zero, truncated to fit) and *updated = 1 when an existing comment
 * was edited, 0 when a new one was created (updated may be NULL).
 * PRBOT_EFORBIDDEN: the token cannot write (read-only / fork PR): the caller
 * should write the body to the job summary (gh_step_summary_write) and exit 0.
 * PRBOT_ENOTFOUND: no such PR. */
int gh_comment_upsert(gh_client *c, long number, const char *marker, const char *body,
                      char *url_out, size_t url_cap, int *updated, char *err, size_t errlen);

/* The first issue comment on `number` whose body contains marker, found as
 * gh_comment_upsert finds it: *id (0 when there is none) and, when body is
 * not NULL, a malloc'ed copy of its body (NULL when none). */
int gh_comment_find(gh_client *c, long number, const char *marker, long long *id, char **body, char *err,
                    size_t errlen);

/* ---- pull request reviews ----
 *
 * One review carries prbot's inline comments: POST /pulls/{n}/reviews with
 * commit_id (the head that was diffed), event COMMENT, and comments on
 * RIGHT-side lines (`line`, and `start_line` for a range in one hunk).
 * GitHub validates every comment against the PR's diff and answers 422
 * (PRBOT_EINVALID) for the whole review when one is off the diff; a review
 * created without an event is PENDING (visible to its author only) and can
 * be deleted, which is how a caller tests comments without posting them. */
typedef struct {
    const char *path;
    int line;       /* RIGHT-side line; the last one of a range */
    int start_line; /* first line of a range, 0 = one line */
    const char *body;
} gh_review_comment;

typedef struct {
    long long id;
    char html_url[512];
} gh_review_ref;

/* event "COMMENT" (or NULL: pending). Creating is not idempotent, so a 5xx
 * or dropped connection is not retried here: *retryable (may be NULL) is
 * set and the caller looks for the review (gh_review_find) before trying
 * again. Rate limits are waited out and retried. */
int gh_review_create(gh_client *c, long number, const char *commit_id, const char *event, const char *body,
                     const gh_review_comment *comments, size_t n, gh_review_ref *out, int *retryable, char *err,
                     size_t errlen);
/* DELETE a pending review. */
int gh_review_delete(gh_client *c, long number, long long review_id, char *err, size_t errlen);
/* The first review on the PR whose body contains marker; *found = 0 when none. */
int gh_review_find(gh_client *c, long number, const char *marker, gh_review_ref *out, int *found, char *err,
                   size_t errlen);
/* gh_review_create for a review whose body contains `marker`, made at most
 * once: after a 5xx or a dropped connection it waits (retry.h's backoff),
 * looks for our review with the marker (GitHub may have created it all the
 * same) and POSTs again only when there is none; at most
 * PRBOT_RETRY_ATTEMPTS rounds. gh_comment_upsert makes the same rounds for
 * the summary comment. */
int gh_review_create_once(gh_client *c, long number, const char *commit_id, const char *event, const char *body,
                          const gh_review_comment *comments, size_t n, const char *marker, gh_review_ref *out,
                          char *err, size_t errlen);

/* The comments of one review as GitHub placed them: what publish.c links
 * findings by (each is NULL when GitHub sent none). */
typedef struct {
    char *body, *html_url;
} gh_posted_comment;
int gh_review_comments(gh_client *c, long number, long long review_id, gh_posted_comment **out, size_t *n,
                       char *err, size_t errlen);
void gh_posted_comments_free(gh_posted_comment *comments, size_t n);

/* Appends body (and a trailing newline) to the file named by
 * $GITHUB_STEP_SUMMARY. Returns 0, or -1 with err set when the variable is
 * unset/empty or the file cannot be written. No network. */
int gh_step_summary_write(const char *body, char *err, size_t errlen);

/* Appends name=value to $GITHUB_OUTPUT (a step's outputs) when it is set;
 * values with a line break are left out. */
void gh_action_output(const char *name, const char *value);

/* Text the model or a pull request wrote must not run as a workflow command
 * ("::error::", "::add-mask::" at the start of a line) when it goes to the
 * log. gh_action_stop_token draws 128 random bits as hex (the text cannot
 * know them); returns 0, or -1 when /dev/urandom cannot be read. Between
 * _begin and _end with that token the runner runs no command; both do
 * nothing when token is NULL or "" (not in Actions). _end starts a line of
 * its own, whatever the text before ended with. */
int gh_action_stop_token(char out[33]);
void gh_action_stop_commands_begin(FILE *f, const char *token);
void gh_action_stop_commands_end(FILE *f, const char *token);

/* ---- what the client reads from GitHub's answers (pure functions, for the
 * tests and tests/fuzz/fuzz_github.c) ------------------------------------ */

/* The rel="next" URL of a Link header value, malloc'ed, or NULL. */
char *gh_link_next(const char *link);
/* 1 when url may get the token: libcurl parses it to the scheme, host and
 * port of the API base, no user or password, and a path under base's path
 * (compared on '/' boundaries, dot segments removed). */
int gh_url_under_base(const char *base, const char *url);
/* A pull request from GET /pulls/{n}'s JSON: PRBOT_OK, PRBOT_ERROR (out of
 * memory) or PRBOT_EINVALID (not JSON of a pull request). Free with
 * gh_pull_free. */
int gh_pull_parse(const char *json, size_t len, gh_pull *pull);
/* The trust boundary of every marker search (DESIGN.md: "only among comments
 * by the token's own identity"): 1 when a comment's or review's author is
 * the token's identity, `login` from GET /user; when the token is an
 * installation token (login_is_bot), any bot. Both the summary comment's
 * and the review's searches ask this one function. */
int gh_author_is_ours(const char *author, int author_is_bot, const char *login, int login_is_bot);
/* 1 when a comment is the one gh_comment_upsert keeps: its body starts with
 * the marker line and its author is the token's login (or, when the token
 * is an installation token, login_is_bot, any bot). */
int gh_comment_is_ours(const char *body, const char *author, int author_is_bot, const char *marker,
                       const char *login, int login_is_bot);

#endif
