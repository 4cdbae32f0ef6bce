/*
 * chat.c - chat templates without a Jinja interpreter.
 *
 * A GGUF model carries its chat template as Jinja source. Running Jinja in C
 * would be a project of its own, and the handful of template families in use
 * differ only in their delimiters, so we recognise the family by its marker
 * tokens and render it with a small formatter per family that reproduces what
 * that family's official template prints (including its quirks: Llama-3 and
 * Gemma trim the content, Llama-2 folds the system prompt into the first
 * [INST] and closes answers with </s>, Gemma has no system role and calls the
 * assistant "model", Phi-3 ends a prompt without a generation turn with its
 * EOS text, Llama 3.1+ always opens with a system block that states its
 * knowledge cut-off and a date, Qwen3 drops the <think> part of earlier
 * answers). ChatML templates that write a fixed system prompt when none is
 * given (SmolLM2, Qwen2.5) keep that prompt as a literal string, which
 * chat_template_default_system() lifts out of the template source.
 *
 * Thinking is always off: a Qwen3 template that can switch it off gets the
 * empty <think></think> block its own `enable_thinking=false` writes, so the
 * model answers at once (engine.c also keeps any <think> block a model writes
 * anyway out of the text it hands back).
 *
 * To add a family: a kind in chat.h, its marker in chat_template_detect (more
 * specific markers first), a formatter here written from the family's
 * published template, and a test in tests/test_chat.c with the expected text
 * written out by hand.
 */
#include "chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing output string ------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed; later appends do nothing */
} text_buffer;

static void buffer_append_n(text_buffer *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buffer_append(text_buffer *b, const char *s) { buffer_append_n(b, s ? s : "", s ? strlen(s) : 0); }

/* Appends s without leading and trailing whitespace (Jinja's trim). */
static void buffer_append_trimmed(text_buffer *b, const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    buffer_append_n(b, s, n);
}

/* Hands the buffer to *out; returns 0, or -1 (and frees it) after a failed allocation. */
static int buffer_finish(text_buffer *b, char **out)
{
    buffer_append_n(b, "", 0); /* makes an empty result a valid "" */
    if (b->failed || !b->data) {
        free(b->data);
        *out = NULL;
        return -1;
    }
    *out = b->data;
    return 0;
}

static int role_is(const engine_chat_msg *m, const char *role) { return m->role && strcmp(m->role, role) == 0; }

/* ---- detection --------------------------------------------------------- */

static int contains(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (text[i] == needle[0] && memcmp(text + i, needle, n) == 0) return 1;
    return 0;
}

chat_template_kind chat_template_detect(const char *template_text, size_t len)
{
    if (!template_text) return CHAT_CHATML;
    const char *t = template_text;
    if (contains(t, len, "<|im_start|>")) {
        if (!contains(t, len, "</think>")) return CHAT_CHATML;
        return contains(t, len, "enable_thinking") ? CHAT_QWEN3 : CHAT_QWEN3_INSTRUCT;
    }
    if (contains(t, len, "<|start_header_id|>"))
        return contains(t, len, "Cutting Knowledge Date") ? CHAT_LLAMA31 : CHAT_LLAMA3;
    if (contains(t, len, "<start_of_turn>")) return CHAT_GEMMA;
    /* Phi-4-mini builds its tags from the role name, so only these are literal */
    if (contains(t, len, "<|end|>") && contains(t, len, "<|assistant|>") && contains(t, len, "<|tool|>"))
        return CHAT_PHI4;
    if (contains(t, len, "<|user|>")) {
        if (contains(t, len, "<|end|>")) return CHAT_PHI3;
        if (contains(t, len, "</s>") || contains(t, len, "eos_token")) return CHAT_ZEPHYR;
    }
    if (contains(t, len, "[INST]")) return CHAT_LLAMA2;
    return CHAT_CHATML;
}

const char *chat_template_name(chat_template_kind k)
{
    static const char *const names[CHAT_TEMPLATE_COUNT] = {"chatml", "llama3", "llama2",        "gemma",  "phi3",
                                                           "zephyr", "qwen3",  "qwen3-instruct", "llama31", "phi4"};
    return k >= 0 && k < CHAT_TEMPLATE_COUNT ? names[k] : "unknown";
}

/* ---- one formatter per family ------------------------------------------ */

/* <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n */
static void render_chatml(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant)
{
    for (int i = 0; i < n; i++) {
        buffer_append(b, "<|im_start|>");
        buffer_append(b, msgs[i].role);
        buffer_append(b, "\n");
        buffer_append(b, msgs[i].content);
        buffer_append(b, "<|im_end|>\n");
    }
    if (add_assistant) buffer_append(b, "<|im_start|>assistant\n");
}

/* {bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|> ... */
static void render_llama3(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant, const char *bos)
{
    buffer_append(b, bos);
    for (int i = 0; i < n; i++) {
        buffer_append(b, "<|start_header_id|>");
        buffer_append(b, msgs[i].role);
        buffer_append(b, "<|end_header_id|>\n\n");
        buffer_append_trimmed(b, msgs[i].content);
        buffer_append(b, "<|eot_id|>");
    }
    if (add_assistant) buffer_append(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/*
 * Llama 3.1-3.3: {bos}<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n
 * Today Date: 26 Jul 2024\n\n{system|trim}<|eot_id|>, then the other messages as Llama 3. The block is
 * there with or without a system message. The date is the template's own fallback (used when the
 * renderer offers no strftime_now), so a prompt does not change from one day to the next.
 */
static void render_llama31(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant, const char *bos)
{
    int first = n > 0 && role_is(&msgs[0], "system");
    buffer_append(b, bos);
    buffer_append(b, "<|start_header_id|>system<|end_header_id|>\n\n"
                     "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    if (first) buffer_append_trimmed(b, msgs[0].content);
    buffer_append(b, "<|eot_id|>");
    render_llama3(b, msgs + first, n - first, add_assistant, "");
}

/*
 * {bos}[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>{bos}[INST] {user} [/INST]
 * The first message, when it is the system prompt, joins the first user turn;
 * each turn's text is stripped as a whole. There is no generation prompt: the
 * model answers right after [/INST].
 */
static int render_llama2(text_buffer *b, const engine_chat_msg *msgs, int n, const char *bos)
{
    const char *system = NULL;
    int first = 0;
    if (n > 0 && role_is(&msgs[0], "system")) {
        system = msgs[0].content ? msgs[0].content : "";
        first = 1;
    }
    for (int i = first; i < n; i++) {
        text_buffer turn = {0};
        if (i == first && system) {
            buffer_append(&turn, "<<SYS>>\n");
            buffer_append(&turn, system);
            buffer_append(&turn, "\n<</SYS>>\n\n");
        }
        buffer_append(&turn, msgs[i].content);
        if (turn.failed) {
            free(turn.data);
            return -1;
        }
        const char *text = turn.data ? turn.data : "";
        if (role_is(&msgs[i], "user")) {
            buffer_append(b, bos);
            buffer_append(b, "[INST] ");
            buffer_append_trimmed(b, text);
            buffer_append(b, " [/INST]");
        } else if (role_is(&msgs[i], "assistant")) {
            buffer_append(b, " ");
            buffer_append_trimmed(b, text);
            buffer_append(b, " </s>");
        }
        free(turn.data);
    }
    return 0;
}

/*
 * {bos}<start_of_turn>user\n{system}\n\n{content|trim}<end_of_turn>\n<start_of_turn>model\n...
 * No system role: its text opens the first user turn. The assistant is "model".
 */
static void render_gemma(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant, const char *bos)
{
    const char *system = NULL;
    int first = 0;
    if (n > 0 && role_is(&msgs[0], "system")) {
        system = msgs[0].content ? msgs[0].content : "";
        first = 1;
    }
    buffer_append(b, bos);
    for (int i = first; i < n; i++) {
        buffer_append(b, "<start_of_turn>");
        buffer_append(b, role_is(&msgs[i], "assistant") ? "model" : msgs[i].role);
        buffer_append(b, "\n");
        if (i == first && system) {
            buffer_append(b, system);
            buffer_append(b, "\n\n");
        }
        buffer_append_trimmed(b, msgs[i].content);
        buffer_append(b, "<end_of_turn>\n");
    }
    if (add_assistant) buffer_append(b, "<start_of_turn>model\n");
}

/* <|system|>\n{system}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n; an empty system prompt is left out. */
static void render_phi3(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant)
{
    for (int i = 0; i < n; i++) {
        const char *role = role_is(&msgs[i], "system") ? "system" : role_is(&msgs[i], "user") ? "user"
                           : role_is(&msgs[i], "assistant")                                 ? "assistant"
                                                                                             : NULL;
        if (!role || (strcmp(role, "system") == 0 && (!msgs[i].content || !*msgs[i].content))) continue;
        buffer_append(b, "<|");
        buffer_append(b, role);
        buffer_append(b, "|>\n");
        buffer_append(b, msgs[i].content);
        buffer_append(b, "<|end|>\n");
    }
    buffer_append(b, add_assistant ? "<|assistant|>\n" : "<|endoftext|>");
}

/* Phi-4-mini: <|{role}|>{content}<|end|> for every message, then <|assistant|> (or the EOS text). */
static void render_phi4(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant)
{
    for (int i = 0; i < n; i++) {
        buffer_append(b, "<|");
        buffer_append(b, msgs[i].role);
        buffer_append(b, "|>");
        buffer_append(b, msgs[i].content);
        buffer_append(b, "<|end|>");
    }
    buffer_append(b, add_assistant ? "<|assistant|>" : "<|endoftext|>");
}

/* s[0, n) without leading / trailing newlines: *s and *n adjusted (Jinja's lstrip('\n') / rstrip('\n')). */
static void strip_newlines(const char **s, size_t *n, int leading, int trailing)
{
    while (leading && *n && **s == '\n') (*s)++, (*n)--;
    while (trailing && *n && (*s)[*n - 1] == '\n') (*n)--;
}

/* The last occurrence of needle in s[0, n), or NULL. */
static const char *find_last(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (memcmp(s + i, needle, k) == 0) return s + i;
    return NULL;
}

/*
 * Qwen3: ChatML, except that an answer holding "</think>" is split as the
 * template does: the reasoning is what lies between the last "<think>" before
 * the first "</think>" and it, the content what follows the last "</think>".
 * Answers before the last user message keep only their content; an answer
 * after it that is the last message (or has reasoning) is written with its
 * reasoning in a <think> block. The generation prompt of a template that can
 * switch thinking off gets the empty block that switch writes.
 */
static void render_qwen3(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant, int thinking_switch)
{
    int last_query = -1;
    for (int i = 0; i < n; i++)
        if (role_is(&msgs[i], "user")) last_query = i;
    for (int i = 0; i < n; i++) {
        if (!role_is(&msgs[i], "assistant")) {
            buffer_append(b, "<|im_start|>");
            buffer_append(b, msgs[i].role);
            buffer_append(b, "\n");
            buffer_append(b, msgs[i].content);
            buffer_append(b, "<|im_end|>\n");
            continue;
        }
        const char *content = msgs[i].content ? msgs[i].content : "", *reasoning = "";
        size_t content_len = strlen(content), reasoning_len = 0;
        const char *end_tag = strstr(content, "</think>");
        if (end_tag) {
            reasoning = content;
            reasoning_len = (size_t)(end_tag - content);
            strip_newlines(&reasoning, &reasoning_len, 0, 1);
            const char *open = find_last(reasoning, reasoning_len, "<think>");
            if (open) {
                reasoning_len -= (size_t)(open + 7 - reasoning);
                reasoning = open + 7;
            }
            strip_newlines(&reasoning, &reasoning_len, 1, 0);
            const char *last_end = find_last(content, content_len, "</think>") + 8;
            content_len -= (size_t)(last_end - content);
            content = last_end;
            strip_newlines(&content, &content_len, 1, 0);
        }
        buffer_append(b, "<|im_start|>assistant\n");
        if (i > last_query && (i == n - 1 || reasoning_len > 0)) {
            strip_newlines(&reasoning, &reasoning_len, 1, 1);
            strip_newlines(&content, &content_len, 1, 0);
            buffer_append(b, "<think>\n");
            buffer_append_n(b, reasoning, reasoning_len);
            buffer_append(b, "\n</think>\n\n");
        }
        buffer_append_n(b, content, content_len);
        buffer_append(b, "<|im_end|>\n");
    }
    if (add_assistant) buffer_append(b, thinking_switch ? "<|im_start|>assistant\n<think>\n\n</think>\n\n"
                                                        : "<|im_start|>assistant\n");
}

/* <|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n */
static void render_zephyr(text_buffer *b, const engine_chat_msg *msgs, int n, int add_assistant)
{
    for (int i = 0; i < n; i++) {
        if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") && !role_is(&msgs[i], "assistant")) continue;
        buffer_append(b, "<|");
        buffer_append(b, msgs[i].role);
        buffer_append(b, "|>\n");
        buffer_append(b, msgs[i].content);
        buffer_append(b, "</s>\n");
    }
    if (add_assistant && n > 0) buffer_append(b, "<|assistant|>\n");
}

int chat_template_apply(chat_template_kind k, const engine_chat_msg *msgs, int n_msgs, int add_assistant,
                        const char *bos_text, char **out)
{
    if (!out) return -1;
    *out = NULL;
    if (n_msgs < 0 || (n_msgs > 0 && !msgs)) return -1;
    if (!bos_text) bos_text = "";
    text_buffer b = {0};
    switch (k) {
    case CHAT_LLAMA3: render_llama3(&b, msgs, n_msgs, add_assistant, bos_text); break;
    case CHAT_LLAMA31: render_llama31(&b, msgs, n_msgs, add_assistant, bos_text); break;
    case CHAT_QWEN3: render_qwen3(&b, msgs, n_msgs, add_assistant, 1); break;
    case CHAT_QWEN3_INSTRUCT: render_qwen3(&b, msgs, n_msgs, add_assistant, 0); break;
    case CHAT_PHI4: render_phi4(&b, msgs, n_msgs, add_assistant); break;
    case CHAT_LLAMA2:
        if (render_llama2(&b, msgs, n_msgs, bos_text) != 0) b.failed = 1;
        break;
    case CHAT_GEMMA: render_gemma(&b, msgs, n_msgs, add_assistant, bos_text); break;
    case CHAT_PHI3: render_phi3(&b, msgs, n_msgs, add_assistant); break;
    case CHAT_ZEPHYR: render_zephyr(&b, msgs, n_msgs, add_assistant); break;
    case CHAT_CHATML:
    default: render_chatml(&b, msgs, n_msgs, add_assistant); break;
    }
    return buffer_finish(&b, out);
}

/* ---- default system prompts -------------------------------------------- */

/*
 * After an occurrence of "<|im_start|>system" followed by a newline (real, or
 * the two characters \n of a Jinja string escape), reads up to "<|im_end|>".
 * The text counts only if it is one string literal: no quote or brace on the
 * way, which would mean the content comes from a variable. *stop is where the
 * scan ended: a later occurrence before that point would read a suffix of the
 * same text to the same stop, so it can only fail too (the scan from p has
 * already consumed at least its marker, so the text was not empty); the
 * caller resumes the search at *stop, which keeps the whole search linear.
 */
static int literal_system_text(const char *p, const char *end, text_buffer *b, const char **stop)
{
    static const char im_end[] = "<|im_end|>";
    size_t im_end_len = sizeof im_end - 1;
    *stop = p;
    if (p < end && *p == '\n') p++;
    else if (end - p >= 2 && p[0] == '\\' && p[1] == 'n') p += 2;
    else return 0;
    for (; p < end; p++) {
        *stop = p;
        if ((size_t)(end - p) >= im_end_len && memcmp(p, im_end, im_end_len) == 0) return b->len > 0;
        if (*p == '\'' || *p == '"' || *p == '{' || *p == '}') return 0;
        if (*p == '\\' && p + 1 < end) {
            p++;
            char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
            buffer_append_n(b, &c, 1);
        } else {
            buffer_append_n(b, p, 1);
        }
    }
    *stop = end;
    return 0;
}

int chat_template_default_system(const char *template_text, size_t len, char **out)
{
    static const char marker[] = "<|im_start|>system";
    size_t marker_len = sizeof marker - 1;
    *out = NULL;
    if (!template_text) return 0;
    const char *end = template_text + len;
    for (const char *p = template_text; (size_t)(end - p) >= marker_len;) {
        if (memcmp(p, marker, marker_len) != 0) {
            p++;
            continue;
        }
        text_buffer b = {0};
        const char *stop;
        int found = literal_system_text(p + marker_len, end, &b, &stop);
        if (b.failed) {
            free(b.data);
            return -1;
        }
        if (found) {
            *out = b.data;
            return 1;
        }
        free(b.data);
        p = stop > p + marker_len ? stop : p + marker_len;
    }
    return 0;
}

int chat_template_render(const char *template_text, size_t len, const engine_chat_msg *msgs, int n_msgs,
                         int add_assistant, const char *bos_text, char **out)
{
    chat_template_kind kind = chat_template_detect(template_text, len);
    char *default_system = NULL;
    int has_system = n_msgs > 0 && role_is(&msgs[0], "system");
    if (kind == CHAT_CHATML && n_msgs > 0 && !has_system) {
        if (chat_template_default_system(template_text, len, &default_system) < 0) return -1;
    }
    if (!default_system) return chat_template_apply(kind, msgs, n_msgs, add_assistant, bos_text, out);

    engine_chat_msg *with_system = malloc(((size_t)n_msgs + 1) * sizeof *with_system);
    if (!with_system) {
        free(default_system);
        return -1;
    }
    with_system[0] = (engine_chat_msg){"system", default_system};
    if (n_msgs > 0) memcpy(with_system + 1, msgs, (size_t)n_msgs * sizeof *msgs);
    int rc = chat_template_apply(kind, with_system, n_msgs + 1, add_assistant, bos_text, out);
    free(with_system);
    free(default_system);
    return rc;
}
