/*
 * errors.c - see errors.h.
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static log_fn log_sink;
static void *log_user;

void log_set(log_fn fn, void *user)
{
    log_sink = fn;
    log_user = user;
}

void log_note(const char *fmt, ...)
{
    if (!log_sink) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_sink(line, log_user);
}
