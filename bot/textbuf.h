/*
 * textbuf.h - a growable NUL-terminated byte string for building text.
 *
 * Appends never fail loudly: an allocation failure sets a sticky `failed`
 * flag and later appends do nothing, so a builder checks once at the end.
 *
 * array_reserve is the same doubling for arrays of structs (a list of files,
 * of comments, of findings), so that no module writes its own grow loop.
 */
#ifndef PRBOT_TEXTBUF_H
#define PRBOT_TEXTBUF_H

#include <stddef.h>

typedef struct {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
    int failed;
} textbuf;

void textbuf_add(textbuf *b, const char *s, size_t n);
void textbuf_puts(textbuf *b, const char *s);
void textbuf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (never NULL unless failed: then NULL and the buffer is freed). */
char *textbuf_take(textbuf *b);
void textbuf_free(textbuf *b);
/* A whole file, NUL-terminated (its length in *len when len != NULL); NULL
 * with errno set when it cannot be read. */
char *textbuf_read_file(const char *path, size_t *len);

/* Makes room for item n of an array of `size`-byte items whose capacity is
 * *cap (doubling it, 16 at first; pass (void **)&array). Returns 0, or -1
 * when out of memory (the array is untouched). */
int array_reserve(void **items, size_t *cap, size_t n, size_t size);

#endif
