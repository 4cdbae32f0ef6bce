#!/usr/bin/env bash
# test_grammar_cli.sh - `prbot generate --grammar FILE` and `--json-schema FILE`
# end to end, as a user runs them:
#   sampled output under a GBNF grammar matches the same language written as a
#   Python regular expression (an independent check);
#   sampled output under a JSON schema parses with Python's json and has the
#   schema's shape, on an SPM and a byte-level BPE model;
#   a bad grammar, a bad schema, both flags, and a dead-end grammar each give
#   one clear line and a non-zero status.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stories="$TESTDATA/models/stories260K.gguf"
qwen2="$TESTDATA/models/tiny-qwen2-Q8_0.gguf"

cat >"$tmp/date.gbnf" <<'EOF'
# an ISO date, then a word in brackets
root  ::= year "-" month "-" day " [" word "]"
year  ::= [12] [0-9]{3}
month ::= "0" [1-9] | "1" [0-2]
day   ::= "0" [1-9] | [12] [0-9] | "3" [01]
word  ::= [a-z\u00e0-\u00ff]{1,12}
EOF
for model in "$stories" "$qwen2"; do
    name=$(basename "$model" .gguf)
    bad=""
    for seed in 1 2 3 4 5 6 7 8; do
        out=$("$PRBOT" generate --model "$model" --prompt "Today is" --grammar "$tmp/date.gbnf" --temp 1.5 \
              --top-k 0 --top-p 1 --min-p 0 --seed "$seed" --max-tokens 100 2>"$tmp/err")
        if ! grep -q '(grammar)\|(eos)' "$tmp/err" ||
           ! python3 -c 'import re,sys; sys.exit(0 if re.fullmatch(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) \[[a-z\u00e0-\u00ff]{1,12}\]", sys.argv[1]) else 1)' "$out"; then
            bad="seed $seed: $(printf %q "$out") $(tail -n 2 "$tmp/err")"
            break
        fi
    done
    if [ -z "$bad" ]; then ok "grammar_cli_date_$name"; else fail "grammar_cli_date_$name" "$bad"; fi
done

cat >"$tmp/schema.json" <<'EOF'
{"type": "object",
 "properties": {
   "summary": {"type": "string", "maxLength": 40},
   "findings": {"type": "array", "maxItems": 2, "items": {
     "type": "object",
     "properties": {
       "path": {"enum": ["src/a.c", "src/b.c"]},
       "line": {"type": "integer", "minimum": 1, "maximum": 999},
       "severity": {"enum": ["bug", "risk", "nit"]},
       "title": {"type": "string", "maxLength": 30, "x-single-line": true},
       "suggestion": {"type": "string", "maxLength": 20}},
     "required": ["path", "line", "severity", "title"]}}},
 "required": ["summary", "findings"]}
EOF
for model in "$stories" "$qwen2"; do
    name=$(basename "$model" .gguf)
    bad=""
    for seed in 1 2 3 4 5; do
        "$PRBOT" generate --model "$model" --prompt "Review:" --json-schema "$tmp/schema.json" --temp 1.2 \
            --seed "$seed" --max-tokens 1900 --json >"$tmp/out.json" 2>"$tmp/err" || { bad="seed $seed: $(tail -n 1 "$tmp/err")"; break; }
        if ! msg=$(python3 - "$tmp/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["stop_reason"] in ("grammar", "eos"), r["stop_reason"]
d = json.loads(r["text"])
assert list(d) == ["summary", "findings"], list(d)
assert isinstance(d["summary"], str) and len(d["summary"]) <= 40
assert len(d["findings"]) <= 2
for f in d["findings"]:
    assert set(f) <= {"path", "line", "severity", "title", "suggestion"}, f
    assert f["path"] in ("src/a.c", "src/b.c") and f["severity"] in ("bug", "risk", "nit"), f
    assert type(f["line"]) is int and 1 <= f["line"] <= 999, f
    assert len(f["title"]) <= 30 and "\n" not in f["title"] and "\r" not in f["title"], f
    assert len(f.get("suggestion", "")) <= 20, f
PY
        ); then
            bad="seed $seed: $msg $(head -c 300 "$tmp/out.json")"
            break
        fi
    done
    if [ -z "$bad" ]; then ok "grammar_cli_schema_$name"; else fail "grammar_cli_schema_$name" "$bad"; fi
done

# errors: one line naming the problem and the file, status 1 (2 for usage)
expect_error() { # NAME WANT_STATUS WANT_TEXT ARGS...
    local name=$1 want_status=$2 want_text=$3; shift 3
    "$PRBOT" generate --model "$stories" --prompt "x" "$@" >"$tmp/out" 2>"$tmp/err"
    local status=$?
    if [ "$status" -eq "$want_status" ] && grep -q -- "$want_text" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -le 2 ]; then
        ok "$name"
    else
        fail "$name" "status $status: $(head -c 300 "$tmp/err")"
    fi
}
printf 'root ::= "a" undefined_rule\n' >"$tmp/bad.gbnf"
expect_error grammar_cli_undefined_rule 1 "undefined rule 'undefined_rule'.*bad.gbnf" --grammar "$tmp/bad.gbnf"
printf 'root ::= root "a" | "b"\n' >"$tmp/left.gbnf"
expect_error grammar_cli_left_recursion 1 "left-recursive" --grammar "$tmp/left.gbnf"
printf '{"type": "string", "pattern": "x"}' >"$tmp/bad.json"
expect_error grammar_cli_bad_schema 1 'unsupported keyword "pattern"' --json-schema "$tmp/bad.json"
expect_error grammar_cli_missing_file 1 "cannot read" --grammar "$tmp/nonexistent.gbnf"
expect_error grammar_cli_both_flags 2 "not both" --grammar "$tmp/bad.gbnf" --json-schema "$tmp/bad.json"
python3 -c '
n = 300
print("root ::= c0")
for i in range(n):
    print(f"c{i} ::= c{i+1} \"!\"")
print(f"c{n} ::= \"a\"")' >"$tmp/deep.gbnf"
expect_error grammar_cli_dead_end 1 "dead end" --grammar "$tmp/deep.gbnf"
