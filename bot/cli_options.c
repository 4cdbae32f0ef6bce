/*
 * cli_options.c - see cli_options.h. Table-driven so that every command
 * reports bad flags and bad numbers with the same one-line wording.
 */
#include "cli_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int store_value(const char *cmd, const cli_option *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_STRING: *(const char **)o->dest = v; return 0;
    case CLI_LIST: {
        cli_list *l = o->dest;
        if (l->n >= CLI_LIST_MAX) {
            fprintf(stderr, "prbot %s: too many %s options (at most %d)\n", cmd, o->name, CLI_LIST_MAX);
            return CLI_USAGE;
        }
        l->items[l->n++] = v;
        return 0;
    }
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (*v && !*end && !errno && x >= -2147483647L && x <= 2147483647L) {
            *(int *)o->dest = (int)x;
            return 0;
        }
        break;
    }
    case CLI_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (*v && *v != '-' && !*end && !errno) {
            *(uint64_t *)o->dest = x;
            return 0;
        }
        break;
    }
    case CLI_FLOAT:
    case CLI_DOUBLE: {
        double x = strtod(v, &end);
        if (*v && !*end && !errno) {
            if (o->kind == CLI_FLOAT)
                *(float *)o->dest = (float)x;
            else
                *(double *)o->dest = x;
            return 0;
        }
        break;
    }
    case CLI_FLAG: break;
    }
    fprintf(stderr, "prbot %s: %s expects a number, got '%s'\n", cmd, o->name, v);
    return CLI_USAGE;
}

static const cli_option *find_option(const cli_option *opts, const char *arg, size_t name_len)
{
    for (const cli_option *o = opts; o->name; o++)
        if (strlen(o->name) == name_len && !strncmp(o->name, arg, name_len)) return o;
    return NULL;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_option *opts, const char *usage,
              const char **positional)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage, stdout);
            return CLI_HELP;
        }
        if (strncmp(arg, "--", 2) != 0 || !strcmp(arg, "--")) {
            if (!strcmp(arg, "--") && i + 1 < argc) arg = argv[++i];
            if (positional && !*positional) {
                *positional = arg;
                continue;
            }
            fprintf(stderr, "prbot %s: unexpected argument '%s' (see prbot %s --help)\n", cmd, arg, cmd);
            return CLI_USAGE;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_option *o = find_option(opts, arg, name_len);
        if (!o) {
            fprintf(stderr, "prbot %s: unknown option '%.*s' (see prbot %s --help)\n", cmd, (int)name_len, arg, cmd);
            return CLI_USAGE;
        }
        if (o->kind == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "prbot %s: %s takes no value\n", cmd, o->name);
                return CLI_USAGE;
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) {
            fprintf(stderr, "prbot %s: %s needs a value\n", cmd, o->name);
            return CLI_USAGE;
        }
        int rc = store_value(cmd, o, value);
        if (rc) return rc;
    }
    return 0;
}
