/*
 * github.c - the GitHub REST calls prbot makes, with retries and paging.
 *
 * Every call goes through gh_call(), which sends one request with the
 * standard headers, classifies the answer and decides whether to retry:
 *
 *   2xx                               -> PRBOT_OK
 *   429, 403 that is a rate limit     -> wait (Retry-After, x-ratelimit-reset or backoff), retry
 *   5xx, transport error              -> retry, unless the request must not be repeated blindly
 *   404                               -> PRBOT_ENOTFOUND
 *   other 403                         -> PRBOT_EFORBIDDEN (read-only token)
 *   anything else                     -> PRBOT_ERROR
 *
 * The rules are retry.h's, which the review backend client follows too.
 * Waits grow as 1, 2, 4, ... seconds plus up to 50% jitter, each capped by
 * PRBOT_RETRY_MAX_WAIT (default 60 s), for at most PRBOT_RETRY_ATTEMPTS
 * attempts (default 5): a request can never loop forever.
 *
 * Creating a comment is the one non-idempotent request: if a POST fails with
 * a 5xx or a dropped connection, GitHub may still have created the comment.
 * So gh_comment_upsert() does not resend the POST in place; it starts over
 * with the marker search, which finds such a comment and PATCHes it. That is
 * how "exactly one comment" survives flaky networks.
 *
 * Lists are read page by page (per_page=100) following the Link header's
 * rel="next" URL for at most MAX_PAGES pages. The token goes only where the
 * API base points: a next URL is followed only when libcurl's own parser
 * (the one that will make the request) gives it the base's scheme, host and
 * port and a path under the base's path; a string prefix would let
 * "https://api.github.com.evil.example/" or "https://api.github.com@evil/"
 * through.
 *
 * Our comment is the one whose body starts with the marker line and whose
 * author is the token's own identity: GET /user's login, or, for an
 * installation token (GitHub Actions' GITHUB_TOKEN, an app's token), which
 * /user refuses, any bot account: people cannot post as a bot. A marker
 * anywhere else in a body (a quoted comment, a file name in another prompt's
 * comment) or in someone else's comment is not ours, so nobody can make us
 * overwrite their comment or hide ours.
 */
#define _GNU_SOURCE /* strcasestr, vasprintf */
#include "github.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "errors.h"
#include "http.h"
#include "retry.h"
#include "textbuf.h"

#define MAX_PAGES 1000 /* 100,000 comments: far beyond any real PR */
#define DEFAULT_WRITE_INTERVAL 1.0 /* GitHub: "wait at least one second between each request" that writes */

struct gh_client {
    char *api;         /* base URL without trailing slash, e.g. https://api.github.com */
    char login[128];   /* the token's identity for the comment search; "" = not asked yet */
    int login_is_bot;  /* an installation token: /user refused, our comments are a bot's */
    char *repo;        /* "owner/name" */
    char *token;       /* kept only to redact it from messages; "" when anonymous */
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    retry_rules retry;
    double write_interval;      /* seconds between two writes (GitHub asks for >= 1) */
    double last_write;          /* engine_now_s() of the last write request; 0 = none yet */
};

typedef enum { RETRY_ALL, RETRY_RATE_LIMIT_ONLY } retry_policy;

/* ---------------------------------------------------------------- client */

int gh_repo_name_valid(const char *repo)
{
    const char *slash = strchr(repo, '/');
    if (!slash || slash == repo || !slash[1] || strchr(slash + 1, '/')) return 0;
    for (const char *p = repo; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./", *p)) return 0;
    return 1;
}

int gh_client_new(gh_client **out, const char *api_url, const char *token, const char *repo,
                  char *err, size_t errlen)
{
    *out = NULL;
    if (!api_url || !*api_url) api_url = "https://api.github.com";
    if (strncmp(api_url, "https://", 8) && strncmp(api_url, "http://", 7)) {
        err_set(err, errlen, "GITHUB_API_URL must start with https:// (got '%.200s')", api_url);
        return -1;
    }
    if (!repo || !gh_repo_name_valid(repo)) {
        err_set(err, errlen, "repository must be 'owner/name' (got '%.200s'); set GITHUB_REPOSITORY",
                repo ? repo : "");
        return -1;
    }
    gh_client *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->api = strdup(api_url);
    c->repo = strdup(repo);
    c->token = strdup(token ? token : "");
    if (!c->api || !c->repo || !c->token) goto oom;
    size_t n = strlen(c->api);
    while (n > 0 && c->api[n - 1] == '/') c->api[--n] = 0;
    if (token && *token) {
        if (strpbrk(token, "\r\n")) {
            gh_client_free(c);
            err_set(err, errlen, "the GitHub token contains a line break; check GITHUB_TOKEN");
            return -1;
        }
        size_t len = strlen(token) + 32;
        c->auth_header = malloc(len);
        if (!c->auth_header) goto oom;
        snprintf(c->auth_header, len, "Authorization: Bearer %s", token);
    }
    retry_rules_from_env(&c->retry);
    const char *wi = getenv("PRBOT_WRITE_INTERVAL");
    char *end = NULL;
    c->write_interval = wi && *wi ? strtod(wi, &end) : DEFAULT_WRITE_INTERVAL;
    if (!wi || !*wi || end == wi || c->write_interval < 0) c->write_interval = DEFAULT_WRITE_INTERVAL;
    if (c->write_interval > 60) c->write_interval = 60;
    *out = c;
    return 0;
oom:
    gh_client_free(c);
    err_set(err, errlen, "out of memory");
    return -1;
}

void gh_client_free(gh_client *c)
{
    if (!c) return;
    free(c->api);
    free(c->repo);
    if (c->token) memset(c->token, 0, strlen(c->token));
    free(c->token);
    if (c->auth_header) memset(c->auth_header, 0, strlen(c->auth_header));
    free(c->auth_header);
    free(c);
}

/* Replaces every occurrence of the token in msg with "***" (defence in depth:
 * nothing we format should contain it, but a server could echo it). */
static void redact_token(const gh_client *c, char *msg)
{
    size_t tlen = strlen(c->token);
    if (tlen < 4) return;
    char *hit;
    while ((hit = strstr(msg, c->token))) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + tlen, strlen(hit + tlen) + 1);
    }
}

/* "https://api/x/repos/o/r/..." -> "/repos/o/r/..." for messages. */
static const char *url_for_message(const gh_client *c, const char *url)
{
    size_t n = strlen(c->api);
    return strncmp(url, c->api, n) ? url : url + n;
}

static char *url_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* ---------------------------------------------------------------- one call */

/* Waits until write_interval has passed since the last write, then records
 * this one: GitHub's secondary rate limits punish bursts of writes. */
static void pace_write(gh_client *c)
{
    double now = engine_now_s();
    if (c->last_write > 0 && now - c->last_write < c->write_interval) {
        retry_sleep(c->write_interval - (now - c->last_write));
        now = engine_now_s();
    }
    c->last_write = now;
}

/* Writes "HTTP 403: <GitHub's message>" describing a failed response. */
static void describe_failure(const http_response *r, char *out, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *msg = root ? json_string_value(json_object_get(root, "message")) : NULL;
    char clean[512];
    size_t n = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < sizeof clean; p++)
        clean[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    /* a 422 says what was invalid in "errors": strings, or objects with a "message" */
    json_t *errors = root ? json_object_get(root, "errors") : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        const char *m = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
        if (!m) m = json_string_value(json_object_get(e, "code"));
        for (const char *p = i ? "; " : ": ", *q = m ? m : ""; (*p || *q) && n + 1 < sizeof clean;)
            clean[n++] = *p ? *p++ : (*q == '\n' || *q == '\r') ? (q++, ' ') : *q++;
    }
    clean[n] = 0;
    if (n)
        snprintf(out, cap, "HTTP %ld: %s", r->status, clean);
    else
        snprintf(out, cap, "HTTP %ld", r->status);
    json_decref(root);
}

/* One API request with retries. On PRBOT_OK, *resp holds the 2xx response
 * (caller frees). On failure resp is freed, err set, and *retryable (if not
 * NULL) says whether the failure was a 5xx/transport error that the policy
 * did not let us retry here. */
static int gh_call(gh_client *c, const char *method, const char *url, const char *body, retry_policy policy,
                   http_response *resp, int *retryable, char *err, size_t errlen)
{
    const char *headers[6];
    size_t nh = 0;
    headers[nh++] = "Accept: application/vnd.github+json";
    headers[nh++] = "X-GitHub-Api-Version: 2022-11-28";
    headers[nh++] = "User-Agent: prbot";
    if (body) headers[nh++] = "Content-Type: application/json";
    if (c->auth_header) headers[nh++] = c->auth_header;
    headers[nh] = NULL;
    if (retryable) *retryable = 0;

    const char *shown = url_for_message(c, url);
    int writes = strcmp(method, "GET") != 0;
    for (int attempt = 1;; attempt++) {
        char why[600];
        if (writes) pace_write(c);
        int transport_failed = http_request(method, url, headers, body, c->retry.timeout_s, resp, why, sizeof why);
        if (!transport_failed && resp->status >= 200 && resp->status < 300) return PRBOT_OK;

        int rate_limited = !transport_failed && retry_is_rate_limited(resp);
        int server_error = transport_failed || resp->status >= 500;
        if (!transport_failed) describe_failure(resp, why, sizeof why);
        redact_token(c, why);

        if (!rate_limited && !server_error) {
            long status = resp->status;
            http_response_free(resp);
            err_set(err, errlen, "GitHub API %s %s: %s", method, shown, why);
            redact_token(c, err);
            if (status == 404) return PRBOT_ENOTFOUND;
            if (status == 403) return PRBOT_EFORBIDDEN;
            if (status == 422) return PRBOT_EINVALID;
            if (status == 401)
                err_append(err, errlen,
                           " (the token is invalid or expired; check the github-token input / GITHUB_TOKEN)");
            return PRBOT_ERROR;
        }
        if (server_error && policy == RETRY_RATE_LIMIT_ONLY) {
            http_response_free(resp);
            err_set(err, errlen, "GitHub API %s %s: %s", method, shown, why);
            if (retryable) *retryable = 1;
            return PRBOT_ERROR;
        }
        if (attempt >= c->retry.max_attempts) {
            http_response_free(resp);
            err_set(err, errlen, "GitHub API %s %s: %s (gave up after %d attempts)", method, shown, why,
                    attempt);
            return PRBOT_ERROR;
        }
        double wait = retry_wait_seconds(&c->retry, transport_failed ? NULL : resp, attempt);
        http_response_free(resp);
        log_note("prbot: GitHub API %s %s: %s%s, retry %d/%d in %.3g s", method, shown, why,
                rate_limited ? " (rate limited)" : "", attempt + 1, c->retry.max_attempts, wait);
        retry_sleep(wait);
    }
}

static json_t *parse_json(const gh_client *c, const http_response *r, const char *method, const char *url,
                          char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!root)
        err_set(err, errlen, "GitHub API %s %s: response is not JSON (%s)", method, url_for_message(c, url),
                jerr.text);
    return root;
}

/* ---------------------------------------------------------------- paging */

char *gh_link_next(const char *link)
{
    for (const char *p = link; p && *p;) {
        const char *lt = strchr(p, '<');
        if (!lt) return NULL;
        const char *gt = strchr(lt, '>');
        if (!gt) return NULL;
        const char *end = strchr(gt, ',');
        size_t params_len = end ? (size_t)(end - gt) : strlen(gt);
        char params[128];
        snprintf(params, sizeof params, "%.*s", (int)(params_len < 127 ? params_len : 127), gt + 1);
        if (strstr(params, "rel=\"next\"") || strstr(params, "rel=next")) return strndup(lt + 1, (size_t)(gt - lt - 1));
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* The parts of url that decide where a request goes, as libcurl reads it
 * (host lower-cased, the default port filled in, dot segments removed, the
 * path percent-decoded). Returns 0, or -1 when it does not parse or has a
 * user name or password in it. */
typedef struct {
    char *scheme, *host, *port, *path;
} url_parts;

static void url_parts_free(url_parts *u)
{
    curl_free(u->scheme);
    curl_free(u->host);
    curl_free(u->port);
    curl_free(u->path);
}

static int url_parse(const char *url, url_parts *u)
{
    memset(u, 0, sizeof *u);
    CURLU *h = curl_url();
    char *user = NULL, *password = NULL;
    int rc = -1;
    if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_HOST, &u->host, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_PORT, &u->port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_PATH, &u->path, CURLU_URLDECODE) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
        curl_url_get(h, CURLUPART_PASSWORD, &password, 0) == CURLUE_NO_PASSWORD)
        rc = 0;
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(h);
    for (char *p = u->host; rc == 0 && *p; p++) *p = (char)tolower((unsigned char)*p);
    if (rc) url_parts_free(u);
    return rc;
}

/* 1 when url starts with "scheme://" and the host written after it (a
 * ":port" aside) is the one libcurl found, letters in any case. libcurl is
 * lenient ("https:///host" and "https:/host" are host "host"); requiring the
 * plain reading to agree means a URL that looks as if it goes elsewhere is
 * never followed. */
static int url_host_as_written(const char *url, const url_parts *u)
{
    size_t s = strlen(u->scheme);
    if (strncasecmp(url, u->scheme, s) || strncmp(url + s, "://", 3)) return 0;
    const char *a = url + s + 3, *host = u->host;
    size_t n = strcspn(a, "/?#"), h = n;
    while (h && a[h - 1] >= '0' && a[h - 1] <= '9') h--;
    if (h && a[h - 1] == ':') n = h - 1; /* ":8080", or a bare ":" */
    return n == strlen(host) && !strncasecmp(a, host, n);
}

int gh_url_under_base(const char *base, const char *url)
{
    url_parts b, u;
    if (url_parse(base, &b)) return 0;
    if (url_parse(url, &u)) {
        url_parts_free(&b);
        return 0;
    }
    size_t n = strlen(b.path);
    while (n && b.path[n - 1] == '/') n--; /* "/api/v3/" and "/" as prefixes: "/api/v3" and "" */
    int ok = !strcmp(b.scheme, u.scheme) && !strcmp(b.host, u.host) && !strcmp(b.port, u.port) &&
             url_host_as_written(url, &u) &&
             !strncmp(b.path, u.path, n) && (u.path[n] == '/' || u.path[n] == 0) &&
             !strstr(u.path, "/../") && !strstr(u.path, "\\"); /* decoded dot segments a server could undo */
    size_t plen = strlen(u.path);
    if (plen >= 3 && !strcmp(u.path + plen - 3, "/..")) ok = 0;
    url_parts_free(&b);
    url_parts_free(&u);
    return ok;
}

/* Called for each element of each page; returns 1 to stop, 0 to go on, -1 on error (err set). */
typedef int (*page_item_fn)(json_t *item, void *user, char *err, size_t errlen);

static int gh_get_all_pages(gh_client *c, char *first_url, page_item_fn on_item, void *user, char *err,
                            size_t errlen)
{
    char *url = first_url; /* owned */
    for (int page = 0; url; page++) {
        if (page >= MAX_PAGES) {
            err_set(err, errlen, "GitHub API GET %s: more than %d pages; giving up", url_for_message(c, url),
                    MAX_PAGES);
            free(url);
            return PRBOT_ERROR;
        }
        http_response r;
        int rc = gh_call(c, "GET", url, NULL, RETRY_ALL, &r, NULL, err, errlen);
        if (rc != PRBOT_OK) {
            free(url);
            return rc;
        }
        json_t *root = parse_json(c, &r, "GET", url, err, errlen);
        if (!root || !json_is_array(root)) {
            if (root) err_set(err, errlen, "GitHub API GET %s: expected a JSON array", url_for_message(c, url));
            json_decref(root);
            http_response_free(&r);
            free(url);
            return PRBOT_ERROR;
        }
        size_t i;
        json_t *item;
        int stop = 0;
        json_array_foreach(root, i, item)
        {
            stop = on_item(item, user, err, errlen);
            if (stop) break;
        }
        json_decref(root);
        char link[4096];
        char *next = NULL;
        if (!stop && http_header_get(r.headers, "link", link, sizeof link)) next = gh_link_next(link);
        http_response_free(&r);
        if (stop < 0) {
            free(url);
            free(next);
            return PRBOT_ERROR;
        }
        if (next && (!gh_url_under_base(c->api, next) || !strcmp(next, url))) {
            err_set(err, errlen, "GitHub API: next page URL '%.200s' is not under %s; refusing to follow", next,
                    c->api);
            free(next);
            free(url);
            return PRBOT_ERROR;
        }
        free(url);
        url = next;
    }
    return PRBOT_OK;
}

/* ---------------------------------------------------------------- pulls */

static char *json_strdup(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return strdup(s ? s : "");
}

void gh_pull_free(gh_pull *p)
{
    if (!p) return;
    free(p->title);
    free(p->body);
    free(p->author);
    free(p->html_url);
    free(p->state);
    free(p->base_sha);
    free(p->head_sha);
    free(p->base_ref);
    free(p->head_ref);
    free(p->head_repo);
    memset(p, 0, sizeof *p);
}

static int pull_from_json(json_t *root, gh_pull *p)
{
    memset(p, 0, sizeof *p);
    json_t *user = json_object_get(root, "user");
    json_t *base = json_object_get(root, "base");
    json_t *head = json_object_get(root, "head");
    json_t *head_repo = json_object_get(head, "repo");
    json_t *base_repo = json_object_get(base, "repo");
    p->number = (long)json_integer_value(json_object_get(root, "number"));
    p->title = json_strdup(root, "title");
    p->body = json_strdup(root, "body");
    p->author = json_strdup(user, "login");
    p->html_url = json_strdup(root, "html_url");
    p->state = json_strdup(root, "state");
    p->base_sha = json_strdup(base, "sha");
    p->head_sha = json_strdup(head, "sha");
    p->base_ref = json_strdup(base, "ref");
    p->head_ref = json_strdup(head, "ref");
    p->head_repo = json_strdup(head_repo, "full_name");
    if (!p->title || !p->body || !p->author || !p->html_url || !p->state || !p->base_sha || !p->head_sha ||
        !p->base_ref || !p->head_ref || !p->head_repo)
        return -1;
    p->draft = json_is_true(json_object_get(root, "draft"));
    const char *base_name = json_string_value(json_object_get(base_repo, "full_name"));
    p->fork = !json_is_object(head_repo) || !base_name || strcasecmp(p->head_repo, base_name) != 0;
    const char *type = json_string_value(json_object_get(user, "type"));
    size_t alen = strlen(p->author);
    p->author_is_bot = (type && !strcmp(type, "Bot")) || (alen > 5 && !strcmp(p->author + alen - 5, "[bot]"));
    return 0;
}

/* Fills pull from a parsed response: PRBOT_OK, PRBOT_ERROR (out of memory) or PRBOT_EINVALID (not a pull
 * request's shape). */
static int pull_from_root(json_t *root, gh_pull *pull)
{
    memset(pull, 0, sizeof *pull);
    if (!json_is_object(root) || !json_is_object(json_object_get(root, "head"))) return PRBOT_EINVALID;
    if (pull_from_json(root, pull) == 0) return PRBOT_OK;
    gh_pull_free(pull);
    return PRBOT_ERROR;
}

int gh_pull_parse(const char *json, size_t len, gh_pull *pull)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    memset(pull, 0, sizeof *pull);
    if (!root) return PRBOT_EINVALID;
    int rc = pull_from_root(root, pull);
    json_decref(root);
    return rc;
}

int gh_pull_get(gh_client *c, long number, gh_pull *pull, char *err, size_t errlen)
{
    memset(pull, 0, sizeof *pull);
    char *url = url_printf("%s/repos/%s/pulls/%ld", c->api, c->repo, number);
    if (!url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    http_response r;
    int rc = gh_call(c, "GET", url, NULL, RETRY_ALL, &r, NULL, err, errlen);
    if (rc == PRBOT_ENOTFOUND)
        err_set(err, errlen, "pull request #%ld not found in %s (GitHub API returned 404; check the PR number "
                "and that the token can read the repository)", number, c->repo);
    if (rc != PRBOT_OK) {
        free(url);
        return rc;
    }
    json_t *root = parse_json(c, &r, "GET", url, err, errlen);
    free(url);
    http_response_free(&r);
    if (!root) return PRBOT_ERROR;
    rc = pull_from_root(root, pull);
    json_decref(root);
    if (rc == PRBOT_EINVALID) err_set(err, errlen, "GitHub API: pull request #%ld: unexpected response shape", number);
    if (rc == PRBOT_ERROR) err_set(err, errlen, "out of memory");
    return rc ? PRBOT_ERROR : PRBOT_OK;
}

/* ---------------------------------------------------------------- files */

/* A list GET reads page after page into an array of records (PR files,
 * review comments): fill makes one record from one JSON item, clear frees
 * what a record holds. Both lists go through get_records and free_records. */
typedef struct {
    size_t size;                         /* bytes per record */
    int (*fill)(void *rec, json_t *item); /* 0, or -1 out of memory (clear still frees the part made) */
    void (*clear)(void *rec);
    const char *what;                    /* "the PR's files", for the out-of-memory line */
    void *items;
    size_t n, cap;
} record_list;

static void free_records(void *items, size_t n, size_t size, void (*clear)(void *))
{
    for (size_t i = 0; items && i < n; i++) clear((char *)items + i * size);
    free(items);
}

static int collect_record(json_t *item, void *user, char *err, size_t errlen)
{
    record_list *l = user;
    if (!json_is_object(item)) return 0;
    if (array_reserve(&l->items, &l->cap, l->n, l->size) == 0) {
        void *rec = memset((char *)l->items + l->n * l->size, 0, l->size);
        l->n++; /* counted even on failure so free_records releases it */
        if (l->fill(rec, item) == 0) return 0;
    }
    err_set(err, errlen, "out of memory reading %s", l->what);
    return -1;
}

/* GETs every page of url (owned); on PRBOT_OK *items and *n are the
 * records, else they are freed. */
static int get_records(gh_client *c, char *url, record_list *l, void **items, size_t *n, char *err, size_t errlen)
{
    *items = NULL;
    *n = 0;
    if (!url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    int rc = gh_get_all_pages(c, url, collect_record, l, err, errlen);
    if (rc != PRBOT_OK) {
        free_records(l->items, l->n, l->size, l->clear);
        redact_token(c, err);
        return rc;
    }
    *items = l->items;
    *n = l->n;
    return PRBOT_OK;
}

static char *json_strdup_or_null(json_t *obj, const char *key, int *oom)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

static int fill_file(void *rec, json_t *item)
{
    gh_pull_file *f = rec;
    int oom = 0;
    f->filename = json_strdup(item, "filename");
    f->status = json_strdup(item, "status");
    f->previous_filename = json_strdup_or_null(item, "previous_filename", &oom);
    f->patch = json_strdup_or_null(item, "patch", &oom);
    f->additions = (long)json_integer_value(json_object_get(item, "additions"));
    f->deletions = (long)json_integer_value(json_object_get(item, "deletions"));
    f->changes = (long)json_integer_value(json_object_get(item, "changes"));
    return oom || !f->filename || !f->status ? -1 : 0;
}

static void clear_file(void *rec)
{
    gh_pull_file *f = rec;
    free(f->filename);
    free(f->previous_filename);
    free(f->status);
    free(f->patch);
}

void gh_pull_files_free(gh_pull_file *files, size_t n) { free_records(files, n, sizeof *files, clear_file); }

int gh_pull_files(gh_client *c, long number, gh_pull_file **files, size_t *n, char *err, size_t errlen)
{
    record_list l = {sizeof **files, fill_file, clear_file, "the PR's files", NULL, 0, 0};
    char *url = url_printf("%s/repos/%s/pulls/%ld/files?per_page=100", c->api, c->repo, number);
    int rc = get_records(c, url, &l, (void **)files, n, err, errlen);
    if (rc == PRBOT_ENOTFOUND)
        err_set(err, errlen, "pull request #%ld not found in %s (GitHub API returned 404)", number, c->repo);
    return rc;
}

/* ---------------------------------------------------------------- comments */

int gh_author_is_ours(const char *author, int author_is_bot, const char *login, int login_is_bot)
{
    if (!author || !login) return 0;
    return login_is_bot ? author_is_bot : strcasecmp(author, login) == 0;
}

/* gh_author_is_ours for a comment's or review's JSON "user" object. */
static int user_is_ours(json_t *user, const char *login, int login_is_bot)
{
    const char *author = json_string_value(json_object_get(user, "login"));
    const char *type = json_string_value(json_object_get(user, "type"));
    return gh_author_is_ours(author, type && !strcmp(type, "Bot"), login, login_is_bot);
}

int gh_comment_is_ours(const char *body, const char *author, int author_is_bot, const char *marker,
                       const char *login, int login_is_bot)
{
    size_t n = strlen(marker);
    if (!body || !n || strncmp(body, marker, n) || (body[n] && body[n] != '\n' && body[n] != '\r')) return 0;
    return gh_author_is_ours(author, author_is_bot, login, login_is_bot);
}

typedef struct {
    const char *marker, *login;
    int login_is_bot;
    long long id; /* 0: not found */
    char *body;   /* a copy of the found body, when want_body */
    int want_body;
} marker_search;

static int match_marker(json_t *item, void *user, char *err, size_t errlen)
{
    marker_search *s = user;
    const char *body = json_string_value(json_object_get(item, "body"));
    json_t *author = json_object_get(item, "user"), *id = json_object_get(item, "id");
    const char *login = json_string_value(json_object_get(author, "login"));
    const char *type = json_string_value(json_object_get(author, "type"));
    if (json_is_integer(id) && gh_comment_is_ours(body, login, type && !strcmp(type, "Bot"), s->marker, s->login,
                                                  s->login_is_bot)) {
        s->id = (long long)json_integer_value(id);
        if (s->want_body && !(s->body = strdup(body))) {
            err_set(err, errlen, "out of memory");
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Who the token is, for the comment search: GET /user's login, or, when
 * /user is refused (403: an installation token such as Actions'
 * GITHUB_TOKEN), "any bot". Asked once per client. */
static int own_identity(gh_client *c, char *err, size_t errlen)
{
    if (c->login[0] || c->login_is_bot) return PRBOT_OK;
    char *url = url_printf("%s/user", c->api);
    if (!url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    http_response r;
    int rc = gh_call(c, "GET", url, NULL, RETRY_ALL, &r, NULL, err, errlen);
    if (rc == PRBOT_EFORBIDDEN) {
        c->login_is_bot = 1;
        free(url);
        return PRBOT_OK;
    }
    if (rc == PRBOT_ENOTFOUND) rc = PRBOT_ERROR; /* the API has no /user: not a missing pull request */
    if (rc == PRBOT_OK) {
        json_t *root = parse_json(c, &r, "GET", url, err, errlen);
        const char *login = json_string_value(json_object_get(root, "login"));
        if (login && *login && strlen(login) < sizeof c->login) snprintf(c->login, sizeof c->login, "%s", login);
        else if (root) err_set(err, errlen, "GitHub API GET /user: no login in the response");
        if (!c->login[0]) rc = PRBOT_ERROR;
        json_decref(root);
        http_response_free(&r);
    }
    free(url);
    return rc;
}

/* Copies html_url of a created/updated comment into url_out. */
static int read_comment_url(gh_client *c, const http_response *r, const char *method, const char *url,
                            char *url_out, size_t url_cap, char *err, size_t errlen)
{
    json_t *root = parse_json(c, r, method, url, err, errlen);
    if (!root) return PRBOT_ERROR;
    const char *html = json_string_value(json_object_get(root, "html_url"));
    if (url_out && url_cap) snprintf(url_out, url_cap, "%s", html ? html : "");
    json_decref(root);
    return PRBOT_OK;
}

/* The first page's URL of a pull request's list (issues/N/comments,
 * pulls/N/reviews), once our own login is known: every search of such a list
 * keeps only what we wrote. */
static int own_list_url(gh_client *c, const char *kind, long number, const char *items, char **url, char *err,
                        size_t errlen)
{
    int rc = own_identity(c, err, errlen);
    if (rc != PRBOT_OK) return rc;
    *url = url_printf("%s/repos/%s/%s/%ld/%s?per_page=100", c->api, c->repo, kind, number, items);
    if (!*url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    return PRBOT_OK;
}

static int find_marked_comment(gh_client *c, long number, const char *marker, long long *id, char **body,
                               char *err, size_t errlen)
{
    char *url;
    int rc = own_list_url(c, "issues", number, "comments", &url, err, errlen);
    if (rc != PRBOT_OK) return rc;
    marker_search search = {marker, c->login, c->login_is_bot, 0, NULL, body != NULL};
    rc = gh_get_all_pages(c, url, match_marker, &search, err, errlen);
    if (rc == PRBOT_ENOTFOUND)
        err_set(err, errlen, "pull request #%ld not found in %s (GitHub API returned 404)", number, c->repo);
    *id = search.id;
    if (body && rc == PRBOT_OK) *body = search.body;
    else free(search.body);
    return rc;
}

int gh_comment_find(gh_client *c, long number, const char *marker, long long *id, char **body, char *err,
                    size_t errlen)
{
    *id = 0;
    if (body) *body = NULL;
    int rc = find_marked_comment(c, number, marker, id, body, err, errlen);
    redact_token(c, err);
    return rc;
}

/* One round of a write that must happen once (a comment, a review): sets
 * *again when the failure leaves it unknown whether GitHub wrote (a 5xx, a
 * transport error) or the target vanished, so another round should look
 * for it first. */
typedef int (*write_round)(gh_client *c, void *user, int round, int *again, char *err, size_t errlen);

/* Runs rounds until one succeeds or gives up, at most PRBOT_RETRY_ATTEMPTS,
 * waiting retry_wait_seconds between them. The POSTs themselves are not
 * retried inside gh_call (RETRY_RATE_LIMIT_ONLY): only a round that has
 * searched by marker may write again, so a lost answer never writes twice. */
static int write_rounds(gh_client *c, const char *what, write_round round_fn, void *user, char *err, size_t errlen)
{
    int rc = PRBOT_ERROR;
    for (int round = 1; round <= c->retry.max_attempts; round++) {
        int again = 0;
        rc = round_fn(c, user, round, &again, err, errlen);
        if (rc == PRBOT_OK || !again || round == c->retry.max_attempts) break;
        double wait = retry_wait_seconds(&c->retry, NULL, round);
        log_note("prbot: %s; searching for the %s again in %.3g s (%d/%d)", err, what, wait, round + 1,
                 c->retry.max_attempts);
        retry_sleep(wait);
    }
    redact_token(c, err);
    return rc;
}

typedef struct {
    long number;
    const char *marker, *payload_text;
    char *url_out;
    size_t url_cap;
    int *updated;
} upsert_job;

/* Finds our comment, then PATCHes it or POSTs a new one. */
static int upsert_round(gh_client *c, void *user, int round, int *again, char *err, size_t errlen)
{
    upsert_job *j = user;
    long long id = 0;
    int rc = find_marked_comment(c, j->number, j->marker, &id, NULL, err, errlen);
    if (rc != PRBOT_OK) return rc;
    char *url = id ? url_printf("%s/repos/%s/issues/comments/%lld", c->api, c->repo, id)
                   : url_printf("%s/repos/%s/issues/%ld/comments", c->api, c->repo, j->number);
    if (!url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    const char *method = id ? "PATCH" : "POST";
    http_response r;
    int retryable = 0;
    rc = gh_call(c, method, url, j->payload_text, id ? RETRY_ALL : RETRY_RATE_LIMIT_ONLY, &r, &retryable, err,
                 errlen);
    if (rc == PRBOT_OK) {
        rc = read_comment_url(c, &r, method, url, j->url_out, j->url_cap, err, errlen);
        if (j->updated) *j->updated = id != 0;
        http_response_free(&r);
        free(url);
        return rc;
    }
    free(url);
    *again = retryable || (id && rc == PRBOT_ENOTFOUND); /* or deleted between list and PATCH */
    return rc;
}

int gh_comment_upsert(gh_client *c, long number, const char *marker, const char *body, char *url_out,
                      size_t url_cap, int *updated, char *err, size_t errlen)
{
    if (url_out && url_cap) url_out[0] = 0;
    if (updated) *updated = 0;
    if (!marker || !*marker) {
        err_set(err, errlen, "gh_comment_upsert: empty marker");
        return PRBOT_ERROR;
    }
    json_t *payload = json_pack("{s:s}", "body", body);
    char *payload_text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (!payload_text) {
        err_set(err, errlen, "cannot encode the comment body as JSON (invalid UTF-8?)");
        return PRBOT_ERROR;
    }
    upsert_job job = {number, marker, payload_text, url_out, url_cap, updated};
    int rc = write_rounds(c, "comment", upsert_round, &job, err, errlen);
    free(payload_text);
    return rc;
}

/* ---------------------------------------------------------------- reviews */

int gh_review_create(gh_client *c, long number, const char *commit_id, const char *event, const char *body,
                     const gh_review_comment *comments, size_t n, gh_review_ref *out, int *retryable, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (retryable) *retryable = 0;
    json_t *list = json_array();
    json_t *payload = json_pack("{s:s,s:s,s:o}", "commit_id", commit_id, "body", body, "comments", list);
    if (payload && event) json_object_set_new(payload, "event", json_string(event));
    for (size_t i = 0; payload && i < n; i++) {
        const gh_review_comment *rc = &comments[i];
        json_t *o = json_pack("{s:s,s:i,s:s,s:s}", "path", rc->path, "line", rc->line, "side", "RIGHT", "body",
                              rc->body);
        if (o && rc->start_line && rc->start_line < rc->line) {
            json_object_set_new(o, "start_line", json_integer(rc->start_line));
            json_object_set_new(o, "start_side", json_string("RIGHT"));
        }
        if (!o || json_array_append_new(list, o) < 0) {
            json_decref(payload);
            payload = NULL;
        }
    }
    char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    char *url = url_printf("%s/repos/%s/pulls/%ld/reviews", c->api, c->repo, number);
    if (!text || !url) {
        free(text);
        free(url);
        err_set(err, errlen, "cannot encode the review as JSON (invalid UTF-8 or out of memory)");
        return PRBOT_ERROR;
    }
    http_response r;
    int rc = gh_call(c, "POST", url, text, RETRY_RATE_LIMIT_ONLY, &r, retryable, err, errlen);
    if (rc == PRBOT_OK) {
        json_t *root = parse_json(c, &r, "POST", url, err, errlen);
        json_t *id = json_object_get(root, "id");
        const char *html = json_string_value(json_object_get(root, "html_url"));
        if (json_is_integer(id)) {
            out->id = (long long)json_integer_value(id);
            snprintf(out->html_url, sizeof out->html_url, "%s", html ? html : "");
        } else {
            if (root) err_set(err, errlen, "GitHub API POST %s: the answer has no review id", url_for_message(c, url));
            rc = PRBOT_ERROR;
        }
        json_decref(root);
        http_response_free(&r);
    }
    free(text);
    free(url);
    redact_token(c, err);
    return rc;
}

int gh_review_delete(gh_client *c, long number, long long review_id, char *err, size_t errlen)
{
    char *url = url_printf("%s/repos/%s/pulls/%ld/reviews/%lld", c->api, c->repo, number, review_id);
    if (!url) {
        err_set(err, errlen, "out of memory");
        return PRBOT_ERROR;
    }
    http_response r;
    int rc = gh_call(c, "DELETE", url, NULL, RETRY_ALL, &r, NULL, err, errlen);
    if (rc == PRBOT_OK) http_response_free(&r);
    free(url);
    redact_token(c, err);
    return rc;
}

typedef struct {
    const char *marker, *login;
    int login_is_bot;
    gh_review_ref *out;
    int found;
} review_search;

static int match_review(json_t *item, void *user, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    review_search *s = user;
    const char *body = json_string_value(json_object_get(item, "body"));
    json_t *id = json_object_get(item, "id");
    if (!body || !json_is_integer(id) || !user_is_ours(json_object_get(item, "user"), s->login, s->login_is_bot) ||
        !strstr(body, s->marker))
        return 0;
    const char *html = json_string_value(json_object_get(item, "html_url"));
    s->out->id = (long long)json_integer_value(id);
    snprintf(s->out->html_url, sizeof s->out->html_url, "%s", html ? html : "");
    s->found = 1;
    return 1;
}

int gh_review_find(gh_client *c, long number, const char *marker, gh_review_ref *out, int *found, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    *found = 0;
    char *url;
    int rc = own_list_url(c, "pulls", number, "reviews", &url, err, errlen);
    if (rc == PRBOT_OK) {
        review_search search = {marker, c->login, c->login_is_bot, out, 0};
        rc = gh_get_all_pages(c, url, match_review, &search, err, errlen);
        *found = search.found;
    }
    redact_token(c, err);
    return rc;
}

typedef struct {
    long number;
    const char *commit_id, *event, *body, *marker;
    const gh_review_comment *comments;
    size_t n;
    gh_review_ref *out;
} review_job;

/* Looks for the review a failed round may have created, then POSTs. */
static int review_round(gh_client *c, void *user, int round, int *again, char *err, size_t errlen)
{
    review_job *j = user;
    int found = 0;
    char err2[512];
    if (round > 1 && gh_review_find(c, j->number, j->marker, j->out, &found, err2, sizeof err2) == PRBOT_OK &&
        found) {
        log_note("prbot: %s; the review was created all the same", err);
        return PRBOT_OK;
    }
    return gh_review_create(c, j->number, j->commit_id, j->event, j->body, j->comments, j->n, j->out, again, err,
                            errlen);
}

int gh_review_create_once(gh_client *c, long number, const char *commit_id, const char *event, const char *body,
                          const gh_review_comment *comments, size_t n, const char *marker, gh_review_ref *out,
                          char *err, size_t errlen)
{
    review_job job = {number, commit_id, event, body, marker, comments, n, out};
    return write_rounds(c, "review", review_round, &job, err, errlen);
}

static int fill_posted(void *rec, json_t *item)
{
    gh_posted_comment *pc = rec;
    int oom = 0;
    pc->body = json_strdup_or_null(item, "body", &oom);
    pc->html_url = json_strdup_or_null(item, "html_url", &oom);
    return oom ? -1 : 0;
}

static void clear_posted(void *rec)
{
    gh_posted_comment *pc = rec;
    free(pc->body);
    free(pc->html_url);
}

void gh_posted_comments_free(gh_posted_comment *comments, size_t n)
{
    free_records(comments, n, sizeof *comments, clear_posted);
}

int gh_review_comments(gh_client *c, long number, long long review_id, gh_posted_comment **out, size_t *n,
                       char *err, size_t errlen)
{
    record_list l = {sizeof **out, fill_posted, clear_posted, "the review's comments", NULL, 0, 0};
    char *url = url_printf("%s/repos/%s/pulls/%ld/reviews/%lld/comments?per_page=100", c->api, c->repo, number,
                           review_id);
    return get_records(c, url, &l, (void **)out, n, err, errlen);
}

/* ---------------------------------------------------------------- summary */

int gh_step_summary_write(const char *body, char *err, size_t errlen)
{
    const char *path = getenv("GITHUB_STEP_SUMMARY");
    if (!path || !*path) {
        err_set(err, errlen, "GITHUB_STEP_SUMMARY is not set (only GitHub Actions provides it)");
        return -1;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        err_set(err, errlen, "cannot open GITHUB_STEP_SUMMARY file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(body);
    int bad = fwrite(body, 1, len, f) != len || fputc('\n', f) == EOF;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        err_set(err, errlen, "cannot write GITHUB_STEP_SUMMARY file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int gh_action_stop_token(char out[33])
{
    unsigned char bytes[16];
    FILE *f = fopen("/dev/urandom", "rb");
    int ok = f && fread(bytes, 1, sizeof bytes, f) == sizeof bytes;
    if (f) fclose(f);
    for (size_t i = 0; ok && i < sizeof bytes; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return ok ? 0 : -1;
}

void gh_action_stop_commands_begin(FILE *f, const char *token)
{
    if (token && *token) fprintf(f, "::stop-commands::%s\n", token);
}

void gh_action_stop_commands_end(FILE *f, const char *token)
{
    if (token && *token) fprintf(f, "\n::%s::\n", token);
}

void gh_action_output(const char *name, const char *value)
{
    const char *path = getenv("GITHUB_OUTPUT");
    if (!path || !*path || strchr(value, '\n')) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s=%s\n", name, value);
    fclose(f);
}
