#!/usr/bin/env bash
# test_aarch64.sh - the engine's kernel tests built for ARM64 and run under
# qemu, so the NEON kernels and the scalar fallbacks of a non-x86 build are
# checked against their references too (runners may be ARM). Needs
# aarch64-linux-gnu-gcc and qemu-aarch64 (tests/setup.sh installs them);
# skips with a reason when they are missing. Result names get an "aarch64:"
# prefix.
source "$(dirname "$0")/lib.sh"
cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    skip aarch64_kernels "no $cc or qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# what the kernel tests link: the types and the kernels (the rest of the engine uses OpenBLAS,
# which the cross toolchain does not carry)
sources=(engine/quant.c engine/kernels/*.c)
for t in test_kernels test_gemm test_attention test_quant; do
    if ! "$cc" -std=gnu11 -O2 -march=armv8.2-a+dotprod -pthread -Itests -Iengine -o "$out/$t" "tests/$t.c" \
        "${sources[@]}" -lm 2>"$out/$t.err"; then
        fail "aarch64_build_$t" "$(head -c 300 "$out/$t.err")"
        continue
    fi
    ok "aarch64_build_$t"
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/$t" | sed -E 's/^(ok|FAIL|skip) /\1 aarch64:/'
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || echo "FAIL aarch64:$t: exited with status $rc"
done
