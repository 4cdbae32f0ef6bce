/*
 * test_strhash.c - the keyed string hash, and the tables that use it.
 *
 * 1. strhash_keyed against SipHash-1-3 values of the reference
 *    implementation (github.com/veorq/SipHash: key zero, messages 00 01 02 ...).
 * 2. Hashing in pieces equals hashing the concatenation, for every split.
 * 3. Names a model file chose to collide under the old fixed hash (FNV-1a:
 *    300,000 metadata keys, then 300,000 tokens, all starting in the first
 *    4096 of 2^20 slots) load without the O(n^2) probing they caused: about
 *    two minutes each before, well under a second now (a watchdog, not a
 *    speed assertion).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "../engine/gguf.h"
#include "../engine/gguf_writer.h"
#include "../engine/strhash.h"
#include "../engine/tokenizer.h"

static void test_siphash13_known_answers(void)
{
    static const uint64_t want[] = {
        0xd1fba762150c532cull, 0x68a914128e01e473ull, 0x010bac45c41e3669ull, 0x4d4c9a4a8ef6e0adull,
        0x7cc43f98813e4dbdull, 0x5abe2169dff36275ull, 0xe3c25f87624f1cdbull, 0x2f098ab0c751325aull,
        0xead411e67ebe2eeaull, 0x75927f9d95124362ull, 0xaf9f77a65ab51a1dull, 0xfe64ce8b6617fcffull,
        0xa6baf4fb0f9fe1c2ull, 0xa0cf3211850f8e0dull, 0x7f86049379fbfe67ull, 0xf30eb725bb91c9eaull,
        0x8972188433a5c5b7ull, 0x4883c49a2c009c1dull, 0xadc2c0b63044067dull, 0x091f4a3329f87d19ull,
        0x639e355ae68c0100ull, 0xb17bef2cb5213239ull,
    };
    unsigned char msg[sizeof want / sizeof want[0]];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)i;
    for (size_t len = 0; len < sizeof want / sizeof want[0]; len++) {
        uint64_t got = strhash_keyed(0, 0, msg, len);
        EXPECT(got == want[len], "length %zu: %016llx, want %016llx", len, (unsigned long long)got,
               (unsigned long long)want[len]);
    }
}

static void test_pieces_hash_as_concatenation(void)
{
    const char msg[] = "tokenizer.ggml.merges: \xc4\xa0 t, h e, and a few more bytes";
    size_t n = sizeof msg - 1;
    uint64_t whole = strhash(msg, n);
    EXPECT(whole == strhash(msg, n), "two calls in one process disagree");
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            strhash_state s;
            strhash_init(&s);
            strhash_update(&s, msg, i);
            strhash_update(&s, msg + i, j - i);
            strhash_update(&s, msg + j, n - j);
            uint64_t got = strhash_final(&s);
            EXPECT(got == whole, "split at %zu and %zu: %016llx, whole %016llx", i, j, (unsigned long long)got,
                   (unsigned long long)whole);
        }
}

/* ---- names chosen against the old hash ---- */

enum { N_NAMES = 300000, OLD_MASK = (1 << 20) - 1, CLUSTER = 4096 };

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* N_NAMES distinct names whose FNV-1a falls in the first CLUSTER slots of a
 * 2^20-slot table (both tables have 2^20 slots for 300,000 entries): with
 * linear probing, the i-th insertion walked about i slots. */
static char **colliding_names(void)
{
    char **names = calloc(N_NAMES, sizeof *names);
    if (!names) return NULL;
    char buf[32];
    uint64_t c = 0;
    for (size_t found = 0; found < N_NAMES; c++) {
        int n = snprintf(buf, sizeof buf, "k%llx", (unsigned long long)c);
        if ((fnv1a(buf, (size_t)n) & OLD_MASK) >= CLUSTER) continue;
        if (!(names[found++] = strdup(buf))) return NULL; /* the test fails; its memory is the process's */
    }
    return names;
}

static void free_names(char **names)
{
    for (size_t i = 0; names && i < N_NAMES; i++) free(names[i]);
    free(names);
}

static char tmp_path[256];

static void test_colliding_metadata_keys(void)
{
    char **names = colliding_names();
    REQUIRE(names, "out of memory");
    gguf_writer *w = gguf_writer_new();
    REQUIRE(w, "out of memory");
    for (size_t i = 0; i < N_NAMES; i++) REQUIRE(gguf_writer_add_u8(w, names[i], 1) == 0, "out of memory");
    char err[512] = "";
    REQUIRE(gguf_writer_write(w, tmp_path, err, sizeof err) == 0, "write: %s", err);
    gguf_writer_free(w);
    test_watchdog("test_colliding_metadata_keys", 60);
    gguf_file *f = NULL;
    int rc = gguf_open(&f, tmp_path, err, sizeof err);
    test_watchdog(NULL, 0);
    remove(tmp_path);
    REQUIRE(rc == 0, "open: %s", err);
    EXPECT(f->n_kv == N_NAMES, "%llu keys", (unsigned long long)f->n_kv);
    uint32_t v = 0;
    EXPECT(gguf_get_u32(f, names[N_NAMES - 1], &v) == 0 && v == 1, "the last key is not found");
    EXPECT(gguf_get_u32(f, "k", &v) != 0, "a missing key is found");
    gguf_close(f);
    free_names(names);
}

static void test_colliding_tokens(void)
{
    char **names = colliding_names();
    REQUIRE(names, "out of memory");
    float *scores = calloc(N_NAMES, sizeof *scores);
    int32_t *types = calloc(N_NAMES, sizeof *types);
    gguf_writer *w = gguf_writer_new();
    REQUIRE(scores && types && w, "out of memory");
    for (size_t i = 0; i < N_NAMES; i++) types[i] = 1;
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)names, N_NAMES);
    gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", types, N_NAMES);
    gguf_writer_add_f32_array(w, "tokenizer.ggml.scores", scores, N_NAMES);
    char err[512] = "";
    REQUIRE(gguf_writer_write(w, tmp_path, err, sizeof err) == 0, "write: %s", err);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    REQUIRE(gguf_open(&f, tmp_path, err, sizeof err) == 0, "open: %s", err);
    remove(tmp_path);
    tokenizer *t = NULL;
    test_watchdog("test_colliding_tokens", 60);
    int rc = tokenizer_load(&t, f, err, sizeof err);
    test_watchdog(NULL, 0);
    REQUIRE(rc == 0, "load: %s", err);
    EXPECT(tokenizer_n_vocab(t) == N_NAMES, "%d tokens", tokenizer_n_vocab(t));
    EXPECT(tokenizer_find(t, names[N_NAMES - 1]) == N_NAMES - 1, "the last token is not found");
    tokenizer_free(t);
    gguf_close(f);
    free(scores);
    free(types);
    free_names(names);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/prbot-test-strhash-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    TEST_RUN(test_siphash13_known_answers);
    TEST_RUN(test_pieces_hash_as_concatenation);
    TEST_RUN(test_colliding_metadata_keys);
    TEST_RUN(test_colliding_tokens);
    return test_exit_code();
}
