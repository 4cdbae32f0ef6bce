/*
 * publish.c - see publish.h. The order of a run on GitHub:
 *
 *   1. the PR's files from the API: the diff GitHub will check comments
 *      against (our own diff should be the same; this makes sure);
 *   2. every finding is placed on that diff, fingerprinted, and compared
 *      with the fingerprints in the summary's state: a repeat is dropped;
 *   3. one review (event COMMENT, commit_id = the head we diffed) with at
 *      most max_inline comments, bugs first. If GitHub answers 422 after
 *      all, each comment is tried alone as a pending review (visible only to
 *      us, deleted at once) to find the ones it refuses; the review is then
 *      posted without them, and if even that fails, without comments.
 *      Creating a review is not idempotent, so after a 5xx the reviews are
 *      searched for this run's marker before trying again;
 *   4. the links of the posted comments, then the summary comment with the
 *      new state, created or edited in place.
 */
#include "publish.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "sha256.h"
#include "textbuf.h"

#define STATE_PREFIX "<!-- prbot:state v1 "
#define STATE_MAX_BYTES (48 * 1024)
#define RUN_MARKER_PREFIX "<!-- prbot:review-run "
#define FINDING_MARKER_PREFIX "<!-- prbot:finding "

/* ---- base64 ---------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64_encode(textbuf *out, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=', i + 2 < n ? b64[v & 63] : '='};
        textbuf_add(out, q, 4);
    }
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decodes s[0..n) into out; -1 on a character outside the alphabet. */
static int base64_decode(const char *s, size_t n, textbuf *out)
{
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int d = b64_value(s[i]);
        if (d < 0) return -1;
        v = v << 6 | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)(v >> bits & 0xFF);
            textbuf_add(out, &c, 1);
        }
    }
    return out->failed ? -1 : 0;
}

/* ---- state ------------------------------------------------------------------ */

void publish_state_free(publish_state *st)
{
    if (!st) return;
    findings_list_free(&st->earlier);
    free(st->fps);
    free(st->pr_summary);
    memset(st, 0, sizeof *st);
}

int publish_state_has(const publish_state *st, const char *fp)
{
    for (size_t i = 0; st && i < st->n_fps; i++)
        if (!strcmp(st->fps[i], fp)) return 1;
    return 0;
}

static int add_fp(publish_state *st, const char *fp, size_t *cap)
{
    if (publish_state_has(st, fp)) return 0;
    if (st->n_fps == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        char(*p)[17] = realloc(st->fps, c * sizeof *p);
        if (!p) return -1;
        st->fps = p;
        *cap = c;
    }
    snprintf(st->fps[st->n_fps++], 17, "%s", fp);
    return 0;
}

/* One earlier finding from the state, checked; returns 0 (kept or skipped) or -1 (no memory). */
static int state_finding(json_t *o, publish_state *st)
{
    const char *path = json_string_value(json_object_get(o, "path"));
    const char *title = json_string_value(json_object_get(o, "title"));
    const char *url = json_string_value(json_object_get(o, "url"));
    const char *fp = json_string_value(json_object_get(o, "fp"));
    json_t *line = json_object_get(o, "line");
    int severity = findings_severity_parse(json_string_value(json_object_get(o, "severity")));
    if (!path || !title || strlen(path) > 1024 || strlen(title) > 400 || severity < 0 || !json_is_integer(line) ||
        json_integer_value(line) < 0 || json_integer_value(line) > 10000000 || (fp && !hex_is(fp, 16)))
        return 0;
    if (!comment_link_ok(url)) url = NULL;
    finding f;
    memset(&f, 0, sizeof f);
    f.path = findings_clean_text(path, strlen(path), 1024);
    f.title = findings_clean_text(title, strlen(title), FINDING_MAX_TITLE);
    f.url = url ? strdup(url) : NULL;
    f.line = f.model_line = (int)json_integer_value(line);
    f.severity = severity;
    f.inline_comment = url != NULL;
    if (fp) snprintf(f.fingerprint, sizeof f.fingerprint, "%s", fp);
    int rc = 0;
    if (!f.path || !f.title || (url && !f.url)) rc = -1;
    else if (*f.path && *f.title) rc = findings_add(&st->earlier, &f);
    free(f.path);
    free(f.title);
    free(f.url);
    return rc;
}

int publish_state_parse(const char *body, publish_state *st)
{
    memset(st, 0, sizeof *st);
    const char *start = body ? strstr(body, STATE_PREFIX) : NULL;
    if (!start) return 0;
    start += strlen(STATE_PREFIX);
    const char *end = strstr(start, " -->");
    if (!end || (size_t)(end - start) > STATE_MAX_BYTES) return 0;
    textbuf raw = {0};
    if (base64_decode(start, (size_t)(end - start), &raw) < 0) {
        int oom = raw.failed;
        textbuf_free(&raw);
        return oom ? -1 : 0;
    }
    json_error_t jerr;
    json_t *root = raw.data ? json_loadb(raw.data, raw.len, 0, &jerr) : NULL;
    textbuf_free(&raw);
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "v")) != 1) {
        json_decref(root);
        return 0;
    }
    const char *head = json_string_value(json_object_get(root, "head"));
    if (head && hex_is(head, 40)) snprintf(st->head_sha, sizeof st->head_sha, "%s", head);
    const char *summary = json_string_value(json_object_get(root, "summary"));
    int rc = 0;
    if (summary && !(st->pr_summary = findings_clean_text(summary, strlen(summary), FINDING_MAX_SUMMARY))) rc = -1;
    size_t i, cap = 0;
    json_t *v;
    json_array_foreach(json_object_get(root, "findings"), i, v)
    {
        if (rc < 0 || i >= PUBLISH_MAX_EARLIER) break;
        if (json_is_object(v)) rc = state_finding(v, st);
    }
    json_array_foreach(json_object_get(root, "fps"), i, v)
    {
        if (rc < 0 || i >= PUBLISH_MAX_FINGERPRINTS) break;
        const char *fp = json_string_value(v);
        if (fp && hex_is(fp, 16)) rc = add_fp(st, fp, &cap);
    }
    json_decref(root);
    if (rc < 0) publish_state_free(st);
    return rc;
}

char *publish_state_encode(const publish_state *st)
{
    json_t *findings = json_array(), *fps = json_array();
    size_t first = st->earlier.n > PUBLISH_MAX_EARLIER ? st->earlier.n - PUBLISH_MAX_EARLIER : 0;
    for (size_t i = first; findings && i < st->earlier.n; i++) {
        const finding *f = &st->earlier.items[i];
        json_t *o = json_pack("{s:s,s:i,s:s,s:s}", "path", f->path, "line", f->line, "severity",
                              findings_severity_name(f->severity), "title", f->title);
        if (o && f->url) json_object_set_new(o, "url", json_string(f->url));
        if (o && f->fingerprint[0]) json_object_set_new(o, "fp", json_string(f->fingerprint));
        json_array_append_new(findings, o);
    }
    size_t first_fp = st->n_fps > PUBLISH_MAX_FINGERPRINTS ? st->n_fps - PUBLISH_MAX_FINGERPRINTS : 0;
    for (size_t i = first_fp; fps && i < st->n_fps; i++) json_array_append_new(fps, json_string(st->fps[i]));
    json_t *root = json_pack("{s:i,s:s,s:o,s:o}", "v", 1, "head", st->head_sha, "findings", findings, "fps", fps);
    if (root && st->pr_summary) json_object_set_new(root, "summary", json_string(st->pr_summary));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return NULL;
    textbuf b = {0};
    textbuf_puts(&b, STATE_PREFIX);
    base64_encode(&b, (const unsigned char *)text, strlen(text));
    textbuf_puts(&b, " -->");
    free(text);
    return textbuf_take(&b);
}

int publish_state_read(gh_client *gh, long pr, const char *name, publish_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    char marker[256];
    comment_marker(name, marker, sizeof marker);
    long long id = 0;
    char *body = NULL;
    int rc = gh_comment_find(gh, pr, marker, &id, &body, err, errlen);
    if (rc != PRBOT_OK) return rc;
    if (body && publish_state_parse(body, st) < 0) {
        free(body);
        err_set(err, errlen, "out of memory reading the summary's state");
        return PRBOT_ERROR;
    }
    free(body);
    return PRBOT_OK;
}

/* ---- the PR's files --------------------------------------------------------- */

void publish_files_free(publish_files *f)
{
    for (size_t i = 0; f && f->files && i < f->n; i++) {
        free(f->files[i].path);
        free(f->files[i].patch);
        linemap_free(&f->files[i].map);
    }
    if (f) {
        free(f->files);
        memset(f, 0, sizeof *f);
    }
}

static int files_add(publish_files *out, const char *path, const char *patch, size_t patch_len, char *err, size_t errlen)
{
    publish_file *pf = &out->files[out->n];
    memset(pf, 0, sizeof *pf);
    pf->path = strdup(path);
    pf->patch = patch ? strndup(patch, patch_len) : NULL;
    if (!pf->path || (patch && !pf->patch)) {
        free(pf->path);
        free(pf->patch);
        err_set(err, errlen, "out of memory");
        return -1;
    }
    if (linemap_parse(pf->patch, pf->patch ? patch_len : 0, &pf->map, err, errlen) < 0) {
        free(pf->path);
        free(pf->patch);
        return -1;
    }
    out->n++;
    return 0;
}

int publish_files_from_api(gh_client *gh, long pr, publish_files *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    gh_pull_file *files = NULL;
    size_t n = 0;
    int rc = gh_pull_files(gh, pr, &files, &n, err, errlen);
    if (rc != PRBOT_OK) return rc;
    out->files = calloc(n ? n : 1, sizeof *out->files);
    if (!out->files) {
        err_set(err, errlen, "out of memory");
        rc = PRBOT_ERROR;
    }
    for (size_t i = 0; rc == PRBOT_OK && i < n; i++)
        if (files_add(out, files[i].filename, files[i].patch, files[i].patch ? strlen(files[i].patch) : 0, err, errlen) < 0)
            rc = PRBOT_ERROR;
    gh_pull_files_free(files, n);
    if (rc != PRBOT_OK) publish_files_free(out);
    return rc;
}

int publish_files_from_diff(const diff_result *diff, publish_files *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->files = calloc(diff->n_files ? diff->n_files : 1, sizeof *out->files);
    if (!out->files) {
        err_set(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < diff->n_files; i++) {
        const diff_file *f = &diff->files[i];
        if (files_add(out, f->path, f->patch, f->patch ? f->patch_len : 0, err, errlen) < 0) {
            publish_files_free(out);
            return -1;
        }
    }
    return 0;
}

static const publish_file *find_file(const publish_files *files, const char *path)
{
    for (size_t i = 0; i < files->n; i++)
        if (!strcmp(files->files[i].path, path)) return &files->files[i];
    return NULL;
}

/* ---- preparing ------------------------------------------------------------------ */

void publish_plan_free(publish_plan *p)
{
    if (!p) return;
    for (size_t i = 0; p->comments && i < p->n_comments; i++) free((char *)p->comments[i].body);
    free(p->comments);
    free(p->finding_of);
    free(p->review_body);
    free(p->summary_body);
    memset(p, 0, sizeof *p);
}

/* Places f on GitHub's diff of its file; returns 1 when it can be an inline comment. */
static int place_on_diff(finding *f, const publish_file *pf)
{
    if (!pf) {
        f->line = f->end_line = 0;
        f->why_not_inline = "file not in the pull request's diff";
        return 0;
    }
    const linemap *m = &pf->map;
    if (f->line <= 0 || !linemap_commentable(m, f->line)) {
        int from = f->model_line > 0 ? f->model_line : f->line;
        int a = linemap_anchor(m, from, 3, NULL, NULL);
        if (a != f->line) {
            f->end_line = 0;
            if (a != from) {
                free(f->suggestion);
                f->suggestion = NULL;
            }
        }
        f->line = a;
    }
    if (!f->line) {
        f->why_not_inline = "line not in the diff";
        return 0;
    }
    if (f->end_line > f->line && linemap_hunk_of(m, f->end_line) != linemap_hunk_of(m, f->line)) {
        f->end_line = 0; /* GitHub wants a range inside one hunk */
        free(f->suggestion);
        f->suggestion = NULL;
    }
    if (f->end_line <= f->line) f->end_line = 0;
    return 1;
}

static void fingerprint_on(finding *f, const publish_file *pf)
{
    const linemap_line *l = pf && f->line ? linemap_right_line(&pf->map, f->line) : NULL;
    findings_fingerprint(f->path, f->title, l ? pf->patch + l->offset : "", l ? l->len : 0, f->fingerprint);
}

void publish_scope_line(char *buf, size_t cap, const char *since, const char *head)
{
    snprintf(buf, cap, "Reviewed the commits after %.7s (up to %.7s); findings from earlier reviews are listed, not "
             "repeated.", since, head);
}

int publish_prepare(review_doc *doc, const publish_files *files, const publish_state *prev, const publish_options *o,
                    publish_plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    int max_inline = o->max_inline > 0 ? o->max_inline : PUBLISH_DEFAULT_MAX_INLINE;
    findings_list *l = &doc->f;
    for (size_t i = 0; i < l->n; i++) {
        finding *f = &l->items[i];
        free(f->url);
        f->url = NULL;
        f->why_not_inline = NULL;
        f->inline_comment = place_on_diff(f, find_file(files, f->path));
        fingerprint_on(f, find_file(files, f->path));
        f->duplicate = publish_state_has(prev, f->fingerprint);
        for (size_t k = 0; k < i && !f->duplicate; k++) /* the same finding twice in one answer */
            f->duplicate = !l->items[k].duplicate && !strcmp(l->items[k].fingerprint, f->fingerprint);
    }
    findings_rank(l);
    plan->comments = calloc(l->n ? l->n : 1, sizeof *plan->comments);
    plan->finding_of = calloc(l->n ? l->n : 1, sizeof *plan->finding_of);
    if (!plan->comments || !plan->finding_of) goto oom;
    for (size_t i = 0; i < l->n; i++) {
        finding *f = &l->items[i];
        if (f->duplicate || !f->inline_comment) {
            f->inline_comment = 0;
            continue;
        }
        if (o->no_inline) {
            f->inline_comment = 0;
            f->why_not_inline = "inline comments are off";
            continue;
        }
        if (plan->n_comments >= (size_t)max_inline) {
            f->inline_comment = 0;
            f->why_not_inline = "over the limit of inline comments";
            continue;
        }
        gh_review_comment *c = &plan->comments[plan->n_comments];
        c->path = f->path;
        c->line = f->end_line > f->line ? f->end_line : f->line;
        c->start_line = f->end_line > f->line ? f->line : 0;
        if (!(c->body = comment_render_inline(f))) goto oom;
        plan->finding_of[plan->n_comments++] = i;
    }
    textbuf b = {0};
    if (plan->n_comments)
        textbuf_printf(&b, "**prbot** reviewed %.7s: %zu inline comment%s below; the summary comment lists every finding.\n",
                       doc->head_sha, plan->n_comments, plan->n_comments == 1 ? "" : "s");
    else
        textbuf_printf(&b, "**prbot** reviewed %.7s: no new inline comments; the summary comment has the details.\n",
                       doc->head_sha);
    textbuf_printf(&b, "\n%s%.40s -->\n", RUN_MARKER_PREFIX, doc->head_sha);
    if (!(plan->review_body = textbuf_take(&b))) goto oom;
    return 0;
oom:
    publish_plan_free(plan);
    err_set(err, errlen, "out of memory preparing the review");
    return -1;
}

/* ---- the summary --------------------------------------------------------------- */

/* The state after this run: prev plus every finding listed now. */
static int next_state(const review_doc *doc, const publish_state *prev, publish_state *st)
{
    memset(st, 0, sizeof *st);
    size_t cap = 0;
    snprintf(st->head_sha, sizeof st->head_sha, "%s", doc->head_sha);
    const char *summary = doc->since_sha[0] && prev && prev->pr_summary ? prev->pr_summary : doc->f.summary;
    if (summary && !(st->pr_summary = strdup(summary))) return -1;
    for (size_t i = 0; prev && i < prev->earlier.n; i++)
        if (findings_add(&st->earlier, &prev->earlier.items[i]) < 0) return -1;
    for (size_t i = 0; prev && i < prev->n_fps; i++)
        if (add_fp(st, prev->fps[i], &cap) < 0) return -1;
    for (size_t i = 0; i < doc->f.n; i++) {
        const finding *f = &doc->f.items[i];
        if (f->duplicate || !f->fingerprint[0]) continue;
        if (findings_add(&st->earlier, f) < 0 || add_fp(st, f->fingerprint, &cap) < 0) return -1;
    }
    return 0;
}

int publish_render_summary(const review_doc *doc, const publish_state *prev, const publish_options *o,
                           const publish_summary_info *info, publish_plan *plan, char *err, size_t errlen)
{
    publish_state st;
    finding *fresh = calloc(doc->f.n ? doc->f.n : 1, sizeof *fresh);
    char *state = NULL;
    int rc = -1;
    if (!fresh || next_state(doc, prev, &st) < 0 || !(state = publish_state_encode(&st))) {
        err_set(err, errlen, "out of memory rendering the summary");
        goto done;
    }
    size_t n_fresh = 0;
    for (size_t i = 0; i < doc->f.n; i++)
        if (!doc->f.items[i].duplicate) fresh[n_fresh++] = doc->f.items[i]; /* shallow copies */
    textbuf summary = {0};
    if (doc->since_sha[0] && prev && prev->pr_summary && doc->f.summary && strcmp(prev->pr_summary, doc->f.summary)) {
        textbuf_printf(&summary, "%s Since the last review: %s", prev->pr_summary, doc->f.summary);
    } else if (doc->since_sha[0] && prev && prev->pr_summary) {
        textbuf_puts(&summary, prev->pr_summary);
    } else if (doc->f.summary) {
        textbuf_puts(&summary, doc->f.summary);
    }
    comment_summary cs = {.name = o->name, .heading = NULL, .state = state, .summary = summary.data,
                          .scope = info ? info->scope : NULL, .notice = info ? info->notice : NULL,
                          .findings = fresh, .n_findings = n_fresh,
                          .earlier = prev ? prev->earlier.items : NULL, .n_earlier = prev ? prev->earlier.n : 0,
                          .review_url = plan->review_url[0] ? plan->review_url : NULL,
                          .diff = info ? info->diff : NULL, .diff_source = info ? info->diff_source : NULL};
    if (info) cs.stats = info->stats;
    char heading[160];
    snprintf(heading, sizeof heading, "prbot %s", o->name ? o->name : "review");
    cs.heading = heading;
    free(plan->summary_body);
    plan->summary_body = NULL;
    rc = summary.failed ? -1 : comment_render_summary(&cs, &plan->summary_body, err, errlen);
    textbuf_free(&summary);
    publish_state_free(&st);
done:
    free(state);
    free(fresh);
    return rc;
}

/* ---- posting ------------------------------------------------------------------- */

void publish_print_plan(FILE *f, const publish_plan *plan, const char *head_sha, const char *stop_token)
{
    gh_action_stop_commands_begin(f, stop_token);
    fputs(plan->summary_body ? plan->summary_body : "", f);
    if (plan->n_comments)
        fprintf(f, "\n----- %zu inline comment%s (one review on %.12s) -----\n", plan->n_comments,
                plan->n_comments == 1 ? "" : "s", head_sha);
    for (size_t i = 0; i < plan->n_comments; i++) {
        const gh_review_comment *c = &plan->comments[i];
        if (c->start_line) fprintf(f, "\n#### %s:%d-%d\n\n%s", c->path, c->start_line, c->line, c->body);
        else fprintf(f, "\n#### %s:%d\n\n%s", c->path, c->line, c->body);
    }
    gh_action_stop_commands_end(f, stop_token);
    fflush(f);
}

/* Creates the review with comments[0..n), once, found by this run's marker
 * after a 5xx. */
static int create_review(gh_client *gh, long pr, const review_doc *doc, const publish_plan *plan,
                         const gh_review_comment *comments, size_t n, gh_review_ref *ref, char *err, size_t errlen)
{
    char marker[128];
    snprintf(marker, sizeof marker, "%s%.40s -->", RUN_MARKER_PREFIX, doc->head_sha);
    return gh_review_create_once(gh, pr, doc->head_sha, "COMMENT", plan->review_body, comments, n, marker, ref, err,
                                 errlen);
}

/* After a 422: which comments does GitHub accept? Each is tried alone as a
 * pending review, deleted at once. keep[i] = 1 for the accepted ones.
 * Returns PRBOT_OK, or the error that stopped the probing. */
static int probe_comments(gh_client *gh, long pr, const review_doc *doc, const publish_plan *plan, int *keep,
                          char *err, size_t errlen)
{
    for (size_t i = 0; i < plan->n_comments; i++) {
        gh_review_ref ref;
        int retryable = 0;
        int rc = gh_review_create(gh, pr, doc->head_sha, NULL, "prbot: checking one comment", &plan->comments[i], 1,
                                  &ref, &retryable, err, errlen);
        if (rc == PRBOT_EINVALID) {
            log_note("prbot: GitHub refuses the comment on %s:%d: %s", plan->comments[i].path,
                    plan->comments[i].line, err);
            keep[i] = 0;
            continue;
        }
        if (rc != PRBOT_OK) return rc;
        keep[i] = 1;
        if ((rc = gh_review_delete(gh, pr, ref.id, err, errlen)) != PRBOT_OK) return rc;
    }
    return PRBOT_OK;
}

/* Links each posted comment's finding to the comment, by the fingerprint marker in its body. */
static void link_comments(gh_client *gh, long pr, review_doc *doc, const gh_review_ref *ref)
{
    gh_posted_comment *posted = NULL;
    size_t n = 0;
    char err[512];
    if (gh_review_comments(gh, pr, ref->id, &posted, &n, err, sizeof err) != PRBOT_OK) {
        log_note("prbot: could not read the review's comments (%s); the summary links the review instead", err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *m = posted[i].body ? strstr(posted[i].body, FINDING_MARKER_PREFIX) : NULL;
        if (!m || !comment_link_ok(posted[i].html_url)) continue;
        m += strlen(FINDING_MARKER_PREFIX);
        for (size_t k = 0; k < doc->f.n; k++) {
            finding *f = &doc->f.items[k];
            if (f->inline_comment && !f->url && !strncmp(m, f->fingerprint, 16)) f->url = strdup(posted[i].html_url);
        }
    }
    gh_posted_comments_free(posted, n);
}

/* Posts the review, dropping what GitHub refuses; marks findings that did
 * not make it as summary-only. Returns PRBOT_OK or PRBOT_EFORBIDDEN, or the
 * error after which the review was given up (the summary still follows). */
static int post_review(gh_client *gh, long pr, review_doc *doc, publish_plan *plan, char *err, size_t errlen)
{
    gh_review_ref ref = {0};
    int rc = create_review(gh, pr, doc, plan, plan->comments, plan->n_comments, &ref, err, errlen);
    if (rc == PRBOT_EINVALID && plan->n_comments) {
        log_note("prbot: GitHub refused the review (%s); finding the comments it refuses", err);
        int *keep = calloc(plan->n_comments, sizeof *keep);
        gh_review_comment *kept = calloc(plan->n_comments, sizeof *kept);
        size_t n_kept = 0;
        int prc = keep && kept ? probe_comments(gh, pr, doc, plan, keep, err, errlen) : PRBOT_ERROR;
        if (prc == PRBOT_OK) {
            for (size_t i = 0; i < plan->n_comments; i++) {
                if (keep[i]) {
                    kept[n_kept++] = plan->comments[i];
                    continue;
                }
                finding *f = &doc->f.items[plan->finding_of[i]];
                f->inline_comment = 0;
                f->why_not_inline = "GitHub refused the line";
                plan->refused++;
            }
            rc = create_review(gh, pr, doc, plan, kept, n_kept, &ref, err, errlen);
        }
        if (rc == PRBOT_EINVALID || prc != PRBOT_OK) {
            log_note("prbot: %s; posting the review without inline comments", err);
            for (size_t i = 0; i < plan->n_comments; i++) {
                finding *f = &doc->f.items[plan->finding_of[i]];
                if (f->inline_comment) plan->refused++;
                f->inline_comment = 0;
                f->why_not_inline = "GitHub refused the line";
            }
            rc = create_review(gh, pr, doc, plan, NULL, 0, &ref, err, errlen);
        }
        free(keep);
        free(kept);
    }
    if (rc != PRBOT_OK) {
        for (size_t i = 0; i < plan->n_comments; i++) {
            finding *f = &doc->f.items[plan->finding_of[i]];
            f->inline_comment = 0;
            f->why_not_inline = "the review could not be posted";
        }
        return rc;
    }
    plan->review_posted = 1;
    snprintf(plan->review_url, sizeof plan->review_url, "%s", ref.html_url);
    size_t n_inline = 0;
    for (size_t i = 0; i < doc->f.n; i++) n_inline += doc->f.items[i].inline_comment != 0;
    if (n_inline) link_comments(gh, pr, doc, &ref);
    return PRBOT_OK;
}

int publish_post(gh_client *gh, long pr, review_doc *doc, const publish_state *prev, const publish_options *o,
                 const publish_summary_info *info, publish_plan *plan, char *err, size_t errlen)
{
    if (!o->no_inline && !o->dry_run) {
        int review_rc = post_review(gh, pr, doc, plan, plan->review_error, sizeof plan->review_error);
        if (review_rc == PRBOT_EFORBIDDEN) {
            err_set(err, errlen, "%s", plan->review_error);
            return review_rc;
        }
        if (review_rc == PRBOT_OK) plan->review_error[0] = 0;
    }
    if (publish_render_summary(doc, prev, o, info, plan, err, errlen) < 0) return PRBOT_ERROR;
    if (o->dry_run) return PRBOT_OK;
    char marker[256];
    comment_marker(o->name, marker, sizeof marker);
    int updated = 0;
    int rc = gh_comment_upsert(gh, pr, marker, plan->summary_body, plan->summary_url, sizeof plan->summary_url,
                               &updated, err, errlen);
    if (rc == PRBOT_OK) plan->summary_updated = updated;
    return rc;
}

char *publish_review_request_json(const review_doc *doc, const publish_plan *plan)
{
    json_t *comments = json_array();
    for (size_t i = 0; comments && i < plan->n_comments; i++) {
        const gh_review_comment *c = &plan->comments[i];
        json_t *o = json_pack("{s:s,s:i,s:s,s:s}", "path", c->path, "line", c->line, "side", "RIGHT", "body", c->body);
        if (o && c->start_line) {
            json_object_set_new(o, "start_line", json_integer(c->start_line));
            json_object_set_new(o, "start_side", json_string("RIGHT"));
        }
        json_array_append_new(comments, o);
    }
    json_t *root = json_pack("{s:s,s:s,s:s,s:o}", "commit_id", doc->head_sha, "event", "COMMENT", "body",
                             plan->review_body ? plan->review_body : "", "comments", comments);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return text;
}
