/*
 * fuzz_tokenizer - encoding and streaming decoding (engine/tokenizer.c,
 * engine/pretokenize.c, engine/unicode.c) for every vocabulary kind.
 *
 * The vocabularies are the test data's (SentencePiece and byte-level BPE
 * with each pre-tokenizer), loaded once from $PRBOT_TESTDATA/vocab. Input:
 * an option byte (which vocabulary, BOS, special tokens), then the text.
 * Checked: every id is in the vocabulary; the ids decoded through the
 * stream, as generation streams them, give valid UTF-8 and no more bytes
 * than the pieces hold (each byte may become a 3-byte U+FFFD). The text's
 * codepoints are also split by every pre-tokenizer, whether or not a test
 * vocabulary uses it (gpt-4o's has none there): the words must tile the text.
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include <dirent.h>

#include "../../engine/gguf.h"
#include "../../engine/pretokenize.h"
#include "../../engine/tokenizer.h"
#include "../../engine/unicode.h"

#define MAX_VOCABS 32

static tokenizer *vocabs[MAX_VOCABS];
static gguf_file *files[MAX_VOCABS];
static int n_vocabs;

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Loads every vocabulary in name order, so an option byte picks the same one
 * on every machine (a saved crash reproduces anywhere). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *root = getenv("PRBOT_TESTDATA");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vocab", root && *root ? root : "../shared/testdata");
    struct dirent **names;
    int n_names = scandir(dir, &names, NULL, by_name);
    FUZZ_CHECK(n_names >= 0, "cannot open %s: set PRBOT_TESTDATA", dir);
    for (int k = 0; k < n_names; k++) {
        const char *name = names[k]->d_name;
        size_t n = strlen(name);
        if (n >= 5 && !strcmp(name + n - 5, ".gguf") && n_vocabs < MAX_VOCABS) {
            char path[8192], err[512];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            if (gguf_open(&files[n_vocabs], path, err, sizeof err) == 0 &&
                tokenizer_load(&vocabs[n_vocabs], files[n_vocabs], err, sizeof err) == 0)
                n_vocabs++;
            else
                fprintf(stderr, "fuzz_tokenizer: skipping %s: %s\n", path, err);
        }
        free(names[k]);
    }
    free(names);
    FUZZ_CHECK(n_vocabs > 0, "no vocabulary in %s", dir);
    return 0;
}

/* Every pre-tokenizer's words are non-empty and end at the text's end. */
static void check_pretokenizers(const char *s, size_t len)
{
    uint32_t *cps = malloc((len ? len : 1) * sizeof *cps);
    FUZZ_CHECK(cps, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len;) i += utf8_decode(s + i, len - i, &cps[n++]);
    for (int kind = 0; kind < PRETOK_COUNT; kind++) {
        size_t *ends;
        int words = pretokenize((pretokenizer_kind)kind, cps, n, &ends);
        FUZZ_CHECK(words >= 0, "pretokenize %d failed", kind);
        for (int w = 0; w < words; w++)
            FUZZ_CHECK(ends[w] > (w ? ends[w - 1] : 0) && ends[w] <= n, "pre-tokenizer %d: bad word end", kind);
        FUZZ_CHECK(words == 0 ? n == 0 : ends[words - 1] == n, "pre-tokenizer %d: words do not cover the text", kind);
        free(ends);
    }
    free(cps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    const tokenizer *t = vocabs[(opts >> 2) % (unsigned)n_vocabs];
    check_pretokenizers((const char *)in.p, in.n);
    int32_t small[256], *ids = small;
    int n = tokenizer_encode(t, (const char *)in.p, in.n, opts & 1, opts & 2, ids, 256);
    FUZZ_CHECK(n >= 0, "encode failed");
    if (n > 256) {
        ids = malloc((size_t)n * sizeof *ids);
        FUZZ_CHECK(ids, "out of memory");
        FUZZ_CHECK(tokenizer_encode(t, (const char *)in.p, in.n, opts & 1, opts & 2, ids, n) == n, "count changed");
    }
    tokenizer_stream stream;
    tokenizer_stream_init(&stream);
    size_t total = 0, pieces = 0;
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(t), "id %d", ids[i]);
        int len = tokenizer_piece(t, ids[i], 0, NULL, 0);
        FUZZ_CHECK(len >= 0, "piece length %d", len);
        size_t cap = 3 * ((size_t)len + sizeof stream.pending) + 1;
        char *out = malloc(cap);
        FUZZ_CHECK(out, "out of memory");
        int got = tokenizer_stream_feed(t, &stream, ids[i], out, (int)cap);
        FUZZ_CHECK(got >= 0 && (size_t)got < cap && fuzz_valid_utf8(out, (size_t)got), "stream gave bad text");
        total += (size_t)got;
        pieces += (size_t)len;
        free(out);
    }
    char tail[64];
    int got = tokenizer_stream_flush(&stream, tail, sizeof tail);
    FUZZ_CHECK(got >= 0 && fuzz_valid_utf8(tail, (size_t)got), "flush gave bad text");
    total += (size_t)got;
    FUZZ_CHECK(total <= 3 * pieces + 3, "%zu bytes out of %zu bytes of pieces", total, pieces);
    if (ids != small) free(ids);
    return 0;
}
