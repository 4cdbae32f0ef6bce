#!/usr/bin/env bash
# tests/test_isa_env.sh - PRBOT_ISA reaches the kernels through the command
# layer (bot/main.c -> engine_set_isa): it caps the level, never raises it,
# and an unknown value is one warning line and is otherwise ignored.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "${TOOL_BIN_DIR:-build/tools}/gen_model" --shape tiny --type Q8_0 --out "$tmp/m.gguf" 2>"$tmp/gen.err"; then
    skip isa_env "no tiny model: $(head -c 200 "$tmp/gen.err")"
    exit 0
fi
bench() { "$PRBOT" bench --model "$tmp/m.gguf" -p 4 -n 1 --reps 1 --threads 1 --bandwidth-mib 4 --json; }
isa_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["isa"])'; }

native=$(PRBOT_ISA= bench 2>/dev/null | isa_of)
scalar=$(PRBOT_ISA=scalar bench 2>"$tmp/scalar.err" | isa_of)
if [ "$scalar" = scalar ] && [ ! -s "$tmp/scalar.err" ]; then ok isa_env_caps_to_scalar; else
    fail isa_env_caps_to_scalar "PRBOT_ISA=scalar ran '$scalar': $(head -c 200 "$tmp/scalar.err")"; fi

bogus=$(PRBOT_ISA=avx3 bench 2>"$tmp/bogus.err" | isa_of)
if [ "$bogus" = "$native" ] && [ -n "$native" ] && [ "$(wc -l <"$tmp/bogus.err")" = 1 ] &&
    grep -q '^prbot: PRBOT_ISA=avx3 is not one of scalar, avx2, avx512, avx512vnni, neon, neondot, neoni8mm; ignoring it$' "$tmp/bogus.err"
then ok isa_env_unknown_warns_and_ignores; else
    fail isa_env_unknown_warns_and_ignores "ran '$bogus' (native '$native'): $(head -c 200 "$tmp/bogus.err")"; fi

# A cap above the native level changes nothing.
above=$(case "$(uname -m)" in aarch64) echo neoni8mm ;; *) echo avx512vnni ;; esac)
capped=$(PRBOT_ISA=$above bench 2>/dev/null | isa_of)
if [ "$capped" = "$native" ]; then ok isa_env_never_raises; else
    fail isa_env_never_raises "PRBOT_ISA=$above ran '$capped', native '$native'"; fi
