/*
 * think.c - the <think> block filter (think.h).
 *
 * A small state machine over bytes: outside a block, text is copied until
 * "<think>" appears; inside, text is dropped until "</think>". Whatever at
 * the end of a piece could still become the tag being looked for is held
 * back (at most the tag's length - 1 bytes) and looked at again with the
 * next piece.
 */
#include "think.h"

#include <string.h>

static const char open_tag[] = "<think>", close_tag[] = "</think>";

void think_filter_init(think_filter *f) { memset(f, 0, sizeof *f); }

static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + 1 >= cap) return;
    if (n > cap - 1 - *len) n = cap - 1 - *len;
    memcpy(out + *len, s, n);
    *len += n;
}

/* Length of the longest suffix of s[0, n) that is a proper prefix of tag. */
static size_t partial_tag(const char *s, size_t n, const char *tag)
{
    size_t k = strlen(tag) - 1;
    for (; k > 0; k--)
        if (k <= n && memcmp(s + n - k, tag, k) == 0) return k;
    return 0;
}

size_t think_filter_feed(think_filter *f, const char *text, size_t n, char *out, size_t cap)
{
    char buf[512];
    size_t len = 0;
    if (cap) out[0] = 0;
    /* work on held + text, a piece at a time so that any text length fits */
    while (n > 0 || f->n_held > 0) {
        size_t take = sizeof buf - f->n_held < n ? sizeof buf - f->n_held : n;
        memcpy(buf, f->held, f->n_held);
        memcpy(buf + f->n_held, text, take);
        size_t m = f->n_held + take, i = 0;
        int more = n > take;
        f->n_held = 0;
        text += take;
        n -= take;
        while (i < m) {
            if (f->after_block) {
                if (buf[i] == '\n') {
                    i++;
                    continue;
                }
                f->after_block = 0;
            }
            const char *tag = f->inside ? close_tag : open_tag;
            size_t tag_len = strlen(tag);
            const char *hit = NULL;
            for (size_t j = i; j + tag_len <= m && !hit; j++)
                if (memcmp(buf + j, tag, tag_len) == 0) hit = buf + j;
            if (hit) {
                if (!f->inside) put(out, cap, &len, buf + i, (size_t)(hit - (buf + i)));
                i = (size_t)(hit - buf) + tag_len;
                f->inside = !f->inside;
                f->after_block = !f->inside;
                continue;
            }
            size_t keep = partial_tag(buf + i, m - i, tag);
            if (!f->inside) put(out, cap, &len, buf + i, m - i - keep);
            memcpy(f->held, buf + m - keep, keep);
            f->n_held = keep;
            i = m;
        }
        if (!more) break;
    }
    if (cap) out[len < cap ? len : cap - 1] = 0;
    return len;
}

size_t think_filter_flush(think_filter *f, char *out, size_t cap)
{
    size_t len = 0;
    if (cap) out[0] = 0;
    if (!f->inside) put(out, cap, &len, f->held, f->n_held);
    f->n_held = 0;
    if (cap) out[len] = 0;
    return len;
}
