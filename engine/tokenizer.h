/*
 * tokenizer.h - SentencePiece-style and byte-level BPE tokenizers from GGUF metadata.
 *
 * tokenizer.ggml.model selects the algorithm ("llama" = SentencePiece BPE over
 * scores with byte fallback; "gpt2" = byte-level BPE over merges) and
 * tokenizer.ggml.pre selects the pre-tokenizer split rules for gpt2 models.
 * Special/control tokens in the text are matched first when parse_special is
 * set. Decoding hands out raw bytes per token; tokenizer_stream keeps partial
 * UTF-8 sequences back so a stream never shows half a character.
 */
#ifndef PRBOT_TOKENIZER_H
#define PRBOT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tokenizer tokenizer;

/* Token attributes from tokenizer.ggml.token_type. */
enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5, TOKEN_BYTE = 6 };

int tokenizer_load(tokenizer **out, const gguf_file *f, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

int tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t); /* -1 if none */
int32_t tokenizer_eos(const tokenizer *t); /* -1 if none */
int tokenizer_add_bos(const tokenizer *t); /* metadata's add_bos_token (with the model type's default) */
/* True for tokens that end generation (EOS, EOT, <|im_end|>, <|eot_id|>, <end_of_turn>, ...). */
int tokenizer_is_eog(const tokenizer *t, int32_t id);
/* A token's attribute (TOKEN_NORMAL, TOKEN_CONTROL, ...); 0 outside the vocabulary. */
int tokenizer_token_type(const tokenizer *t, int32_t id);
/* Id of an exact token text, -1 if absent. */
int32_t tokenizer_find(const tokenizer *t, const char *text);

/* Tokenizes text[0..len). Writes up to cap ids to out; returns the total
 * number of ids (may exceed cap: call again with a bigger buffer), or -1 on
 * allocation failure. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                     int32_t *out, int cap);

/* Raw bytes of one token as it appears in text (byte tokens decoded, SPM "▁"
 * turned to spaces, GPT-2 byte-unicode mapped back to bytes). Control tokens
 * give their text only when render_special is set, else nothing. Returns
 * the number of bytes (may exceed cap). */
int tokenizer_piece(const tokenizer *t, int32_t id, int render_special, char *buf, int cap);

/* Streaming detokenizer: feed ids, get out only complete UTF-8. */
typedef struct {
    char pending[8];
    int n_pending;
    int first; /* SPM: strip the leading space of the first piece after BOS */
} tokenizer_stream;

void tokenizer_stream_init(tokenizer_stream *s);
/* Appends the complete-UTF-8 part of the new text to out (NUL-terminated);
 * returns the number of bytes written (out needs cap >= 64). */
int tokenizer_stream_feed(const tokenizer *t, tokenizer_stream *s, int32_t id, char *out, int cap);
/* Flushes whatever is pending (invalid UTF-8 tail becomes U+FFFD). */
int tokenizer_stream_flush(tokenizer_stream *s, char *out, int cap);

#endif
