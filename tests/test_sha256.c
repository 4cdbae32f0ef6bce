/*
 * test_sha256.c - bot/sha256.c against the FIPS 180-4 example vectors, plus
 * split-update and file hashing checks (so block-boundary handling is tested).
 */
#include <stdint.h>
#include <unistd.h>

#include "../bot/sha256.h"
#include "test.h"

static void hex_of(const void *data, size_t len, char out[65])
{
    sha256_ctx ctx;
    uint8_t d[32];
    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, d);
    sha256_hex(d, out);
}

static void fips_vectors(void)
{
    char hex[65];
    hex_of("", 0, hex);
    EXPECT(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", hex);
    hex_of("abc", 3, hex);
    EXPECT(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", hex);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two_blocks, strlen(two_blocks), hex);
    EXPECT(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448 bits: %s", hex);
    const char *long_msg = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                           "lmnopqrsmnopqrstnopqrstu";
    hex_of(long_msg, strlen(long_msg), hex);
    EXPECT(!strcmp(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"), "896 bits: %s", hex);
}

static void million_a_in_odd_pieces(void)
{
    /* One million 'a' fed in chunks of 1, 7, 63, 64, 65, ... bytes. */
    static char buf[1000];
    memset(buf, 'a', sizeof buf);
    sha256_ctx ctx;
    sha256_init(&ctx);
    size_t sizes[] = {1, 7, 63, 64, 65, 127, 128, 999};
    size_t done = 0;
    for (int i = 0; done < 1000000; i++) {
        size_t n = sizes[i % 8];
        if (n > 1000000 - done) n = 1000000 - done;
        sha256_update(&ctx, buf, n);
        done += n;
    }
    uint8_t d[32];
    char hex[65];
    sha256_final(&ctx, d);
    sha256_hex(d, hex);
    EXPECT(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "1M a: %s", hex);
}

static void padding_boundaries_match_one_shot(void)
{
    /* Lengths 55, 56, 63, 64 exercise both padding cases; split vs one shot must agree. */
    uint8_t data[200];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 50; len < 200; len++) {
        char a[65], b[65];
        hex_of(data, len, a);
        sha256_ctx ctx;
        uint8_t d[32];
        sha256_init(&ctx);
        sha256_update(&ctx, data, len / 3);
        sha256_update(&ctx, data + len / 3, len - len / 3);
        sha256_final(&ctx, d);
        sha256_hex(d, b);
        EXPECT(!strcmp(a, b), "len %zu: %s vs %s", len, a, b);
    }
}

static void file_and_prefix_hashing(void)
{
    char path[] = "/tmp/prbot_sha256_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    REQUIRE(write(fd, "abcabc", 6) == 6, "write");
    close(fd);
    char err[256], hex[65];
    uint8_t d[32];
    sha256_ctx ctx;
    sha256_init(&ctx);
    EXPECT(sha256_update_file(&ctx, path, 3, err, sizeof err) == 0, "prefix: %s", err);
    sha256_final(&ctx, d);
    sha256_hex(d, hex);
    EXPECT(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "prefix: %s", hex);
    sha256_init(&ctx);
    EXPECT(sha256_update_file(&ctx, path, 10, err, sizeof err) == -1, "a limit past EOF must fail");
    unlink(path);
    sha256_init(&ctx);
    EXPECT(sha256_update_file(&ctx, path, -1, err, sizeof err) == -1 && strstr(err, path), "missing file: %s", err);
}

int main(void)
{
    TEST_RUN(fips_vectors);
    TEST_RUN(million_a_in_odd_pieces);
    TEST_RUN(padding_boundaries_match_one_shot);
    TEST_RUN(file_and_prefix_hashing);
    return test_exit_code();
}
