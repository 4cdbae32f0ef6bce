/*
 * test_summary.c - what prbot writes around the findings: the inline
 * comment bodies and the summary comment (comment.c), and the state hidden
 * in the summary (publish.c), with hostile text in every field the model or
 * an earlier comment controls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bot/comment.h"
#include "../bot/publish.h"
#include "test.h"
#include "markdown_check.h"

static finding make(const char *path, int line, int severity, const char *title, const char *body, const char *sug)
{
    finding f;
    memset(&f, 0, sizeof f);
    f.path = (char *)path;
    f.line = f.model_line = line;
    f.severity = severity;
    f.title = (char *)title;
    f.body = (char *)body;
    f.suggestion = (char *)sug;
    f.inline_comment = line > 0;
    return f;
}

static void test_inline_body(void)
{
    finding f = make("a.c", 3, SEVERITY_BUG, "Off-by-one <img src=x onerror=alert(1)> @everyone",
                     "Reads a[n] <!-- prbot:review --> `x <!-- y`.", "for (i = 0; i < n; i++) /* <!-- */");
    snprintf(f.fingerprint, sizeof f.fingerprint, "0123456789abcdef");
    char *b = comment_render_inline(&f);
    REQUIRE(b, "render");
    EXPECT(!strncmp(b, "**Bug: Off-by-one &lt;img", 25), "heading: %.60s", b);
    EXPECT(strstr(b, "@\xE2\x80\x8B" "everyone") && !strstr(b, " @everyone"), "mention defused");
    EXPECT(!strstr(b, "<img") && !strstr(b, "<!-- prbot:review"), "no HTML, no marker from the model: %s", b);
    EXPECT(strstr(b, "```suggestion\nfor (i = 0; i < n; i++) /* <!\xE2\x80\x8B-- */\n```\n"), "suggestion block: %s", b);
    EXPECT(strstr(b, "<!-- prbot:finding 0123456789abcdef -->"), "fingerprint marker");
    int markers = 0;
    for (const char *p = b; (p = strstr(p, "<!--")) != NULL; p++) markers++;
    EXPECT(markers == 1, "only prbot's own marker opens an HTML comment (%d)", markers);
    free(b);
    f.suggestion = NULL;
    f.body = (char *)"";
    b = comment_render_inline(&f);
    REQUIRE(b, "render");
    EXPECT(!strstr(b, "suggestion") && !strstr(b, "\n\n\n"), "no empty parts: %s", b);
    free(b);
}

static void test_summary_body(void)
{
    finding items[3];
    items[0] = make("src/a.c", 10, SEVERITY_BUG, "Wrong bound", "Reads past the end.", NULL);
    items[0].url = (char *)"https://github.example/o/r/pull/1#discussion_r5";
    items[1] = make("src/b.c", 0, SEVERITY_RISK, "Far away", "Line 99 is not shown.", NULL);
    items[1].model_line = 99;
    items[1].why_not_inline = "line not in the diff";
    items[2] = make("src/c.c", 4, SEVERITY_NIT, "Bad link", "x", NULL);
    items[2].url = (char *)"javascript:alert(1)";
    finding earlier = make("old.c", 7, SEVERITY_NIT, "Earlier one", NULL, NULL);
    earlier.url = (char *)"https://github.example/o/r/pull/1#discussion_r1";
    comment_summary cs = {.name = "review", .state = "<!-- prbot:state v1 AAAA -->",
                          .summary = "Adds a </details> parser. @team please look.", .findings = items,
                          .n_findings = 3, .earlier = &earlier, .n_earlier = 1,
                          .review_url = "https://github.example/o/r/pull/1#pullrequestreview-9"};
    cs.stats.model_name = "m";
    char *b = NULL, err[128];
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render: %s", err);
    EXPECT(!strncmp(b, "<!-- prbot:review -->\n<!-- prbot:state v1 AAAA -->\n### prbot review\n", 66), "head: %.80s", b);
    EXPECT(strstr(b, "Adds a &lt;/details> parser. @\xE2\x80\x8Bteam"), "summary sanitised: %s", b);
    EXPECT(strstr(b, "**Findings: 3** (1 bug, 1 risk, 1 nit), 2 as inline comments in [the review]"
                     "(https://github.example/o/r/pull/1#pullrequestreview-9)"), "counts: %s", b);
    EXPECT(strstr(b, "- **bug** [`src/a.c:10`](https://github.example/o/r/pull/1#discussion_r5) Wrong bound\n"),
           "linked inline finding without its body: %s", b);
    EXPECT(strstr(b, "- **risk** `src/b.c` Far away: Line 99 is not shown. *(line 99: line not in the diff)*"),
           "summary-only finding with its body: %s", b);
    EXPECT(!strstr(b, "javascript:") && strstr(b, "- **nit** `src/c.c:4` Bad link"), "only https links");
    EXPECT(strstr(b, "Earlier findings on this pull request: 1") && strstr(b, "Earlier one"), "earlier");
    EXPECT(!strstr(b, "No problems found"), "no 'no problems' with findings");
    free(b);
    cs.n_findings = 0;
    cs.n_earlier = 0;
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render");
    EXPECT(strstr(b, "No problems found in the changes shown to the model."), "prbot's sentence: %s", b);
    free(b);
    cs.notice = "The model's answer could not be read.";
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render");
    EXPECT(strstr(b, "could not be read") && !strstr(b, "No problems found"), "a notice replaces it: %s", b);
    free(b);
    /* a body limit small enough to cut the middle: still one marker, the footer intact */
    cs.notice = NULL;
    cs.n_findings = 3;
    cs.max_bytes = 900;
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render small: %s", err);
    EXPECT(strlen(b) <= 900 && strstr(b, "generated locally by prbot</sub>"), "within the limit (%zu)", strlen(b));
    free(b);
}

/* Found by fuzz_findings: the model's summary "~~~cut short" started a line of
 * the summary comment and opened a code fence that swallowed the rest of it
 * (findings, counts, footer). A title or body can stand at the start of a
 * list item the same way. */
static void test_tilde_fence_from_the_model(void)
{
    static const char *const tags[] = {"<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>", NULL};
    finding f = make("src/b.c", 0, SEVERITY_RISK, "~~~ title", "~~~~ body ~~~", NULL);
    f.why_not_inline = "line not in the diff";
    comment_summary cs = {.name = "review", .summary = "~~~cut short", .findings = &f, .n_findings = 1};
    cs.stats.model_name = "m";
    char *b = NULL, err[128];
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render: %s", err);
    md_check_options o = {.allowed_tags = tags, .comment_allowed_until = 21};
    const char *problem = md_check(b, strlen(b), &o);
    EXPECT(!problem, "%s in: %s", problem, b);
    EXPECT(strstr(b, "\\~~~cut short") && strstr(b, "generated locally by prbot"), "text shown, footer outside a fence: %s", b);
    free(b);
    snprintf(f.fingerprint, sizeof f.fingerprint, "0123456789abcdef");
    b = comment_render_inline(&f);
    REQUIRE(b, "render inline");
    o.comment_allowed_until = 0;
    problem = md_check(b, (size_t)(strstr(b, "<!--") - b), &o);
    EXPECT(!problem, "inline: %s in: %s", problem, b);
    free(b);
}

static void test_state_round_trip(void)
{
    publish_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.head_sha, sizeof st.head_sha, "%s", "0123456789abcdef0123456789abcdef01234567");
    st.pr_summary = strdup("A summary with --> and <!-- in it.");
    finding f = make("src/a.c", 10, SEVERITY_BUG, "Title --> with -- dashes", NULL, NULL);
    f.url = (char *)"https://github.example/o/r/pull/1#discussion_r5";
    snprintf(f.fingerprint, sizeof f.fingerprint, "aaaaaaaaaaaaaaaa");
    REQUIRE(findings_add(&st.earlier, &f) == 0, "add");
    st.fps = calloc(2, sizeof *st.fps);
    snprintf(st.fps[0], 17, "aaaaaaaaaaaaaaaa");
    snprintf(st.fps[1], 17, "bbbbbbbbbbbbbbbb");
    st.n_fps = 2;
    char *enc = publish_state_encode(&st);
    REQUIRE(enc, "encode");
    EXPECT(!strncmp(enc, "<!-- prbot:state v1 ", 20) && strstr(enc, " -->") == enc + strlen(enc) - 4, "shape: %s", enc);
    EXPECT(!strstr(enc + 4, "--") || strstr(enc + 4, "--") == enc + strlen(enc) - 3, "no -- inside the comment");
    char body[8192];
    snprintf(body, sizeof body, "<!-- prbot:review -->\n%s\n### prbot review\n", enc);
    publish_state back;
    REQUIRE(publish_state_parse(body, &back) == 0, "parse");
    EXPECT(!strcmp(back.head_sha, st.head_sha), "head");
    EXPECT(back.n_fps == 2 && publish_state_has(&back, "bbbbbbbbbbbbbbbb") && !publish_state_has(&back, "cccccccccccccccc"),
           "fingerprints");
    EXPECT(back.earlier.n == 1 && !strcmp(back.earlier.items[0].title, "Title --> with -- dashes") &&
               back.earlier.items[0].line == 10 && back.earlier.items[0].url,
           "earlier finding");
    EXPECT(back.pr_summary && !strcmp(back.pr_summary, st.pr_summary), "summary");
    publish_state_free(&back);
    free(enc);
    publish_state_free(&st);
}

/* Every place that writes a link asks comment_link_ok, with one rule: a URL
 * that passes one check and fails another would be linked or not depending
 * on where it came from. */
static void test_link_rule(void)
{
    char long_url[COMMENT_LINK_MAX + 2];
    memset(long_url, 'a', sizeof long_url - 1);
    memcpy(long_url, "https://github.example/", 23);
    long_url[sizeof long_url - 1] = 0; /* COMMENT_LINK_MAX + 1 bytes */
    static const char *const bad[] = {"http://github.example/x", "javascript:alert(1)", "https://", "https://a b",
                                      "https://a)b", "https://a<b", "https://a\"b", "https://a'b", "https://a`b",
                                      "https://a]b", "https://a\\b", "https://a\rb", "https://a\tb", "https://a\nb",
                                      "https://a\x7f", "https://a\xc3\xa9"};
    EXPECT(comment_link_ok("https://github.example/o/r/pull/1#discussion_r5"), "a review comment's URL");
    EXPECT(!comment_link_ok(NULL) && !comment_link_ok(long_url), "NULL or over COMMENT_LINK_MAX");
    long_url[COMMENT_LINK_MAX] = 0;
    EXPECT(comment_link_ok(long_url), "exactly COMMENT_LINK_MAX bytes");
    long_url[COMMENT_LINK_MAX] = 'a';
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) EXPECT(!comment_link_ok(bad[i]), "accepted %s", bad[i]);
    /* the summary's finding entries and its review link follow it */
    finding f = make("a.c", 3, SEVERITY_BUG, "t", "b", NULL);
    f.url = long_url;
    comment_summary cs = {.name = "review", .findings = &f, .n_findings = 1, .review_url = "https://x/\r"};
    char *b = NULL, err[128];
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render: %s", err);
    EXPECT(!strstr(b, "](https://") && strstr(b, "- **bug** `a.c:3` t"), "not linked: %s", b);
    free(b);
    f.url = (char *)"https://x/a\tb";
    REQUIRE(comment_render_summary(&cs, &b, err, sizeof err) == 0, "render: %s", err);
    EXPECT(!strstr(b, "](https://"), "tab in a URL linked: %s", b);
    free(b);
}

static void test_state_hostile(void)
{
    const char *bodies[] = {
        NULL, "", "no state here", "<!-- prbot:state v1 -->", "<!-- prbot:state v1 !!!! -->",
        "<!-- prbot:state v1 e30= -->",                         /* {} */
        "<!-- prbot:state v1 bnVsbA== -->",                     /* null */
        "<!-- prbot:state v1 eyJ2IjoyfQ== -->",                 /* {"v":2} */
        "<!-- prbot:state v1 eyJ2IjoxLCJoZWFkIjoieHl6In0= -->", /* {"v":1,"head":"xyz"} */
        "<!-- prbot:state v1 eyJ2IjoxLCJmcHMiOlsiWFgiLDEsbnVsbF0sImZpbmRpbmdzIjpbMSx7fV19 -->",
        "<!-- prbot:state v1 eyJ2Ij", /* unterminated */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        publish_state st;
        EXPECT(publish_state_parse(bodies[i], &st) == 0, "body %zu", i);
        EXPECT(!st.head_sha[0] && st.n_fps == 0 && st.earlier.n == 0, "body %zu gave state", i);
        publish_state_free(&st);
    }
    /* {"v":1,"findings":[{"path":"a.c","line":1,"severity":"bug","title":"t","url":"javascript:alert(1)"}]}:
     * the link is dropped, the finding kept */
    const char *js = "<!-- prbot:state v1 eyJ2IjoxLCJmaW5kaW5ncyI6W3sicGF0aCI6ImEuYyIsImxpbmUiOjEsInNldmVyaXR5Ijoi"
                     "YnVnIiwidGl0bGUiOiJ0IiwidXJsIjoiamF2YXNjcmlwdDphbGVydCgxKSJ9XX0= -->";
    publish_state st;
    REQUIRE(publish_state_parse(js, &st) == 0, "parse");
    EXPECT(st.earlier.n == 1 && st.earlier.items[0].url == NULL && !strcmp(st.earlier.items[0].path, "a.c"),
           "javascript: link dropped (%zu)", st.earlier.n);
    publish_state_free(&st);
}

int main(void)
{
    TEST_RUN(test_inline_body);
    TEST_RUN(test_summary_body);
    TEST_RUN(test_tilde_fence_from_the_model);
    TEST_RUN(test_state_round_trip);
    TEST_RUN(test_link_rule);
    TEST_RUN(test_state_hostile);
    return test_exit_code();
}
