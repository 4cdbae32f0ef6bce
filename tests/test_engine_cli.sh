#!/usr/bin/env bash
# test_engine_cli.sh - the engine's CLI contract, driven from outside exactly as
# a person would rerun the conformance checks by hand:
#   prbot logits --tokens  vs  golden logits (tolerance of testdata/README.md)
#   prbot tokenize --raw   vs  the vocab test vectors
#   prbot generate --json  greedy on stories260K vs its golden tokens and text
#   bad input gives one clear line and a non-zero status
# plus the real instruction-tuned model (SmolLM2-135M-Instruct) answering a
# question with its chat template.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# logits via the CLI, compared in numpy
for m in stories260K tiny-llama-Q4_K_M tiny-qwen2-Q8_0; do
    toks=$(python3 -c "import json,sys; print(','.join(map(str, json.load(open('$TESTDATA/golden/$m.json'))['prompt_tokens'])))")
    if "$PRBOT" logits --model "$TESTDATA/models/$m.gguf" --tokens "$toks" --out "$tmp/$m.f32" 2>"$tmp/err"; then
        if msg=$(python3 - "$TESTDATA" "$m" "$tmp/$m.f32" <<'PY'
import json, sys
import numpy as np
td, m, path = sys.argv[1:]
g = json.load(open(f"{td}/golden/{m}.json"))
want = np.fromfile(f"{td}/golden/{m}.logits.f32", dtype="<f4").reshape(len(g["logits_positions"]), g["n_vocab"])
got = np.fromfile(path, dtype="<f4").reshape(len(g["prompt_tokens"]), g["n_vocab"])[g["logits_positions"]]
tol = 0.01 if m == "stories260K" else 0.075  # quantized: see tolerance_for() in test_golden.c
worst = max(float(np.abs(a - b).max() / b.std()) for a, b in zip(got, want))
if not worst <= tol:
    print(f"max |diff| {worst:.4f} std > {tol}")
    sys.exit(1)
PY
        ); then ok "logits_cli_$m"; else fail "logits_cli_$m" "$msg"; fi
    else
        fail "logits_cli_$m" "$(head -c 300 "$tmp/err")"
    fi
done

# tokenize --raw on every vocab's test strings (first 20 of each, through argv and stdin)
for inp in "$TESTDATA"/vocab/*.gguf.inp; do
    v=$(basename "$inp" .gguf.inp)
    if msg=$(python3 - "$PRBOT" "$inp" <<'PY'
import subprocess, sys
prbot, inp = sys.argv[1:]
model = inp[:-4]
texts = open(inp, encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
outs = open(model + ".out", encoding="utf-8").read().split("\n")
for i, (t, o) in enumerate(list(zip(texts, outs))[:20]):
    r = subprocess.run([prbot, "tokenize", "--model", model, "--raw", "--stdin"], input=t.encode(), capture_output=True)
    got = r.stdout.decode().split()
    if r.returncode != 0 or got != o.split():
        print(f"string {i} {t[:30]!r}: got {' '.join(got)[:80]} want {o[:80]}")
        sys.exit(1)
PY
    ); then ok "tokenize_cli_$v"; else fail "tokenize_cli_$v" "$msg"; fi
done

# greedy generate --json on stories260K: first 45 tokens and text exact
out=$("$PRBOT" generate --model "$TESTDATA/models/stories260K.gguf" --temp 0 --max-tokens 45 --json \
      --prompt "Once upon a time, there was a little girl named Lily." 2>"$tmp/err")
if msg=$(python3 - "$TESTDATA" "$out" <<'PY'
import json, sys
td, out = sys.argv[1:]
g = json.load(open(f"{td}/golden/stories260K.json"))
r = json.loads(out)
assert r["prompt_tokens"] == g["prompt_tokens"], "prompt tokens differ"
assert r["tokens"] == g["greedy_tokens"][:45], f"tokens differ: {r['tokens'][:10]}"
want = open(f"{td}/golden/stories260K.greedy.txt", "rb").read().decode("utf-8", "replace")
assert want.startswith(r["text"]) and len(r["text"]) > 100, f"text differs: {r['text'][:60]!r}"
for k in ("prefill_tokens_per_s", "decode_tokens_per_s"):
    assert r[k] > 0, k
PY
); then ok generate_json_stories260K; else fail generate_json_stories260K "$msg $(head -c 200 "$tmp/err")"; fi

# bad input: one line naming the problem, non-zero status
head -c 5000 "$TESTDATA/models/stories260K.gguf" >"$tmp/trunc.gguf"
for args in "generate --model $tmp/trunc.gguf --prompt hi" "generate --model $tmp/missing.gguf --prompt hi" \
            "logits --model $TESTDATA/models/stories260K.gguf --tokens 1,99999 --out $tmp/x.f32" \
            "logits --model $TESTDATA/models/stories260K.gguf --tokens 1,x --out $tmp/x.f32" \
            "generate --model $TESTDATA/vocab/ggml-vocab-gpt-2.gguf --prompt hi" "generate --prompt hi" \
            "generate --model $TESTDATA/models/stories260K.gguf --prompt hi --max-tokens zz"; do
    name="bad_input_$(echo "$args" | awk '{print $1}')_$(( ++n ))"
    "$PRBOT" $args >"$tmp/out" 2>"$tmp/err"; rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && grep -q '^prbot ' "$tmp/err"; then ok "$name"
    else fail "$name" "rc=$rc, $lines lines: $(head -c 200 "$tmp/err")"; fi
done
[ -e "$tmp/x.f32" ] && fail logits_no_partial_output "an output file was left after an error" || ok logits_no_partial_output

# The real instruction-tuned model, greedy, through its own chat template.
# Measured: with no system message SmolLM2's template injects its default one
# and the first answer token is a near-tie ("The" 0.08 ahead of "L" in an exact
# float64 pass), which 8-bit activations - ours and the reference's alike - tip
# to French; other system prompts do the same. An f32-activation build answers
# Paris either way. So the test states a system message the model answers in
# English with, and the README records the behaviour.
smol="${PRBOT_SMOLLM2:-${PRBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prbot}/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -s "$smol" ]; then
    answer=$("$PRBOT" generate --model "$smol" --system "You are a helpful AI assistant." --temp 0 --max-tokens 40 \
             --prompt "What is the capital of France?" 2>"$tmp/err")
    if grep -qi paris <<<"$answer"; then ok smollm2_capital_of_france
    else fail smollm2_capital_of_france "answer: $(head -c 200 <<<"$answer") $(head -c 200 "$tmp/err")"; fi
else
    skip smollm2_capital_of_france "no SmolLM2 model at $smol (bash tests/setup.sh fetches it)"
fi
