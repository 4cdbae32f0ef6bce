/*
 * test_comment.c - bot/comment.c: sanitising untrusted model text and
 * rendering a body that fits GitHub's limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bot/comment.h"
#include "test.h"

#define ZWSP "\xE2\x80\x8B"

static char *sanitize(const char *s) { return comment_sanitize(s, strlen(s)); }

/* 1 if s is valid UTF-8 (checked independently of comment.c's decoder). */
static int valid_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        int n = *s < 0x80 ? 1 : (*s >> 5) == 6 ? 2 : (*s >> 4) == 14 ? 3 : (*s >> 3) == 30 ? 4 : 0;
        if (!n) return 0;
        for (int i = 1; i < n; i++)
            if ((s[i] & 0xC0) != 0x80) return 0;
        s += n;
    }
    return 1;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_mentions_defused(void)
{
    char *s = sanitize("ping @octocat and @org/team, mail a@b.com, (@x) `@kept` done");
    REQUIRE(s, "sanitize");
    EXPECT(strstr(s, "@" ZWSP "octocat") && strstr(s, "@" ZWSP "org/team") && strstr(s, "(@" ZWSP "x)"),
           "mentions not defused: %s", s);
    EXPECT(strstr(s, "a@b.com") != NULL, "an e-mail address is not a mention: %s", s);
    EXPECT(strstr(s, "`@kept`") != NULL, "code span changed: %s", s);
    free(s);
}

static void test_html_escaped_outside_code(void)
{
    char *s = sanitize("<script>alert(1)</script> and </details> <img src=x onerror=y>\n"
                       "inline `<b>` stays\n```html\n<div>@nobody</div>\n```\nafter <b>");
    REQUIRE(s, "sanitize");
    EXPECT(!strstr(s, "<script") && strstr(s, "&lt;script>"), "script: %s", s);
    EXPECT(!strstr(s, "</details>") && !strstr(s, "<img"), "details/img: %s", s);
    EXPECT(strstr(s, "`<b>`") != NULL, "inline code must stay verbatim: %s", s);
    EXPECT(strstr(s, "```html\n<div>@nobody</div>\n```\n") != NULL, "fenced block must stay verbatim: %s", s);
    EXPECT(strstr(s, "after &lt;b>") != NULL, "escaping resumes after the fence: %s", s);
    free(s);
}

static void test_fences_closed_and_marker_broken(void)
{
    char *s = sanitize("text\n~~~~c\nint x; <!-- prbot:summary -->\n~~~\nstill code");
    REQUIRE(s, "sanitize");
    /* "~~~" is shorter than the "~~~~" opener, so the block is still open and must be closed */
    size_t n = strlen(s);
    EXPECT(n > 5 && !strcmp(s + n - 5, "~~~~\n"), "open fence not closed: [%s]", s);
    EXPECT(!strstr(s, "<!--") && strstr(s, "prbot:summary"), "marker not broken: %s", s);
    free(s);
    s = sanitize("<!-- prbot:review -->");
    EXPECT(s && !strstr(s, "<!--"), "marker outside code: %s", s);
    free(s);
}

static void test_invalid_utf8_and_controls(void)
{
    const char raw[] = "ok\x01\x1b[31m \xC3\xA9 bad\xC3 \xED\xA0\x80 \xF0\x9F\x98\x80\r\n";
    char *s = comment_sanitize(raw, sizeof raw - 1);
    REQUIRE(s, "sanitize");
    EXPECT(valid_utf8(s), "invalid UTF-8 out: %s", s);
    EXPECT(!strchr(s, 0x01) && !strchr(s, 0x1b) && !strchr(s, '\r'), "control chars kept");
    EXPECT(strstr(s, "\xC3\xA9") && strstr(s, "\xF0\x9F\x98\x80"), "valid characters lost");
    EXPECT(count(s, "\xEF\xBF\xBD") >= 2, "invalid bytes not replaced: %s", s);
    free(s);
}

static void test_render_layout(void)
{
    diff_result d = {0};
    REQUIRE(diff_result_add_file(&d, "src/a.c", NULL, DIFF_MODIFIED, 3, 1, "@@ -1 +1 @@\n", NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, "yarn.lock", NULL, DIFF_MODIFIED, 10, 2, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, "new/<b>.c", "old.c", DIFF_RENAMED, 0, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_file_set_skip(&d.files[1], "lock file") == 0, "skip");
    REQUIRE(diff_file_set_skip(&d.files[2], "excluded by --exclude <x>") == 0, "skip");
    comment_input in = {.name = "review", .model_text = "Looks risky: @dev see `x`.", .diff = &d,
                        .model_name = "stories260K", .prompt_tokens = 120, .generated_tokens = 32,
                        .prefill_tokens_per_s = 900.5, .decode_tokens_per_s = 300.25, .total_seconds = 1.25,
                        .stop_reason = "max_tokens"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    EXPECT(!strncmp(body, "<!-- prbot:review -->\n", 22), "marker first: %.40s", body);
    EXPECT(count(body, "<!-- prbot:") == 1, "exactly one marker");
    EXPECT(strstr(body, "@" ZWSP "dev") != NULL, "text sanitised");
    EXPECT(strstr(body, "<details><summary>Files: 1 reviewed, 2 skipped</summary>") != NULL, "summary line: %s",
           body);
    EXPECT(strstr(body, "`yarn.lock` modified, +10 −2: lock file") != NULL, "skip entry: %s", body);
    EXPECT(strstr(body, "`new/<b>.c` (from `old.c`) renamed") != NULL, "path in code span: %s", body);
    EXPECT(strstr(body, "--exclude &lt;x>") != NULL, "reason escaped: %s", body);
    EXPECT(strstr(body, "stories260K") && strstr(body, "120 prompt tokens") && strstr(body, "32 generated") &&
               strstr(body, "900.5 tok/s") && strstr(body, "300.2") && strstr(body, "1.2 s") &&
               strstr(body, "max_tokens"),
           "footer: %s", body);
    const char *details = strstr(body, "<details>"), *text = strstr(body, "Looks risky");
    EXPECT(text && details && text < details && count(body, "</details>") == 1, "order");
    free(body);
    diff_result_free(&d);
}

/* 70000 characters of text, with a code fence open where the cut falls. */
static void test_long_body_truncated_cleanly(void)
{
    size_t n = 70000;
    char *text = malloc(n + 1);
    REQUIRE(text, "malloc");
    strcpy(text, "intro\n```\n");
    size_t pos = strlen(text);
    while (pos + 3 < n) { /* "é" (2 bytes) and "€" (3 bytes) and newlines so cuts can land mid-character */
        const char *piece = pos % 97 == 0 ? "\n" : (pos % 2 ? "\xE2\x82\xAC" : "\xC3\xA9");
        memcpy(text + pos, piece, strlen(piece));
        pos += strlen(piece);
    }
    text[pos] = 0;
    comment_input in = {.name = "summary", .model_text = text, .model_name = "m"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    size_t len = strlen(body);
    EXPECT(len <= COMMENT_MAX_BYTES && len > COMMENT_MAX_BYTES - 4096, "length %zu", len);
    EXPECT(valid_utf8(body), "body is not valid UTF-8");
    EXPECT(strstr(body, "truncated") != NULL, "no truncation note");
    EXPECT(strstr(body, "Model `m`") != NULL, "footer lost");
    /* fences balanced: an even number of ``` lines */
    int fences = 0;
    for (const char *p = body; p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (!strncmp(p, "```", 3)) fences++;
    }
    EXPECT(fences == 2, "fence lines %d", fences);
    free(body);
    free(text);
    /* a small cap set by the caller is honoured too */
    in.model_text = "short";
    in.max_bytes = 100;
    EXPECT(comment_render(&in, &body, err, sizeof err) == -1 && strstr(err, "too small"), "tiny cap: %s", err);
}

static void test_utf8_prefix(void)
{
    const char s[] = "a\xE2\x82\xAC"; /* a€ */
    EXPECT(comment_utf8_prefix(s, 4, 3) == 1, "cut inside € must back up");
    EXPECT(comment_utf8_prefix(s, 4, 2) == 1, "cut inside € must back up");
    EXPECT(comment_utf8_prefix(s, 4, 4) == 4, "fits");
    EXPECT(comment_utf8_prefix(s, 4, 1) == 1, "before €");
}

int main(void)
{
    TEST_RUN(test_mentions_defused);
    TEST_RUN(test_html_escaped_outside_code);
    TEST_RUN(test_fences_closed_and_marker_broken);
    TEST_RUN(test_invalid_utf8_and_controls);
    TEST_RUN(test_render_layout);
    TEST_RUN(test_long_body_truncated_cleanly);
    TEST_RUN(test_utf8_prefix);
    return test_exit_code();
}
