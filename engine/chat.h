/*
 * chat.h - chat templates.
 *
 * We do not run Jinja. The model's tokenizer.chat_template is recognised by
 * distinctive markers (<|im_start|> = ChatML, with </think> = Qwen3,
 * <|start_header_id|> = Llama-3, with "Cutting Knowledge Date" = Llama 3.1+,
 * [INST] = Llama-2/Mistral, <start_of_turn> = Gemma, <|end|> + <|assistant|>
 * + <|tool|> = Phi-4-mini, <|user|> + <|end|> = Phi-3, <|user|> + </s> =
 * Zephyr) and
 * rendered by a small hand-written formatter for that family. An unknown or
 * missing template falls back to ChatML.
 */
#ifndef PRBOT_CHAT_H
#define PRBOT_CHAT_H

#include <stddef.h>

#include "engine.h"

typedef enum {
    CHAT_CHATML = 0,
    CHAT_LLAMA3,
    CHAT_LLAMA2,  /* also Mistral [INST] */
    CHAT_GEMMA,   /* Gemma 2 and 3 */
    CHAT_PHI3,    /* Phi-3, Phi-3.5 */
    CHAT_ZEPHYR,
    CHAT_QWEN3,   /* ChatML with <think> blocks and a switch to turn thinking off */
    CHAT_QWEN3_INSTRUCT, /* ChatML with <think> blocks, no switch (Qwen3-*-Instruct-2507) */
    CHAT_LLAMA31, /* Llama 3.1-3.3: a system block with the knowledge cut-off and date */
    CHAT_PHI4,    /* Phi-4-mini: Phi-3's tags without newlines */
    CHAT_TEMPLATE_COUNT
} chat_template_kind;

/* template_text may be NULL (no template in the file). */
chat_template_kind chat_template_detect(const char *template_text, size_t len);
const char *chat_template_name(chat_template_kind k);

/* Renders msgs; bos_text is the BOS token's text for templates that write it
 * (Llama-2, Llama-3, Gemma), may be "". *out is malloc'ed. Returns 0 or -1. */
int chat_template_apply(chat_template_kind k, const engine_chat_msg *msgs, int n_msgs, int add_assistant,
                        const char *bos_text, char **out);

/* Some ChatML templates (SmolLM2, Qwen2/2.5) write a fixed system prompt when
 * the conversation has none. Finds that literal text in the template: returns
 * 1 with *out malloc'ed, 0 when the template has none (or is NULL), -1 when
 * out of memory. */
int chat_template_default_system(const char *template_text, size_t len, char **out);

/* All of the above in one call: detects the family of template_text (may be
 * NULL), prepends its default system prompt when msgs starts with no system
 * message, and renders. *out is malloc'ed. Returns 0 or -1. */
int chat_template_render(const char *template_text, size_t len, const engine_chat_msg *msgs, int n_msgs,
                         int add_assistant, const char *bos_text, char **out);

#endif
