/*
 * test_github_parse.c - what bot/github.c reads from GitHub's answers, without
 * a network: the Link header's next URL, whether a URL may get the token,
 * which comment is ours, a pull request's JSON. (test_github.py drives the
 * same code against the fake server.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bot/github.h"
#include "test.h"

static void link_next(void)
{
    static const struct {
        const char *link, *want;
    } cases[] = {
        {"<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\"",
         "https://api.github.com/x?page=2"},
        {"<https://a/1>; rel=\"prev\", <https://a/3>; rel=\"next\"", "https://a/3"},
        {"<https://a/3>; rel=next", "https://a/3"},
        {"<https://a/9>; rel=\"last\"", NULL},
        {"", NULL},
        {"<unterminated; rel=\"next\"", NULL},
        {"no brackets; rel=\"next\"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = gh_link_next(cases[i].link);
        if (cases[i].want)
            EXPECT(got && !strcmp(got, cases[i].want), "%s: got %s", cases[i].link, got ? got : "NULL");
        else
            EXPECT(!got, "%s: got %s", cases[i].link, got);
        free(got);
    }
}

/* The token may only go where the API base points; string prefixes of the
 * base that lead elsewhere are what the old check let through. */
static void url_under_base(void)
{
    static const struct {
        const char *base, *url;
        int ok;
    } cases[] = {
        {"https://api.github.com", "https://api.github.com/repositories/1/issues/2/comments?page=2", 1},
        {"https://api.github.com", "https://API.github.com:443/repos/o/r", 1},
        {"https://api.github.com/", "https://api.github.com/repos/o/r", 1},
        {"https://api.github.com", "https://api.github.com.evil.example/repos/o/r", 0},
        {"https://api.github.com", "https://api.github.com@evil.example/repos/o/r", 0},
        {"https://api.github.com", "https://api.github.com:x@evil.example/", 0},
        {"https://api.github.com", "https://user@api.github.com/repos", 0},
        {"https://api.github.com", "http://api.github.com/repos/o/r", 0},
        {"https://api.github.com", "https://api.github.com:8443/repos/o/r", 0},
        {"https://api.github.com", "https://evil.example/https://api.github.com/", 0},
        {"https://api.github.com", "//api.github.com/repos", 0},
        /* libcurl reads these as api.github.com; a plain reading does not */
        {"https://api.github.com", "https:///api.github.com/repos", 0},
        {"https://api.github.com", "https:/api.github.com/repos", 0},
        {"https://api.github.com", "https:/api.github.com/x://api.github.com/repos", 0},
        {"https://api.github.com", "https://api.github.com\\@evil.example/repos", 0},
        {"https://api.github.com", "not a url", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3/repos/o/r?page=2", 1},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3", 1},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3evil/repos", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3/../../admin", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3/%2e%2e/admin", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3/x/%2E%2E", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/api/v3/a%5c..%5cb", 0},
        {"https://ghe.example/api/v3", "https://ghe.example/other", 0},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/repos?page=2", 1},
        {"http://127.0.0.1:8080", "http://127.0.0.1:80801/repos", 0},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080@127.0.0.1:9090/repos", 0},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080.evil/repos", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        EXPECT(gh_url_under_base(cases[i].base, cases[i].url) == cases[i].ok, "base %s, url %s: want %d",
               cases[i].base, cases[i].url, cases[i].ok);
}

static void comment_is_ours(void)
{
    const char *m = "<!-- prbot:review -->";
    EXPECT(gh_comment_is_ours("<!-- prbot:review -->\n### prbot review", "alice", 0, m, "alice", 0), "ours");
    EXPECT(gh_comment_is_ours("<!-- prbot:review -->", "Alice", 0, m, "alice", 0), "logins are case-insensitive");
    EXPECT(gh_comment_is_ours("<!-- prbot:review -->\r\nx", "github-actions[bot]", 1, m, "", 1), "any bot");
    EXPECT(!gh_comment_is_ours("<!-- prbot:review -->\nx", "mallory", 0, m, "", 1), "a person's comment");
    EXPECT(!gh_comment_is_ours("<!-- prbot:review -->\nx", "mallory", 0, m, "alice", 0), "someone else's");
    EXPECT(!gh_comment_is_ours("<!-- prbot:summary -->\n- `<!-- prbot:review -->.c`", "alice", 0, m, "alice", 0),
           "a marker inside another prompt's comment");
    EXPECT(!gh_comment_is_ours("quote: <!-- prbot:review -->", "alice", 0, m, "alice", 0), "not at the start");
    EXPECT(!gh_comment_is_ours("<!-- prbot:review -->x", "alice", 0, m, "alice", 0), "not the whole first line");
    EXPECT(!gh_comment_is_ours("<!-- prbot:reviewer -->", "alice", 0, "<!-- prbot:review", "alice", 0),
           "a prefix of another marker");
    EXPECT(!gh_comment_is_ours(NULL, "alice", 0, m, "alice", 0) && !gh_comment_is_ours("x", NULL, 0, m, "alice", 0),
           "missing fields");
}

/* The identity rule alone, which the comment search and the review search
 * (match_review) both apply. */
static void author_is_ours(void)
{
    static const struct {
        const char *author;
        int author_is_bot;
        const char *login;
        int login_is_bot, ours;
    } cases[] = {
        {"alice", 0, "alice", 0, 1},
        {"ALICE", 0, "alice", 0, 1},
        {"mallory", 0, "alice", 0, 0},
        {"alice[bot]", 1, "alice", 0, 0},
        {"github-actions[bot]", 1, "", 1, 1},
        {"other-app[bot]", 1, "", 1, 1}, /* an installation token cannot tell its bot from another by login */
        {"mallory", 0, "", 1, 0},
        {"github-actions[bot]", 0, "", 1, 0}, /* a user named like a bot is not one */
        {NULL, 1, "", 1, 0},
        {"alice", 0, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        EXPECT(gh_author_is_ours(cases[i].author, cases[i].author_is_bot, cases[i].login, cases[i].login_is_bot) ==
                   cases[i].ours,
               "case %zu: author %s (bot %d), login %s (bot %d): want %d", i, cases[i].author ? cases[i].author : "-",
               cases[i].author_is_bot, cases[i].login ? cases[i].login : "-", cases[i].login_is_bot, cases[i].ours);
}

static void pull_parse(void)
{
    static const char good[] =
        "{\"number\": 7, \"title\": \"T\", \"body\": null, \"draft\": true, \"user\": {\"login\": \"dependabot[bot]\"},"
        " \"base\": {\"sha\": \"aa\", \"ref\": \"main\", \"repo\": {\"full_name\": \"o/r\"}},"
        " \"head\": {\"sha\": \"bb\", \"ref\": \"f\", \"repo\": null}}";
    gh_pull p;
    REQUIRE(gh_pull_parse(good, sizeof good - 1, &p) == 0, "good JSON");
    EXPECT(p.number == 7 && !strcmp(p.title, "T") && !strcmp(p.body, "") && p.draft && p.author_is_bot && p.fork &&
               !strcmp(p.base_sha, "aa") && !strcmp(p.head_sha, "bb") && !strcmp(p.head_repo, ""),
           "fields");
    gh_pull_free(&p);
    static const char *const bad[] = {"", "[]", "{}", "{\"head\": 1}", "{\"head\": {}, \"user\": 5}", "nul",
                                      "{\"head\": {\"sha\": [1]}, \"title\": {\"x\": 1}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = gh_pull_parse(bad[i], strlen(bad[i]), &p);
        EXPECT(rc == PRBOT_EINVALID || rc == PRBOT_OK, "%s: rc %d", bad[i], rc);
        if (rc == 0) {
            EXPECT(p.title && p.head_sha && p.author, "%s: NULL strings", bad[i]);
            gh_pull_free(&p);
        }
    }
}

int main(void)
{
    TEST_RUN(link_next);
    TEST_RUN(url_under_base);
    TEST_RUN(comment_is_ours);
    TEST_RUN(author_is_ours);
    TEST_RUN(pull_parse);
    return test_exit_code();
}
