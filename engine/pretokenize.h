/*
 * pretokenize.h - the split rules that byte-level BPE applies before merging.
 *
 * Each pre-tokenizer (tokenizer.ggml.pre) is a list of regular expressions
 * from the model's tokenizer.json. Rules apply in order; each one splits
 * every current piece into its matches and the text between them (both are
 * kept), exactly like the reference implementation. The expressions are
 * hand-written matchers over codepoints (no regex engine).
 */
#ifndef PRBOT_PRETOKENIZE_H
#define PRBOT_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PRETOK_DEFAULT,        /* "default" or missing */
    PRETOK_GPT2,           /* gpt-2, mpt, olmo, jais, phi-2, ... */
    PRETOK_LLAMA3,         /* llama-bpe, llama3, dbrx, smaug-bpe, chatglm-bpe */
    PRETOK_QWEN2,          /* qwen2, stablelm2, deepseek-r1-qwen, megrez */
    PRETOK_STARCODER,      /* starcoder, refact, smollm, command-r, codeshell, exaone */
    PRETOK_FALCON,         /* falcon */
    PRETOK_DEEPSEEK_LLM,   /* deepseek-llm */
    PRETOK_DEEPSEEK_CODER, /* deepseek-coder */
    PRETOK_GPT4O,          /* gpt-4o (o200k_base: Phi-4-mini), llama4 */
    PRETOK_COUNT
} pretokenizer_kind;

/* Maps a tokenizer.ggml.pre value (NULL = missing: "default") to its rules
 * in *kind and sets *ignore_merges and *add_bos to the pre-tokenizer's
 * defaults (Llama 3 looks whole words up before merging and adds BOS).
 * Returns -1 for a name whose rules are not implemented. */
int pretokenizer_from_name(const char *name, size_t len, pretokenizer_kind *kind, int *ignore_merges, int *add_bos);
/* Writes the supported names, comma-separated, into buf[0..len). */
void pretokenizer_names(char *buf, size_t len);

/* Splits the codepoints cps[0..n) into words. On success returns the word
 * count and sets *ends to a malloc'ed array of each word's end index (the
 * caller frees it); returns -1 on allocation failure. */
int pretokenize(pretokenizer_kind kind, const uint32_t *cps, size_t n, size_t **ends);

#endif
