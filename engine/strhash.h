/*
 * strhash.h - keyed hashing of strings for the engine's hash tables.
 *
 * The tables of metadata keys and tensor names (gguf.c) and of tokens and
 * merges (tokenizer.c) are filled from a model file, which someone else may
 * have made. With a fixed hash, a file can choose names that all land in a
 * few slots, and filling an open-addressing table with them costs O(n^2)
 * probes (an unkeyed FNV-1a made a 1 MB file with 50,000 such keys take
 * seconds to open). So the hash is SipHash-1-3 under a 128-bit key drawn
 * from getrandom() once per process: a file cannot know which slots its names
 * go to. Only where entries sit depends on the key, never what a lookup
 * finds, so results do not change from run to run.
 *
 * Hash a string in one call (strhash) or in pieces (init, update..., final;
 * the pieces hash as their concatenation).
 */
#ifndef PRBOT_STRHASH_H
#define PRBOT_STRHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t v0, v1, v2, v3;
    uint64_t tail; /* the last < 8 bytes, little-endian */
    size_t len;    /* bytes so far */
} strhash_state;

void strhash_init(strhash_state *s);
void strhash_update(strhash_state *s, const void *data, size_t n);
uint64_t strhash_final(const strhash_state *s);
uint64_t strhash(const void *data, size_t n);

/* SipHash-1-3 under an explicit key (for tests against known values). */
uint64_t strhash_keyed(uint64_t k0, uint64_t k1, const void *data, size_t n);

#endif
