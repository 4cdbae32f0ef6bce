/*
 * http.c - one HTTP request into memory with libcurl, plus redacted debug
 * output.
 *
 * The body and the header block grow in textbufs (textbuf.h). The
 * header callback starts a fresh block whenever a status line ("HTTP/...")
 * arrives, so after redirects or "100 Continue" only the final response's
 * headers remain. Debug output goes through CURLOPT_DEBUGFUNCTION so we can
 * rewrite any "Authorization:" line before it reaches the log (log_note,
 * errors.h: the command layer sends it to stderr).
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "errors.h"
#include "textbuf.h"

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    textbuf *b = user;
    textbuf_add(b, ptr, size * nmemb);
    return b->failed ? 0 : size * nmemb; /* 0 makes libcurl abort the transfer */
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *user)
{
    textbuf *b = user;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(ptr, "HTTP/", 5)) b->len = 0; /* a new response starts */
    textbuf_add(b, ptr, n);
    return b->failed ? 0 : n;
}

int http_debug_enabled(void)
{
    const char *d = getenv("PRBOT_DEBUG");
    return d && *d && strcmp(d, "0") != 0;
}

/* Prints header text line by line, replacing the value of Authorization. */
static void debug_print_headers(const char *prefix, const char *data, size_t size)
{
    size_t i = 0;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n') j++;
        size_t line_len = j - i;
        while (line_len && (data[i + line_len - 1] == '\r' || data[i + line_len - 1] == '\n')) line_len--;
        if (line_len) {
            if (line_len >= 14 && !strncasecmp(data + i, "authorization:", 14))
                log_note("%s Authorization: [redacted]", prefix);
            else
                log_note("%s %.*s", prefix, (int)line_len, data + i);
        }
        i = j + 1;
    }
}

static int on_debug(CURL *curl, curl_infotype type, char *data, size_t size, void *user)
{
    (void)curl;
    (void)user;
    switch (type) {
    case CURLINFO_TEXT: debug_print_headers("prbot debug: *", data, size); break;
    case CURLINFO_HEADER_OUT: debug_print_headers("prbot debug: >", data, size); break;
    case CURLINFO_HEADER_IN: debug_print_headers("prbot debug: <", data, size); break;
    default: break; /* bodies are not printed: they can be large */
    }
    return 0;
}

void http_debug_attach(CURL *curl)
{
    if (!http_debug_enabled()) return;
    curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
}

/* Where a body goes: into `body`, or (2xx, streaming) to on_data. */
typedef struct {
    CURL *curl;
    textbuf body;
    http_data_fn on_data;
    void *user;
    int aborted;
    long idle_s;           /* 0 = no idle limit */
    curl_off_t last_bytes; /* bytes received when last seen moving */
    time_t last_move;
    int stalled;
} body_sink;

/* The idle limit: curl's own low-speed check averages over several seconds
 * and counts the request upload, so a server that accepts a request and
 * then says nothing would get longer than asked; this counts received bytes. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal, (void)ulnow;
    body_sink *s = user;
    time_t now = time(NULL);
    if (dlnow != s->last_bytes || s->last_move == 0) {
        s->last_bytes = dlnow;
        s->last_move = now;
        return 0;
    }
    if (now - s->last_move >= s->idle_s) {
        s->stalled = 1;
        return 1;
    }
    return 0;
}

static size_t on_body_sink(char *ptr, size_t size, size_t nmemb, void *user)
{
    body_sink *s = user;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (s->on_data && status >= 200 && status < 300) {
        if (s->on_data(ptr, n, s->user)) {
            s->aborted = 1;
            return 0;
        }
        return n;
    }
    return on_body(ptr, size, nmemb, &s->body);
}

static int perform(const char *method, const char *url, const char *const *headers, const char *body, long idle_s,
                   long timeout_s, http_data_fn on_data, void *user, http_response *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    CURL *curl = curl_easy_init();
    if (!curl) {
        err_set(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *next = curl_slist_append(list, headers[i]);
        if (!next) {
            curl_slist_free_all(list);
            curl_easy_cleanup(curl);
            err_set(err, errlen, "out of memory");
            return -1;
        }
        list = next;
    }
    body_sink sink = {.curl = curl, .on_data = on_data, .user = user};
    textbuf head_buf = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (!strcmp(method, "GET")) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body_sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head_buf);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : 60L);
    if (idle_s > 0) {
        sink.idle_s = idle_s;
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &sink);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl can decode */
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string form replaced the bitmask */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    http_debug_attach(curl);

    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);

    resp->body = sink.body.data ? sink.body.data : strdup("");
    resp->body_len = sink.body.len;
    resp->headers = head_buf.data ? head_buf.data : strdup("");
    resp->headers_len = head_buf.len;
    if (!resp->body || !resp->headers || sink.body.failed || head_buf.failed) {
        http_response_free(resp);
        err_set(err, errlen, "out of memory reading the response");
        return -1;
    }
    if (rc != CURLE_OK) {
        if (sink.aborted) err_set(err, errlen, "aborted");
        else if (sink.stalled) err_set(err, errlen, "timed out: nothing received for %ld s", idle_s);
        else err_set(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
        resp->status = 0;
        return -1;
    }
    return 0;
}

int http_request(const char *method, const char *url, const char *const *headers, const char *body,
                 long timeout_s, http_response *resp, char *err, size_t errlen)
{
    return perform(method, url, headers, body, 0, timeout_s, NULL, NULL, resp, err, errlen);
}

int http_request_stream(const char *method, const char *url, const char *const *headers, const char *body,
                        long idle_s, long timeout_s, http_data_fn on_data, void *user, http_response *resp, char *err,
                        size_t errlen)
{
    return perform(method, url, headers, body, idle_s, timeout_s, on_data, user, resp, err, errlen);
}

void http_response_free(http_response *resp)
{
    free(resp->body);
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

int http_header_get(const char *headers, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    if (cap) out[0] = 0;
    for (const char *line = headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t line_len = eol ? (size_t)(eol - line) : strlen(line);
        if (line_len > name_len && line[name_len] == ':' && !strncasecmp(line, name, name_len)) {
            const char *v = line + name_len + 1;
            const char *end = line + line_len;
            while (v < end && isspace((unsigned char)*v)) v++;
            while (end > v && isspace((unsigned char)end[-1])) end--;
            if (cap) {
                size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
                memcpy(out, v, n);
                out[n] = 0;
            }
            return 1;
        }
        line = eol ? eol + 1 : NULL;
    }
    return 0;
}
