/*
 * think.h - keeps a model's <think>...</think> blocks out of the text it generates.
 *
 * Qwen3 and other reasoning models may write their reasoning between <think>
 * and </think> before the answer (our chat templates switch thinking off,
 * but a model can think anyway). The engine hands back only the answer: the
 * filter sees the generated text as it streams, piece by piece, drops every
 * block and the newlines after its end, and holds back a tail that could be
 * the start of a tag until the next piece says whether it is one. Text after
 * an unclosed <think> is dropped: it is reasoning, not an answer.
 */
#ifndef PRBOT_THINK_H
#define PRBOT_THINK_H

#include <stddef.h>

typedef struct {
    int inside;        /* in a block */
    int after_block;   /* a block just ended: newlines that follow are dropped */
    char held[16];     /* a tail that may begin a tag */
    size_t n_held;
} think_filter;

void think_filter_init(think_filter *f);
/* Feeds text[0, n); writes what is outside blocks to out (NUL-terminated,
 * at most cap - 1 bytes; cap >= n + 16 never truncates) and returns its length. */
size_t think_filter_feed(think_filter *f, const char *text, size_t n, char *out, size_t cap);
/* At the end of the text: what is still held back and was not a tag. */
size_t think_filter_flush(think_filter *f, char *out, size_t cap);

#endif
