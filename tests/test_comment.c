/*
 * test_comment.c - bot/comment.c: sanitising untrusted model text and
 * rendering a body that fits GitHub's limit.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bot/comment.h"
#include "../bot/textbuf.h"
#include "markdown_check.h"
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

/* A plain loop, not strstr or memmem: ASan's interceptors of those check
 * the whole rest of the haystack on every call, which made counting
 * quadratic on the 1 MB bodies of test_span_worst_case. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = s; *p; p++)
        if (*p == needle[0] && strncmp(p, needle, k) == 0) {
            n++;
            p += k - 1;
        }
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
    REQUIRE(diff_result_add_file(&d, "big.c", NULL, DIFF_ADDED, 5, 0, "@@ -0,0 +1,5 @@\n", NULL) == 0, "add");
    REQUIRE(diff_file_set_not_shown(&d.files[3], "over token budget") == 0, "not shown");
    comment_input in = {.name = "review", .model_text = "Looks risky: @dev see `x`.", .diff = &d,
                        .model_name = "stories260K", .prompt_tokens = 120, .generated_tokens = 32,
                        .prefill_tokens_per_s = 900.5, .decode_tokens_per_s = 300.25, .total_seconds = 1.25,
                        .stop_reason = "max_tokens"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    EXPECT(!strncmp(body, "<!-- prbot:review -->\n", 22), "marker first: %.40s", body);
    EXPECT(count(body, "<!-- prbot:") == 1, "exactly one marker");
    EXPECT(strstr(body, "@" ZWSP "dev") != NULL, "text sanitised");
    EXPECT(strstr(body, "<details><summary>Files: 1 reviewed, 1 not shown, 2 skipped</summary>") != NULL,
           "summary line: %s", body);
    EXPECT(strstr(body, "`big.c` added, +5 −0: not shown: over token budget\n") != NULL, "not shown entry: %s", body);
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

/* The tags prbot itself writes into a body. */
static const char *const body_tags[] = {"<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>", NULL};

/* Checks a body as GitHub would read it: the marker only on the first line. */
static const char *check_body(const char *body)
{
    const char *nl = strchr(body, '\n');
    md_check_options o = {.allowed_tags = body_tags, .comment_allowed_until = nl ? (size_t)(nl - body) : 0};
    return md_check(body, strlen(body), &o);
}

/* Model text that got past the sanitiser before: each must come out with
 * the mention and the HTML neutralised (md_check, an independent model of
 * how GitHub pairs code spans, finds no live mention, no raw tag). */
static const struct {
    const char *name, *text;
    size_t len; /* 0: strlen */
} bypasses[] = {
    {"backslash before a backtick", "\\`@everyone <img src=x onerror=alert(1)>`", 0},
    {"NUL joining a backslash and a backtick", "\\\0`@everyone <img src=x>`", sizeof "\\\0`@everyone <img src=x>`" - 1},
    {"non-ASCII before @ (e acute)", "caf\xC3\xA9@everyone", 0},
    {"non-ASCII before @ (no-break space)", "hi\xC2\xA0@everyone", 0},
    {"non-ASCII before @ (quote)", "\xE2\x80\x9C@everyone\xE2\x80\x9D", 0},
    {"span across lines", "`one\ntwo` @everyone <b>bold</b> `three`", 0},
    {"table cell split inside a span", "| a | b |\n|---|---|\n| `x | @everyone <img src=x>` |", 0},
    {"table in a quote", "> | a |\n> | --- |\n> | `q | @everyone` |", 0},
    {"escaped backslash then span", "\\\\`@kept` and \\`@everyone`", 0},
    {"escaped @ and <", "\\@everyone \\<img src=x>", 0},
    {"fence in a list item", "- ```\n  @everyone <img src=x>\n  ```", 0},
    {"character references", "&#64;everyone &#x40;everyone &commat;everyone &lt;img src=x&gt;", 0},
};

static void test_sanitiser_bypasses(void)
{
    for (size_t i = 0; i < sizeof bypasses / sizeof bypasses[0]; i++) {
        size_t len = bypasses[i].len ? bypasses[i].len : strlen(bypasses[i].text);
        char *s = comment_sanitize(bypasses[i].text, len);
        REQUIRE(s, "sanitize");
        md_check_options o = {0};
        const char *problem = md_check(s, strlen(s), &o);
        EXPECT(!problem, "%s: %s in [%s]", bypasses[i].name, problem, s);
        EXPECT(strstr(s, "everyone") != NULL, "%s: the text itself is gone: [%s]", bypasses[i].name, s);
        free(s);
    }
}

/* A path is a code span whatever it contains: double backticks cannot end
 * it early, a marker inside is broken, a 64 KB path is shortened. */
static void test_hostile_paths(void)
{
    char *long_path = malloc(65537);
    REQUIRE(long_path, "malloc");
    memset(long_path, 'a', 65536);
    long_path[65536] = 0;
    diff_result d = {0};
    REQUIRE(diff_result_add_file(&d, "x``@everyone <img src=x>``.c", NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, "`@everyone` <b>", "``` <b> ````", DIFF_RENAMED, 1, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, "<!-- prbot:summary -->.c", NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, long_path, NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, "bad\xff\xfe name\xc3.c", NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    comment_input in = {.name = "review", .model_text = "fine", .diff = &d, .model_name = "m``@everyone``"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    const char *problem = check_body(body);
    EXPECT(!problem, "%s", problem);
    EXPECT(count(body, "<!--") == 1 && strstr(body, "prbot:summary"), "the path's marker is not broken");
    EXPECT(strlen(body) < 8192 && strstr(body, "aaaa…"), "the 64 KB path is not shortened (%zu bytes)",
           strlen(body));
    EXPECT(valid_utf8(body), "a name that is not UTF-8 made the body invalid (GitHub would refuse it)");
    free(body);
    diff_result_free(&d);
    free(long_path);
}

/* An empty name must not become "``", a backtick run that pairs with the
 * next one and turns the text between them inside out (found by
 * fuzz_comment: the next file's skip reason came out as prose). */
static void test_empty_name(void)
{
    diff_result d = {0};
    const char *hostile = "x <img src=x>` `@everyone <img src=x>`";
    REQUIRE(diff_result_add_file(&d, "", NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&d, hostile, NULL, DIFF_ADDED, 1, 0, NULL, NULL) == 0, "add");
    diff_file_set_skip(&d.files[0], "empty");
    diff_file_set_skip(&d.files[1], hostile);
    comment_input in = {.name = "review", .model_text = "", .diff = &d, .model_name = ""};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    const char *problem = check_body(body);
    EXPECT(!problem, "%s", problem);
    free(body);
    diff_result_free(&d);
}

/* A skip reason can quote a path, and a path can hold a line break: the
 * reason must stay on its line, or a "|---" after it makes the entry a
 * table row whose cells split the path spans (found by fuzz_comment). */
static void test_reason_on_one_line(void)
{
    diff_result d = {0};
    const char *path = " b |\n|---";
    REQUIRE(diff_result_add_file(&d, path, "`x` @everyone <b>", DIFF_RENAMED, 1, 0, NULL, NULL) == 0, "add");
    diff_file_set_skip(&d.files[0], path);
    comment_input in = {.name = "review", .model_text = "", .diff = &d, .model_name = "m"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    const char *problem = check_body(body);
    EXPECT(!problem, "%s", problem);
    EXPECT(!strstr(body, "\n|---"), "the reason's line break is in the body");
    free(body);
    diff_result_free(&d);
}

/* Truncation cuts the raw text, so a cut can never leave half a code span
 * whose content becomes prose: every cut position in a run of spans. */
static void test_truncation_inside_spans(void)
{
    static const char unit[] = "`@everyone <img src=x>` ";
    size_t n = 2000 * (sizeof unit - 1);
    char *text = malloc(n + 1);
    REQUIRE(text, "malloc");
    for (size_t i = 0; i < 2000; i++) memcpy(text + i * (sizeof unit - 1), unit, sizeof unit - 1);
    text[n] = 0;
    comment_input in = {.name = "review", .model_text = text, .model_name = "m"};
    for (size_t cap = 1000; cap < 1000 + 2 * sizeof unit; cap++) {
        char *body = NULL, err[256] = "";
        in.max_bytes = cap;
        REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
        const char *problem = check_body(body);
        EXPECT(!problem && strlen(body) <= cap && strstr(body, "truncated"), "cap %zu: %s (%zu bytes)", cap,
               problem ? problem : "too long or no note", strlen(body));
        free(body);
    }
    free(text);
}

/* Everything at once, as the issue asks: one model output with every
 * bypass, rendered into a full body. */
static void test_every_bypass_in_one_body(void)
{
    textbuf t = {0};
    for (size_t i = 0; i < sizeof bypasses / sizeof bypasses[0]; i++) {
        textbuf_add(&t, bypasses[i].text, bypasses[i].len ? bypasses[i].len : strlen(bypasses[i].text));
        textbuf_puts(&t, "\n\n");
    }
    REQUIRE(!t.failed, "out of memory");
    char *clean = comment_sanitize(t.data, t.len);
    REQUIRE(clean, "sanitize");
    /* every "@everyone" in prose is kept and defused; two sit in code spans (after the NUL, and on the
     * second line of "span across lines"), where GitHub shows them as code */
    int mentions = 0;
    for (const char *p = t.data; (p = memmem(p, t.len - (size_t)(p - t.data), "@everyone", 9)); p += 9) mentions++;
    EXPECT(count(clean, "@" ZWSP "everyone") == mentions - 2, "defused mentions: %d of %d",
           count(clean, "@" ZWSP "everyone"), mentions);
    free(clean);
    /* the body keeps NULs out (model text is a C string there), so the NUL case is checked above */
    comment_input in = {.name = "review", .model_text = t.data, .model_name = "m"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    const char *problem = check_body(body);
    EXPECT(!problem, "%s", problem);
    free(body);
    textbuf_free(&t);
}

/* Worst case of code span pairing: backtick runs of lengths 1, 2, 3, ...
 * on one 1 MiB line, none of which closes (a search from each opener to the
 * end of the line would be O(n^1.5)); then as a table row, and cut down to
 * a comment, which sanitises prefixes of it again. */
static void test_span_worst_case(void)
{
    size_t cap = 1 << 20, n = 0, ticks = 0;
    char *text = malloc(cap + 1);
    REQUIRE(text, "malloc");
    for (size_t run = 1; n + run + 2 < cap; run++) {
        memset(text + n, '`', run);
        n += run, ticks += run;
        text[n++] = run % 64 ? 'a' : '|';
    }
    text[n] = 0;
    test_watchdog("test_span_worst_case", 60);
    char *s = comment_sanitize(text, n);
    REQUIRE(s, "sanitize");
    EXPECT((size_t)count(s, "\\`") == ticks, "%d of %zu backticks escaped", count(s, "\\`"), ticks);
    free(s);
    /* the same as a table row */
    char *table = malloc(n + 32);
    REQUIRE(table, "malloc");
    memcpy(table, "| a | b |\n|---|---|\n", 20);
    memcpy(table + 20, text, n + 1);
    s = comment_sanitize(table, n + 20);
    REQUIRE(s, "sanitize");
    EXPECT((size_t)count(s, "\\`") == ticks, "table: %d of %zu backticks escaped", count(s, "\\`"), ticks);
    md_check_options none = {0};
    const char *problem = md_check(s, strlen(s), &none);
    EXPECT(!problem, "%s", problem);
    free(s);
    /* and cut to fit a comment */
    comment_input in = {.name = "review", .model_text = text, .model_name = "m"};
    char *body = NULL, err[256] = "";
    REQUIRE(comment_render(&in, &body, err, sizeof err) == 0, "render: %s", err);
    EXPECT(strlen(body) <= COMMENT_MAX_BYTES && strstr(body, "truncated"), "%zu bytes", strlen(body));
    problem = check_body(body);
    EXPECT(!problem, "%s", problem);
    test_watchdog(NULL, 0);
    free(body);
    free(table);
    free(text);
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
    TEST_RUN(test_sanitiser_bypasses);
    TEST_RUN(test_hostile_paths);
    TEST_RUN(test_empty_name);
    TEST_RUN(test_reason_on_one_line);
    TEST_RUN(test_truncation_inside_spans);
    TEST_RUN(test_every_bypass_in_one_body);
    TEST_RUN(test_span_worst_case);
    return test_exit_code();
}
