/*
 * grammar_bench - what constrained decoding costs per token on a real vocabulary.
 *
 *   grammar_bench --model PATH [--schema FILE | --grammar FILE] [--runs N] [--seed S]
 *
 * Opens only the model's vocabulary, builds the grammar trie (timed), then
 * runs N random documents through the matcher: at every step it masks a row
 * of logits (timed: the trie walk plus setting -inf, all that engine_generate
 * adds per token) and picks one of the allowed tokens uniformly at random,
 * like a model whose logits carry no preference, until the grammar is complete.
 * Without --schema/--grammar the grammar is the review document of
 * engine/grammar.h (tests/review_schema.h). The first document runs with a
 * cold automaton cache; the rest reuse it (engine_generate starts each
 * generation with a fresh matcher, so its cost lies between the two).
 * Reported: median, 90th percentile and worst step in microseconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../bot/json_schema.h"
#include "../../bot/textbuf.h"
#include "../../engine/engine.h"
#include "../../engine/grammar.h"
#include "../review_schema.h"



static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *us, int n)
{
    if (!n) return;
    qsort(us, (size_t)n, sizeof *us, compare_double);
    printf("%-22s steps %6d  median %8.1f us  p90 %8.1f us  max %8.1f us\n", what, n, us[n / 2], us[n * 9 / 10],
           us[n - 1]);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *schema_file = NULL, *grammar_file = NULL;
    int runs = 20;
    unsigned long long seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--schema")) schema_file = argv[i + 1];
        else if (!strcmp(argv[i], "--grammar")) grammar_file = argv[i + 1];
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "grammar_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!model || runs < 1) {
        fprintf(stderr, "usage: grammar_bench --model PATH [--schema FILE | --grammar FILE] [--runs N] [--seed S]\n");
        return 2;
    }
    char err[512];
    engine *e;
    engine_params params = {.vocab_only = 1};
    if (engine_open(&e, model, &params, err, sizeof err)) {
        fprintf(stderr, "grammar_bench: %s\n", err);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    const char *file = grammar_file ? grammar_file : schema_file;
    char *raw = file ? textbuf_read_file(file, &len) : NULL;
    if (file && !raw) {
        fprintf(stderr, "grammar_bench: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    }
    int rc = 0;
    if (grammar_file) text = raw, raw = NULL;
    else if (schema_file) rc = json_schema_text_to_grammar(raw, len, JSON_SCHEMA_DEFAULT_SPACE, &text, err, sizeof err);
    else rc = json_schema_text_to_grammar(review_schema, strlen(review_schema), JSON_SCHEMA_DEFAULT_SPACE, &text, err,
                                          sizeof err);
    free(raw);
    grammar *g = NULL;
    const grammar_vocab *v;
    grammar_matcher *m = NULL;
    if (rc || grammar_parse(&g, text, strlen(text), err, sizeof err)) {
        fprintf(stderr, "grammar_bench: %s\n", err);
        return 1;
    }
    double t0 = now_s();
    if (engine_grammar_vocab(e, &v, err, sizeof err) || grammar_matcher_new(&m, g, v, err, sizeof err)) {
        fprintf(stderr, "grammar_bench: %s\n", err);
        return 1;
    }
    double t1 = now_s();
    int n_vocab = engine_get_info(e)->n_vocab;
    printf("%s: %d tokens, trie of %d nodes built in %.1f ms; grammar of %d instructions\n", engine_get_info(e)->name,
           n_vocab, grammar_vocab_n_nodes(v), (t1 - t0) * 1e3, grammar_program_size(g));
    int cap = 1 << 16, n_cold = 0, n_warm = 0, docs = 0;
    double *cold = malloc((size_t)cap * sizeof *cold), *warm = malloc((size_t)cap * runs * sizeof *warm);
    int32_t *allowed = malloc((size_t)n_vocab * sizeof *allowed);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    size_t bytes = 0;
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int r = 0; r < runs && !rc; r++) {
        grammar_matcher_reset(m);
        for (int step = 0; step < cap; step++) {
            memset(logits, 0, (size_t)n_vocab * sizeof *logits);
            double a = now_s();
            int n = grammar_matcher_mask(m, logits, err, sizeof err);
            double us = (now_s() - a) * 1e6;
            if (n < 0) {
                fprintf(stderr, "grammar_bench: %s\n", err);
                rc = 1;
                break;
            }
            if (r == 0) cold[n_cold++] = us;
            else warm[n_warm++] = us;
            if (n == 0) break;
            int k = 0;
            for (int32_t id = 0; id < n_vocab; id++)
                if (logits[id] == 0) allowed[k++] = id;
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            int32_t id = allowed[(state >> 33) % (uint64_t)k];
            char piece[256];
            bytes += (size_t)engine_token_piece(e, id, piece, sizeof piece);
            if (grammar_matcher_accept_token(m, id, err, sizeof err)) {
                fprintf(stderr, "grammar_bench: %s\n", err);
                rc = 1;
                break;
            }
            if (!grammar_matcher_accepting(m)) continue;
            docs++; /* an end-of-generation token would be allowed here: count the document as done */
            break;
        }
    }
    printf("%d documents, %zu bytes\n", docs, bytes);
    report("first (cold cache)", cold, n_cold);
    report("later (warm cache)", warm, n_warm);
    free(cold);
    free(warm);
    free(allowed);
    free(logits);
    free(text);
    grammar_matcher_free(m);
    grammar_free(g);
    engine_close(e);
    return rc;
}
