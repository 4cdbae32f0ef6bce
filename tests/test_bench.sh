#!/usr/bin/env bash
# tests/test_bench.sh - the benchmark tooling works; speed itself is never asserted.
#
# gen_model writes a tiny random model; the `gguf` Python package (an
# independent reader) checks its shapes, the reference quantizer's type mix
# and the weights' scale. Then `prbot bench --json` runs on it and every field
# must be present, positive and consistent with the file and with each other.
source "$(dirname "$0")/lib.sh"
GEN="${TOOL_BIN_DIR:-build/tools}/gen_model"
if [ ! -x "$GEN" ]; then
    skip gen_model "$GEN not built"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for type in Q8_0 Q4_K_M; do
    if "$GEN" --shape tiny --type "$type" --out "$tmp/tiny-$type.gguf" 2>"$tmp/gen.err"; then
        ok "gen_model_writes_$type"
    else
        fail "gen_model_writes_$type" "$(cat "$tmp/gen.err")"
    fi
done
"$GEN" --shape tiny-llama --type Q4_K_M --out "$tmp/tiny-llama-Q4_K_M.gguf" 2>/dev/null
check gen_model_rejects_unknown_shape bash -c "! '$GEN' --shape nope --type Q8_0 --out '$tmp/x.gguf'"

# The file as an independent reader sees it.
if python3 -c 'import gguf, numpy' 2>/dev/null; then
    python3 - "$tmp" <<'EOF'
import sys
import numpy as np
from gguf import GGUFReader, dequantize
tmp = sys.argv[1]
def check(name, cond, why):
    print(f"ok {name}" if cond else f"FAIL {name}: {why}")
r = GGUFReader(f"{tmp}/tiny-Q8_0.gguf")
t = {x.name: x for x in r.tensors}
emb = t.get("token_embd.weight")
check("gen_model_embedding_shape", emb is not None and list(emb.shape) == [256, 2048] and emb.tensor_type.name == "Q8_0",
      emb and (list(emb.shape), emb.tensor_type.name))
check("gen_model_layers", sum(1 for n in t if n.endswith("attn_q.bias")) == 2 and "output.weight" not in t,
      sorted(t)[:6])
toks = r.fields["tokenizer.ggml.tokens"]
check("gen_model_vocab_size", len(toks.data) == 2048, len(toks.data))
w = dequantize(t["blk.0.ffn_up.weight"].data, t["blk.0.ffn_up.weight"].tensor_type)
check("gen_model_weight_scale", 0.005 < float(np.std(w)) < 0.05 and abs(float(np.mean(w))) < 0.005,
      (float(np.mean(w)), float(np.std(w))))
norm = dequantize(t["blk.1.ffn_norm.weight"].data, t["blk.1.ffn_norm.weight"].tensor_type)
check("gen_model_norms_are_ones", np.all(norm == 1.0), norm[:4])
# Q4_K_M: tied embeddings Q6_K; attn_v/ffn_down Q6_K in layer 1 of 2 (i >= 7n/8), Q4_K in layer 0
k = {x.name: x.tensor_type.name for x in GGUFReader(f"{tmp}/tiny-Q4_K_M.gguf").tensors}
want = {"token_embd.weight": "Q6_K", "blk.0.attn_v.weight": "Q4_K", "blk.1.attn_v.weight": "Q6_K",
        "blk.0.ffn_down.weight": "Q4_K", "blk.1.ffn_down.weight": "Q6_K", "blk.0.attn_q.weight": "Q4_K",
        "blk.1.attn_q.bias": "F32"}
check("gen_model_q4_k_m_mix", all(k.get(n) == v for n, v in want.items()),
      {n: k.get(n) for n in want})
# rows of 192 are no whole k-quant block: the reference falls back Q4_K -> Q5_0, Q6_K -> Q8_0
k = {x.name: x.tensor_type.name for x in GGUFReader(f"{tmp}/tiny-llama-Q4_K_M.gguf").tensors}
want = {"token_embd.weight": "Q5_0", "output.weight": "Q8_0", "blk.0.attn_q.weight": "Q5_0",
        "blk.1.attn_v.weight": "Q8_0", "blk.0.ffn_down.weight": "Q4_K", "blk.1.ffn_down.weight": "Q6_K"}
check("gen_model_q4_k_m_fallback", all(k.get(n) == v for n, v in want.items()) and "blk.0.attn_q.bias" not in k,
      {n: k.get(n) for n in want})
EOF
else
    skip gen_model_python_checks "python packages gguf and numpy are not installed"
fi

model="$tmp/tiny-Q8_0.gguf"
[ -s "$model" ] || exit 0

# Usage errors exit 2 with one line.
"$PRBOT" bench >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q 'model' "$tmp/err"; then ok bench_requires_model; else fail bench_requires_model "exit $rc"; fi
"$PRBOT" bench --model "$model" -p x >/dev/null 2>&1
rc=$?
if [ $rc = 2 ]; then ok bench_rejects_bad_number; else fail bench_rejects_bad_number "exit $rc"; fi

if "$PRBOT" bench --model "$model" -p 16 -n 4 --reps 2 --threads 2 --bandwidth-mib 64 --json \
    >"$tmp/bench.json" 2>"$tmp/bench.err"; then
    ok bench_json_runs
    python3 - "$tmp/bench.json" "$model" <<'EOF'
import json, os, sys
path, model = sys.argv[1], sys.argv[2]
def check(name, cond, why):
    print(f"ok {name}" if cond else f"FAIL {name}: {why}")
lines = [l for l in open(path).read().splitlines() if l.strip()]
try:
    r = json.loads(lines[0]) if len(lines) == 1 else None
except ValueError:
    r = None
check("bench_json_one_object", isinstance(r, dict), lines[:2])
if isinstance(r, dict):
    num = ["prefill_tokens_per_s", "decode_tokens_per_s", "mem_bandwidth_gb_s", "bandwidth_ceiling_tokens_per_s",
           "decode_fraction_of_ceiling", "model_bytes", "weight_bytes", "thread_handoff_ns"]
    missing = [k for k in num + ["threads", "isa", "p", "n", "reps", "name", "arch"] if k not in r]
    check("bench_json_fields", not missing, missing)
    if not missing:
        check("bench_json_positive", all(isinstance(r[k], (int, float)) and r[k] > 0 for k in num),
              {k: r[k] for k in num})
        check("bench_json_echoes_settings", (r["threads"], r["p"], r["n"], r["reps"]) == (2, 16, 4, 2),
              (r["threads"], r["p"], r["n"], r["reps"]))
        size = os.path.getsize(model)
        check("bench_json_model_bytes", r["model_bytes"] == size and 0.5 * size < r["weight_bytes"] <= size,
              (r["model_bytes"], r["weight_bytes"], size))
        ceiling = r["mem_bandwidth_gb_s"] * 1e9 / r["weight_bytes"]
        check("bench_json_ceiling_consistent",
              abs(r["bandwidth_ceiling_tokens_per_s"] - ceiling) <= 1e-6 * ceiling,
              (r["bandwidth_ceiling_tokens_per_s"], ceiling))
        # each decode run's share uses the bandwidth passes around it; the median of 2 is their mean
        def paired(runs, bws, bytes_per_token):
            return sum(t * bytes_per_token / (bw * 1e9) for t, bw in zip(runs, bws)) / len(runs)
        bws = r.get("decode_bandwidth_runs_gb_s", [])
        check("bench_json_share_paired",
              len(bws) == 2 and all(b > 0 for b in bws) and
              abs(r["decode_fraction_of_ceiling"] - paired(r["decode_runs"], bws, r["weight_bytes"])) <= 1e-6,
              (bws, r["decode_runs"], r["decode_fraction_of_ceiling"]))
        check("bench_json_runs_recorded", len(r.get("prefill_runs", [])) == 2 and len(r.get("decode_runs", [])) == 2
              and min(r["prefill_runs"]) <= r["prefill_tokens_per_s"] <= max(r["prefill_runs"]),
              (r.get("prefill_runs"), r["prefill_tokens_per_s"]))
        check("bench_json_arch", r["arch"] == "qwen2" and r["isa"] != "", (r["arch"], r["isa"]))
        # decode after the prompt: its own runs, and a ceiling that adds the KV cache it reads
        # (tiny shape: 2 layers x 2 KV heads x 64 x K and V x 2 bytes per position)
        after = r.get("decode_after_prompt_tokens_per_s")
        kv = r.get("kv_bytes_per_position")
        with_kv = r["mem_bandwidth_gb_s"] * 1e9 / (r["weight_bytes"] + (kv or 0) * (16 + 0.5 * 4))
        after_bws = r.get("decode_after_prompt_bandwidth_runs_gb_s", [])
        check("bench_json_after_prompt",
              isinstance(after, (int, float)) and after > 0 and len(r.get("decode_after_prompt_runs", [])) == 2
              and kv == 2 * 2 * 64 * 2 * 2 and len(after_bws) == 2
              and abs(r.get("decode_after_prompt_ceiling_tokens_per_s", 0) - with_kv) <= 1e-6 * with_kv
              and abs(r.get("decode_after_prompt_fraction_of_ceiling_with_kv", 0)
                      - paired(r["decode_after_prompt_runs"], after_bws,
                               r["weight_bytes"] + kv * (16 + 0.5 * 4))) <= 1e-6,
              {k: r.get(k) for k in r if "after" in k or k == "kv_bytes_per_position"})
        # prefill against the int8 ceiling: the tiny shape's layer products per token (2 layers of
        # q 256x256, k and v 256x128, o 256x256, gate and up 256x512, down 512x256), an int8 pass
        # after each prefill run, and each run's share of its own pass (the median of 2 is the mean)
        macs = 2 * (256 * 256 + 2 * 256 * 128 + 256 * 256 + 3 * 256 * 512)
        int8 = r.get("int8_runs_gmac_s", [])
        simd = r["isa"] != "scalar"
        check("bench_json_int8_ceiling",
              r.get("layer_macs_per_token") == macs and len(int8) == 2
              and all((g > 0) == simd for g in int8 + [r.get("int8_gmac_s", 0)])
              and abs(r.get("prefill_ceiling_tokens_per_s", -1) - r.get("int8_gmac_s", 0) * 1e9 / macs) <= 1e-6 * max(1, r.get("prefill_ceiling_tokens_per_s", 1))
              and abs(r.get("prefill_fraction_of_ceiling", -1)
                      - (sum(t * macs / (g * 1e9) for t, g in zip(r["prefill_runs"], int8)) / 2 if simd else 0)) <= 1e-6,
              {k: r.get(k) for k in ("isa", "layer_macs_per_token", "int8_runs_gmac_s", "int8_gmac_s",
                                     "prefill_ceiling_tokens_per_s", "prefill_fraction_of_ceiling", "prefill_runs")})
EOF
else
    fail bench_json_runs "$(tail -n 3 "$tmp/bench.err")"
fi

if "$PRBOT" bench --model "$model" -p 8 -n 2 --reps 1 --bandwidth-mib 16 >"$tmp/table.txt" 2>&1 &&
    grep -q '^prefill *8 ' "$tmp/table.txt" && grep -q '^decode *2 ' "$tmp/table.txt" &&
    grep -q '^decode after 8 *2 ' "$tmp/table.txt"; then
    ok bench_table
else
    fail bench_table "$(head -n 5 "$tmp/table.txt")"
fi

# make bench's script (tests/bench.sh) on the tiny shape, with a stand-in reference build whose
# llama-bench prints fixed figures: the reference gets the same file and settings, and the table
# shows its figures beside prbot's with the right ratios, once per kernel set.
mkdir -p "$tmp/ref/bin" "$tmp/cache"
cat >"$tmp/ref/bin/llama-bench" <<'SH'
#!/bin/sh
echo "$@" >>"$(dirname "$0")/../args"
echo '[{"build_commit":"fake","n_prompt":16,"n_gen":0,"avg_ts":40.0,"samples_ts":[40.0]},
 {"build_commit":"fake","n_prompt":0,"n_gen":4,"avg_ts":8.0,"samples_ts":[8.0]}]'
SH
chmod +x "$tmp/ref/bin/llama-bench"
if PRBOT_CACHE="$tmp/cache" BENCH_SHAPES=tiny BENCH_TYPES=Q8_0 BENCH_BIG_SHAPES= BENCH_MORE_SHAPES= BENCH_REAL= BENCH_E2E=0 \
    BENCH_ISAS="native avx2 native" BENCH_REF="fake=$tmp/ref" BENCH_P=16 BENCH_N=4 BENCH_REPS=1 \
    BENCH_PRBOT_ARGS="--bandwidth-mib 16" PRBOT="$PRBOT" TOOL_BIN_DIR="${TOOL_BIN_DIR:-build/tools}" \
    bash tests/bench.sh >"$tmp/bench.md" 2>"$tmp/bench.log"; then
    ok bench_script_runs
    python3 - "$tmp/bench.md" "$tmp/cache/bench/results.jsonl" "$tmp/ref/args" "$tmp/cache/bench/tiny-Q8_0.gguf" <<'PY'
import json, re, sys
md, results, args, model = open(sys.argv[1]).read(), sys.argv[2], open(sys.argv[3]).read().split("\n"), sys.argv[4]
def check(name, cond, why):
    print(f"ok {name}" if cond else f"FAIL {name}: {why}")
rows = [json.loads(l) for l in open(results) if l.strip()]
ours = [r for r in rows if "reference" not in r]
refs = [r for r in rows if "reference" in r]
sets = [r["isa"] for r in ours]
check("bench_script_kernel_sets_once_each", len(sets) == len(set(sets)) and len(sets) >= 1, sets)
check("bench_script_reference_same_settings",
      len(refs) == 1 and args[0].split() == ["-m", model, "-p", "16", "-n", "4", "-t", "2", "-r", "1", "-o", "json"],
      (len(refs), args[:1]))
tables = md.count("| model | type |")
check("bench_script_one_table_per_set", tables == len(sets) and md.count("fake prefill") == tables, (tables, sets))
lines = [l for l in md.splitlines() if l.startswith("| tiny | Q8_0 |")]
ok = len(lines) == len(ours)
for l, r in zip(lines, ours):
    cells = [c.strip() for c in l.strip("|").split("|")]
    want = [f"{40.0:.1f}", f"{r['prefill_tokens_per_s'] / 40.0:.2f}×", f"{8.0:.1f}", f"{r['decode_tokens_per_s'] / 8.0:.2f}×"]
    ok = ok and cells[-4:] == want
check("bench_script_reference_columns", ok, lines)
PY
else
    fail bench_script_runs "$(tail -n 3 "$tmp/bench.log")"
fi
