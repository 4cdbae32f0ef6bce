/*
 * retry.c - the retry rules of retry.h, shared by github.c and backend.c.
 */
#define _GNU_SOURCE /* strcasestr */
#include "retry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ATTEMPTS 5
#define DEFAULT_MAX_WAIT 60.0
#define DEFAULT_TIMEOUT_S 60L

static double env_double(const char *name, double fallback)
{
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    double d = strtod(v, &end);
    return end != v && d >= 0 ? d : fallback;
}

void retry_rules_from_env(retry_rules *r)
{
    r->max_attempts = (int)env_double("PRBOT_RETRY_ATTEMPTS", DEFAULT_ATTEMPTS);
    if (r->max_attempts < 1) r->max_attempts = 1;
    if (r->max_attempts > 20) r->max_attempts = 20;
    r->max_wait = env_double("PRBOT_RETRY_MAX_WAIT", DEFAULT_MAX_WAIT);
    if (r->max_wait > 3600) r->max_wait = 3600;
    r->timeout_s = (long)env_double("PRBOT_HTTP_TIMEOUT", DEFAULT_TIMEOUT_S);
    if (r->timeout_s < 1) r->timeout_s = 1;
    r->jitter_seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
}

int retry_is_rate_limited(const http_response *resp)
{
    char v[64];
    if (resp->status == 429) return 1;
    if (resp->status != 403) return 0;
    if (http_header_get(resp->headers, "retry-after", v, sizeof v)) return 1;
    if (http_header_get(resp->headers, "x-ratelimit-remaining", v, sizeof v) && !strcmp(v, "0")) return 1;
    return resp->body && strcasestr(resp->body, "rate limit") != NULL;
}

int retry_is_retryable(const http_response *resp)
{
    return !resp || resp->status == 0 || resp->status >= 500 || retry_is_rate_limited(resp);
}

double retry_wait_seconds(retry_rules *rules, const http_response *resp, int attempt)
{
    char v[64];
    double wait = -1;
    if (resp && http_header_get(resp->headers, "retry-after", v, sizeof v)) {
        char *end;
        double s = strtod(v, &end);
        if (end != v && s >= 0) wait = s; /* an HTTP-date form falls back to backoff */
    }
    if (wait < 0 && resp && http_header_get(resp->headers, "x-ratelimit-remaining", v, sizeof v) && !strcmp(v, "0") &&
        http_header_get(resp->headers, "x-ratelimit-reset", v, sizeof v)) {
        double reset = strtod(v, NULL);
        double now = (double)time(NULL);
        wait = reset > now ? reset - now + 1 : 1;
    }
    if (wait < 0) {
        double base = (double)(1u << (attempt - 1 < 10 ? attempt - 1 : 10));
        double jitter = (double)(rand_r(&rules->jitter_seed) % 1000) / 1000.0;
        wait = base + base * 0.5 * jitter;
    }
    return wait > rules->max_wait ? rules->max_wait : wait;
}

void retry_sleep(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}
