/*
 * publish.h - from a review document to GitHub: one review with inline
 * comments, and the sticky summary comment that remembers what was posted.
 *
 * `prbot review` (posting itself) and `prbot post --from DIR` (posting a
 * fork's artifact) take the same path, so what reaches a PR never depends
 * on who produced the document:
 *
 *   publish_state_read      the summary comment's hidden state: the head
 *                           reviewed last and every finding posted so far
 *   publish_prepare         checks every finding against the diff GitHub
 *                           shows (the PR files API), fingerprints it, marks
 *                           repeats of earlier findings, ranks them and
 *                           picks at most max_inline for inline comments
 *   publish_post            POST /pulls/{n}/reviews (a 422 never loses the
 *                           review: the comments GitHub refuses are found
 *                           with pending reviews and dropped), then the
 *                           summary comment, created or updated in place
 *
 * The state lives in the summary as "<!-- prbot:state v1 BASE64 -->", the
 * base64 of a small JSON object (head SHA, posted findings with their
 * links, fingerprints), so no text in it can end the HTML comment. It is
 * read back as untrusted input: bounded, validated, cleaned.
 */
#ifndef PRBOT_PUBLISH_H
#define PRBOT_PUBLISH_H

#include <stddef.h>

#include "comment.h"
#include "diff.h"
#include "findings.h"
#include "github.h"
#include "linemap.h"

#define PUBLISH_MAX_EARLIER 60    /* findings of earlier runs listed in the summary */
#define PUBLISH_MAX_FINGERPRINTS 400
#define PUBLISH_DEFAULT_MAX_INLINE 8

typedef struct {
    char head_sha[41];     /* "" = no earlier review */
    char *pr_summary;      /* the model's summary of the whole PR from the last full review; may be NULL */
    findings_list earlier; /* posted by earlier runs: path, line, severity, title, url, fingerprint */
    char (*fps)[17];       /* fingerprints of everything posted so far */
    size_t n_fps;
} publish_state;

void publish_state_free(publish_state *st);
/* Reads the state out of a summary comment body; a body without one (or a
 * damaged one) leaves st empty. Returns 0, or -1 only when out of memory. */
int publish_state_parse(const char *body, publish_state *st);
/* "<!-- prbot:state v1 ... -->" for st (malloc'ed) or NULL. */
char *publish_state_encode(const publish_state *st);
/* Finds the summary comment (marker of `name`) and reads its state. A
 * missing comment is not an error. Returns a prbot_result. */
int publish_state_read(gh_client *gh, long pr, const char *name, publish_state *st, char *err, size_t errlen);
/* 1 when fingerprint fp was posted before. */
int publish_state_has(const publish_state *st, const char *fp);

/* The files of the diff GitHub shows for the PR: path and patch. */
typedef struct {
    char *path;
    char *patch; /* may be NULL (binary, too large) */
    linemap map;
} publish_file;

typedef struct {
    publish_file *files;
    size_t n;
} publish_files;

/* From GET /pulls/{n}/files. */
int publish_files_from_api(gh_client *gh, long pr, publish_files *out, char *err, size_t errlen);
/* From a diff (local runs, tests). */
int publish_files_from_diff(const diff_result *diff, publish_files *out, char *err, size_t errlen);
void publish_files_free(publish_files *f);

typedef struct {
    const char *name;   /* marker name, "review" */
    int max_inline;     /* 0 = PUBLISH_DEFAULT_MAX_INLINE */
    int no_inline;      /* --inline false: everything in the summary comment */
    int dry_run;        /* no network: publish_post only renders */
} publish_options;

typedef struct {
    gh_review_comment *comments; /* the inline comments to post (bodies owned here) */
    size_t n_comments;
    size_t *finding_of;          /* comments[i] is doc->f.items[finding_of[i]] */
    char *review_body;
    char *summary_body;          /* rendered by publish_post (or publish_render_summary) */
    char review_url[512], summary_url[512];
    int refused;                 /* comments GitHub refused (422) and that went to the summary */
    int review_posted, summary_updated;
    char review_error[512];      /* why the review was not posted ("" when it was, or was not meant to be) */
} publish_plan;

void publish_plan_free(publish_plan *p);

/* Checks, fingerprints, de-duplicates against prev (may be NULL), ranks
 * and picks the inline comments; updates doc->f in place. A finding whose
 * file or line GitHub would refuse stays in the summary only. */
int publish_prepare(review_doc *doc, const publish_files *files, const publish_state *prev, const publish_options *o,
                    publish_plan *plan, char *err, size_t errlen);

/* The summary's line on an incremental review's scope: the commits after
 * since (up to head) were reviewed, earlier findings are listed. */
void publish_scope_line(char *buf, size_t cap, const char *since, const char *head);

/* The summary body for the plan: the doc's findings (without repeats),
 * earlier ones from prev, and the new state. */
typedef struct {
    const diff_result *diff;  /* file list; may be NULL */
    const char *diff_source;
    const char *scope;        /* prbot's line on what was reviewed; may be NULL */
    const char *notice;
    comment_stats stats;
} publish_summary_info;
int publish_render_summary(const review_doc *doc, const publish_state *prev, const publish_options *o,
                           const publish_summary_info *info, publish_plan *plan, char *err, size_t errlen);

/* Posts the review (one per run when inline comments are on, with or
 * without comments) and then the summary. Returns the summary's prbot_result;
 * a review that could not be posted leaves its findings in the summary and
 * its reason in plan->review_error. On PRBOT_EFORBIDDEN nothing was written. */
int publish_post(gh_client *gh, long pr, review_doc *doc, const publish_state *prev, const publish_options *o,
                 const publish_summary_info *info, publish_plan *plan, char *err, size_t errlen);

/* --dry-run: the summary body, then each inline comment under "#### path:line"
 * ("path:start-end" for a range), to f; between stop-commands with
 * stop_token when it is set (in Actions: the bodies hold the model's text). */
void publish_print_plan(FILE *f, const publish_plan *plan, const char *head_sha, const char *stop_token);

/* The JSON the review would be posted as (for --output DIR). */
char *publish_review_request_json(const review_doc *doc, const publish_plan *plan);

#endif
