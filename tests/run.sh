#!/usr/bin/env bash
# tests/run.sh - runs every test program and script, counts their result lines.
#
# Each test prints "ok NAME", "FAIL NAME: why" or "skip NAME: why" per case.
# Compiled tests are $TEST_BIN_DIR/test_*; script tests are tests/test_*.sh and
# tests/test_*.py (run from the repo root with PRBOT pointing at the binary).
# A program that crashes or exits non-zero without printing a FAIL counts as
# one failure, so a segfault can never pass silently. The last line is the
# summary "N passed, M failed, K skipped".
set -u
cd "$(dirname "$0")/.."
# absolute paths: tests change directory (temporary git repositories)
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/${1#./}" ;; esac; }
export PRBOT="$(absolute "${PRBOT:-./prbot}")"
export PRBOT_TESTDATA="$(absolute "${PRBOT_TESTDATA:-$(cd .. && pwd)/shared/testdata}")"
export TOOL_BIN_DIR="$(absolute "${TOOL_BIN_DIR:-build/tools}")"
bin_dir="$(absolute "${TEST_BIN_DIR:-build/tests}")"
only="${TEST_ONLY:-}"

passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() {
    local name=$1; shift
    [ -n "$only" ] && [[ "$name" != *"$only"* ]] && return
    echo "== $name"
    "$@" >"$log" 2>"$log.err"
    local rc=$?
    cat "$log"
    local p f s
    p=$(grep -c '^ok ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^skip ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc"
        tail -n 20 "$log.err" | sed 's/^/    /'
        f=$((f + 1))
    elif [ "$f" -gt 0 ]; then
        tail -n 20 "$log.err" | sed 's/^/    /'
    fi
    rm -f "$log.err"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

for t in "$bin_dir"/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" bash "$t"
done
for t in tests/test_*.py; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" python3 "$t"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
