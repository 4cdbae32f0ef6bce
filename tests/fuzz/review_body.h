/*
 * review_body.h - the check every fuzz target makes on a rendered review
 * comment body (bot/comment.c's comment_render and comment_render_summary):
 * within its byte cap, prbot's marker on the first line, nothing GitHub would
 * render as a live mention, raw HTML or an open fence (tests/markdown_check.h),
 * valid UTF-8. Include after fuzz.h.
 */
#ifndef PRBOT_FUZZ_REVIEW_BODY_H
#define PRBOT_FUZZ_REVIEW_BODY_H

#include "../../bot/comment.h"
#include "../markdown_check.h"

static inline void fuzz_check_review_body(const char *body, size_t cap)
{
    static const char *const tags[] = {"<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>", NULL};
    size_t len = strlen(body), limit = cap ? cap : COMMENT_MAX_BYTES;
    FUZZ_CHECK(len <= limit, "body of %zu bytes over the cap of %zu", len, limit);
    FUZZ_CHECK(!strncmp(body, "<!-- prbot:review -->\n", 22), "the marker is not the first line");
    md_check_options o = {.allowed_tags = tags, .comment_allowed_until = 21};
    const char *problem = md_check(body, len, &o);
    FUZZ_CHECK(!problem, "%s", problem);
    FUZZ_CHECK(fuzz_valid_utf8(body, len), "invalid UTF-8 in the body");
}

#endif
