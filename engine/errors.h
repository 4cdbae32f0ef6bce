/*
 * errors.h - the one helper every function uses to write its error line.
 *
 * Functions report failure by returning -1 (or NULL) and writing one line to
 * a caller-provided `char *err, size_t errlen`; the caller adds its context
 * and decides whether to print it (only the command layer, bot/main.c and
 * the cmd_* functions, prints). err_set formats that line; a NULL err or a
 * zero errlen means the caller does not want it. It lives in engine/, the
 * lowest layer, so that engine/ and bot/ share it; bot/errors.h includes it.
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

void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Receives one line (no trailing newline). */
typedef void (*log_fn)(const char *line, void *user);
/* Process-wide; set once, before any thread logs. NULL drops every line. */
void log_set(log_fn fn, void *user);
void log_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
