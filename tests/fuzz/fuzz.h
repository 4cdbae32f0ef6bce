/*
 * fuzz.h - small helpers the libFuzzer harnesses in tests/fuzz share.
 *
 * A harness gets one byte string per run. fuzz_take_* cut it into the
 * pieces a parser wants (a few option bytes, then NUL-separated strings),
 * always succeeding, so every input exercises something. fuzz_file makes the
 * bytes a file for APIs that open paths (an anonymous memfd, no disk).
 * FUZZ_CHECK is the harness's own assertion: it aborts, which libFuzzer
 * reports as a crash with the input saved.
 */
#ifndef PRBOT_FUZZ_H
#define PRBOT_FUZZ_H

#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_input;

/* The next byte (0 once the input is used up). */
static inline unsigned fuzz_take_byte(fuzz_input *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

/* The next 4 bytes as a little-endian number (missing bytes are 0). */
static inline uint32_t fuzz_take_u32(fuzz_input *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_take_byte(in) << (8 * i);
    return v;
}

/* The bytes up to the next NUL (or the end), as a malloc'ed NUL-terminated
 * string; *len gets its length when len is not NULL. */
static inline char *fuzz_take_string(fuzz_input *in, size_t *len)
{
    const uint8_t *end = memchr(in->p, 0, in->n);
    size_t n = end ? (size_t)(end - in->p) : in->n;
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, in->p, n);
    s[n] = 0;
    in->p += n + (end ? 1 : 0);
    in->n -= n + (end ? 1 : 0);
    if (len) *len = n;
    return s;
}

/* The bytes as a file: writes "/proc/self/fd/N" to path and returns the fd
 * (close it when done), or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    for (size_t done = 0; done < size;) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* 1 when s[0..n) is valid UTF-8 (checked here, independently of the engine). */
static inline int fuzz_valid_utf8(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

#endif
