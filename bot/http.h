/*
 * http.h - the shared libcurl layer of bot/github.c and bot/model_pull.c.
 *
 * http_request() performs one request into memory and keeps the final
 * response's headers so callers can read Retry-After, Link, ETag, ...; it
 * never retries (retry policy belongs to the caller, which knows what is
 * safe to repeat). http_debug_attach() makes a curl handle print its
 * traffic on stderr when PRBOT_DEBUG is set, with any Authorization header
 * redacted, so debug output never shows a token.
 */
#ifndef PRBOT_HTTP_H
#define PRBOT_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct {
    long status;     /* HTTP status of the final response; 0 when none arrived */
    char *body;      /* NUL-terminated, may contain NULs before body_len */
    size_t body_len;
    char *headers;   /* raw header block of the final response, NUL-terminated */
    size_t headers_len;
} http_response;

/* One request. method "GET", "POST", "PATCH", ...; headers is a
 * NULL-terminated list of "Name: value" lines (may be NULL); body may be
 * NULL. timeout_s bounds the whole transfer. Returns 0 when a response
 * arrived (any status), -1 on a transport error (DNS, connect, timeout,
 * reset) with err set. resp is always initialised; free with
 * http_response_free. */
int http_request(const char *method, const char *url, const char *const *headers, const char *body,
                 long timeout_s, http_response *resp, char *err, size_t errlen);
void http_response_free(http_response *resp);

/* Receives a 2xx response's body piece by piece as it arrives; returns 0 to
 * go on, non-zero to abort the transfer. */
typedef int (*http_data_fn)(const char *data, size_t len, void *user);

/* As http_request, but a 2xx body goes to on_data as it arrives instead of
 * into resp->body (other statuses' bodies are collected as usual, for their
 * error message). idle_s bounds the wait for the next byte (then err says
 * "timed out"), timeout_s the whole transfer. An abort by on_data returns -1 with err "aborted". */
int http_request_stream(const char *method, const char *url, const char *const *headers, const char *body,
                        long idle_s, long timeout_s, http_data_fn on_data, void *user, http_response *resp, char *err,
                        size_t errlen);

/* Copies the value of the first header named `name` (case-insensitive,
 * surrounding blanks trimmed) from a raw header block into out. Returns 1
 * when found, 0 otherwise (out set to ""). */
int http_header_get(const char *headers, const char *name, char *out, size_t cap);

/* 1 when PRBOT_DEBUG is set to something other than "" or "0". */
int http_debug_enabled(void);

/* Enables redacted verbose output on stderr for this handle when
 * http_debug_enabled(). */
void http_debug_attach(CURL *curl);

#endif
