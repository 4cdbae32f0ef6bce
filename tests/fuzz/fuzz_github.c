/*
 * fuzz_github - what the GitHub client reads from answers (bot/github.c,
 * bot/retry.c, bot/http.c): Link headers, where a next page may go, the
 * rate-limit headers and how long they make us wait, a pull request's JSON,
 * which comment is ours.
 *
 * Input: an option byte (which API base), then NUL-separated Link value,
 * raw header block, response body and a comment's body and author.
 * Checked: a next URL that may get the token parses to the base's origin
 * (checked here by a plain reading of the URL); a wait is within
 * [0, max_wait]; parsed strings are never NULL.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../bot/github.h"
#include "../../bot/http.h"
#include "../../bot/retry.h"

static const char *const bases[] = {"https://api.github.com", "https://ghe.example/api/v3", "http://127.0.0.1:8080"};

/* "scheme://host:port" of a URL read plainly (lower case, the default port
 * written out, also for an empty one as in "host:"), or "" when it is not
 * of that form: what a person reading the URL would say it points at. */
static void plain_origin(const char *url, char *out, size_t cap)
{
    out[0] = 0;
    const char *sep = strstr(url, "://");
    if (!sep) return;
    size_t scheme = (size_t)(sep - url), host = strcspn(sep + 3, "/?#");
    if (memchr(sep + 3, '@', host) || scheme + host + 16 > cap) return;
    for (size_t i = 0; i < scheme + 3 + host; i++) {
        char c = url[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    out[scheme + 3 + host] = 0;
    if (host && out[scheme + 3 + host - 1] == ':') out[scheme + 3 + host - 1] = 0; /* an empty port is the default */
    if (!memchr(out + scheme + 3, ':', strlen(out + scheme + 3)))
        strcat(out, !strncmp(out, "https://", 8) ? ":443" : !strncmp(out, "http://", 7) ? ":80" : ":?");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    const char *base = bases[opts % 3];
    char *link = fuzz_take_string(&in, NULL), *headers = fuzz_take_string(&in, NULL);
    size_t body_len;
    char *body = fuzz_take_string(&in, &body_len);
    char *comment = fuzz_take_string(&in, NULL), *author = fuzz_take_string(&in, NULL);

    char *next = gh_link_next(link);
    if (next && gh_url_under_base(base, next)) {
        char want[256], got[256];
        plain_origin(base, want, sizeof want);
        plain_origin(next, got, sizeof got);
        FUZZ_CHECK(!strcmp(want, got), "next page %s (origin %s) is allowed under %s", next, got, base);
    }
    free(next);

    char value[64];
    (void)http_header_get(headers, "link", value, opts & 4 ? 1 : sizeof value);
    http_response r = {.status = opts & 8 ? 403 : 429, .body = body, .body_len = body_len, .headers = headers};
    retry_rules rules = {.max_attempts = 5, .max_wait = 60, .timeout_s = 1, .jitter_seed = opts};
    (void)retry_is_rate_limited(&r);
    double wait = retry_wait_seconds(&rules, &r, 1 + (int)(opts >> 4));
    FUZZ_CHECK(wait >= 0 && wait <= rules.max_wait, "wait %g", wait);

    gh_pull p;
    if (gh_pull_parse(body, body_len, &p) == 0) {
        FUZZ_CHECK(p.title && p.body && p.author && p.html_url && p.state && p.base_sha && p.head_sha &&
                       p.base_ref && p.head_ref && p.head_repo,
                   "a NULL string");
        gh_pull_free(&p);
    }
    int ours = gh_comment_is_ours(comment, author, opts & 1, "<!-- prbot:review -->", "alice", opts & 2);
    FUZZ_CHECK(!ours || !strncmp(comment, "<!-- prbot:review -->", 21), "ours without the marker first");
    free(link);
    free(headers);
    free(body);
    free(comment);
    free(author);
    return 0;
}
