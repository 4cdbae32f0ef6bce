/*
 * fuzz_json_schema.c - the JSON-Schema to grammar conversion under libFuzzer.
 *
 * An input is a schema (any bytes; usually not even JSON). Checked besides
 * crashes and leaks: a rejected schema gets one non-empty line, and every
 * grammar the converter writes compiles (or hits the compiler's size limit,
 * which a huge maxLength can legitimately reach). Seeds are in
 * tests/fuzz/corpus/json_schema/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bot/json_schema.h"
#include "../../engine/grammar.h"

/* The harness's own assertion: libFuzzer reports the abort as a crash and keeps the input. */
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz_json_schema: check failed: %s: ", #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "", *text = NULL;
    if (json_schema_text_to_grammar((const char *)data, size, 4, &text, err, sizeof err)) {
        CHECK(err[0] && !strchr(err, '\n') && !text, "schema error \"%s\"", err);
        return 0;
    }
    grammar *g;
    int rc = grammar_parse(&g, text, strlen(text), err, sizeof err);
    CHECK(rc == 0 || strstr(err, "too large"), "converted grammar does not compile: %s\n%s", err, text);
    if (rc == 0) grammar_free(g);
    free(text);
    return 0;
}
