/*
 * fuzz_grammar.c - the grammar compiler and the token masks under libFuzzer.
 *
 * An input is: grammar text up to the first NUL, then bytes that steer a
 * generation. The grammar compiles or fails with one non-empty line. When it
 * compiles, a matcher runs over a small vocabulary with multi-byte pieces,
 * pieces that split UTF-8 characters, a duplicate, an end token and a
 * special token: each steering byte picks one allowed token (its value modulo
 * the count). Checked besides crashes, leaks and hangs: every allowed text
 * token's bytes can continue the output and every other text token's cannot
 * (brute force), the special token is never allowed, the end token only where
 * the output is complete, a stop (nothing allowed) only where the output is
 * complete and no text token can follow, accepting an allowed token never
 * fails, and a failing compute says why in one line. Seeds are in
 * tests/fuzz/corpus/grammar/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/grammar.h"

/* The harness's own assertion: libFuzzer reports the abort as a crash and keeps the input. */
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz_grammar: check failed: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static const char *const pieces[] = {
    "a", "b", "x", "0", "1", "9", "-", " ", "\n", "\"", "\\", "{", "}", "[", "]", ",", ":", "(", ")",
    "ab", "ab", "\":", "{\"", "\", \"", "true", "null", "\xc3", "\xa9", "\xc3\xa9", "\xe4\xb8", "\x96",
    "\xe4\xb8\x96", "\xf0\x9f\x8e\x89", "\x80", "<end>", "<special>", "",
};
enum { N_PIECES = sizeof pieces / sizeof pieces[0], END_ID = N_PIECES - 3, SPECIAL_ID = N_PIECES - 2 };
static grammar_vocab *vocab;
static uint32_t lens[N_PIECES];
static uint8_t kinds[N_PIECES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    for (int i = 0; i < N_PIECES; i++) lens[i] = (uint32_t)strlen(pieces[i]), kinds[i] = GRAMMAR_TOKEN_TEXT;
    kinds[END_ID] = GRAMMAR_TOKEN_END;
    kinds[SPECIAL_ID] = GRAMMAR_TOKEN_NEVER;
    if (grammar_vocab_new(&vocab, N_PIECES, pieces, lens, kinds, err, sizeof err)) abort();
    return 0;
}

static int one_line(const char *err) { return err[0] && !strchr(err, '\n'); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size), *steer = nul ? nul + 1 : data + size;
    size_t len = (size_t)((nul ? nul : data + size) - data), n_steer = (size_t)(data + size - steer);
    char err[512] = "", *text = malloc(len ? len : 1); /* exactly len bytes: ASan sees a read past the text */
    if (!text) abort();
    memcpy(text, data, len);
    grammar *g;
    int rc = grammar_parse(&g, text, len, err, sizeof err);
    free(text);
    if (rc) {
        CHECK(one_line(err), "compile error \"%s\"", err);
        return 0;
    }
    grammar_matcher *m;
    if (grammar_matcher_new(&m, g, vocab, err, sizeof err)) {
        CHECK(one_line(err), "matcher error \"%s\"", err);
        grammar_free(g);
        return 0;
    }
    for (int step = 0; step < 64; step++) {
        int n = grammar_matcher_compute(m, err, sizeof err);
        if (n < 0) {
            CHECK(one_line(err), "compute error \"%s\"", err);
            break;
        }
        if (n == 0) { /* stop: complete, and no token's bytes may follow */
            CHECK(grammar_matcher_accepting(m), "stop while the output is incomplete");
            for (int id = 0; id < N_PIECES; id++)
                if (kinds[id] == GRAMMAR_TOKEN_TEXT && lens[id])
                    CHECK(grammar_matcher_can_take(m, pieces[id], lens[id], err, sizeof err) <= 0,
                          "stop, but token %d \"%s\" can follow", id, pieces[id]);
            break;
        }
        int count = 0, probed = 1;
        for (int id = 0; id < N_PIECES && probed; id++) {
            int allowed = grammar_matcher_allowed(m, id);
            count += allowed;
            if (id == END_ID) {
                CHECK(allowed == grammar_matcher_accepting(m), "end token allowed %d", allowed);
            } else if (kinds[id] == GRAMMAR_TOKEN_NEVER || lens[id] == 0) {
                CHECK(!allowed, "special or empty token %d allowed", id);
            } else {
                int can = grammar_matcher_can_take(m, pieces[id], lens[id], err, sizeof err);
                probed = can >= 0; /* a limit reached while probing ends the check */
                CHECK(!probed || allowed == can, "token %d \"%s\": allowed %d, can take %d", id, pieces[id],
                           allowed, can);
            }
        }
        CHECK(!probed || count == n, "count %d, compute said %d", count, n);
        if (!n_steer) break;
        n_steer--;
        int pick = (int)(*steer++ % (unsigned)n), id = 0;
        for (;; id++)
            if (grammar_matcher_allowed(m, id) && pick-- == 0) break;
        CHECK(grammar_matcher_accept_token(m, id, err, sizeof err) == 0, "allowed token %d refused: %s", id, err);
        if (id == END_ID) break;
    }
    grammar_matcher_free(m);
    grammar_free(g);
    return 0;
}
