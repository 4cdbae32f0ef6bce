/*
 * test_event.c - bot/event.c: the GitHub Actions environment and event JSON.
 *
 * Each case writes an event file shaped like GitHub's webhook payloads and
 * sets the environment a runner would, then checks what event_load reads
 * and, for broken set-ups, that the one-line error names the culprit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bot/event.h"
#include "test.h"

#define BASE "1111111111111111111111111111111111111111"
#define HEAD "2222222222222222222222222222222222222222"
#define TOKEN "ghs_SECRETtoken123"

static char event_path[64];

static void write_event(const char *json)
{
    snprintf(event_path, sizeof event_path, "/tmp/prbot-test-event-XXXXXX");
    int fd = mkstemp(event_path);
    REQUIRE(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    REQUIRE(f, "fdopen");
    fputs(json, f);
    fclose(f);
}

static void actions_env(const char *event_name)
{
    static const char *const clear[] = {"GITHUB_API_URL", "GITHUB_TOKEN", "GITHUB_WORKSPACE"};
    for (size_t i = 0; i < 3; i++) unsetenv(clear[i]);
    setenv("GITHUB_ACTIONS", "true", 1);
    setenv("GITHUB_EVENT_NAME", event_name, 1);
    setenv("GITHUB_EVENT_PATH", event_path, 1);
    setenv("GITHUB_REPOSITORY", "octo/repo", 1);
}

static const char pr_event[] =
    "{\"action\":\"synchronize\",\"number\":42,\"pull_request\":{\"number\":42,\"draft\":true,"
    "\"title\":\"Fix the parser\",\"body\":null,\"user\":{\"login\":\"alice\"},"
    "\"base\":{\"sha\":\"" BASE "\",\"repo\":{\"full_name\":\"octo/repo\",\"fork\":false}},"
    "\"head\":{\"sha\":\"" HEAD "\",\"repo\":{\"full_name\":\"%s\",\"fork\":%s}}}}";

static void test_pull_request(void)
{
    char json[1024];
    snprintf(json, sizeof json, pr_event, "octo/repo", "false");
    write_event(json);
    actions_env("pull_request");
    setenv("GITHUB_TOKEN", TOKEN, 1);
    setenv("GITHUB_WORKSPACE", "/work/space", 1);
    event_context c;
    event_options o = {0};
    char err[512] = "";
    REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "load: %s", err);
    EXPECT(c.in_actions && c.kind == EVENT_PULL_REQUEST && c.pr_number == 42, "kind %d pr %ld", c.kind, c.pr_number);
    EXPECT(!strcmp(c.base_sha, BASE) && !strcmp(c.head_sha, HEAD), "shas");
    EXPECT(!strcmp(c.base_rev, BASE) && !strcmp(c.head_rev, HEAD), "revs default to the shas");
    EXPECT(!c.fork && c.draft && !strcmp(c.author, "alice") && !strcmp(c.title, "Fix the parser") && !strcmp(c.body, ""),
           "fields");
    EXPECT(!strcmp(c.api_url, "https://api.github.com") && !strcmp(c.repository, "octo/repo"), "api/repo");
    EXPECT(c.token && !strcmp(c.token, TOKEN), "token read");
    EXPECT(!strcmp(c.repo_dir, "/work/space"), "workspace %s", c.repo_dir);
    event_context_free(&c);
    unlink(event_path);

    /* a fork: head repo differs */
    snprintf(json, sizeof json, pr_event, "mallory/repo", "true");
    write_event(json);
    actions_env("pull_request_target");
    setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3", 1);
    REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "load: %s", err);
    EXPECT(c.kind == EVENT_PULL_REQUEST_TARGET && c.fork, "fork target");
    EXPECT(!strcmp(c.api_url, "https://ghe.example.com/api/v3"), "GHES api url %s", c.api_url);
    event_context_free(&c);
    unlink(event_path);
}

static void test_workflow_dispatch(void)
{
    const char *inputs[] = {"{\"inputs\":{\"pr-number\":\"17\"}}", "{\"inputs\":{\"pr_number\":17}}",
                            "{\"inputs\":{\"number\":\"#17\"}}"};
    for (int i = 0; i < 3; i++) {
        write_event(inputs[i]);
        actions_env("workflow_dispatch");
        event_context c;
        event_options o = {0};
        char err[512] = "";
        REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "load %d: %s", i, err);
        EXPECT(c.kind == EVENT_WORKFLOW_DISPATCH && c.pr_number == 17 && !c.base_sha[0], "input %d: pr %ld", i,
               c.pr_number);
        event_context_free(&c);
        unlink(event_path);
    }
    /* no input: --pr supplies it; without --pr a clear error */
    write_event("{\"inputs\":{}}");
    actions_env("workflow_dispatch");
    event_context c;
    event_options o = {.pr = 5};
    char err[512] = "";
    REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "load: %s", err);
    EXPECT(c.pr_number == 5, "--pr %ld", c.pr_number);
    event_context_free(&c);
    o.pr = 0;
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "pr-number") && strstr(err, "--pr"), "err: %s",
           err);
    unlink(event_path);
}

static void test_bad_environment(void)
{
    event_context c;
    event_options o = {0};
    char err[512] = "";
    write_event("{\"pull_request\":{\"number\":3,\"base\":{\"sha\":\"abc\"},\"head\":{\"sha\":\"" HEAD "\"}}}");
    actions_env("pull_request");
    setenv("GITHUB_TOKEN", TOKEN, 1);
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "pull_request.base.sha"), "bad sha: %s", err);
    EXPECT(!strstr(err, TOKEN), "token leaked into an error");
    unlink(event_path);
    /* a SHA is exactly 40 lower-case hex digits: longer ones are refused, not cut into the field */
    static const char *const bad_heads[] = {HEAD "2", HEAD HEAD, "222222222222222222222222222222222222222G",
                                            "2222222222222222222222222222222222222222 "};
    for (size_t i = 0; i < sizeof bad_heads / sizeof *bad_heads; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"pull_request\":{\"number\":3,\"base\":{\"sha\":\"" BASE
                 "\"},\"head\":{\"sha\":\"%s\"}}}", bad_heads[i]);
        write_event(json);
        actions_env("pull_request");
        EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "pull_request.head.sha"), "head sha %s: %s",
               bad_heads[i], err);
        unlink(event_path);
    }

    write_event("{ not json");
    actions_env("pull_request");
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "GITHUB_EVENT_PATH") && strstr(err, "line 1"),
           "bad json: %s", err);
    unlink(event_path);

    actions_env("pull_request");
    setenv("GITHUB_EVENT_PATH", "/nonexistent/event.json", 1);
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "/nonexistent/event.json"), "missing file: %s",
           err);
    unsetenv("GITHUB_EVENT_PATH");
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "GITHUB_EVENT_PATH is not set"), "unset: %s",
           err);
    actions_env("pull_request");
    unsetenv("GITHUB_REPOSITORY");
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "GITHUB_REPOSITORY"), "repo: %s", err);
    write_event("{}");
    actions_env("push");
    EXPECT(event_load(&c, &o, err, sizeof err) == -1 && strstr(err, "push") && strstr(err, "pull_request"),
           "push: %s", err);
    unlink(event_path);
}

static void test_local(void)
{
    unsetenv("GITHUB_ACTIONS");
    unsetenv("GITHUB_REPOSITORY");
    unsetenv("GITHUB_TOKEN");
    event_context c;
    event_options o = {.repo_dir = "/some/repo", .base = "v1.0"};
    char err[256] = "";
    REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(c.kind == EVENT_LOCAL && !c.in_actions && !strcmp(c.repo_dir, "/some/repo") && !strcmp(c.base_rev, "v1.0") &&
               !strcmp(c.head_rev, "HEAD") && c.pr_number == 0 && !c.token,
           "local context");
    event_context_free(&c);
    o = (event_options){0};
    REQUIRE(event_load(&c, &o, err, sizeof err) == 0, "%s", err);
    EXPECT(!strcmp(c.repo_dir, ".") && c.base_rev[0] == 0, "defaults: base chosen later from the repo");
    event_context_free(&c);
}

int main(void)
{
    TEST_RUN(test_pull_request);
    TEST_RUN(test_workflow_dispatch);
    TEST_RUN(test_bad_environment);
    TEST_RUN(test_local);
    return test_exit_code();
}
