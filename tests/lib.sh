# tests/lib.sh - sourced by tests/test_*.sh: result lines in the runner's format.
# check NAME CMD...   runs CMD, prints "ok NAME" or "FAIL NAME: ..." by its status.
# ok NAME / fail NAME WHY / skip NAME WHY print one line each.
ok()   { echo "ok $1"; }
fail() { echo "FAIL $1: ${2:-}"; }
skip() { echo "skip $1: ${2:-}"; }
check() {
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then ok "$name"; else fail "$name" "command failed: $*"; fi
}
PRBOT="${PRBOT:-./prbot}"
TESTDATA="${PRBOT_TESTDATA:-../shared/testdata}"
