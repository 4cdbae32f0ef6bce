#!/usr/bin/env bash
# tests/coverage.sh BUILD - the second half of `make coverage`: after `make
# test` ran on a --coverage build in BUILD, run the user path the tests do not
# (a dry-run review of this checkout's last commit with the model `make demo`
# uses), then print line coverage of engine/ and bot/, per file and in total,
# and the functions nothing ran. Reads gcov's JSON; writes nothing into the
# tree (gcov runs in a scratch directory).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-cov}"
prbot="$build/prbot"
model="$(bash tests/setup.sh | tail -n 1)"
if [ -s "$model" ] && git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null 2>&1; then
    "$prbot" review --dry-run --model "$model" --repo . --base HEAD~1 --head HEAD \
        --max-tokens 48 --time-budget 120 --exclude 'tests/**' >/dev/null 2>"$build/coverage-review.log" ||
        echo "coverage: the dry-run review failed: $(tail -n 1 "$build/coverage-review.log")" >&2
else
    echo "coverage: no model or no HEAD~1; the dry-run review is left out" >&2
fi
python3 tests/tools/coverage_summary.py "$build"
