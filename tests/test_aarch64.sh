#!/usr/bin/env bash
# test_aarch64.sh - the engine built for ARM64 and run under qemu, so that an
# ARM runner's answers are checked to be x86's: the kernel tests (both NEON
# kernel sets, with and without SDOT, against their scalar references; the
# detection again on an emulated Cortex-A72, which lacks SDOT) and the golden
# suite (every golden model's prompt tokens, batch logits and greedy text, on
# the ARM64 kernel table: qemu's "max" CPU has SDOT and I8MM, so the best
# level, neoni8mm, with its SMMLA prefill panels and SDOT decode). Needs aarch64-linux-gnu-gcc, qemu-aarch64 and the arm64
# jansson and OpenBLAS the engine links (tests/setup.sh installs them); skips
# with a reason when they are missing. Result names get an "aarch64:" prefix.
#
# Budget: qemu runs this code many times slower than the host, so the golden
# suite runs with --goldens-only (the decode-vs-batch and thread-count checks
# test engine invariants that do not depend on the ISA and run natively in
# test_golden). The sanitizer run (make test-asan sets PRBOT_AARCH64_TESTS=0)
# skips it all: this cross build has no sanitizers, so it would only repeat
# make test's run.
#
# The goldens of the models gen_model writes at test time (tests/golden/) were
# computed from the files the native gen_model writes, so test_golden runs the
# native one ($TOOL_BIN_DIR, as make test builds it) through system(): qemu-user
# hands the exec of an x86 program to the host kernel. A gen_model built for
# ARM64 could round a weight differently (fused multiply-adds) and write
# another model than the one the goldens describe.
source "$(dirname "$0")/lib.sh"
cc=aarch64-linux-gnu-gcc
libdir=/usr/lib/aarch64-linux-gnu
if [ "${PRBOT_AARCH64_TESTS:-1}" = 0 ]; then
    skip aarch64 "PRBOT_AARCH64_TESTS=0 (the sanitizer run; make test runs these)"
    exit 0
fi
if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    skip aarch64_kernels "no $cc or qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The baseline ARMv8-A, as a distribution builds: the kernels that use SDOT are chosen at run time.
flags=(-std=gnu11 -O2 -march=armv8-a -pthread -fno-strict-aliasing -Itests -Iengine
       -I/usr/include/aarch64-linux-gnu/openblas-pthread)

# run NAME BINARY ARGS...: the program under qemu, its result names prefixed.
# The emulated CPU is qemu's "max" (it has the dot-product and int8
# matrix-multiply extensions) unless CPU names another with PREFIX for its
# result names; DOTPROD and I8MM say what that CPU has.
# OpenBLAS on one thread: under qemu its thread pool's start-up spins without returning.
run() {
    local name=$1 prefix=${PREFIX:-aarch64}; shift
    OPENBLAS_NUM_THREADS=1 PRBOT_TEST_DOTPROD=${DOTPROD:-1} PRBOT_TEST_I8MM=${I8MM:-1} qemu-aarch64 -cpu "${CPU:-max}" -L /usr/aarch64-linux-gnu "$@" |
        sed -E "s/^(ok|FAIL|skip) /\1 $prefix:/"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "FAIL $prefix:$name: exited with status $rc"
}

# build NAME SOURCES... LIBS...: one test program; prints its build result
build() {
    local name=$1; shift
    if "$cc" "${flags[@]}" -o "$out/$name" "$@" -lm 2>"$out/$name.err"; then
        ok "aarch64_build_$name"
    else
        fail "aarch64_build_$name" "$(head -c 300 "$out/$name.err") $(head -c 300 "$out/engine.err" 2>/dev/null)"
        return 1
    fi
}

# compile SOURCES...: each engine source once into $out/obj (obj_of names the
# object), two compilers at a time (the machine's cores): every test program
# links the same objects, so none compiles the SIMD kernels again.
mkdir -p "$out/obj"
obj_of() { echo "$out/obj/${1//\//_}.o"; }
compile() {
    local n=0 src
    for src in "$@"; do
        [ ! -e "$(obj_of "$src")" ] || continue
        { "$cc" "${flags[@]}" -c "$src" -o "$(obj_of "$src")" 2>>"$out/engine.err" || echo "$src" >>"$out/engine.failed"; } &
        n=$((n + 1))
        [ $((n % 2)) -ne 0 ] || wait
    done
    wait
}

# The kernel tests link the types and the kernels only.
kernel_objs=()
compile engine/quant.c engine/kernels/*.c
for src in engine/quant.c engine/kernels/*.c; do kernel_objs+=("$(obj_of "$src")"); done
for t in test_kernels test_gemm test_attention test_quant; do
    build "$t" "tests/$t.c" "${kernel_objs[@]}" && run "$t" "$out/$t"
done
# A CPU without SDOT (Cortex-A72, e.g. a Raspberry Pi 4): "neondot" must be refused there;
# one with SDOT but not I8MM (Neoverse N1, e.g. AWS Graviton2): "neoni8mm" must be.
[ ! -x "$out/test_kernels" ] || CPU=cortex-a72 DOTPROD=0 I8MM=0 PREFIX=aarch64-a72 run test_kernels "$out/test_kernels"
[ ! -x "$out/test_kernels" ] || CPU=neoverse-n1 DOTPROD=1 I8MM=0 PREFIX=aarch64-n1 run test_kernels "$out/test_kernels"

# The golden suite links the whole engine (OpenBLAS, jansson for the golden files).
if [ ! -e "$libdir/libjansson.so" ] || { [ ! -e "$libdir/libopenblas.so" ] && [ ! -e "$libdir/openblas-pthread/libopenblas.so" ]; }; then
    skip aarch64_golden "no arm64 libjansson-dev / libopenblas-dev (dpkg --add-architecture arm64; apt-get install libjansson-dev:arm64 libopenblas-dev:arm64)"
    exit 0
fi
compile engine/*.c engine/kernels/*.c
if [ -s "$out/engine.failed" ]; then
    fail aarch64_build_engine "$(tr '\n' ' ' <"$out/engine.failed"): $(head -c 300 "$out/engine.err")"
    exit 0
fi
ok aarch64_build_engine
objs=()
for src in engine/*.c engine/kernels/*.c; do objs+=("$(obj_of "$src")"); done
export TOOL_BIN_DIR="${TOOL_BIN_DIR:-$PWD/build/tools}"
build test_golden tests/test_golden.c "${objs[@]}" -ljansson -lopenblas && run test_golden "$out/test_golden" --goldens-only
