#!/usr/bin/env bash
# make demo: a newcomer's first command on a fresh machine. Installs what is
# missing, builds prbot, fetches the small default model and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash tests/setup.sh | tail -n 1)"
make -j2
echo "== prbot generate --chat on $(basename "$model")" >&2
./prbot generate --model "$model" --chat --temp 0 --max-tokens 96 \
    --prompt "In two sentences: why should a pull request be small?"
