/*
 * retry.h - when and how long to retry an HTTP request: the rules the GitHub
 * client set and every other client of prbot's (the review backend) follows.
 *
 * Retry 5xx, 429, transport errors (DNS, connect, reset, timeout) and 403s
 * that are rate limits; wait Retry-After (seconds) or until
 * x-ratelimit-reset when the server says, else 1, 2, 4, ... seconds plus up
 * to 50% jitter; at most PRBOT_RETRY_ATTEMPTS attempts (default 5), no wait
 * longer than PRBOT_RETRY_MAX_WAIT seconds (default 60; tests use 0 or a
 * fraction), each request bounded by PRBOT_HTTP_TIMEOUT seconds (default 60).
 */
#ifndef PRBOT_RETRY_H
#define PRBOT_RETRY_H

#include "http.h"

typedef struct {
    int max_attempts;
    double max_wait;
    long timeout_s;
    unsigned jitter_seed;
} retry_rules;

/* The defaults above, overridden by the PRBOT_RETRY_* and PRBOT_HTTP_TIMEOUT variables. */
void retry_rules_from_env(retry_rules *r);
/* 429, or a 403 that says it is a rate limit (Retry-After, x-ratelimit-remaining: 0, "rate limit"). */
int retry_is_rate_limited(const http_response *resp);
/* 1 when a response (NULL: a transport error) is worth another attempt. */
int retry_is_retryable(const http_response *resp);
/* Seconds to wait before attempt `attempt + 1`; resp may be NULL (transport error). */
double retry_wait_seconds(retry_rules *r, const http_response *resp, int attempt);
void retry_sleep(double seconds);

#endif
