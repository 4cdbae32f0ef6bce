#!/usr/bin/env bash
# tests/fuzz/run.sh - runs each libFuzzer target built by `make fuzz` for
# FUZZ_SECONDS and prints one line per target: executions, exec/s, result.
#
#   FUZZ_BUILD=build-fuzz FUZZ_SECONDS=30 [FUZZ_TARGETS="glob comment"] bash tests/fuzz/run.sh
#
# FUZZ_TOTAL_SECONDS, when set, is a budget for the whole run instead: it is
# split evenly between the targets (at least 1 s each), so CI's fuzz step
# stays bounded however many targets are added.
#
# A target's committed seeds (tests/fuzz/corpus/NAME) are run first, so old
# crashes stay fixed; new inputs go to $FUZZ_BUILD/corpus/NAME and crashes to
# $FUZZ_BUILD/crashes/. Exits non-zero when any target fails.
set -u
cd "$(dirname "$0")/../.."
build="${FUZZ_BUILD:-build-fuzz}"
seconds="${FUZZ_SECONDS:-30}"
export PRBOT_TESTDATA="${PRBOT_TESTDATA:-$(cd .. && pwd)/shared/testdata}"
# leaks are errors too; the fuzzer's own limits: 10 s per input, 2 GB per process
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$build/crashes"
targets=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
    targets+=("$name")
done
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ] && [ ${#targets[@]} -gt 0 ]; then
    seconds=$((FUZZ_TOTAL_SECONDS / ${#targets[@]}))
    [ "$seconds" -ge 1 ] || seconds=1
fi
failed=0
summary=()
for name in "${targets[@]}"; do
    bin="$build/fuzz_$name"
    if [ ! -x "$bin" ]; then
        summary+=("FAIL $name: $bin not built")
        failed=1
        continue
    fi
    corpus="$build/corpus/$name"
    mkdir -p "$corpus"
    seeds=()
    [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
    opts=()
    [ -f "tests/fuzz/fuzz_$name.options" ] && read -r -a opts <"tests/fuzz/fuzz_$name.options"
    [ -f "tests/fuzz/fuzz_$name.dict" ] && opts+=("-dict=tests/fuzz/fuzz_$name.dict")
    log="$build/fuzz_$name.log"
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/crashes/$name-" "${opts[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        summary+=("ok $name: ${execs:-?} executions, ${rate:-?} exec/s in ${seconds} s")
    else
        summary+=("FAIL $name: exit $rc after ${execs:-?} executions; see $log and $build/crashes/")
        grep -m 3 -E "ERROR|runtime error|fuzz check failed|SUMMARY" "$log" | sed 's/^/    /' >&2
        failed=1
    fi
done
printf '%s\n' "${summary[@]}"
exit "$failed"
