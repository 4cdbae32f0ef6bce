"""test_chat_e2e.py - `prbot generate --chat` sends the prompt each family's own template renders.

For Qwen3, Gemma 3, Llama 3.x and Phi-4-mini: a tiny random model
(tests/tools/gen_model) carrying that family's chat template (its distinctive
parts, as published with the models) and its BOS convention, then
`prbot generate --chat --system S --prompt P --json` must have evaluated
exactly the tokens of the text the template renders for [system S, user P]
with the generation prompt, written out here by hand from the template. The
BOS a template writes first comes from the tokenizer when the model adds BOS
itself (Llama 3, Gemma), so the text compared starts after it.
"""
import json
import os
import subprocess
import tempfile

from testlib import PRBOT, Skip, case, run_all

GEN = os.path.join(os.environ.get("TOOL_BIN_DIR", "build/tools"), "gen_model")
SYSTEM, USER = "You review code.", "Diff:\n+ x++;\n"

FAMILIES = {
    "qwen3": {
        "template": "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + "
                    "'<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if '</think>' in content %}"
                    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}{%- endfor %}"
                    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is "
                    "defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}",
        "add_bos": False,
        "want": "<|im_start|>system\nYou review code.<|im_end|>\n<|im_start|>user\nDiff:\n+ x++;\n<|im_end|>\n"
                "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    },
    "gemma3": {
        "template": "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
                    "messages[0]['content'] + '\n\n' -%}{%- endif -%}{{ '<start_of_turn>' + role + '\n' + "
                    "(first_user_prefix if loop.first else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
                    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}",
        "add_bos": True,
        "want": "<start_of_turn>user\nYou review code.\n\nDiff:\n+ x++;<end_of_turn>\n<start_of_turn>model\n",
    },
    "llama3.2": {
        "template": "{{- bos_token }}{%- set date_string = \"26 Jul 2024\" %}{{- \"<|start_header_id|>system"
                    "<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" "
                    "+ date_string + \"\\n\\n\" }}{{- system_message }}{{- \"<|eot_id|>\" }}{%- for message in "
                    "messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
                    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}",
        "add_bos": True,
        "want": "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                "Today Date: 26 Jul 2024\n\nYou review code.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Diff:\n+ x++;<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    "phi4-mini": {
        "template": "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message %}{{ '<|' + "
                    "message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + "
                    "'<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
                    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}"
                    "{{ eos_token }}{% endif %}",
        "add_bos": False,
        "want": "<|system|>You review code.<|end|><|user|>Diff:\n+ x++;\n<|end|><|assistant|>",
    },
}


def model_with(tmp, family):
    f = FAMILIES[family]
    tmpl, model = os.path.join(tmp, family + ".jinja"), os.path.join(tmp, family + ".gguf")
    with open(tmpl, "w") as out:
        out.write(f["template"])
    args = [GEN, "--shape", "tiny", "--type", "Q8_0", "--out", model, "--chat-template", tmpl]
    subprocess.run(args + (["--add-bos"] if f["add_bos"] else []), check=True, capture_output=True)
    return model


def check(family):
    if not os.access(GEN, os.X_OK):
        raise Skip(f"{GEN} not built")
    with tempfile.TemporaryDirectory() as tmp:
        model = model_with(tmp, family)
        run = subprocess.run([PRBOT, "generate", "--model", model, "--chat", "--system", SYSTEM, "--prompt", USER,
                              "--json", "--temp", "0", "--max-tokens", "1"], check=True, capture_output=True, text=True)
        sent = json.loads(run.stdout)["prompt_tokens"]
        want = subprocess.run([PRBOT, "tokenize", "--model", model, FAMILIES[family]["want"]], check=True,
                              capture_output=True, text=True).stdout.split()
        assert sent == [int(t) for t in want], f"{family}: sent {sent}, the template's text is {want}"


for _family in FAMILIES:
    def _case(family=_family):
        check(family)
    _case.__name__ = "generate_chat_sends_template_text_" + _family.replace(".", "_").replace("-", "_")
    case(_case)

run_all()
