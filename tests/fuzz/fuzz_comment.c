/*
 * fuzz_comment - the comment sanitiser and renderer (bot/comment.c).
 *
 * Input: the whole input is sanitised as model text; then it is cut into
 * an option byte, model text, and file paths for a full comment body with
 * a size cap. After every input the output must hold what the comment
 * promises, checked by an independent model of GitHub's markdown
 * (tests/markdown_check.h): no mention GitHub would link, no raw HTML tag
 * but prbot's own, every code fence closed, no "<!--" but the marker on the
 * first line, valid UTF-8, and a body within its byte cap.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/comment.h"
#include "../markdown_check.h"
#include "review_body.h"

static void check_text(const char *s)
{
    md_check_options none = {0};
    const char *problem = md_check(s, strlen(s), &none);
    FUZZ_CHECK(!problem, "%s", problem);
    FUZZ_CHECK(fuzz_valid_utf8(s, strlen(s)), "invalid UTF-8 out");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = comment_sanitize((const char *)data, size);
    FUZZ_CHECK(s, "comment_sanitize failed");
    check_text(s);
    free(s);

    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    char *text = fuzz_take_string(&in, NULL);
    diff_result d = {0};
    for (unsigned i = 0; i < (opts & 3) && in.n; i++) {
        char *path = fuzz_take_string(&in, NULL), *old = opts & 8 ? fuzz_take_string(&in, NULL) : NULL;
        FUZZ_CHECK(diff_result_add_file(&d, path, old, old ? DIFF_RENAMED : DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
        if (opts & 16) diff_file_set_skip(&d.files[d.n_files - 1], path);
        free(path);
        free(old);
    }
    size_t cap = opts & 4 ? 1024 + fuzz_take_u32(&in) % COMMENT_MAX_BYTES : 0;
    comment_input ci = {.name = "review", .model_text = text, .diff = &d, .model_name = "m", .max_bytes = cap};
    char *body = NULL, err[256];
    if (comment_render(&ci, &body, err, sizeof err) == 0) {
        fuzz_check_review_body(body, cap);
        free(body);
    } else {
        FUZZ_CHECK(cap && strstr(err, "too small"), "render failed: %s", err);
    }
    diff_result_free(&d);
    free(text);
    return 0;
}
