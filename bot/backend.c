/*
 * backend.c - clients of model servers (backend.h): the OpenAI chat
 * completions stream the review can use instead of the local engine, and the
 * Ollama chat stream of `prbot chat --server`.
 *
 * Both read a streamed body line by line: the pieces libcurl hands over are
 * cut at newlines (a line can span pieces), and each complete line is one
 * SSE field ("data: {...}") or one NDJSON object.
 */
#include "backend.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "http.h"
#include "retry.h"
#include "textbuf.h"

#define MAX_LINE (1 << 20)

char *backend_endpoint(const char *url, const char *path)
{
    size_t n = strlen(url);
    static const char *const tails[] = {"/v1/chat/completions", "/v1", "/"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t t = strlen(tails[i]);
        if (n >= t && !strcmp(url + n - t, tails[i])) {
            n -= t;
            break;
        }
    }
    textbuf b = {0};
    textbuf_printf(&b, "%.*s%s", (int)n, url, path);
    return textbuf_take(&b);
}

/* ---- line splitting ---------------------------------------------------------- */

typedef int (*line_fn)(const char *line, void *user);

typedef struct {
    textbuf partial;
    line_fn on_line;
    void *user;
} line_reader;

/* Feeds a piece of the body; calls on_line for each complete line. */
static int lines_feed(line_reader *lr, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        textbuf_add(&lr->partial, data, n);
        if (lr->partial.failed || lr->partial.len > MAX_LINE) return -1;
        if (!nl) break;
        const char *line = lr->partial.data ? lr->partial.data : "";
        size_t ll = lr->partial.len;
        if (ll && line[ll - 1] == '\r') lr->partial.data[--lr->partial.len] = 0;
        int rc = lr->on_line(line, lr->user);
        lr->partial.len = 0;
        if (lr->partial.data) lr->partial.data[0] = 0;
        if (rc) return rc;
        data = nl + 1;
        len -= n + 1;
    }
    return 0;
}

static int on_lines_data(const char *data, size_t len, void *user) { return lines_feed(user, data, len); }

/* ---- OpenAI chat completions ---------------------------------------------------- */

typedef struct {
    backend_text_fn on_text;
    void *user;
    backend_result *res;
    int done, stopped, failed;
    char err[512];
} sse_state;

static int on_sse_line(const char *line, void *user)
{
    sse_state *st = user;
    if (strncmp(line, "data:", 5)) return 0; /* comments, event names, blank separators */
    line += 5;
    while (*line == ' ') line++;
    if (!strcmp(line, "[DONE]")) {
        st->done = 1;
        return 0;
    }
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    if (!o) {
        snprintf(st->err, sizeof st->err, "the server sent an event that is not JSON: %s", jerr.text);
        st->failed = 1;
        return 1;
    }
    json_t *error = json_object_get(o, "error");
    if (error) {
        const char *msg = json_is_string(error) ? json_string_value(error)
                                                : json_string_value(json_object_get(error, "message"));
        snprintf(st->err, sizeof st->err, "the server reported: %.400s", msg ? msg : "an error");
        st->failed = 1;
        json_decref(o);
        return 1;
    }
    const char *model = json_string_value(json_object_get(o, "model"));
    if (model) snprintf(st->res->model, sizeof st->res->model, "%s", model);
    json_t *usage = json_object_get(o, "usage");
    if (json_is_object(usage)) {
        st->res->prompt_tokens = (int)json_integer_value(json_object_get(usage, "prompt_tokens"));
        st->res->completion_tokens = (int)json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_t *choice = json_array_get(json_object_get(o, "choices"), 0);
    const char *text = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish) snprintf(st->res->finish_reason, sizeof st->res->finish_reason, "%s", finish);
    int rc = 0;
    if (text && *text && st->on_text(text, st->user)) st->stopped = rc = 1;
    json_decref(o);
    return rc;
}

/* "HTTP 401: message" from an error response of either API family. */
static void describe(const http_response *r, char *out, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    json_t *e = json_object_get(root, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    if (msg)
        snprintf(out, cap, "HTTP %ld: %.300s", r->status, msg);
    else
        snprintf(out, cap, "HTTP %ld", r->status);
    json_decref(root);
}

static char *chat_request_body(const backend_options *o, const engine_chat_msg *msgs, int n_msgs, int max_tokens,
                               double temperature)
{
    json_t *m = json_array();
    for (int i = 0; i < n_msgs; i++)
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", msgs[i].role, "content", msgs[i].content));
    json_t *body = json_pack("{s:o,s:i,s:f,s:b,s:{s:b}}", "messages", m, "max_tokens", max_tokens, "temperature",
                             temperature, "stream", 1, "stream_options", "include_usage", 1);
    if (body && o->model) json_object_set_new(body, "model", json_string(o->model));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

int backend_chat(const backend_options *o, const engine_chat_msg *msgs, int n_msgs, int max_tokens, double temperature,
                 double total_s, backend_text_fn on_text, void *user, backend_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->prompt_tokens = res->completion_tokens = -1;
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
        err_set(err, errlen, "--backend must be an http:// or https:// URL (got '%.200s')", o->url);
        return -1;
    }
    if (o->api_key && strpbrk(o->api_key, "\r\n")) {
        err_set(err, errlen, "the backend API key contains a line break; check PRBOT_BACKEND_API_KEY");
        return -1;
    }
    char *url = backend_endpoint(o->url, "/v1/chat/completions");
    char *body = chat_request_body(o, msgs, n_msgs, max_tokens, temperature);
    textbuf auth = {0};
    if (o->api_key && *o->api_key) textbuf_printf(&auth, "Authorization: Bearer %s", o->api_key);
    const char *headers[] = {"Content-Type: application/json", "Accept: text/event-stream", "User-Agent: prbot",
                             auth.data, NULL};
    retry_rules rules;
    retry_rules_from_env(&rules);
    long total = total_s > 0 ? (long)total_s + 1 : 3600;
    int rc = -1;
    if (!url || !body || auth.failed) err_set(err, errlen, "out of memory");
    for (int attempt = 1; url && body && !auth.failed; attempt++) {
        sse_state st = {.on_text = on_text, .user = user, .res = res};
        line_reader lr = {.on_line = on_sse_line, .user = &st};
        http_response r;
        char why[600];
        int failed = http_request_stream("POST", url, headers, body, rules.timeout_s, total, on_lines_data, &lr, &r,
                                         why, sizeof why);
        if (!failed && r.status >= 200 && r.status < 300 && lr.partial.len) on_sse_line(lr.partial.data, &st);
        textbuf_free(&lr.partial);
        if (st.stopped) { /* the caller had enough */
            http_response_free(&r);
            rc = 0;
            break;
        }
        if (st.failed) {
            http_response_free(&r);
            err_set(err, errlen, "backend POST %s: %s", url, st.err);
            break;
        }
        if (!failed && r.status >= 200 && r.status < 300 && (st.done || res->finish_reason[0])) {
            http_response_free(&r);
            rc = 0;
            break;
        }
        if (!failed && r.status >= 200 && r.status < 300)
            snprintf(why, sizeof why, "the connection closed before the answer ended");
        else if (!failed)
            describe(&r, why, sizeof why);
        int retryable = failed || r.status < 300 || retry_is_retryable(&r);
        if (!retryable) {
            err_set(err, errlen, "backend POST %s: %s%s", url, why,
                    r.status == 401 || r.status == 403 ? " (check PRBOT_BACKEND_API_KEY)" : "");
            http_response_free(&r);
            break;
        }
        if (attempt >= rules.max_attempts) {
            err_set(err, errlen, "backend POST %s: %s (gave up after %d attempts)", url, why, attempt);
            http_response_free(&r);
            break;
        }
        double wait = retry_wait_seconds(&rules, failed ? NULL : &r, attempt);
        http_response_free(&r);
        log_note("prbot: backend POST %s: %s, retry %d/%d in %.3g s", url, why, attempt + 1,
                rules.max_attempts, wait);
        retry_sleep(wait);
        on_text(NULL, user);
        memset(res, 0, sizeof *res);
        res->prompt_tokens = res->completion_tokens = -1;
    }
    if (auth.data) memset(auth.data, 0, auth.len);
    textbuf_free(&auth);
    free(url);
    free(body);
    return rc;
}

/* ---- Ollama chat ------------------------------------------------------------------ */

typedef struct {
    backend_text_fn on_text;
    void *user;
    int done, failed;
    char err[512];
} ndjson_state;

static int on_ndjson_line(const char *line, void *user)
{
    ndjson_state *st = user;
    if (!*line) return 0;
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    if (!o) {
        snprintf(st->err, sizeof st->err, "the server sent a line that is not JSON: %s", jerr.text);
        st->failed = 1;
        return 1;
    }
    const char *error = json_string_value(json_object_get(o, "error"));
    const char *text = json_string_value(json_object_get(json_object_get(o, "message"), "content"));
    int rc = 0;
    if (error) {
        snprintf(st->err, sizeof st->err, "the server reported: %.400s", error);
        st->failed = rc = 1;
    } else if (text && *text && st->on_text(text, st->user)) {
        rc = 1;
    }
    if (json_is_true(json_object_get(o, "done"))) st->done = 1;
    json_decref(o);
    return rc;
}

int ollama_chat(const char *url, const char *model, const engine_chat_msg *msgs, int n_msgs, backend_text_fn on_text,
                void *user, char *err, size_t errlen)
{
    json_t *m = json_array();
    for (int i = 0; i < n_msgs; i++)
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", msgs[i].role, "content", msgs[i].content));
    json_t *req = json_pack("{s:o,s:b}", "messages", m, "stream", 1);
    if (req && model) json_object_set_new(req, "model", json_string(model));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    char *endpoint = backend_endpoint(url, "/api/chat");
    const char *headers[] = {"Content-Type: application/json", "User-Agent: prbot", NULL};
    ndjson_state st = {.on_text = on_text, .user = user};
    line_reader lr = {.on_line = on_ndjson_line, .user = &st};
    http_response r = {0};
    char why[600] = "out of memory";
    retry_rules rules;
    retry_rules_from_env(&rules);
    int failed = !body || !endpoint ||
                 http_request_stream("POST", endpoint, headers, body, rules.timeout_s, 3600, on_lines_data, &lr, &r, why,
                                     sizeof why);
    int rc = -1;
    if (!failed && r.status >= 200 && r.status < 300) {
        if (lr.partial.len) on_ndjson_line(lr.partial.data, &st);
        if (st.failed) err_set(err, errlen, "%s: %s", endpoint, st.err);
        else if (!st.done) err_set(err, errlen, "%s: the connection closed before the answer ended", endpoint);
        else rc = 0;
    } else if (!failed) {
        describe(&r, why, sizeof why);
        err_set(err, errlen, "%s: %s", endpoint, why);
    } else {
        err_set(err, errlen, "%s: %s", endpoint ? endpoint : url, st.failed ? st.err : why);
    }
    http_response_free(&r);
    textbuf_free(&lr.partial);
    free(body);
    free(endpoint);
    return rc;
}
