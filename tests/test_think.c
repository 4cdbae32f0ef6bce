/*
 * test_think.c - the <think> block filter (engine/think.c).
 *
 * Each case's text is fed whole, then cut in two at every byte, then a byte
 * at a time: the answer must come out the same whichever way the text
 * streams in, since a tag can be split across tokens anywhere.
 */
#include "../engine/think.h"
#include "test.h"

typedef struct {
    const char *text, *want;
} think_case;

static const think_case cases[] = {
    {"<think>\nThe loop is off by one.\n</think>\n\nThe bound should be i < n.",
     "The bound should be i < n."},
    {"<think>\n\n</think>\n\nNo findings.\n", "No findings.\n"},
    {"No think block at all.", "No think block at all."},
    {"a <thi", "a <thi"},
    {"x < y and <b>bold</b> </thin", "x < y and <b>bold</b> </thin"},
    {"before<think>hidden</think>after", "beforeafter"},
    {"one<think>a</think>two<think>b</think>\nthree", "onetwothree"},
    {"<think>never closed, still reasoning", ""},
    {"<think><think>nested</think>tail", "tail"},
    {"", ""},
};

/* Feeds text in pieces cut at the given offsets (sorted, within the text). */
static void run(const char *text, const size_t *cuts, int n_cuts, char *out, size_t cap)
{
    think_filter f;
    think_filter_init(&f);
    size_t len = 0, at = 0, n = strlen(text);
    char piece_out[256];
    for (int c = 0; c <= n_cuts; c++) {
        size_t end = c < n_cuts ? cuts[c] : n;
        size_t got = think_filter_feed(&f, text + at, end - at, piece_out, sizeof piece_out);
        if (len + got < cap) memcpy(out + len, piece_out, got), len += got;
        at = end;
    }
    len += think_filter_flush(&f, out + len, cap - len);
    out[len] = 0;
}

static void filters_every_split(void)
{
    char got[256];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *text = cases[k].text, *want = cases[k].want;
        size_t n = strlen(text);
        run(text, NULL, 0, got, sizeof got);
        EXPECT(strcmp(got, want) == 0, "\"%s\" whole: got \"%s\", want \"%s\"", text, got, want);
        for (size_t cut = 0; cut <= n; cut++) {
            run(text, &cut, 1, got, sizeof got);
            if (strcmp(got, want) != 0) {
                EXPECT(0, "\"%s\" cut at %zu: got \"%s\", want \"%s\"", text, cut, got, want);
                break;
            }
        }
        size_t every[128];
        int n_cuts = 0;
        for (size_t i = 1; i < n && n_cuts < 128; i++) every[n_cuts++] = i;
        run(text, every, n_cuts, got, sizeof got);
        EXPECT(strcmp(got, want) == 0, "\"%s\" a byte at a time: got \"%s\", want \"%s\"", text, got, want);
    }
}

/* A piece longer than the filter's working buffer still comes through whole. */
static void long_pieces(void)
{
    static char text[3000], out[3100];
    memset(text, 'x', sizeof text - 1);
    memcpy(text + 1000, "<think>", 7);
    memcpy(text + 2000, "</think>", 8);
    think_filter f;
    think_filter_init(&f);
    size_t len = think_filter_feed(&f, text, strlen(text), out, sizeof out);
    len += think_filter_flush(&f, out + len, sizeof out - len);
    EXPECT(len == 1000 + (sizeof text - 1 - 2008), "%zu bytes out", len);
    for (size_t i = 0; i < len; i++)
        if (out[i] != 'x') {
            EXPECT(0, "byte %zu is '%c'", i, out[i]);
            break;
        }
}

int main(void)
{
    TEST_RUN(filters_every_split);
    TEST_RUN(long_pieces);
    return test_exit_code();
}
