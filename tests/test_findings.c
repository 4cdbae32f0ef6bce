/*
 * test_findings.c - bot/findings.c: reading the model's JSON (whole, cut
 * short, damaged, wrapped in prose or fences, with wrong types), the
 * validation of every field, the echo filter, anchoring on a line map,
 * ranking, fingerprints, and review.json written and read back (plus the
 * strict reader refusing tampered documents).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../bot/findings.h"
#include "test.h"

static const char *const paths[] = {"src/util.c", "src/main.c", "lib/util.c", "README.md"};
#define N_PATHS (sizeof paths / sizeof paths[0])

static findings_list parse(const char *text)
{
    findings_list l;
    char err[256] = "";
    if (findings_parse(text, strlen(text), paths, N_PATHS, NULL, &l, err, sizeof err) < 0) {
        fprintf(stderr, "findings_parse: %s\n", err);
        memset(&l, 0, sizeof l);
        l.status = FINDINGS_UNPARSED;
    }
    return l;
}

static const char full_doc[] =
    "{\"summary\": \"Adds a sum helper.\\nIt also frees the array.\",\n"
    " \"findings\": [\n"
    "  {\"path\": \"src/util.c\", \"line\": 11, \"end_line\": 12, \"severity\": \"bug\",\n"
    "   \"title\": \"Off-by-one in loop\", \"body\": \"The loop reads a[n].\", \"suggestion\": \"for (i = 0; i < n; i++)\\n\"},\n"
    "  {\"path\": \"src/main.c\", \"line\": 3, \"severity\": \"nit\", \"title\": \"Unused include\", \"body\": \"\"}\n"
    " ]}";

static void test_parse_complete(void)
{
    findings_list l = parse(full_doc);
    REQUIRE(l.status == FINDINGS_PARSED, "status %d", l.status);
    REQUIRE(l.summary && !strcmp(l.summary, "Adds a sum helper. It also frees the array."), "summary '%s'",
            l.summary ? l.summary : "(null)");
    REQUIRE(l.n == 2, "%zu findings", l.n);
    const finding *f = &l.items[0];
    EXPECT(!strcmp(f->path, "src/util.c") && f->line == 11 && f->model_line == 11 && f->end_line == 12 &&
               f->severity == SEVERITY_BUG,
           "first finding fields");
    EXPECT(!strcmp(f->title, "Off-by-one in loop") && !strcmp(f->body, "The loop reads a[n]."), "text");
    EXPECT(f->suggestion && !strcmp(f->suggestion, "for (i = 0; i < n; i++)"), "suggestion without the newline");
    EXPECT(l.items[1].severity == SEVERITY_NIT && l.items[1].suggestion == NULL && !strcmp(l.items[1].body, ""),
           "second finding");
    EXPECT(l.dropped == 0, "dropped %d", l.dropped);
    findings_list_free(&l);
}

static void test_parse_wrapped_and_cut(void)
{
    /* prose and a code fence around the object */
    char text[4096];
    snprintf(text, sizeof text, "Here is the review:\n```json\n%s\n```\nThanks!", full_doc);
    findings_list l = parse(text);
    EXPECT(l.status == FINDINGS_PARSED && l.n == 2, "wrapped: status %d, %zu findings", l.status, l.n);
    findings_list_free(&l);
    /* cut in the middle of the second finding: the first survives */
    const char *cut_at = strstr(full_doc, "\"Unused");
    snprintf(text, sizeof text, "%.*s", (int)(cut_at - full_doc), full_doc);
    l = parse(text);
    EXPECT(l.status == FINDINGS_REPAIRED, "status %d", l.status);
    EXPECT(l.n == 1 && !strcmp(l.items[0].path, "src/util.c"), "%zu findings", l.n);
    EXPECT(l.summary != NULL, "summary kept");
    findings_list_free(&l);
    /* cut at every byte: never a crash, never more findings than written, the
     * first finding kept once its object is complete */
    size_t first_end = (size_t)(strstr(full_doc, "\\n\"},") - full_doc) + 4;
    for (size_t n = 0; n <= strlen(full_doc); n++) {
        snprintf(text, sizeof text, "%.*s", (int)n, full_doc);
        l = parse(text);
        EXPECT(l.n <= 2, "cut at %zu: %zu findings", n, l.n);
        if (n >= first_end) EXPECT(l.n >= 1, "cut at %zu: lost the complete first finding", n);
        if (n > 20) EXPECT(l.summary != NULL, "cut at %zu: summary lost", n);
        if (l.status == FINDINGS_UNPARSED) EXPECT(l.n == 0 && !l.summary, "unparsed but content");
        findings_list_free(&l);
    }
}

static void test_parse_garbage(void)
{
    const char *texts[] = {"", "No problems.", "{", "{{{{", "]]]", "{\"summary\": 12}", "[1, 2, 3]",
                           "{\"findings\": \"none\"}", "\xff\xfe{\"summary\":\"\xff ok\"}", "null"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        findings_list l = parse(texts[i]);
        EXPECT(l.n == 0, "text %zu: %zu findings", i, l.n);
        findings_list_free(&l);
    }
    findings_list l = parse("\xff\xfe{\"summary\":\"\xff ok\"}");
    EXPECT(l.summary && !strcmp(l.summary, "\xEF\xBF\xBD ok"), "invalid UTF-8 replaced: '%s'", l.summary ? l.summary : "");
    findings_list_free(&l);
    /* nesting deeper than the repair scanner tracks: no crash */
    char deep[400];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    l = parse(deep);
    EXPECT(l.n == 0 && l.status == FINDINGS_UNPARSED, "deep");
    findings_list_free(&l);
}

static void test_validation(void)
{
    const char *text =
        "{\"summary\": \"s\", \"findings\": ["
        "{\"path\": \"nope.c\", \"line\": 1, \"severity\": \"bug\", \"title\": \"t\", \"body\": \"b\"},"   /* unknown path */
        "{\"path\": \"util.c\", \"line\": 1, \"severity\": \"bug\", \"title\": \"t\", \"body\": \"b\"},"   /* ambiguous */
        "{\"path\": \"main.c\", \"line\": \"L7\", \"severity\": \"Warning\", \"title\": \"## t2\", \"body\": \"b\"},"
        "{\"path\": \"./README.md\", \"line\": 0, \"severity\": \"nit\", \"title\": \"t\", \"body\": \"b\"}," /* line 0 */
        "{\"path\": \"src/util.c\", \"line\": 4, \"severity\": \"whatever\", \"title\": \"\", \"body\": \"First. Second.\"},"
        "{\"path\": \"src/util.c\", \"line\": 4, \"severity\": \"bug\", \"title\": \"\", \"body\": \"\"},"   /* empty */
        "{\"path\": \"b/src/util.c\", \"line\": \"9-12\", \"severity\": \"nit\", \"title\": \"x\", \"body\": \"y\","
        " \"suggestion\": \"```\\nbreak out\\n```\"},"
        "{\"path\": \"src/util.c\", \"line\": 9, \"severity\": \"nit\", \"title\": \"X!\", \"body\": \"again\"}," /* repeat */
        "42]}";
    findings_list l = parse(text);
    REQUIRE(l.n == 3, "%zu findings kept", l.n);
    EXPECT(l.dropped == 6, "dropped %d", l.dropped);
    EXPECT(!strcmp(l.items[0].path, "src/main.c") && l.items[0].line == 7 && l.items[0].severity == SEVERITY_RISK &&
               !strcmp(l.items[0].title, "t2"),
           "suffix path, 'L7', Warning -> risk, heading marker stripped");
    EXPECT(l.items[1].severity == SEVERITY_RISK && !strcmp(l.items[1].title, "First"), "title from body: '%s'",
           l.items[1].title);
    EXPECT(!strcmp(l.items[2].path, "src/util.c") && l.items[2].line == 9 && l.items[2].end_line == 12 &&
               l.items[2].suggestion == NULL,
           "b/ prefix, range '9-12', a fenced suggestion dropped");
    findings_list_free(&l);
    /* more than FINDINGS_MAX */
    char big[16384] = "{\"findings\": [";
    for (int i = 0; i < FINDINGS_MAX + 5; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big),
                 "%s{\"path\": \"src/util.c\", \"line\": %d, \"severity\": \"nit\", \"title\": \"t%d\", \"body\": \"b\"}",
                 i ? "," : "", i + 1, i);
    strcat(big, "]}");
    l = parse(big);
    EXPECT(l.n == FINDINGS_MAX && l.dropped == 5, "%zu kept, %d dropped", l.n, l.dropped);
    findings_list_free(&l);
}

static void test_clean_text(void)
{
    static const char messy[] = "  # Title\n\n  with\ttabs \x01 and\r\nbreaks  ";
    char *s = findings_clean_text(messy, sizeof messy - 1, 0);
    EXPECT(s && !strcmp(s, "Title with tabs and breaks"), "'%s'", s);
    free(s);
    s = findings_clean_text("1. - > item", 11, 0);
    EXPECT(s && !strcmp(s, "item"), "markers: '%s'", s);
    free(s);
    s = findings_clean_text("2024 was a year", 15, 0);
    EXPECT(s && !strcmp(s, "2024 was a year"), "a number is not a list marker: '%s'", s);
    free(s);
    const char *longer = "word word word word word word word word word word word word";
    s = findings_clean_text(longer, strlen(longer), 30);
    EXPECT(s && strlen(s) <= 30 && !strcmp(s + strlen(s) - 3, "\xE2\x80\xA6") && strstr(s, "word \xE2\x80\xA6") == NULL,
           "cut at a word with an ellipsis: '%s'", s);
    free(s);
    s = findings_clean_text("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 12, 8);
    EXPECT(s && strlen(s) <= 8, "cut inside UTF-8: '%s'", s);
    free(s);
}

static void test_echo(void)
{
    const char *tmpl = "[system]\nYou are prbot, a careful reviewer.\n[user]\nReview the diff below: {{diff}}\n"
                       "Report only real bugs, wrong logic and missing error handling. No praise, no filler.\n"
                       "Write each title in a few words.";
    findings_echo *e = findings_echo_new(tmpl);
    REQUIRE(e, "echo");
    EXPECT(findings_echo_match(e, "Report only REAL bugs, wrong logic!"), "5-gram copied");
    EXPECT(!findings_echo_match(e, "The loop reads one element past the end."), "unrelated");
    EXPECT(findings_echo_match(e, "no praise no filler"), "4-word phrase");
    EXPECT(!findings_echo_match(e, "missing error handling"), "3 words are not an echo");
    EXPECT(!findings_echo_match(e, "below review the diff"), "across the removed placeholder? no: words reordered");
    char *s = findings_echo_strip(e, "The index is wrong. No praise, no filler. Report only real bugs, wrong logic and more! Fix it");
    EXPECT(s && !strcmp(s, "The index is wrong. Fix it"), "stripped: '%s'", s);
    free(s);
    /* findings_parse applies it to every text field */
    const char *text = "{\"summary\": \"You are prbot, a careful reviewer. It adds X.\", \"findings\": ["
                       "{\"path\": \"src/util.c\", \"line\": 2, \"severity\": \"bug\", \"title\": \"No praise, no filler\","
                       " \"body\": \"Write each title in a few words.\"}]}";
    findings_list l;
    REQUIRE(findings_parse(text, strlen(text), paths, N_PATHS, e, &l, NULL, 0) == 0, "parse");
    EXPECT(l.summary && !strcmp(l.summary, "It adds X."), "summary '%s'", l.summary ? l.summary : "");
    EXPECT(l.n == 0 && l.dropped == 1, "a finding made only of echo is dropped (%zu)", l.n);
    findings_list_free(&l);
    findings_echo_free(e);
}

static const char patch_util[] = "@@ -8,6 +8,8 @@\n"
                                 " int sum(const int *a, int n)\n"
                                 " {\n"
                                 "     int s = 0;\n"
                                 "-    for (int i = 0; i < n; i++)\n"
                                 "+    for (int i = 0; i <= n; i++)\n"
                                 "         s += a[i];\n"
                                 "+    free(a);\n"
                                 "     return s;\n"
                                 " }\n";

static int reject_line_12(void *user, size_t file, int line)
{
    (void)user;
    (void)file;
    return line != 12;
}

static void test_anchor_and_rank(void)
{
    const char *text =
        "{\"summary\": \"s\", \"findings\": ["
        "{\"path\": \"src/util.c\", \"line\": 17, \"severity\": \"nit\", \"title\": \"near end\", \"body\": \"\", \"suggestion\": \"x\"},"
        "{\"path\": \"src/util.c\", \"line\": 11, \"end_line\": 13, \"severity\": \"bug\", \"title\": \"range\", \"body\": \"\", \"suggestion\": \"y\"},"
        "{\"path\": \"src/util.c\", \"line\": 40, \"severity\": \"risk\", \"title\": \"far\", \"body\": \"\"},"
        "{\"path\": \"src/util.c\", \"line\": 14, \"end_line\": 30, \"severity\": \"risk\", \"title\": \"long range\", \"body\": \"\", \"suggestion\": \"z\"},"
        "{\"path\": \"src/main.c\", \"line\": 3, \"severity\": \"bug\", \"title\": \"no map\", \"body\": \"\"}]}";
    findings_list l = parse(text);
    REQUIRE(l.n == 5, "%zu", l.n);
    linemap m;
    REQUIRE(linemap_parse(patch_util, strlen(patch_util), &m, NULL, 0) == 0, "map");
    const char *fpaths[] = {"src/util.c"};
    const linemap *maps[] = {&m};
    findings_anchor(&l, fpaths, maps, 1, 3, NULL, NULL);
    /* hunk covers new lines 8-15 */
    EXPECT(l.items[0].line == 15 && l.items[0].suggestion == NULL && l.items[0].inline_comment, "17 -> 15, suggestion dropped");
    EXPECT(l.items[1].line == 11 && l.items[1].end_line == 13 && l.items[1].suggestion != NULL, "range kept with suggestion");
    EXPECT(l.items[2].line == 0 && !l.items[2].inline_comment && l.items[2].why_not_inline, "far: summary only");
    EXPECT(l.items[3].line == 14 && l.items[3].end_line == 15 && l.items[3].suggestion == NULL,
           "range clamped to the hunk, suggestion dropped (%d-%d)", l.items[3].line, l.items[3].end_line);
    EXPECT(l.items[4].line == 0 && !l.items[4].inline_comment, "file without a map");
    /* with an extra condition */
    findings_anchor(&l, fpaths, maps, 1, 3, reject_line_12, NULL);
    EXPECT(l.items[1].line == 11 && l.items[1].end_line == 0, "end 13 -> 12 rejected -> 11 only (%d-%d)",
           l.items[1].line, l.items[1].end_line);
    findings_rank(&l);
    const char *order[] = {"no map", "range", "long range", "far", "near end"};
    for (size_t i = 0; i < 5; i++) EXPECT(!strcmp(l.items[i].title, order[i]), "rank %zu: %s", i, l.items[i].title);
    linemap_free(&m);
    findings_list_free(&l);
}

static void test_fingerprint(void)
{
    char a[17], b[17], c[17], d[17];
    const char *l1 = "  for (i = 0; i <= n; i++)\t", *l2 = "for (i = 0; i <= n; i++)", *l3 = "for (i = 0; i < n; i++)";
    findings_fingerprint("src/a.c", "Off-by-one in loop!", l1, strlen(l1), a);
    findings_fingerprint("src/a.c", "off by one in LOOP", l2, strlen(l2), b);
    findings_fingerprint("src/b.c", "off by one in loop", l2, strlen(l2), c);
    findings_fingerprint("src/a.c", "off by one in loop", l3, strlen(l3), d);
    EXPECT(strlen(a) == 16 && !strcmp(a, b), "normalised title and trimmed line match: %s %s", a, b);
    EXPECT(strcmp(a, c) && strcmp(a, d), "path and line content matter");
}

static void test_doc_round_trip(void)
{
    review_doc d;
    memset(&d, 0, sizeof d);
    char err[256];
    d.f = parse(full_doc);
    snprintf(d.repo, sizeof d.repo, "octo/demo");
    d.pr = 12;
    memset(d.base_sha, 'a', 40);
    memset(d.head_sha, 'b', 40);
    d.model = strdup("Qwen2.5-Coder-0.5B-Instruct");
    d.prompt = strdup("review");
    diff_result diff;
    memset(&diff, 0, sizeof diff);
    REQUIRE(diff_result_add_file(&diff, "src/util.c", NULL, DIFF_MODIFIED, 2, 1, patch_util, NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&diff, "big.c", NULL, DIFF_ADDED, 9, 0, "@@ -0,0 +1 @@\n+x\n", NULL) == 0, "add");
    REQUIRE(diff_result_add_file(&diff, "yarn.lock", NULL, DIFF_MODIFIED, 1, 1, NULL, NULL) == 0, "add");
    diff_file_set_skip(&diff.files[1], "over token budget");
    diff.files[1].not_shown = 1;
    diff_file_set_skip(&diff.files[2], "lock file");
    REQUIRE(review_doc_set_files(&d, &diff) == 0, "files");
    d.prompt_tokens = 321;
    d.generated_tokens = 45;
    d.seconds = 6.5;
    d.f.items[0].fingerprint[0] = 0;
    char *json = review_doc_to_json(&d);
    REQUIRE(json, "to_json");
    review_doc r;
    REQUIRE(review_doc_parse(json, strlen(json), &r, err, sizeof err) == 0, "parse back: %s", err);
    EXPECT(!strcmp(r.repo, "octo/demo") && r.pr == 12 && !strcmp(r.head_sha, d.head_sha) && r.prompt_tokens == 321 &&
               r.generated_tokens == 45,
           "meta");
    EXPECT(r.f.n == 2 && r.f.items[0].end_line == 12 && r.f.items[0].suggestion && r.f.items[1].severity == SEVERITY_NIT,
           "findings");
    EXPECT(r.n_reviewed == 1 && !strcmp(r.reviewed[0], "src/util.c"), "reviewed");
    EXPECT(r.n_not_shown == 1 && !strcmp(r.not_shown[0].reason, "over token budget"), "not shown");
    EXPECT(r.n_skipped == 1 && !strcmp(r.skipped[0].path, "yarn.lock"), "skipped");
    EXPECT(strstr(json, "\"version\": 1") && strstr(json, "\"model_line\": 11") && strstr(json, "\"inline\""), "fields");
    review_doc_free(&r);
    free(json);
    diff_result_free(&diff);
    review_doc_free(&d);
}

static void expect_rejected(const char *json, const char *why_part)
{
    review_doc r;
    char err[256] = "";
    int rc = review_doc_parse(json, strlen(json), &r, err, sizeof err);
    EXPECT(rc < 0 && strstr(err, why_part), "expected rejection mentioning '%s', got rc %d err '%s'", why_part, rc, err);
    if (rc == 0) review_doc_free(&r);
}

#define SHA40 "0123456789abcdef0123456789abcdef01234567"
#define DOC_HEAD "{\"version\":1,\"repo\":\"o/r\",\"pr\":3,\"base_sha\":\"" SHA40 "\",\"head_sha\":\"" SHA40 "\",\"model\":\"m\",\"prompt\":\"review\",\"summary\":\"s\","
#define FILES "\"files\":{\"reviewed\":[\"a.c\"]}"

static void test_doc_strict_reader(void)
{
    review_doc r;
    char err[256];
    const char *ok = DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b @x <img>\"}]," FILES "}";
    REQUIRE(review_doc_parse(ok, strlen(ok), &r, err, sizeof err) == 0, "minimal: %s", err);
    EXPECT(r.f.n == 1 && r.f.items[0].inline_comment, "inline defaults to line > 0");
    review_doc_free(&r);
    expect_rejected("[]", "object");
    expect_rejected("{\"version\":2}", "version");
    expect_rejected(DOC_HEAD "\"findings\":{}," FILES "}", "findings");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"../etc/passwd\",\"line\":3,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b\"}]," FILES "}", "path");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"/abs\",\"line\":3,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b\"}]," FILES "}", "path");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":-1,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b\"}]," FILES "}", "line");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"end_line\":2,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b\"}]," FILES "}", "end_line");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"severity\":\"fatal\",\"title\":\"t\",\"body\":\"b\"}]," FILES "}", "severity");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"severity\":\"bug\",\"title\":\"\",\"body\":\"b\"}]," FILES "}", "title");
    expect_rejected(DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"severity\":\"bug\",\"title\":\"t\"}]," FILES "}", "body");
    expect_rejected("{\"version\":1,\"repo\":\"o/r\",\"pr\":3,\"base_sha\":\"xyz\",\"head_sha\":\"" SHA40 "\",\"model\":\"m\",\"prompt\":\"r\",\"summary\":\"s\",\"findings\":[]," FILES "}", "hex");
    expect_rejected(DOC_HEAD "\"findings\":[],\"files\":{\"reviewed\":[1]}}", "reviewed");
    /* the repository is owner/name exactly, as the GitHub client will build its URLs from it */
    static const char *const bad_repos[] = {"o", "o/", "/r", "o/r/x", "o/r?x", "o r/x"};
    for (size_t i = 0; i < sizeof bad_repos / sizeof *bad_repos; i++) {
        char doc[1024];
        snprintf(doc, sizeof doc, "{\"version\":1,\"repo\":\"%s\",\"pr\":3,\"base_sha\":\"" SHA40 "\",\"head_sha\":\"" SHA40
                 "\",\"model\":\"m\",\"prompt\":\"r\",\"summary\":\"s\",\"findings\":[]," FILES "}", bad_repos[i]);
        expect_rejected(doc, "owner/name");
    }
    expect_rejected(DOC_HEAD "\"findings\":[],\"findings\":[]," FILES "}", "JSON");
    /* a title far over the cap */
    static char huge[8192];
    snprintf(huge, sizeof huge, DOC_HEAD "\"findings\":[{\"path\":\"a.c\",\"line\":3,\"severity\":\"bug\",\"title\":\"%0600d\",\"body\":\"b\"}]," FILES "}", 0);
    expect_rejected(huge, "longer");
    /* too many findings */
    static char many[65536];
    snprintf(many, sizeof many, DOC_HEAD "\"findings\":[");
    for (int i = 0; i <= FINDINGS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s{\"path\":\"a.c\",\"line\":3,\"severity\":\"bug\",\"title\":\"t\",\"body\":\"b\"}", i ? "," : "");
    strcat(many, "]," FILES "}");
    expect_rejected(many, "at most");
}

static void test_schema(void)
{
    const char *sp[] = {"src/a.c", "b \"quoted\".py"};
    int lo[] = {5, 1}, hi[] = {40, 3};
    json_t *schema = findings_schema(sp, lo, hi, 2, 5, 1);
    REQUIRE(schema, "schema");
    char *text = json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS);
    REQUIRE(text, "dump");
    EXPECT(strstr(text, "\"required\":[\"summary\",\"findings\"]") && strstr(text, "\"maxItems\":5"), "top: %s", text);
    json_t *alts = json_object_get(json_object_get(json_object_get(json_object_get(schema, "properties"), "findings"),
                                                   "items"), "anyOf");
    REQUIRE(json_array_size(alts) == 2, "one alternative per file");
    json_t *p0 = json_object_get(json_array_get(alts, 0), "properties");
    EXPECT(!strcmp(json_string_value(json_object_get(json_object_get(p0, "path"), "const")), "src/a.c"), "path const");
    EXPECT(json_integer_value(json_object_get(json_object_get(p0, "line"), "minimum")) == 5 &&
               json_integer_value(json_object_get(json_object_get(p0, "line"), "maximum")) == 40,
           "line range");
    EXPECT(json_is_true(json_object_get(json_object_get(p0, "title"), "x-single-line")), "extension");
    free(text);
    json_decref(schema);
    /* without the extension keywords (for a server's response_format); one file: no anyOf */
    schema = findings_schema(sp, lo, hi, 1, 5, 0);
    text = schema ? json_dumps(schema, JSON_COMPACT) : NULL;
    EXPECT(text && !strstr(text, "x-single-line") && !strstr(text, "anyOf"), "plain: %s", text ? text : "");
    free(text);
    json_decref(schema);
    schema = findings_schema(sp, lo, hi, 0, 5, 0);
    text = schema ? json_dumps(schema, JSON_COMPACT) : NULL;
    EXPECT(text && strstr(text, "\"maxItems\":0") && !strstr(text, "items\":{"), "no file: no finding: %s", text ? text : "");
    free(text);
    json_decref(schema);
}

int main(void)
{
    TEST_RUN(test_schema);
    TEST_RUN(test_parse_complete);
    TEST_RUN(test_parse_wrapped_and_cut);
    TEST_RUN(test_parse_garbage);
    TEST_RUN(test_validation);
    TEST_RUN(test_clean_text);
    TEST_RUN(test_echo);
    TEST_RUN(test_anchor_and_rank);
    TEST_RUN(test_fingerprint);
    TEST_RUN(test_doc_round_trip);
    TEST_RUN(test_doc_strict_reader);
    return test_exit_code();
}
