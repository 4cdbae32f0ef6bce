/*
 * test_prompt.c - bot/prompt.c: templates and the token/time budget.
 *
 * The budget tests count tokens with a stand-in tokenizer (one token per 4
 * bytes, rounded up), so expected outcomes can be worked out by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bot/prompt.h"
#include "test.h"

typedef struct {
    size_t bytes_counted;
    int calls;
} counter;

static int count_quarter(void *user, const char *text, size_t len)
{
    (void)text;
    counter *c = user;
    c->bytes_counted += len;
    c->calls++;
    return (int)((len + 3) / 4);
}

static char *patch_of_lines(int n_lines, const char *word)
{
    size_t cap = (size_t)n_lines * (strlen(word) + 16) + 64;
    char *p = malloc(cap);
    if (!p) return NULL;
    size_t pos = (size_t)snprintf(p, cap, "@@ -0,0 +1,%d @@\n", n_lines);
    for (int i = 0; i < n_lines; i++) pos += (size_t)snprintf(p + pos, cap - pos, "+%s %d\n", word, i);
    return p;
}

static void add_file(diff_result *d, const char *path, int lines)
{
    char *patch = patch_of_lines(lines, "some code here");
    REQUIRE(patch, "malloc");
    int rc = diff_result_add_file(d, path, NULL, DIFF_ADDED, lines, 0, patch, NULL);
    free(patch);
    REQUIRE(rc == 0, "add_file");
}

static const diff_file *find_file(const diff_result *d, const char *path)
{
    for (size_t i = 0; i < d->n_files; i++)
        if (!strcmp(d->files[i].path, path)) return &d->files[i];
    return NULL;
}

static void test_template_parse_and_substitute(void)
{
    prompt_template t;
    REQUIRE(prompt_template_parse("x", "[system]\nBe brief.\n[user]\nHi {{name}}, {{unknown}} {{name}}!\n", &t) == 0,
            "parse");
    EXPECT(t.system && !strcmp(t.system, "Be brief."), "system '%s'", t.system);
    EXPECT(!strcmp(t.user, "Hi {{name}}, {{unknown}} {{name}}!"), "user '%s'", t.user);
    prompt_var v[] = {{"name", "Ada"}};
    char *s = prompt_substitute(t.user, v, 1);
    EXPECT(s && !strcmp(s, "Hi Ada, {{unknown}} Ada!"), "substitute '%s'", s);
    free(s);
    prompt_template_free(&t);
    REQUIRE(prompt_template_parse("y", "no sections {{a}}", &t) == 0, "parse");
    EXPECT(t.system == NULL && !strcmp(t.user, "no sections {{a}}"), "plain template");
    prompt_template_free(&t);
}

static void test_builtin_and_file_templates(void)
{
    const char *names[] = {"review", "summary", "joke"};
    char err[512];
    for (int i = 0; i < 3; i++) {
        prompt_template t;
        REQUIRE(prompt_template_load(names[i], &t, err, sizeof err) == 0, "%s: %s", names[i], err);
        EXPECT(!strcmp(t.name, names[i]) && t.system && strstr(t.user, "{{diff}}") && strstr(t.user, "{{files}}"),
               "%s template incomplete", names[i]);
        prompt_template_free(&t);
    }
    /* the embedded text is exactly prompts/review.txt */
    size_t len;
    char *file = test_read_file("prompts/review.txt", &len);
    if (file) EXPECT(!strcmp(file, prompt_builtin("review")), "embedded review differs from prompts/review.txt");
    free(file);
    prompt_template t;
    EXPECT(prompt_template_load("nope", &t, err, sizeof err) == -1 && strstr(err, "review, summary, joke"),
           "unknown name: %s", err);
    char dir[] = "/tmp/prbot-test-prompt-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/my team.txt", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f, "fopen");
    fputs("Say {{title}}\n", f);
    fclose(f);
    REQUIRE(prompt_template_load(path, &t, err, sizeof err) == 0, "file: %s", err);
    EXPECT(!strcmp(t.name, "my-team") && !strcmp(t.user, "Say {{title}}") && !t.system, "file template %s", t.name);
    prompt_template_free(&t);
    setenv("PRBOT_PROMPTS_DIR", dir, 1);
    snprintf(path, sizeof path, "%s/review.txt", dir);
    REQUIRE((f = fopen(path, "w")) != NULL, "fopen");
    fputs("Override {{diff}}\n", f);
    fclose(f);
    EXPECT(prompt_template_load("review", &t, err, sizeof err) == 0 && !strcmp(t.user, "Override {{diff}}"),
           "PRBOT_PROMPTS_DIR not used: %s", err);
    prompt_template_free(&t);
    unsetenv("PRBOT_PROMPTS_DIR");
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.txt", dir);
    EXPECT(prompt_template_load(missing, &t, err, sizeof err) == -1 && strstr(err, "missing.txt"), "missing: %s",
           err);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
}

static void test_rank(void)
{
    EXPECT(prompt_file_rank("src/main.c") == 0 && prompt_file_rank("Makefile") == 0, "source");
    EXPECT(prompt_file_rank("tests/x.c") == 1 && prompt_file_rank("pkg/foo_test.go") == 1 &&
               prompt_file_rank("a/test_b.py") == 1 && prompt_file_rank("web/x.spec.ts") == 1,
           "tests");
    EXPECT(prompt_file_rank("README.md") == 2 && prompt_file_rank("docs/x.html") == 2, "docs");
    EXPECT(prompt_file_rank("config/app.yaml") == 3 && prompt_file_rank(".gitignore") == 3, "config");
}

static void test_budget_drops_lowest_priority(void)
{
    diff_result d = {0};
    add_file(&d, "docs/guide.md", 20);      /* rank 2 */
    add_file(&d, "tests/test_a.c", 20);     /* rank 1 */
    add_file(&d, "src/big.c", 200);         /* rank 0, big */
    add_file(&d, "config/app.yaml", 5);     /* rank 3 */
    add_file(&d, "src/small.c", 10);        /* rank 0, small */
    REQUIRE(diff_file_set_skip(&d.files[3], "lock file") == 0, "skip"); /* already skipped: untouched */
    prompt_template t;
    REQUIRE(prompt_template_parse("review", "Files:\n{{files}}\nDiff:\n{{diff}}\nTitle {{title}}", &t) == 0, "t");
    counter cnt = {0};
    /* each line "+some code here N\n" is ~18-19 bytes: small.c ~ 50 tokens, test/docs ~ 100, big.c ~ 950 */
    prompt_budget b = {.n_ctx = 1024, .max_tokens = 200, .margin = 16, .count = count_quarter, .user = &cnt};
    prompt_var vars[] = {{"title", "T"}};
    prompt_result r;
    char err[256];
    REQUIRE(prompt_build(&t, vars, 1, &d, &b, &r, err, sizeof err) == 0, "build: %s", err);
    EXPECT(r.prompt_tokens <= r.token_budget && r.token_budget == 1024 - 200 - 16, "tokens %d budget %d",
           r.prompt_tokens, r.token_budget);
    EXPECT(r.prompt_tokens == count_quarter(&cnt, r.formatted, strlen(r.formatted)), "prompt_tokens is the count");
    const diff_file *small = find_file(&d, "src/small.c"), *big = find_file(&d, "src/big.c"),
                    *test = find_file(&d, "tests/test_a.c"), *doc = find_file(&d, "docs/guide.md"),
                    *cfg = find_file(&d, "config/app.yaml");
    EXPECT(!small->skip_reason && strstr(r.user_msg, "src/small.c (added, +10 -0)"), "small source shown");
    /* big.c does not fit whole: it is cut to fill the room, so the lower ranks get nothing */
    EXPECT(!big->skip_reason && big->note && strstr(big->note, "truncated"), "big.c note %s", big->note);
    EXPECT(test->skip_reason && !strcmp(test->skip_reason, "over token budget"), "test: %s", test->skip_reason);
    EXPECT(doc->skip_reason && !strcmp(doc->skip_reason, "over token budget"), "doc: %s", doc->skip_reason);
    EXPECT(!strcmp(cfg->skip_reason, "lock file"), "earlier reason kept: %s", cfg->skip_reason);
    EXPECT(r.n_shown == 2 && r.n_truncated == 1 && r.n_dropped == 2, "shown %d trunc %d dropped %d", r.n_shown,
           r.n_truncated, r.n_dropped);
    const char *ps = strstr(r.user_msg, "### src/small.c"), *pb = strstr(r.user_msg, "### src/big.c");
    EXPECT(ps && pb && ps < pb, "smaller source change first");
    EXPECT(strstr(r.user_msg, "Title T") && !strstr(r.user_msg, "{{"), "all placeholders filled");
    prompt_result_free(&r);

    /* with a bigger context everything fits whole */
    diff_result_free(&d);
    memset(&d, 0, sizeof d);
    add_file(&d, "docs/guide.md", 20);
    add_file(&d, "src/big.c", 100);
    b.n_ctx = 4096;
    REQUIRE(prompt_build(&t, vars, 1, &d, &b, &r, err, sizeof err) == 0, "build: %s", err);
    EXPECT(r.n_shown == 2 && r.n_dropped == 0 && !d.files[0].skip_reason && !d.files[1].note, "all fit");
    prompt_result_free(&r);
    prompt_template_free(&t);
    diff_result_free(&d);
}

static void test_time_budget_and_tiny_context(void)
{
    diff_result d = {0};
    add_file(&d, "src/a.c", 30);
    add_file(&d, "src/b.c", 40);
    prompt_template t;
    REQUIRE(prompt_template_parse("review", "{{diff}}", &t) == 0, "t");
    counter cnt = {0};
    /* 10 s budget, 50 tokens to decode at 10 tok/s = 5 s; prefill gets 8-5 = 3 s at 100 tok/s = 300 tokens */
    prompt_budget b = {.n_ctx = 8192, .max_tokens = 50, .time_budget_s = 10, .prefill_tokens_per_s = 100,
                       .decode_tokens_per_s = 10, .count = count_quarter, .user = &cnt};
    prompt_result r;
    char err[256];
    REQUIRE(prompt_build(&t, NULL, 0, &d, &b, &r, err, sizeof err) == 0, "build: %s", err);
    EXPECT(r.token_budget == 300 && !strcmp(r.limit, "time budget"), "budget %d (%s)", r.token_budget, r.limit);
    EXPECT(r.prompt_tokens <= 300, "tokens %d", r.prompt_tokens);
    EXPECT((d.files[1].skip_reason && !strcmp(d.files[1].skip_reason, "over time budget")) ||
               (d.files[1].note && strstr(d.files[1].note, "time budget")),
           "b.c: %s / %s", d.files[1].skip_reason, d.files[1].note);
    prompt_result_free(&r);
    prompt_template_free(&t);

    /* a template longer than the context is an error that says so */
    char *huge = malloc(5000);
    REQUIRE(huge, "malloc");
    memset(huge, 'x', 4999);
    huge[4999] = 0;
    REQUIRE(prompt_template_parse("big", huge, &t) == 0, "t");
    free(huge);
    b = (prompt_budget){.n_ctx = 512, .max_tokens = 64, .count = count_quarter, .user = &cnt};
    EXPECT(prompt_build(&t, NULL, 0, &d, &b, &r, err, sizeof err) == -1 && strstr(err, "context is 512"), "err: %s",
           err);
    prompt_template_free(&t);
    /* a template that leaves little room shrinks max_tokens instead of failing */
    REQUIRE(prompt_template_parse("mid", "0123456789012345678901234567890123456789{{diff}}", &t) == 0, "t");
    b = (prompt_budget){.n_ctx = 64, .max_tokens = 1000, .margin = 4, .count = count_quarter, .user = &cnt};
    REQUIRE(prompt_build(&t, NULL, 0, &d, &b, &r, err, sizeof err) == 0, "build: %s", err);
    EXPECT(r.max_tokens <= 32 && r.max_tokens >= 16 && r.prompt_tokens + r.max_tokens + 4 <= 64, "max %d tokens %d",
           r.max_tokens, r.prompt_tokens);
    prompt_result_free(&r);
    prompt_template_free(&t);
    diff_result_free(&d);
}

/* 40000 lines in one file and 400 small files: tokenizing work stays bounded. */
static void test_huge_diff_bounded(void)
{
    diff_result d = {0};
    add_file(&d, "src/huge.c", 40000);
    char path[64];
    for (int i = 0; i < 400; i++) {
        snprintf(path, sizeof path, "src/f%03d.c", i);
        add_file(&d, path, 30);
    }
    prompt_template t;
    REQUIRE(prompt_template_parse("review", "{{files}}\n{{diff}}", &t) == 0, "t");
    counter cnt = {0};
    prompt_budget b = {.n_ctx = 4096, .max_tokens = 512, .count = count_quarter, .user = &cnt};
    prompt_result r;
    char err[256];
    REQUIRE(prompt_build(&t, NULL, 0, &d, &b, &r, err, sizeof err) == 0, "build: %s", err);
    EXPECT(r.prompt_tokens <= r.token_budget, "over budget");
    EXPECT(r.n_shown > 5 && r.n_dropped > 300, "shown %d dropped %d", r.n_shown, r.n_dropped);
    size_t dropped = 0;
    for (size_t i = 0; i < d.n_files; i++) dropped += d.files[i].skip_reason != NULL;
    EXPECT(dropped == (size_t)r.n_dropped, "every dropped file has a reason");
    /* the patch text totals ~1.6 MB; we must not tokenize all of it */
    EXPECT(cnt.bytes_counted < 1000000, "tokenized %zu bytes", cnt.bytes_counted);
    prompt_result_free(&r);
    prompt_template_free(&t);
    diff_result_free(&d);
}

int main(void)
{
    TEST_RUN(test_template_parse_and_substitute);
    TEST_RUN(test_builtin_and_file_templates);
    TEST_RUN(test_rank);
    TEST_RUN(test_budget_drops_lowest_priority);
    TEST_RUN(test_time_budget_and_tiny_context);
    TEST_RUN(test_huge_diff_bounded);
    return test_exit_code();
}
