/*
 * textbuf.c - see textbuf.h. Capacity doubles, so n appends cost O(n).
 */
#include "textbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(textbuf *b, size_t extra)
{
    if (b->failed) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void textbuf_add(textbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void textbuf_puts(textbuf *b, const char *s) { textbuf_add(b, s, strlen(s)); }

void textbuf_printf(textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (reserve(b, (size_t)n) < 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *textbuf_take(textbuf *b)
{
    if (b->failed) {
        textbuf_free(b);
        return NULL;
    }
    if (!b->data) textbuf_add(b, "", 0);
    char *s = b->failed ? NULL : b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void textbuf_free(textbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *textbuf_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    textbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) textbuf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    size_t got = b.len;
    char *text = textbuf_take(&b);
    if (bad || !text) {
        free(text);
        errno = bad ? EIO : ENOMEM;
        return NULL;
    }
    if (len) *len = got;
    return text;
}

int array_reserve(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    if (c <= n || c > SIZE_MAX / size) return -1;
    void *p = realloc(*items, c * size);
    if (!p) return -1;
    *items = p;
    *cap = c;
    return 0;
}
