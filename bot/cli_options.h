/*
 * cli_options.h - the one flag parser every subcommand uses.
 *
 * A command declares a table of {name, kind, destination} and calls
 * cli_parse. Both "--flag value" and "--flag=value" work; "--help"/"-h"
 * prints the usage text. Numbers are checked completely ("12x" is an error).
 */
#ifndef PRBOT_CLI_OPTIONS_H
#define PRBOT_CLI_OPTIONS_H

#include <stdint.h>

typedef enum { CLI_FLAG, CLI_STRING, CLI_INT, CLI_U64, CLI_FLOAT, CLI_DOUBLE, CLI_LIST } cli_kind;

#define CLI_LIST_MAX 64
typedef struct {
    const char *items[CLI_LIST_MAX];
    int n;
} cli_list; /* destination of a repeatable CLI_LIST option */

typedef struct {
    const char *name; /* "--model"; NULL ends the table */
    cli_kind kind;
    void *dest;       /* int* (FLAG, INT), const char** (STRING), uint64_t*, float*, double*, cli_list* */
} cli_option;

/* Returns 0 when parsed, -1 when --help was printed (caller exits 0), 2 on a
 * usage error (one line already printed: "prbot CMD: ..."). `positional`, if
 * non-NULL, receives the one allowed positional argument. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_option *opts, const char *usage,
              const char **positional);

#endif
