/*
 * errors.h - the one helper every bot/ function uses to write its error line.
 *
 * Functions report failure by returning -1 (or NULL) and writing one line to a
 * caller-provided `char *err, size_t errlen`. err_set formats that line; a NULL
 * err or a zero errlen means the caller does not want it.
 */
#ifndef PRBOT_ERRORS_H
#define PRBOT_ERRORS_H

#include <stddef.h>

void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
