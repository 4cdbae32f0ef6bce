#!/usr/bin/env python3
"""coverage_summary.py BUILD - line coverage of engine/ and bot/ from the
.gcda files a --coverage build left in BUILD (gcov --json-format), per file,
per directory, and the functions that never ran (candidates for dead code:
check each against the user paths before removing it)."""
import gzip, json, os, subprocess, sys, tempfile
from collections import defaultdict

build = sys.argv[1] if len(sys.argv) > 1 else "build-cov"
root = os.getcwd()
gcdas = []
for d in ("engine", "bot"):
    for dirpath, _, files in os.walk(os.path.join(build, d)):
        gcdas += [os.path.abspath(os.path.join(dirpath, f)) for f in files if f.endswith(".gcda")]
if not gcdas:
    sys.exit(f"coverage: no .gcda files under {build}/engine or {build}/bot (run make coverage)")

lines = defaultdict(dict)      # source -> line -> executed?
funcs = defaultdict(dict)      # source -> function -> (line, executed?)
with tempfile.TemporaryDirectory() as tmp:
    for gcda in gcdas:
        out = subprocess.run(["gcov", "--json-format", "--stdout", gcda], cwd=tmp, capture_output=True, check=True).stdout
        for chunk in out.splitlines():
            if not chunk.strip():
                continue
            doc = json.loads(chunk)
            for f in doc.get("files", []):
                src = os.path.relpath(os.path.join(root, f["file"]), root) if not os.path.isabs(f["file"]) else os.path.relpath(f["file"], root)
                if not (src.startswith("engine/") or src.startswith("bot/")) or not src.endswith(".c"):
                    continue
                for l in f["lines"]:
                    n = l["line_number"]
                    lines[src][n] = lines[src].get(n, False) or l["count"] > 0
                for fn in f.get("functions", []):
                    name = fn.get("demangled_name") or fn["name"]
                    prev = funcs[src].get(name, (fn["start_line"], False))
                    funcs[src][name] = (fn["start_line"], prev[1] or fn["execution_count"] > 0)

def pct(hit, total):
    return 100.0 * hit / total if total else 100.0

tot = defaultdict(lambda: [0, 0])
print(f"{'file':40} {'lines':>7} {'run':>7} {'cover':>7}")
for src in sorted(lines):
    total, hit = len(lines[src]), sum(lines[src].values())
    top = src.split("/")[0]
    tot[top][0] += hit
    tot[top][1] += total
    print(f"{src:40} {total:7} {hit:7} {pct(hit, total):6.1f}%")
print()
for top in ("engine", "bot"):
    hit, total = tot[top]
    print(f"total {top + '/':34} {total:7} {hit:7} {pct(hit, total):6.1f}%")
print("\nfunctions never run:")
for src in sorted(funcs):
    dead = sorted((line, name) for name, (line, ran) in funcs[src].items() if not ran)
    for line, name in dead:
        print(f"  {src}:{line} {name}")
