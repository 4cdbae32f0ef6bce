/*
 * test_chat.c - chat template detection and rendering.
 *
 * The expected prompts are written out by hand from each family's official
 * Jinja template (as published with the models: Qwen/SmolLM ChatML,
 * Meta-Llama-3-Instruct, Llama-3.1/3.2-Instruct, Llama-2-chat, Gemma-it and
 * Gemma-3-it, Phi-3-mini-instruct, Phi-4-mini-instruct, Qwen3 and
 * Qwen3-Instruct-2507, Zephyr-7b-beta / TinyLlama-chat), evaluated by hand
 * for one conversation:
 * system + user + assistant + user, where the last user message ends in a
 * newline so the families that trim content (Llama-3, Gemma, Llama-2) can be
 * told from those that keep it. The detection snippets are the real template
 * sources (or their distinctive parts); the SmolLM2 one is copied from the
 * tokenizer.chat_template of SmolLM2-135M-Instruct.
 */
#include "../engine/chat.h"
#include "test.h"

static const engine_chat_msg conversation[] = {
    {"system", "You are terse."},
    {"user", "Hi there"},
    {"assistant", "Hello! How can I help?"},
    {"user", "Review this diff.\n"},
};
#define N_CONVERSATION ((int)(sizeof conversation / sizeof conversation[0]))

static void expect_render(chat_template_kind kind, const engine_chat_msg *msgs, int n, int add_assistant,
                          const char *bos, const char *want)
{
    char *got = NULL;
    int rc = chat_template_apply(kind, msgs, n, add_assistant, bos, &got);
    REQUIRE(rc == 0 && got, "%s: chat_template_apply failed", chat_template_name(kind));
    if (strcmp(got, want) != 0) {
        /* show where they part */
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        EXPECT(0, "%s: differs at byte %zu: got \"%.40s\", want \"%.40s\"", chat_template_name(kind), i, got + i,
               want + i);
    }
    free(got);
}

static void render_chatml(void)
{
    expect_render(CHAT_CHATML, conversation, N_CONVERSATION, 1, "<s>",
                  "<|im_start|>system\nYou are terse.<|im_end|>\n"
                  "<|im_start|>user\nHi there<|im_end|>\n"
                  "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                  "<|im_start|>user\nReview this diff.\n<|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_render(CHAT_CHATML, conversation + 1, 1, 0, "",
                  "<|im_start|>user\nHi there<|im_end|>\n");
}

static void render_llama3(void)
{
    expect_render(CHAT_LLAMA3, conversation, N_CONVERSATION, 1, "<|begin_of_text|>",
                  "<|begin_of_text|>"
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nReview this diff.<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_llama2(void)
{
    expect_render(CHAT_LLAMA2, conversation, N_CONVERSATION, 1, "<s>",
                  "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]"
                  " Hello! How can I help? </s>"
                  "<s>[INST] Review this diff. [/INST]");
    expect_render(CHAT_LLAMA2, conversation + 1, 1, 1, "<s>", "<s>[INST] Hi there [/INST]");
}

static void render_gemma(void)
{
    expect_render(CHAT_GEMMA, conversation, N_CONVERSATION, 1, "<bos>",
                  "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
                  "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
                  "<start_of_turn>user\nReview this diff.<end_of_turn>\n"
                  "<start_of_turn>model\n");
    expect_render(CHAT_GEMMA, conversation + 1, 1, 1, "<bos>",
                  "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n");
}

static void render_phi3(void)
{
    expect_render(CHAT_PHI3, conversation, N_CONVERSATION, 1, "<s>",
                  "<|system|>\nYou are terse.<|end|>\n"
                  "<|user|>\nHi there<|end|>\n"
                  "<|assistant|>\nHello! How can I help?<|end|>\n"
                  "<|user|>\nReview this diff.\n<|end|>\n"
                  "<|assistant|>\n");
    /* without a generation prompt the template closes with eos_token */
    expect_render(CHAT_PHI3, conversation + 1, 1, 0, "", "<|user|>\nHi there<|end|>\n<|endoftext|>");
}

static void render_zephyr(void)
{
    expect_render(CHAT_ZEPHYR, conversation, N_CONVERSATION, 1, "<s>",
                  "<|system|>\nYou are terse.</s>\n"
                  "<|user|>\nHi there</s>\n"
                  "<|assistant|>\nHello! How can I help?</s>\n"
                  "<|user|>\nReview this diff.\n</s>\n"
                  "<|assistant|>\n");
}

/* Qwen3 (the hybrid thinking models): thinking switched off, as reviews want it. */
static void render_qwen3(void)
{
    expect_render(CHAT_QWEN3, conversation, N_CONVERSATION, 1, "",
                  "<|im_start|>system\nYou are terse.<|im_end|>\n"
                  "<|im_start|>user\nHi there<|im_end|>\n"
                  "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                  "<|im_start|>user\nReview this diff.\n<|im_end|>\n"
                  "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* an earlier answer keeps only what follows its reasoning */
    const engine_chat_msg thought[] = {
        {"user", "Hi"}, {"assistant", "<think>\nThe user greets.\n</think>\n\nHello."}, {"user", "Review."}};
    expect_render(CHAT_QWEN3, thought, 3, 1, "",
                  "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                  "<|im_start|>user\nReview.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* the last answer, after the last question, is written with its reasoning */
    expect_render(CHAT_QWEN3, thought, 2, 0, "",
                  "<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\n<think>\nThe user greets.\n</think>\n\nHello.<|im_end|>\n");
    /* Qwen3-*-Instruct-2507: the same, with no switch to write */
    expect_render(CHAT_QWEN3_INSTRUCT, thought, 3, 1, "",
                  "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                  "<|im_start|>user\nReview.<|im_end|>\n<|im_start|>assistant\n");
}

/* Llama 3.1-3.3: the system block is always there, with the template's own date fallback. */
static void render_llama31(void)
{
    expect_render(CHAT_LLAMA31, conversation, N_CONVERSATION, 1, "<|begin_of_text|>",
                  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nReview this diff.<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_render(CHAT_LLAMA31, conversation + 1, 1, 1, "",
                  "<|start_header_id|>system<|end_header_id|>\n\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Phi-4-mini: Phi-3's tags without the newlines, every role written as it is. */
static void render_phi4(void)
{
    expect_render(CHAT_PHI4, conversation, N_CONVERSATION, 1, "<s>",
                  "<|system|>You are terse.<|end|><|user|>Hi there<|end|>"
                  "<|assistant|>Hello! How can I help?<|end|><|user|>Review this diff.\n<|end|><|assistant|>");
    expect_render(CHAT_PHI4, conversation + 1, 1, 0, "", "<|user|>Hi there<|end|><|endoftext|>");
}

/* Template sources (real ones, some shortened to their distinctive parts). */
static const char smollm2_template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static const char qwen25_template[] =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not "
    "loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' "
    "}}\n{%- endif %}\n";

static const char plain_chatml_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static const char llama3_template[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

static const char llama2_template[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
    "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = "
    "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif "
    "%}{% endfor %}";

static const char mistral_template[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% endif %}{% endfor %}";

static const char gemma_template[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
    "endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else "
    "%}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

static const char phi3_template[] =
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif "
    "message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor "
    "%}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

static const char zephyr_template[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

static const char qwen3_template[] =
    "{%- if messages[0].role == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0].content + "
    "'<|im_end|>\\n' }}\n{%- endif %}\n{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length "
    "- 1) %}\n{%- for message in messages %}\n    {%- if message.content is string %}\n        {%- set content = "
    "message.content %}\n    {%- endif %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and "
    "not loop.first) %}\n        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {%- set reasoning_content = '' %}\n        {%- if "
    "'</think>' in content %}\n            {%- set reasoning_content = "
    "content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n            {%- set "
    "content = content.split('</think>')[-1].lstrip('\\n') %}\n        {%- endif %}\n        {{- '<|im_start|>' + "
    "message.role + '\\n' + content }}\n        {{- '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if "
    "add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking is defined and "
    "enable_thinking is false %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}";

/* Qwen3-4B-Instruct-2507: the same history handling, no thinking switch. */
static const char qwen3_instruct_template[] =
    "{%- for message in messages %}\n    {%- if message.role == \"assistant\" %}\n        {%- if '</think>' in "
    "content %}\n            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n        {%- endif "
    "%}\n    {%- endif %}\n    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}\n{%- "
    "endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}";

static const char llama32_template[] =
    "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n        {%- set "
    "date_string = strftime_now(\"%d %b %Y\") %}\n    {%- else %}\n        {%- set date_string = \"26 Jul 2024\" "
    "%}\n    {%- endif %}\n{%- endif %}\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set "
    "system_message = \"\" %}\n{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- "
    "\"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{{- "
    "system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}";

static const char gemma3_template[] =
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- set first_user_prefix = "
    "messages[0]['content'] + '\n\n' -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set "
    "first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in "
    "loop_messages -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    "
    "{%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + "
    "'\n' + (first_user_prefix if loop.first else \"\") }}\n    {{ message['content'] | trim }}\n    {{ "
    "'<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- "
    "endif -%}\n";

static const char phi4_mini_template[] =
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is "
    "not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' "
    "+ '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% "
    "endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

static const char alpaca_template[] =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + "
    "'\n\n' }}{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + '\n\n' }}{% endif "
    "%}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}";

static void expect_detect(const char *text, chat_template_kind want, const char *what)
{
    chat_template_kind got = chat_template_detect(text, text ? strlen(text) : 0);
    EXPECT(got == want, "%s detected as %s, want %s", what, chat_template_name(got), chat_template_name(want));
}

static void detect_families(void)
{
    expect_detect(smollm2_template, CHAT_CHATML, "SmolLM2");
    expect_detect(qwen25_template, CHAT_CHATML, "Qwen2.5");
    expect_detect(plain_chatml_template, CHAT_CHATML, "ChatML");
    expect_detect(llama3_template, CHAT_LLAMA3, "Llama-3");
    expect_detect(llama2_template, CHAT_LLAMA2, "Llama-2");
    expect_detect(mistral_template, CHAT_LLAMA2, "Mistral");
    expect_detect(gemma_template, CHAT_GEMMA, "Gemma");
    expect_detect(phi3_template, CHAT_PHI3, "Phi-3");
    expect_detect(zephyr_template, CHAT_ZEPHYR, "Zephyr");
    expect_detect(qwen3_template, CHAT_QWEN3, "Qwen3");
    expect_detect(qwen3_instruct_template, CHAT_QWEN3_INSTRUCT, "Qwen3-Instruct-2507");
    expect_detect(llama32_template, CHAT_LLAMA31, "Llama-3.2");
    expect_detect(gemma3_template, CHAT_GEMMA, "Gemma-3");
    expect_detect(phi4_mini_template, CHAT_PHI4, "Phi-4-mini");
}

static void detect_unknown_falls_back_to_chatml(void)
{
    expect_detect(alpaca_template, CHAT_CHATML, "Alpaca");
    expect_detect(NULL, CHAT_CHATML, "NULL");
    expect_detect("", CHAT_CHATML, "empty");
    /* the length is honoured: a marker past it does not count */
    EXPECT(chat_template_detect(llama3_template, 10) == CHAT_CHATML, "detection read past len");
}

static void names(void)
{
    EXPECT(strcmp(chat_template_name(CHAT_CHATML), "chatml") == 0, "chatml name");
    EXPECT(strcmp(chat_template_name(CHAT_GEMMA), "gemma") == 0, "gemma name");
    EXPECT(strcmp(chat_template_name(CHAT_TEMPLATE_COUNT), "unknown") == 0, "out of range name");
}

static void expect_default_system(const char *tmpl, const char *want, const char *what)
{
    char *got = NULL;
    int rc = chat_template_default_system(tmpl, tmpl ? strlen(tmpl) : 0, &got);
    if (want) EXPECT(rc == 1 && got && strcmp(got, want) == 0, "%s: got rc %d \"%s\"", what, rc, got ? got : "");
    else EXPECT(rc == 0 && !got, "%s: found a default system prompt \"%s\"", what, got ? got : "");
    free(got);
}

static void default_system_prompts(void)
{
    expect_default_system(smollm2_template, "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                          "SmolLM2");
    expect_default_system(qwen25_template, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                          "Qwen2.5");
    expect_default_system(plain_chatml_template, NULL, "plain ChatML");
    expect_default_system(llama3_template, NULL, "Llama-3");
    expect_default_system(NULL, NULL, "NULL");
}

/* Worst case of the default-system search: every byte of a 1 MiB template
 * belongs to an occurrence of "<|im_start|>system\n", so a search that
 * rescans the rest of the template from each occurrence is quadratic (it
 * took minutes). The search is linear; the results must be what the
 * definition gives: no closing <|im_end|>, nothing found; with one at the
 * end, the first occurrence's text runs to it, later markers included. */
static void default_system_worst_case(void)
{
    static const char unit[] = "<|im_start|>system\n";
    size_t unit_len = sizeof unit - 1, n_units = ((size_t)1 << 20) / unit_len;
    size_t len = n_units * unit_len;
    char *tmpl = malloc(len + sizeof "<|im_end|>");
    REQUIRE(tmpl, "out of memory");
    for (size_t i = 0; i < n_units; i++) memcpy(tmpl + i * unit_len, unit, unit_len);
    tmpl[len] = 0;
    test_watchdog("default_system_worst_case", 60);
    char *got = NULL;
    int rc = chat_template_default_system(tmpl, len, &got);
    EXPECT(rc == 0 && !got, "unterminated: rc %d", rc);
    free(got);

    memcpy(tmpl + len, "<|im_end|>", sizeof "<|im_end|>");
    got = NULL;
    rc = chat_template_default_system(tmpl, strlen(tmpl), &got);
    EXPECT(rc == 1 && got && strlen(got) == len - unit_len && memcmp(got, tmpl + unit_len, len - unit_len) == 0,
           "terminated: rc %d, %zu bytes", rc, got ? strlen(got) : 0);
    free(got);

    const engine_chat_msg user_only[] = {{"user", "Hi"}};
    tmpl[len] = 0; /* unterminated again: rendered as plain ChatML */
    REQUIRE(chat_template_render(tmpl, len, user_only, 1, 1, "", &got) == 0, "render failed");
    EXPECT(strcmp(got, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0, "got \"%.80s\"", got);
    free(got);
    test_watchdog(NULL, 0);
    free(tmpl);
}

static void render_from_template_text(void)
{
    const engine_chat_msg user_only[] = {{"user", "Hi"}};
    char *got = NULL;
    REQUIRE(chat_template_render(smollm2_template, strlen(smollm2_template), user_only, 1, 1, "", &got) == 0,
            "render failed");
    EXPECT(strcmp(got, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                       "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0,
           "SmolLM2 without a system message: got \"%s\"", got);
    free(got);

    const engine_chat_msg with_system[] = {{"system", "Be brief."}, {"user", "Hi"}};
    REQUIRE(chat_template_render(smollm2_template, strlen(smollm2_template), with_system, 2, 1, "", &got) == 0,
            "render failed");
    EXPECT(strcmp(got, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\n") == 0,
           "SmolLM2 with a system message: got \"%s\"", got);
    free(got);

    REQUIRE(chat_template_render(gemma_template, strlen(gemma_template), with_system, 2, 1, "<bos>", &got) == 0,
            "render failed");
    EXPECT(strcmp(got, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n") == 0,
           "Gemma through the template text: got \"%s\"", got);
    free(got);

    REQUIRE(chat_template_render(qwen25_template, strlen(qwen25_template), user_only, 1, 1, "", &got) == 0,
            "render failed");
    EXPECT(strcmp(got, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                       "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0,
           "Qwen2.5 without a system message: got \"%s\"", got);
    free(got);

    REQUIRE(chat_template_render(NULL, 0, user_only, 1, 1, NULL, &got) == 0, "render failed");
    EXPECT(strcmp(got, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0,
           "no template: plain ChatML, got \"%s\"", got);
    free(got);
}

/* The four families of issue 12 through their template text: detection and rendering together, for
 * the prompt a review sends (a system message and one user message). */
static void expect_template_renders(const char *tmpl, const char *bos, const char *want, const char *what)
{
    const engine_chat_msg review[] = {{"system", "You review code."}, {"user", "Diff:\n+ x++;\n"}};
    char *got = NULL;
    REQUIRE(chat_template_render(tmpl, strlen(tmpl), review, 2, 1, bos, &got) == 0 && got, "%s: render failed", what);
    EXPECT(strcmp(got, want) == 0, "%s: got \"%s\"", what, got);
    free(got);
}

static void render_new_families_from_template_text(void)
{
    expect_template_renders(qwen3_template, "",
                            "<|im_start|>system\nYou review code.<|im_end|>\n<|im_start|>user\nDiff:\n+ x++;\n"
                            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
                            "Qwen3");
    expect_template_renders(gemma3_template, "<bos>",
                            "<bos><start_of_turn>user\nYou review code.\n\nDiff:\n+ x++;<end_of_turn>\n"
                            "<start_of_turn>model\n",
                            "Gemma 3");
    expect_template_renders(llama32_template, "<|begin_of_text|>",
                            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge "
                            "Date: December 2023\nToday Date: 26 Jul 2024\n\nYou review code.<|eot_id|>"
                            "<|start_header_id|>user<|end_header_id|>\n\nDiff:\n+ x++;<|eot_id|>"
                            "<|start_header_id|>assistant<|end_header_id|>\n\n",
                            "Llama 3.2");
    expect_template_renders(phi4_mini_template, "",
                            "<|system|>You review code.<|end|><|user|>Diff:\n+ x++;\n<|end|><|assistant|>",
                            "Phi-4-mini");
}

static void empty_conversation(void)
{
    char *got = NULL;
    REQUIRE(chat_template_apply(CHAT_CHATML, NULL, 0, 1, "", &got) == 0 && got, "empty render failed");
    EXPECT(strcmp(got, "<|im_start|>assistant\n") == 0, "got \"%s\"", got);
    free(got);
    REQUIRE(chat_template_apply(CHAT_LLAMA3, NULL, 0, 0, "", &got) == 0 && got, "empty render failed");
    EXPECT(strcmp(got, "") == 0, "got \"%s\"", got);
    free(got);
}

int main(void)
{
    TEST_RUN(render_chatml);
    TEST_RUN(render_llama3);
    TEST_RUN(render_llama2);
    TEST_RUN(render_gemma);
    TEST_RUN(render_phi3);
    TEST_RUN(render_zephyr);
    TEST_RUN(render_qwen3);
    TEST_RUN(render_llama31);
    TEST_RUN(render_phi4);
    TEST_RUN(detect_families);
    TEST_RUN(detect_unknown_falls_back_to_chatml);
    TEST_RUN(names);
    TEST_RUN(default_system_prompts);
    TEST_RUN(default_system_worst_case);
    TEST_RUN(render_from_template_text);
    TEST_RUN(render_new_families_from_template_text);
    TEST_RUN(empty_conversation);
    return test_exit_code();
}
