/*
 * gh_tool.c - a thin command-line front for bot/github.h, so the Python
 * tests can drive the GitHub client against tests/fake_github.py without
 * needing the whole `prbot review` pipeline.
 *
 *   gh_tool pull N                 prints key=value lines of the PR
 *   gh_tool files N                prints "status filename [previous] +a -d patch-bytes" per file
 *   gh_tool upsert N MARKER FILE   upserts FILE's contents; prints "created URL" or "updated URL"
 *   gh_tool summary FILE           appends FILE to $GITHUB_STEP_SUMMARY
 *
 * Reads GITHUB_API_URL, GITHUB_TOKEN and GITHUB_REPOSITORY like prbot does.
 * Exit status: 0 ok, 1 API error, 2 not found, 3 forbidden, 4 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bot/errors.h"
#include "../../bot/github.h"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static int exit_code(int rc)
{
    return rc == PRBOT_OK ? 0 : rc == PRBOT_ENOTFOUND ? 2 : rc == PRBOT_EFORBIDDEN ? 3 : 1;
}

static int run_pull(gh_client *gh, long number, char *err, size_t errlen)
{
    gh_pull p;
    int rc = gh_pull_get(gh, number, &p, err, errlen);
    if (rc != PRBOT_OK) return rc;
    printf("number=%ld\ntitle=%s\nauthor=%s\nbase_sha=%s\nhead_sha=%s\nbase_ref=%s\nhead_ref=%s\n"
           "head_repo=%s\ndraft=%d\nfork=%d\nauthor_is_bot=%d\nhtml_url=%s\n",
           p.number, p.title, p.author, p.base_sha, p.head_sha, p.base_ref, p.head_ref, p.head_repo, p.draft,
           p.fork, p.author_is_bot, p.html_url);
    gh_pull_free(&p);
    return PRBOT_OK;
}

static int run_files(gh_client *gh, long number, char *err, size_t errlen)
{
    gh_pull_file *files;
    size_t n;
    int rc = gh_pull_files(gh, number, &files, &n, err, errlen);
    if (rc != PRBOT_OK) return rc;
    for (size_t i = 0; i < n; i++)
        printf("%s %s %s +%ld -%ld %zu\n", files[i].status, files[i].filename,
               files[i].previous_filename ? files[i].previous_filename : "-", files[i].additions,
               files[i].deletions, files[i].patch ? strlen(files[i].patch) : (size_t)0);
    printf("total %zu\n", n);
    gh_pull_files_free(files, n);
    return PRBOT_OK;
}

static int run_upsert(gh_client *gh, long number, const char *marker, const char *path, char *err, size_t errlen)
{
    char *body = read_file(path);
    if (!body) {
        snprintf(err, errlen, "cannot read %s", path);
        return PRBOT_ERROR;
    }
    char url[512];
    int updated = -1;
    int rc = gh_comment_upsert(gh, number, marker, body, url, sizeof url, &updated, err, errlen);
    if (rc == PRBOT_OK) printf("%s %s\n", updated ? "updated" : "created", url);
    free(body);
    return rc;
}

/* As prbot's command layer does: the client's retry notes and debug trace on stderr. */
static void log_to_stderr(const char *line, void *user)
{
    (void)user;
    fprintf(stderr, "%s\n", line);
}

int main(int argc, char **argv)
{
    log_set(log_to_stderr, NULL);
    char err[512] = "";
    if (argc < 3) {
        fprintf(stderr, "usage: gh_tool pull N | files N | upsert N MARKER FILE | summary FILE\n");
        return 4;
    }
    if (!strcmp(argv[1], "summary")) {
        char *body = read_file(argv[2]);
        if (!body || gh_step_summary_write(body, err, sizeof err)) {
            fprintf(stderr, "gh_tool: %s\n", body ? err : "cannot read body file");
            free(body);
            return 1;
        }
        free(body);
        return 0;
    }
    gh_client *gh;
    if (gh_client_new(&gh, getenv("GITHUB_API_URL"), getenv("GITHUB_TOKEN"), getenv("GITHUB_REPOSITORY"), err,
                      sizeof err)) {
        fprintf(stderr, "gh_tool: %s\n", err);
        return 1;
    }
    long number = strtol(argv[2], NULL, 10);
    int rc;
    if (!strcmp(argv[1], "pull"))
        rc = run_pull(gh, number, err, sizeof err);
    else if (!strcmp(argv[1], "files"))
        rc = run_files(gh, number, err, sizeof err);
    else if (!strcmp(argv[1], "upsert") && argc == 5)
        rc = run_upsert(gh, number, argv[3], argv[4], err, sizeof err);
    else {
        gh_client_free(gh);
        fprintf(stderr, "gh_tool: bad arguments\n");
        return 4;
    }
    if (rc != PRBOT_OK) fprintf(stderr, "gh_tool: %s: %s\n", prbot_result_name(rc), err);
    gh_client_free(gh);
    return exit_code(rc);
}
