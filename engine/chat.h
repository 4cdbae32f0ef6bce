/*
 * chat.h - chat templates.
 *
 * We do not run Jinja. The model's tokenizer.chat_template is recognised by
 * distinctive markers (<|im_start|> = ChatML, <|start_header_id|> = Llama-3,
 * [INST] = Llama-2/Mistral, <start_of_turn> = Gemma, <|user|> + <|end|> = Phi-3,
 * <|user|> + </s> = Zephyr) and rendered by a small hand-written formatter for
 * that family. An unknown or missing template falls back to ChatML.
 */
#ifndef PRBOT_CHAT_H
#define PRBOT_CHAT_H

#include <stddef.h>

#include "engine.h"

typedef enum {
    CHAT_CHATML = 0,
    CHAT_LLAMA3,
    CHAT_LLAMA2,  /* also Mistral [INST] */
    CHAT_GEMMA,
    CHAT_PHI3,
    CHAT_ZEPHYR,
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
