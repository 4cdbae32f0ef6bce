/*
 * sha256.h - SHA-256 (FIPS 180-4), streaming, for verifying downloaded models.
 *
 * Written here because OpenSSL is not one of prbot's dependencies and a
 * model download must be verified before it enters the cache.
 */
#ifndef PRBOT_SHA256_H
#define PRBOT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t n_bytes;     /* total bytes hashed so far */
    uint8_t block[64];    /* pending partial block */
    size_t block_len;
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(sha256_ctx *ctx, uint8_t digest[32]);

/* Lower-case hex of a digest into out (65 bytes incl. NUL). */
void sha256_hex(const uint8_t digest[32], char out[65]);

/* 1 when s is exactly n lower-case hex digits (a git SHA-1 is 40, a SHA-256
 * 64, a finding's fingerprint 16), else 0. The one check for hex names read
 * from events, API bodies and stored state: an exact length, so a longer
 * string is refused rather than cut into a fixed buffer. Lower case only, as
 * git and GitHub write them; a caller taking user input lower-cases first. */
int hex_is(const char *s, size_t n);

/* Hashes bytes [0, limit) of a file (limit < 0: the whole file) into ctx,
 * which must be initialised. Returns 0, or -1 with err set. */
int sha256_update_file(sha256_ctx *ctx, const char *path, long long limit, char *err, size_t errlen);

#endif
