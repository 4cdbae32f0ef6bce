#!/usr/bin/env bash
# tests/bench.sh - what `make bench` runs: speed of prbot on the real model shapes,
# beside reference engines run on the same files in the same run.
#
# 1. Generates random-weight GGUF files (tests/tools/gen_model) with the real
#    shapes of DESIGN.md, of Qwen2.5-Coder-3B/7B, and of Qwen3-1.7B,
#    Gemma-3-1B and Phi-4-mini (the other architectures, through the same
#    kernels and threads), cached outside the repository in
#    ${PRBOT_CACHE:-~/.cache/prbot}/bench/<shape>-<type>.gguf and made only
#    once; real model files found in the cache are benchmarked too.
# 2. For each file, one after the other: `prbot bench -p 512 -n 64 --threads 2
#    --reps 3 --json` once per kernel set (BENCH_ISAS: the best this CPU has,
#    then PRBOT_ISA=avx2, what GitHub's hosted x86 runners have), then
#    llama-bench of every reference build given in BENCH_REF on the same file
#    with the same settings, so that every comparison is between runs minutes
#    apart (this VM's speed moves by tens of percent over an hour). Prints one
#    markdown table per kernel set: prefill and decode, the share of the memory
#    bandwidth ceiling that decode reaches (each run against the bandwidth
#    measured just before and after it), decode after the prompt, the old
#    DESIGN.md figures, and each reference's figures with prbot's ratio.
# 3. Times end-to-end `prbot review --dry-run` runs (a prompt of about
#    BENCH_E2E_CASES' token count, 256 generated) per kernel set: median wall
#    time and peak RSS against their targets (RSS: file + KV cache + 150 MB).
# Every result is also written as one JSON object per line to $BENCH_OUT
# (default <cache>/bench/results.jsonl) for the README.
#
# Environment (space-separated lists):
#   BENCH_SHAPES x BENCH_TYPES   small shapes and their type mixes (3 x Q4_0 Q8_0 Q4_K_M)
#   BENCH_BIG_SHAPES x BENCH_BIG_TYPES   qwen2.5-coder-3b qwen2.5-coder-7b x Q4_K_M
#   BENCH_MORE_SHAPES x BENCH_MORE_TYPES the other architectures: qwen3-1.7b gemma3-1b phi4-mini x Q4_K_M
#   BENCH_REAL                   file names in the cache (default: the real Qwen2.5-Coder-0.5B Q4_K_M)
#   BENCH_ISAS                   "native avx2" (native = no PRBOT_ISA); avx2 is skipped where it is native
#   BENCH_REF                    NAME=DIR ... reference builds (DIR/bin/llama-bench or DIR/llama-bench);
#                                docs/PERFORMANCE.md says how to build them; BENCH_REF_ARGS extra flags
#   BENCH_PRBOT_ARGS             extra flags for prbot bench (e.g. --bandwidth-mib 64)
#   BENCH_THREADS (2), BENCH_REPS (3), BENCH_P (512), BENCH_N (64)
#   BENCH_E2E_CASES              SHAPE:TYPE:PROMPT_TOKENS:TARGET_S:RUNS ... (BENCH_E2E=0 skips them)
#   BENCH_E2E_ISAS               kernel sets for the end-to-end runs (default: BENCH_ISAS)
# Speed is never asserted: this only reports.
set -u
cd "$(dirname "$0")/.." || exit 1
PRBOT="${PRBOT:-./prbot}"
TOOL_BIN_DIR="${TOOL_BIN_DIR:-build/tools}"
GEN="$TOOL_BIN_DIR/gen_model"
ROOT="${PRBOT_CACHE:-$HOME/.cache/prbot}"
CACHE="$ROOT/bench"
SHAPES="${BENCH_SHAPES-smollm2-135m qwen2.5-0.5b qwen2.5-coder-1.5b}"
TYPES="${BENCH_TYPES-Q4_0 Q8_0 Q4_K_M}"
BIG_SHAPES="${BENCH_BIG_SHAPES-qwen2.5-coder-3b qwen2.5-coder-7b}"
BIG_TYPES="${BENCH_BIG_TYPES-Q4_K_M}"
MORE_SHAPES="${BENCH_MORE_SHAPES-qwen3-1.7b gemma3-1b phi4-mini}"
MORE_TYPES="${BENCH_MORE_TYPES-Q4_K_M}"
REAL="${BENCH_REAL-Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf}"
ISAS="${BENCH_ISAS-native avx2}"
REFS="${BENCH_REF-}"
THREADS="${BENCH_THREADS:-2}"
REPS="${BENCH_REPS:-3}"
P="${BENCH_P:-512}"
N="${BENCH_N:-64}"
OUT="${BENCH_OUT:-$CACHE/results.jsonl}"
E2E_CASES="${BENCH_E2E_CASES-qwen2.5-0.5b:Q4_K_M:3000:12:3 qwen2.5-coder-3b:Q4_K_M:3700:45:1 qwen2.5-coder-7b:Q4_K_M:3700:120:1}"
E2E_ISAS="${BENCH_E2E_ISAS-$ISAS}"

mkdir -p "$CACHE" || exit 1
: >"$OUT" || exit 1
[ -x "$GEN" ] || { echo "bench: $GEN is missing (run make bench, which builds it)" >&2; exit 1; }
[ -x "$PRBOT" ] || { echo "bench: $PRBOT is missing (run make)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# model_path SHAPE TYPE: generates the file once, prints its path.
model_path() {
    local path="$CACHE/$1-$2.gguf"
    if [ ! -s "$path" ]; then
        echo "bench: generating $path" >&2
        "$GEN" --shape "$1" --type "$2" --out "$path" >&2 || return 1
    fi
    echo "$path"
}

# Reference figures of DESIGN.md: "prefill decode", or "- -" when there is none.
reference() {
    case "$1 $2" in
    "smollm2-135m Q8_0") echo "693 103" ;;
    "smollm2-135m Q4_0") echo "699 135" ;;
    "qwen2.5-0.5b Q4_0") echo "411 59" ;;
    "qwen2.5-0.5b Q8_0") echo "427 41" ;;
    "qwen2.5-0.5b Q4_K_M") echo "163 27" ;;
    *) echo "- -" ;;
    esac
}

# isa_env ISA: the environment assignment that selects it ("" for native).
isa_env() { [ "$1" = native ] && echo "PRBOT_ISA=" || echo "PRBOT_ISA=$1"; }

# isa_name ISA: the kernel set prbot really uses under that setting (a 1-token run on a tiny model).
isa_name() {
    local tiny
    tiny=$(model_path tiny Q4_0) || return 1
    env "$(isa_env "$1")" "$PRBOT" bench --model "$tiny" -p 1 -n 1 --reps 1 --bandwidth-mib 1 --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["isa"])' 2>/dev/null
}

# The kernel sets to run: one that gives what an earlier one gave (avx2 where it is native) runs once.
run_isas="" seen=" "
for isa in $ISAS; do
    name=$(isa_name "$isa")
    if [ -z "$name" ]; then echo "bench: kernel set $isa does not run here (skipped)" >&2; continue; fi
    case "$seen" in *" $name "*) echo "bench: kernel set $isa is $name again (skipped)" >&2; continue ;; esac
    seen="$seen$name " run_isas="$run_isas $isa"
done

# reference_bin DIR: the llama-bench of a build folder.
reference_bin() {
    local d
    for d in "$1/bin/llama-bench" "$1/llama-bench"; do [ -x "$d" ] && { echo "$d"; return 0; }; done
    return 1
}

# ------------------------------------------------------------ the files
rows=()   # "label|type|path"
for shape in $SHAPES; do
    for type in $TYPES; do rows+=("$shape|$type|"); done
done
for shape in $BIG_SHAPES; do
    for type in $BIG_TYPES; do rows+=("$shape|$type|"); done
done
for shape in $MORE_SHAPES; do
    for type in $MORE_TYPES; do rows+=("$shape|$type|"); done
done
for name in $REAL; do
    if [ -s "$ROOT/$name" ]; then rows+=("${name%.gguf}|file|$ROOT/$name"); else echo "bench: no $ROOT/$name (skipped)" >&2; fi
done

# -------------------------------------------------- prbot and references
failed=0
for row in "${rows[@]}"; do
    IFS='|' read -r label type path <<<"$row"
    if [ -z "$path" ]; then
        path=$(model_path "$label" "$type") || { echo "bench: cannot generate $label $type" >&2; failed=1; continue; }
    fi
    read -r ref_p ref_d < <(reference "$label" "$type")
    for isa in $run_isas; do
        echo "bench: $label $type ($isa kernels)" >&2
        # shellcheck disable=SC2086
        if ! env "$(isa_env "$isa")" "$PRBOT" bench --model "$path" -p "$P" -n "$N" --threads "$THREADS" --reps "$REPS" \
            --json ${BENCH_PRBOT_ARGS-} >"$work/one.json" 2>"$work/one.err"; then
            echo "bench: prbot bench failed on $path: $(tail -n 1 "$work/one.err")" >&2
            printf '{"shape":"%s","type":"%s","kernels":"%s","error":"prbot bench failed"}\n' "$label" "$type" "$isa" >>"$OUT"
            failed=1
            continue
        fi
        python3 - "$work/one.json" "$label" "$type" "$isa" "$ref_p" "$ref_d" >>"$OUT" <<'EOF'
import json, sys
path, shape, qtype, isa, ref_p, ref_d = sys.argv[1:]
r = json.load(open(path))
r.update(shape=shape, type=qtype, kernels=isa,
         ref_prefill_tokens_per_s=None if ref_p == "-" else float(ref_p),
         ref_decode_tokens_per_s=None if ref_d == "-" else float(ref_d))
print(json.dumps(r))
EOF
    done
    for ref in $REFS; do
        name=${ref%%=*} dir=${ref#*=}
        if ! bin=$(reference_bin "$dir"); then
            echo "bench: no llama-bench in $dir (reference $name skipped)" >&2
            continue
        fi
        echo "bench: $label $type ($name)" >&2
        # shellcheck disable=SC2086
        if ! "$bin" -m "$path" -p "$P" -n "$N" -t "$THREADS" -r "$REPS" -o json ${BENCH_REF_ARGS-} \
            >"$work/ref.json" 2>"$work/ref.err"; then
            echo "bench: $name's llama-bench failed on $path: $(tail -n 1 "$work/ref.err")" >&2
            printf '{"reference":"%s","shape":"%s","type":"%s","error":"llama-bench failed"}\n' "$name" "$label" "$type" >>"$OUT"
            continue
        fi
        python3 - "$work/ref.json" "$name" "$label" "$type" "$THREADS" >>"$OUT" <<'EOF'
import json, sys
path, name, shape, qtype, threads = sys.argv[1:]
runs = json.load(open(path))
pp = [r for r in runs if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0]
tg = [r for r in runs if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0]
print(json.dumps({"reference": name, "shape": shape, "type": qtype, "threads": int(threads),
                  "build_commit": runs[0].get("build_commit") if runs else None,
                  "prefill_tokens_per_s": pp[0]["avg_ts"] if pp else None,
                  "prefill_runs": pp[0].get("samples_ts") if pp else None,
                  "decode_tokens_per_s": tg[0]["avg_ts"] if tg else None,
                  "decode_runs": tg[0].get("samples_ts") if tg else None}))
EOF
    done
done

# Markdown tables of everything measured so far: one per kernel set.
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = [r for r in rows if "reference" not in r and "end_to_end" not in r]
refs = {}
for r in rows:
    if "reference" in r and "error" not in r:
        refs[(r["reference"], r["shape"], r["type"])] = r
ref_names = list(dict.fromkeys(r["reference"] for r in rows if "reference" in r))
if not ours:
    sys.exit(0)
def fmt(v, spec=".0f"):
    return "—" if v is None else format(v, spec)
def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"
def median_ts(r, key):
    # llama-bench's avg_ts is a mean; prbot reports medians: use the samples' median when there are some
    runs = r.get(key.replace("tokens_per_s", "runs"))
    return statistics.median(runs) if runs else r.get(key)
for isa in dict.fromkeys(r["kernels"] for r in ours):
    sel = [r for r in ours if r["kernels"] == isa]
    first = next((r for r in sel if "error" not in r), None)
    print()
    title = "kernels " + (first["isa"] if first else "?") + (" (native)" if isa == "native" else f" (PRBOT_ISA={isa})")
    print(f"### {title}")
    print()
    p = first["p"] if first else 512
    head = (f"| model | type | file MB | prefill tok/s | int8 GMAC/s | prefill ceiling tok/s | % of it "
            f"| decode tok/s | memory GB/s | hand-off ns | ceiling tok/s "
            f"| % of ceiling | decode after {p} | % of ceiling with KV | DESIGN.md ref prefill / decode |")
    cols = 15
    for n in ref_names:
        head += f" {n} prefill | × | {n} decode | × |"
        cols += 4
    print(head)
    print("|---|---|" + "---:|" * (cols - 2))
    for r in sel:
        if "error" in r:
            print(f"| {r['shape']} | {r['type']} | failed |" + " |" * (cols - 3))
            continue
        pp, dd = r["prefill_tokens_per_s"], r["decode_tokens_per_s"]
        rp, rd = r["ref_prefill_tokens_per_s"], r["ref_decode_tokens_per_s"]
        int8 = r.get("int8_gmac_s") or None
        pc = r.get("prefill_ceiling_tokens_per_s") if int8 else None
        pf = 100 * r["prefill_fraction_of_ceiling"] if int8 else None
        line = (f"| {r['shape']} | {r['type']} | {r['model_bytes'] / 1e6:.0f} | {pp:.1f} "
                f"| {fmt(int8)} | {fmt(pc, '.1f')} | {fmt(pf) + '%' if pf is not None else '—'} | {dd:.1f} "
                f"| {r['mem_bandwidth_gb_s']:.0f} | {r['thread_handoff_ns']:.0f} "
                f"| {r['bandwidth_ceiling_tokens_per_s']:.1f} | {100 * r['decode_fraction_of_ceiling']:.0f}% "
                f"| {r['decode_after_prompt_tokens_per_s']:.1f} "
                f"| {100 * r['decode_after_prompt_fraction_of_ceiling_with_kv']:.0f}% "
                f"| {fmt(rp)} / {fmt(rd)} ({ratio(pp, rp)} / {ratio(dd, rd)}) |")
        for n in ref_names:
            x = refs.get((n, r["shape"], r["type"]))
            xp = median_ts(x, "prefill_tokens_per_s") if x else None
            xd = median_ts(x, "decode_tokens_per_s") if x else None
            line += f" {fmt(xp, '.1f')} | {ratio(pp, xp)} | {fmt(xd, '.1f')} | {ratio(dd, xd)} |"
        print(line)
    if first:
        r = first
        print(f"\n{r['threads']} threads, prefill {r['p']} tokens, decode {r['n']} tokens from an empty cache "
              f"(as llama-bench's tg) and after the prompt, medians of {r['reps']} runs (references: median of "
              f"llama-bench's samples, same file, threads, -p and -n, run right after prbot on each file). "
              f"memory GB/s: the median of the row's bandwidth passes; hand-off ns: one empty parallel region; "
              f"% of ceiling: the median over runs of each run's share of the ceiling set by bandwidth passes "
              f"just before and after it. int8 GMAC/s: what the threads sustain in the kernels' int8 multiply "
              f"step alone, measured after each prefill run; prefill ceiling: that / the layers' weight products "
              f"per token (attention not counted), and % of it: the median of the runs' shares. DESIGN.md ref: llama.cpp (2024) on the original workplace's Xeon.")
EOF

# ------------------------------------------------------ end-to-end review
# make_repo DIR LINES: a git repo whose base..head diff adds LINES lines of code.
make_repo() {
    local dir=$1 lines=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    git -C "$dir" init -q -b main
    git -C "$dir" config user.email bench@example.com
    git -C "$dir" config user.name bench
    printf '/* util.c - helpers */\n#include <stdio.h>\n' >"$dir/util.c"
    git -C "$dir" add util.c
    git -C "$dir" commit -q -m base
    git -C "$dir" branch -q base
    python3 - "$lines" >>"$dir/util.c" <<'EOF'
import sys
for i in range(int(sys.argv[1])):
    print(f"static int scale_value_{i}(int value, int factor) {{ return value * factor + {i % 97}; }}")
EOF
    git -C "$dir" commit -q -am "add scaling helpers"
}

# run_measured OUTFILE CMD...: prints "wall_seconds peak_rss_kb exit_status".
run_measured() {
    local out=$1; shift
    python3 - "$out" "$@" <<'EOF'
import resource, subprocess, sys, time
out = sys.argv[1]
t0 = time.monotonic()
with open(out, "wb") as f:
    rc = subprocess.call(sys.argv[2:], stdout=f, stderr=subprocess.STDOUT)
wall = time.monotonic() - t0
print(f"{wall:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {rc}")
EOF
}

# count_diff_tokens REPO MODEL: tokens of the base..main diff text.
count_diff_tokens() {
    git -C "$1" diff base main | "$PRBOT" tokenize --model "$2" --raw --stdin 2>/dev/null | wc -w
}

# end_to_end SHAPE TYPE PROMPT_TOKENS TARGET_S RUNS ISA
end_to_end() {
    local shape=$1 type=$2 want=$3 target_s=$4 runs=$5 isa=$6 model
    model=$(model_path "$shape" "$type") || return 1
    local repo="$work/repo-$shape" lines=4 diff_tokens=0 target=$((want - 200)) prompt_tokens
    # the prompt template adds its own tokens: measure them on a small diff
    make_repo "$repo" "$lines" || return 1
    diff_tokens=$(count_diff_tokens "$repo" "$model")
    prompt_tokens=$("$PRBOT" review --repo "$repo" --base base --head main --model "$model" --dry-run \
        --max-tokens 1 --threads "$THREADS" 2>&1 >/dev/null | sed -n 's/.*prefilling \([0-9]*\) prompt tokens.*/\1/p')
    if [ -n "$prompt_tokens" ] && [ "$prompt_tokens" -gt "$diff_tokens" ]; then
        target=$((want - (prompt_tokens - diff_tokens)))
    fi
    # then size the diff so that the whole prompt is about PROMPT_TOKENS
    lines=100
    for _ in 1 2 3; do
        make_repo "$repo" "$lines" || return 1
        diff_tokens=$(count_diff_tokens "$repo" "$model")
        [ "$diff_tokens" -gt 0 ] || return 1
        lines=$((lines * target / diff_tokens))
    done
    make_repo "$repo" "$lines" || return 1
    diff_tokens=$(count_diff_tokens "$repo" "$model")
    local walls=() rss_max=0 status=0
    for _ in $(seq "$runs"); do
        echo "bench: end-to-end review, $shape $type ($isa kernels)" >&2
        read -r wall rss rc < <(run_measured "$work/review.out" env "$(isa_env "$isa")" "$PRBOT" review --repo "$repo" \
            --base base --head main --model "$model" --dry-run --max-tokens 256 --threads "$THREADS")
        if [ "$rc" != 0 ]; then status=$rc; break; fi
        walls+=("$wall")
        [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    done
    if [ "$status" != 0 ]; then
        echo "end-to-end review ($shape): prbot review exited $status: $(tail -n 1 "$work/review.out")"
        printf '{"end_to_end":"review","shape":"%s","error":"exit %s"}\n' "$shape" "$status" >>"$OUT"
        return 0
    fi
    python3 - "$model" "$diff_tokens" "$rss_max" "$work/review.out" "$GEN" "$shape" "$target_s" "$isa" "${walls[@]}" \
        >>"$OUT" <<'EOF'
import json, os, re, statistics, subprocess, sys
model, diff_tokens, rss_kb, out, gen, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
target_s, isa = float(sys.argv[7]), sys.argv[8]
walls = [float(w) for w in sys.argv[9:]]
# KV cache as the engine allocates it: F16 K and V, n_ctx = min(training context, 4096)
dims = {l.split()[0]: l.split() for l in subprocess.check_output([gen, "--list"], text=True).splitlines()}[shape]
n_embd, n_layer = int(dims[3]), int(dims[5])
n_head, n_head_kv = map(int, dims[7].split("/"))
kv_dim, n_ctx = n_embd // n_head * n_head_kv, 4096
kv_bytes = 2 * n_layer * n_ctx * kv_dim * 2
size = os.path.getsize(model)
text = open(out, errors="replace").read()
m = re.search(r"prefilling (\d+) prompt tokens", text) or re.search(r"(\d+) prompt tokens", text)
g = re.search(r"decode (\d+) tokens", text) or re.search(r"(\d+) generated", text)
print(json.dumps({
    "end_to_end": "review --dry-run", "shape": shape, "kernels": isa, "model": model, "model_bytes": size,
    "diff_tokens": diff_tokens, "prompt_tokens": int(m.group(1)) if m else None, "max_tokens": 256,
    "generated_tokens": int(g.group(1)) if g else None,
    "wall_s_median": statistics.median(walls), "wall_s_runs": walls, "wall_target_s": target_s,
    "peak_rss_bytes": rss_kb * 1024, "rss_budget_bytes": size + kv_bytes + 150 * 1000 * 1000,
}))
EOF
    python3 - "$OUT" <<'EOF'
import json, os, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"end_to_end"' in l][-1]
pt = r["prompt_tokens"] if r["prompt_tokens"] is not None else f"~{r['diff_tokens']}+template"
gen = r["generated_tokens"] if r["generated_tokens"] is not None else "?"
print(f"\nend-to-end `prbot review --dry-run` ({os.path.basename(r['model'])}, {r['kernels']} kernels, {pt} prompt "
      f"tokens, {gen} generated of at most {r['max_tokens']}):")
print(f"  wall {r['wall_s_median']:.2f} s median of {len(r['wall_s_runs'])} (target <= {r['wall_target_s']:g} s): "
      f"{'met' if r['wall_s_median'] <= r['wall_target_s'] else 'NOT met'}")
print(f"  peak RSS {r['peak_rss_bytes'] / 1e6:.0f} MB (budget file + KV cache + 150 MB = "
      f"{r['rss_budget_bytes'] / 1e6:.0f} MB): {'met' if r['peak_rss_bytes'] <= r['rss_budget_bytes'] else 'NOT met'}")
EOF
}

if [ "${BENCH_E2E:-1}" != 0 ]; then
    for isa in $E2E_ISAS; do
        case " $run_isas " in *" $isa "*) ;; *) continue ;; esac
        for case_ in $E2E_CASES; do
            IFS=: read -r shape type want target_s runs <<<"$case_"
            end_to_end "$shape" "$type" "$want" "$target_s" "$runs" "$isa" ||
                { echo "end-to-end review ($shape): could not be set up" >&2; failed=1; }
        done
    done
fi
echo
echo "results (JSON lines): $OUT"
exit "$failed"
