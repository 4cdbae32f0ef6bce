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

/* What cli_parse did; a command exits 0 after CLI_HELP and 2 (the usage
 * exit status of commands.h) after CLI_USAGE. */
typedef enum {
    CLI_OK = 0,    /* parsed */
    CLI_HELP = 1,  /* --help: the usage text was printed */
    CLI_USAGE = 2, /* a usage error: one line was printed, "prbot CMD: ..." */
} cli_result;

/* Parses argv[1..argc) by the table. `positional`, if non-NULL, receives the
 * one allowed positional argument. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_option *opts, const char *usage,
              const char **positional);

#endif
