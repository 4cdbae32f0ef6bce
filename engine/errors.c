/*
 * errors.c - see errors.h.
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Error and log lines often quote what a file or a server sent (a metadata
 * key, a tensor name, an API message); a control byte in it must not start
 * a second line (in an Actions log, a line starting "::" is a command to
 * the runner) or move the terminal's cursor. Each becomes '?'. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) *s = '?';
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    one_line(err);
}

void err_append(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    size_t used = strnlen(err, errlen - 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
    one_line(err + used);
}

const char *prbot_result_name(int rc)
{
    switch (rc) {
    case PRBOT_OK: return "ok";
    case PRBOT_ENOTFOUND: return "not found";
    case PRBOT_EFORBIDDEN: return "forbidden";
    case PRBOT_EINVALID: return "invalid";
    case PRBOT_ENOREPO: return "not a repository";
    default: return "error";
    }
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
    one_line(line);
    log_sink(line, log_user);
}
