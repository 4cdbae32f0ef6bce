/*
 * tiny_model.h - writes a tiny llama GGUF whose greedy output is known.
 *
 * One layer, n_embd 32, one head, F32 weights that are all zero except the
 * embeddings (all ones), the norms (ones) and the output row of one chosen
 * token (ones): the final hidden state is all ones whatever the prompt, so
 * greedy decoding picks the chosen token at every step. The vocabulary is
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

/* Writes the model to path; `favoured` is the id greedy decoding picks.
 * Returns 0, or -1 with err set. */
static int tiny_model_write(const char *path, const char *const *tokens, int n_tokens, int favoured, int n_ctx,
                            char *err, size_t errlen)
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
    gguf_writer_add_tensor(w, "token_embd.weight", QT_F32, 2, ne_vocab, ones, vocab_bytes);
    gguf_writer_add_tensor(w, "output.weight", QT_F32, 2, ne_vocab, output, vocab_bytes);
    gguf_writer_add_tensor(w, "output_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", QT_F32, 1, ne_vector, ones, vector_bytes);
    static const char *const squares[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                          "ffn_down"};
    for (size_t i = 0; i < sizeof squares / sizeof squares[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", squares[i]);
        gguf_writer_add_tensor(w, name, QT_F32, 2, ne_square, zeros, square_bytes);
    }
    rc = gguf_writer_write(w, path, err, errlen);
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

#endif
