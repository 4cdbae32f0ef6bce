/*
 * fuzz_findings - the model's review answer and the review document
 * (bot/findings.c, bot/linemap.c), and the comments made from them
 * (bot/comment.c's inline and summary renderers).
 *
 * A pull request can steer what the model writes, and `prbot post` reads a
 * review.json that a fork's workflow produced, so both are hostile input.
 *
 * Input: an option byte; then NUL-separated strings: the model's answer
 * (or, with option bit 0, a review.json), then (path, patch) pairs as the
 * PR files API gives them. Checked after every input:
 *   - findings_parse never fails but for memory; at most FINDINGS_MAX
 *     findings, each on one of the paths shown, a known severity, a
 *     non-empty one-line title within its cap, texts valid UTF-8 without
 *     control characters;
 *   - after findings_anchor every anchored line is commentable in its
 *     file's line map (GitHub would refuse the whole review otherwise), and
 *     end_line is after it in the same hunk;
 *   - the fingerprint is 16 hex digits;
 *   - each inline comment and the summary hold what comments promise (the
 *     independent markdown model of tests/markdown_check.h): no live
 *     mention, no raw HTML but prbot's own, fences closed, and the only
 *     HTML comments are prbot's markers where prbot writes them;
 *   - review_doc_parse accepts or refuses with one line, and a document it
 *     accepts is written back by review_doc_to_json into one it accepts
 *     again with the same findings.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/comment.h"
#include "../../bot/findings.h"
#include "../../bot/linemap.h"
#include "../markdown_check.h"
#include "review_body.h"

#define MAX_FILES 8

static void check_text(const char *what, const char *s, size_t max)
{
    if (!s) return;
    size_t n = strlen(s);
    FUZZ_CHECK(n <= max + 3, "%s of %zu bytes over its cap %zu", what, n, max); /* + the "…" */
    FUZZ_CHECK(fuzz_valid_utf8(s, n), "%s is not valid UTF-8", what);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7F, "%s has control byte 0x%02x", what,
                   (unsigned char)s[i]);
}

static void check_finding(const finding *f, const char *const *paths, size_t n_paths)
{
    size_t k = 0;
    while (k < n_paths && strcmp(f->path, paths[k]) != 0) k++;
    FUZZ_CHECK(k < n_paths, "finding on a file not shown: %s", f->path);
    FUZZ_CHECK(f->severity >= SEVERITY_BUG && f->severity <= SEVERITY_NIT, "severity %d", f->severity);
    FUZZ_CHECK(f->title && f->title[0], "empty title");
    check_text("title", f->title, FINDING_MAX_TITLE);
    check_text("body", f->body, FINDING_MAX_BODY);
    if (f->suggestion) {
        FUZZ_CHECK(fuzz_valid_utf8(f->suggestion, strlen(f->suggestion)), "suggestion is not valid UTF-8");
        FUZZ_CHECK(strlen(f->suggestion) <= FINDING_MAX_SUGGESTION + 3, "suggestion over its cap");
    }
}

static void check_inline_body(const finding *f)
{
    char *b = comment_render_inline(f);
    FUZZ_CHECK(b, "comment_render_inline failed");
    /* prbot's one hidden marker, when the finding has a fingerprint, and no other HTML comment */
    const char *marker = strstr(b, "<!--");
    if (f->fingerprint[0]) {
        FUZZ_CHECK(marker && !strncmp(marker, "<!-- prbot:finding ", 19) && !strstr(marker + 1, "<!--"),
                   "not exactly prbot's one HTML comment in an inline body: %.40s", marker ? marker : "(none)");
    } else {
        FUZZ_CHECK(!marker, "an HTML comment in an inline body without a fingerprint: %.40s", marker);
    }
    md_check_options none = {0};
    const char *problem = md_check(b, marker ? (size_t)(marker - b) : strlen(b), &none);
    FUZZ_CHECK(!problem, "inline body: %s", problem);
    FUZZ_CHECK(fuzz_valid_utf8(b, strlen(b)), "inline body is not valid UTF-8");
    free(b);
}

static void check_summary(const findings_list *l, const diff_result *d, size_t cap)
{
    comment_summary cs = {.name = "review", .summary = l->summary, .findings = l->items, .n_findings = l->n,
                          .diff = d, .max_bytes = cap};
    cs.stats.model_name = "m";
    char *b = NULL, err[256];
    if (comment_render_summary(&cs, &b, err, sizeof err) != 0) {
        FUZZ_CHECK(cap && err[0] && !strchr(err, '\n'), "summary failed: %s", err);
        return;
    }
    fuzz_check_review_body(b, cap);
    free(b);
}

static void check_document(const char *text, size_t len)
{
    review_doc d, again;
    char err[512];
    memset(&d, 0, sizeof d);
    if (review_doc_parse(text, len, &d, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] && !strchr(err, '\n'), "error is not one line: %s", err);
        review_doc_free(&d);
        return;
    }
    FUZZ_CHECK(d.f.n <= FINDINGS_MAX, "%zu findings", d.f.n);
    for (size_t i = 0; i < d.f.n; i++) {
        check_text("title", d.f.items[i].title, FINDING_MAX_TITLE);
        check_inline_body(&d.f.items[i]);
    }
    char *json = review_doc_to_json(&d);
    FUZZ_CHECK(json, "review_doc_to_json failed");
    memset(&again, 0, sizeof again);
    FUZZ_CHECK(review_doc_parse(json, strlen(json), &again, err, sizeof err) == 0, "own output refused: %s", err);
    FUZZ_CHECK(again.f.n == d.f.n && again.pr == d.pr && !strcmp(again.head_sha, d.head_sha),
               "round trip changed the document");
    for (size_t i = 0; i < d.f.n; i++)
        FUZZ_CHECK(!strcmp(again.f.items[i].title, d.f.items[i].title) && again.f.items[i].line == d.f.items[i].line,
                   "round trip changed finding %zu", i);
    free(json);
    review_doc_free(&again);
    review_doc_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    size_t text_len = 0;
    char *text = fuzz_take_string(&in, &text_len);
    if (opts & 1) {
        check_document(text, text_len);
        free(text);
        return 0;
    }
    char *paths[MAX_FILES] = {0}, *patches[MAX_FILES] = {0};
    linemap maps[MAX_FILES];
    const linemap *map_ptrs[MAX_FILES];
    size_t n = 0;
    char err[256];
    diff_result d = {0};
    while (in.n && n < MAX_FILES) {
        size_t plen = 0;
        paths[n] = fuzz_take_string(&in, NULL);
        patches[n] = fuzz_take_string(&in, &plen);
        FUZZ_CHECK(linemap_parse(patches[n], plen, &maps[n], err, sizeof err) == 0, "linemap_parse: %s", err);
        map_ptrs[n] = &maps[n];
        FUZZ_CHECK(diff_result_add_file(&d, paths[n], NULL, DIFF_MODIFIED, 1, 1, patches[n], NULL) == 0, "add");
        n++;
    }
    findings_list l;
    FUZZ_CHECK(findings_parse(text, text_len, (const char *const *)paths, n, NULL, &l, err, sizeof err) == 0,
               "findings_parse failed: %s", err);
    FUZZ_CHECK(l.n <= FINDINGS_MAX, "%zu findings", l.n);
    check_text("summary", l.summary, FINDING_MAX_SUMMARY);
    findings_anchor(&l, (const char *const *)paths, map_ptrs, n, 1 + (opts >> 1 & 7), NULL, NULL);
    findings_rank(&l);
    for (size_t i = 0; i < l.n; i++) {
        finding *f = &l.items[i];
        check_finding(f, (const char *const *)paths, n);
        size_t k = 0;
        while (strcmp(f->path, paths[k]) != 0) k++;
        if (f->line > 0) {
            FUZZ_CHECK(linemap_commentable(&maps[k], f->line), "anchored on line %d, not commentable", f->line);
            if (f->end_line)
                FUZZ_CHECK(f->end_line > f->line &&
                               linemap_hunk_of(&maps[k], f->end_line) == linemap_hunk_of(&maps[k], f->line),
                           "range %d-%d leaves its hunk", f->line, f->end_line);
        }
        const linemap_line *ll = f->line > 0 ? linemap_right_line(&maps[k], f->line) : NULL;
        findings_fingerprint(f->path, f->title, ll ? patches[k] + ll->offset : "", ll ? ll->len : 0, f->fingerprint);
        FUZZ_CHECK(strlen(f->fingerprint) == 16 && strspn(f->fingerprint, "0123456789abcdef") == 16,
                   "fingerprint %s", f->fingerprint);
        check_inline_body(f);
    }
    check_summary(&l, &d, opts & 0x10 ? 1024 + fuzz_take_u32(&in) % COMMENT_MAX_BYTES : 0);
    findings_list_free(&l);
    diff_result_free(&d);
    for (size_t i = 0; i < n; i++) {
        linemap_free(&maps[i]);
        free(paths[i]);
        free(patches[i]);
    }
    free(text);
    return 0;
}
