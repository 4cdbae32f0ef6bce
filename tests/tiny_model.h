/*
 * tiny_model.h - writes a tiny llama GGUF whose greedy output is known.
 *
 * One layer, n_embd 32, one head, weights that are all zero except the
 * embeddings (all ones), the norms (ones) and the output row of one chosen
 * token (ones): the final hidden state is all ones whatever the prompt, so
 * greedy decoding picks the chosen token at every step. The matrices are F32,
 * or Q8_0 (exact for zeros and ones: scale 1, quants 0 or 1), which makes a
 * model with no float matrix at all; the norms stay F32. The vocabulary is
 * SentencePiece ("llama"): <unk>, <s>, </s>, "a", then the caller's tokens
 * (ids 4, 5, ...), each a normal token whose text is written as given ("▁"
 * is a space). Used by tests that need a model to say something exact
 * (test_stream.c, tests/tools/tiny_model.c for the script tests).
 */
#ifndef PRBOT_TINY_MODEL_H
#define PRBOT_TINY_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/gguf_writer.h"
#include "../engine/quant.h"

#define TINY_MODEL_EMBD 32
#define TINY_MODEL_FIRST_TOKEN 4 /* id of the first caller token */

/* Rows of 32 floats (zeros and ones only) as Q8_0 blocks in place: the
 * 34-byte blocks fit in the 128 bytes of each row. */
static inline void tiny_model_q8_0(float *rows, size_t n_rows)
{
    for (size_t r = 0; r < n_rows; r++) {
        block_q8_0 b = {.d = 0x3C00}; /* 1.0 in f16 */
        for (int i = 0; i < 32; i++) b.qs[i] = (int8_t)rows[r * 32 + i];
        memcpy((char *)rows + r * sizeof b, &b, sizeof b);
    }
}

/* Writes the model to path with matrices of `type` (QT_F32 or QT_Q8_0);
 * `favoured` is the id greedy decoding picks. Returns 0, or -1 with err set. */
static inline int tiny_model_write_typed(const char *path, const char *const *tokens, int n_tokens, int favoured, int n_ctx,
                                  uint32_t type, char *err, size_t errlen)
{
    enum { E = TINY_MODEL_EMBD };
    int n_vocab = TINY_MODEL_FIRST_TOKEN + n_tokens, rc = -1;
    const char **vocab = calloc((size_t)n_vocab, sizeof *vocab);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    float *ones = malloc((size_t)E * n_vocab * sizeof *ones), *output = calloc((size_t)E * n_vocab, sizeof *output);
    float *zeros = calloc((size_t)E * E, sizeof *zeros);
    gguf_writer *w = gguf_writer_new();
    if (!vocab || !types || !scores || !ones || !output || !zeros || !w || favoured < 0 || favoured >= n_vocab) {
        snprintf(err, errlen, "tiny_model: out of memory or bad token id %d", favoured);
        goto done;
    }
    static const char *const fixed[TINY_MODEL_FIRST_TOKEN] = {"<unk>", "<s>", "</s>", "a"};
    static const int32_t fixed_types[TINY_MODEL_FIRST_TOKEN] = {2, 3, 3, 1};
    for (int i = 0; i < n_vocab; i++) {
        vocab[i] = i < TINY_MODEL_FIRST_TOKEN ? fixed[i] : tokens[i - TINY_MODEL_FIRST_TOKEN];
        types[i] = i < TINY_MODEL_FIRST_TOKEN ? fixed_types[i] : 1;
        scores[i] = -(float)i;
    }
    for (int i = 0; i < E * n_vocab; i++) ones[i] = 1.0f;
    for (int i = 0; i < E; i++) output[(size_t)favoured * E + i] = 1.0f;
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "general.name", "tiny-test-model");
    gguf_writer_add_u32(w, "llama.embedding_length", E);
    gguf_writer_add_u32(w, "llama.block_count", 1);
    gguf_writer_add_u32(w, "llama.attention.head_count", 1);
    gguf_writer_add_u32(w, "llama.feed_forward_length", E);
    gguf_writer_add_u32(w, "llama.context_length", (uint32_t)n_ctx);
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", vocab, (size_t)n_vocab);
    gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", types, (size_t)n_vocab);
    gguf_writer_add_f32_array(w, "tokenizer.ggml.scores", scores, (size_t)n_vocab);
    int64_t ne_vocab[2] = {E, n_vocab}, ne_square[2] = {E, E}, ne_vector[1] = {E};
    size_t vocab_bytes = (size_t)E * n_vocab * sizeof(float), square_bytes = (size_t)E * E * sizeof(float);
    size_t vector_bytes = E * sizeof(float);
    float *embd = ones;
    if (type == QT_Q8_0) {
        if (!(embd = malloc(vocab_bytes))) {
            snprintf(err, errlen, "tiny_model: out of memory");
            goto done;
        }
        memcpy(embd, ones, vocab_bytes);
        tiny_model_q8_0(embd, (size_t)n_vocab);
        tiny_model_q8_0(output, (size_t)n_vocab);
        tiny_model_q8_0(zeros, E);
        vocab_bytes = (size_t)n_vocab * sizeof(block_q8_0);
        square_bytes = (size_t)E * sizeof(block_q8_0);
    } else {
        type = QT_F32;
    }
    gguf_writer_add_tensor(w, "token_embd.weight", type, 2, ne_vocab, embd, vocab_bytes);
    gguf_writer_add_tensor(w, "output.weight", type, 2, ne_vocab, output, vocab_bytes);
    gguf_writer_add_tensor(w, "output_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    static const char *const squares[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                          "ffn_down"};
    for (size_t i = 0; i < sizeof squares / sizeof squares[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", squares[i]);
        gguf_writer_add_tensor(w, name, type, 2, ne_square, zeros, square_bytes);
    }
    rc = gguf_writer_write(w, path, err, errlen);
    if (embd != ones) free(embd);
done:
    gguf_writer_free(w);
    free(vocab);
    free(types);
    free(scores);
    free(ones);
    free(output);
    free(zeros);
    return rc;
}

/* The F32 model. */
static inline int tiny_model_write(const char *path, const char *const *tokens, int n_tokens, int favoured, int n_ctx,
                            char *err, size_t errlen)
{
    return tiny_model_write_typed(path, tokens, n_tokens, favoured, n_ctx, QT_F32, err, errlen);
}

#endif
