/*
 * errors.h - how every function reports failure: a prbot_result, and one
 * line in the caller's error buffer.
 *
 * The convention (libgit2's git_error_code is the model): a function that
 * can fail returns a prbot_result (PRBOT_OK == 0, failures < 0), or NULL for
 * one that returns a pointer, and writes one line naming the problem to a
 * caller-provided `char *err, size_t errlen` with err_set. Most failures are
 * PRBOT_ERROR (-1); the other codes exist only where a caller acts on the
 * difference (a 403 sends the review to the job summary, a base commit
 * missing from a shallow checkout falls back to the PR files API), so add
 * one only for such a caller, here, never a module's own. A function that
 * answers a question returns its answer (a count, 1/0) and -1 on failure.
 * The caller adds its context and decides whether to print the line (only
 * the command layer, bot/main.c and the cmd_* functions, prints). A NULL err
 * or a zero errlen means the caller does not want it. This file lives in
 * engine/, the lowest layer, so that engine/ and bot/ share it;
 * bot/errors.h includes it.
 *
 * Lines that are not failures (a retry and its wait, a debug trace) go to
 * log_note, which hands them to the one log function the command layer set
 * with log_set (bot/main.c: stderr), as curl hands its to a debug callback.
 * With none set they are dropped, so a library caller (a test, a fuzz
 * target) gets silence unless it asks.
 */
#ifndef PRBOT_ERRORS_H
#define PRBOT_ERRORS_H

#include <stddef.h>

typedef enum {
    PRBOT_OK = 0,
    PRBOT_ERROR = -1,      /* anything no caller treats apart: I/O, out of memory, bad input, network,
                              a 5xx after retries, a 401, a response that is not the JSON expected */
    PRBOT_ENOTFOUND = -2,  /* what was asked for is not there: a 404 (no such pull request, or the token
                              cannot see it); a base or head commit missing from a shallow checkout */
    PRBOT_EFORBIDDEN = -3, /* not allowed: a 403 that is not a rate limit (a read-only token, a fork PR:
                              "Resource not accessible by integration") */
    PRBOT_EINVALID = -4,   /* refused as malformed: GitHub's 422 (err has its "errors"), a document of
                              the wrong shape */
    PRBOT_ENOREPO = -5,    /* the directory is not a git checkout (no actions/checkout step) */
} prbot_result;

/* A short name for a prbot_result: "ok", "error", "not found", "forbidden", "invalid", "not a repository". */
const char *prbot_result_name(int rc);


void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds to the end of the line already in err, as far as it fits: the
 * caller's context after a callee's message, e.g. " (path)". */
void err_append(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Receives one line (no trailing newline). */
typedef void (*log_fn)(const char *line, void *user);
/* Process-wide; set once, before any thread logs. NULL drops every line. */
void log_set(log_fn fn, void *user);
void log_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
