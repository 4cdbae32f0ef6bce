#!/usr/bin/env python3
"""tests/eval/eval.py - how well does a model review? `make eval` runs this.

Each directory in tests/eval/fixtures/ is one small pull request: base/ is the
tree before it, pr.patch the change (made with `git diff`), meta.json its
title, description, language and the one bug it introduces (file, line range
in the new file, and regular expressions that count as naming the bug; `bug`
is null for a clean PR). For every fixture the harness builds a throwaway git
repository (base commit, then the patch as the PR commit), writes a
pull_request event for it and runs the real thing, `prbot review --dry-run`,
as the Actions job would (a dry run never touches the network). Then it scores
what prbot printed:

  named     a finding matches one of the bug's expressions;
  anchored  a finding on the bug's file within 3 lines of the bug's range;
  false     findings (severity bug or risk) on a clean PR;
  seconds   wall time of the prbot run, model loading included.

With `--output DIR` (the review document, docs/DESIGN.md) the findings come
from DIR/review.json.
Until prbot has that flag they come from the markdown comment: "named" is
matched against the model's risks section and "anchored" is n/a. Before
matching, phrases of the prompt template are cut out of the model's text,
so a model echoing its instructions ("missing error handling, resource
leaks, ...") does not name bugs by accident.

It only reports: the exit status is 1 when a fixture is malformed or prbot
fails, never because of a score. Python and its standard library because the
work is subprocesses, JSON and regular expressions; bash would make the JSON
and the scoring hard to read and C would be three times the code.

Environment: EVAL_MODEL (GGUF; default the Qwen2.5-Coder-0.5B-Instruct that
tests/setup.sh caches), PRBOT (binary, default ./prbot), EVAL_MAX_TOKENS,
EVAL_TIME_BUDGET (seconds per review), EVAL_THREADS, EVAL_PROMPT (a prompt name
or template file, to measure your own prompt), EVAL_OUT (where each
fixture's comment, log and review.json are kept; default build/eval).
Arguments: fixture names to run (default all). Add a fixture by adding a
directory: base/, pr.patch (`git diff` of the change) and meta.json.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "eval", "fixtures")
ANCHOR_SLACK = 3
LANGUAGES = {"C", "Python", "JavaScript", "TypeScript", "Go", "Rust"}


def default_model():
    cache = os.environ.get("PRBOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "prbot")
    return os.path.join(cache, "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")


# ---------------------------------------------------------------- fixtures

def added_lines(patch):
    """{path: (set of added new-file lines, list of (first, last) new-file hunk ranges)}."""
    files, path, new = {}, None, 0
    for line in patch.splitlines():
        if line.startswith("+++ "):
            path = None if line[4:] == "/dev/null" else line[4:].split("/", 1)[1]
            files.setdefault(path, (set(), []))
        elif line.startswith("@@ "):
            m = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", line)
            new = int(m.group(1))
            count = int(m.group(2)) if m.group(2) is not None else 1
            files[path][1].append((new, new + count - 1))
        elif path and line.startswith("+"):
            files[path][0].add(new)
            new += 1
        elif path and line.startswith(" "):
            new += 1
    return files


def load_fixture(name):
    """The fixture's meta.json, checked against its patch; raises ValueError naming the problem."""
    d = os.path.join(FIXTURES, name)
    try:
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(d, "pr.patch")) as f:
            patch = f.read()
    except (OSError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from e
    for key in ("language", "title", "description"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise ValueError(f"{name}: meta.json needs a non-empty {key}")
    if meta["language"] not in LANGUAGES:
        raise ValueError(f"{name}: language {meta['language']!r} is not one of {sorted(LANGUAGES)}")
    if not os.path.isdir(os.path.join(d, "base")):
        raise ValueError(f"{name}: no base/ directory")
    changed = added_lines(patch)
    if not changed:
        raise ValueError(f"{name}: pr.patch changes no file")
    bug = meta.get("bug")
    if bug is not None:
        lo, hi = bug.get("lines", [0, 0])
        if bug.get("file") not in changed:
            raise ValueError(f"{name}: bug file {bug.get('file')!r} is not changed by pr.patch")
        added, hunks = changed[bug["file"]]
        if not 0 < lo <= hi or not any(a <= lo and hi <= b for a, b in hunks) or not added & set(range(lo, hi + 1)):
            raise ValueError(f"{name}: bug lines {lo}-{hi} are not added lines of one hunk of {bug['file']}")
        if not bug.get("keywords"):
            raise ValueError(f"{name}: bug needs keywords")
        for k in bug["keywords"]:
            try:
                re.compile(k)
            except re.error as e:
                raise ValueError(f"{name}: keyword {k!r}: {e}") from e
    meta["name"], meta["dir"], meta["patch"] = name, d, patch
    return meta


def fixture_names():
    return sorted(n for n in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, n)))


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="eval", GIT_AUTHOR_EMAIL="eval@localhost", GIT_COMMITTER_NAME="eval",
               GIT_COMMITTER_EMAIL="eval@localhost", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def build_repo(fx, repo):
    """base/ as the main commit, pr.patch on top; returns (base_sha, head_sha)."""
    shutil.copytree(os.path.join(fx["dir"], "base"), repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "pr")
    git(repo, "apply", "--index", os.path.join(fx["dir"], "pr.patch"))
    git(repo, "commit", "-qm", fx["title"] + "\n\n" + fx["description"])
    return base, git(repo, "rev-parse", "HEAD")


# ---------------------------------------------------------------- scoring

def prompt_phrases(template):
    """Phrases of the prompt's own text (2+ words between punctuation), lower-cased, longest first:
    what an echo would repeat. Cutting them can also cut a model's own "resource leaks"; that costs
    less than counting an echoed instruction as a named bug."""
    text = re.sub(r"\{\{\w+\}\}|\[(system|user)\]", " ", template)
    parts = re.split(r"[.,:;!?()`\"\n]+", text)
    return sorted({" ".join(p.split()).lower() for p in parts if len(p.split()) >= 2}, key=len, reverse=True)


def without_echo(text, phrases):
    flat = " ".join(text.split()).lower()
    for s in phrases:
        flat = flat.replace(s, " ")
    return flat


def model_text(comment):
    """The model's part of the markdown comment: after the heading, before the file list and footer."""
    m = re.search(r"^### .*$", comment, re.M)
    text = comment[m.end():] if m else comment
    end = min([i for i in (text.find("<details><summary>Files"), text.find("\n<sub>")) if i >= 0] or [len(text)])
    return text[:end]


def markdown_findings(comment):
    """(risks section text, number of findings) of a free-text review."""
    text = model_text(comment)
    m = re.search(r"risks and bugs", text, re.I)
    risks = text[m.end():] if m else text
    none = re.compile(r"\bno (problems|issues|bugs)\b|^\W*none\W*$", re.I)
    prose = re.sub(r"^\s*```.*?^\s*```", "", risks, flags=re.M | re.S)  # a quoted diff's + lines are no list
    items = re.findall(r"^\s*(?:[-*+]|\d+\.)\s+(\S.*)$", prose, re.M)
    if items:
        return risks, sum(1 for i in items if not none.search(i))
    rest = re.sub(r"[*_`:#\s]", "", prose)
    return risks, 0 if none.search(risks) or not rest else 1


def names_bug(text, bug, phrases):
    flat = without_echo(text, phrases)
    return any(re.search(k, flat, re.I) for k in bug["keywords"])


def score(fx, comment, review, phrases):
    """{named, anchored, findings, false}; a value is None when it does not apply."""
    bug = fx["bug"]
    if review is not None:
        found = review.get("findings") or []
        serious = [f for f in found if f.get("severity") in ("bug", "risk")]
        res = {"findings": len(found), "false": None if bug else len(serious), "named": None, "anchored": None}
        if bug:
            res["named"] = any(names_bug(f"{f.get('title', '')}\n{f.get('body', '')}", bug, phrases) for f in found)
            lo, hi = bug["lines"]
            res["anchored"] = any(
                f.get("path") == bug["file"] and int(f.get("line") or 0) > 0 and
                int(f["line"]) <= hi + ANCHOR_SLACK and int(f.get("end_line") or f["line"]) >= lo - ANCHOR_SLACK
                for f in found)
        return res
    risks, n = markdown_findings(comment)
    return {"findings": n, "false": None if bug else n, "named": names_bug(risks, bug, phrases) if bug else None,
            "anchored": None}


# ---------------------------------------------------------------- running

def has_output_flag(prbot):
    r = subprocess.run([prbot, "review", "--help"], capture_output=True, text=True)
    return re.search(r"^\s*--output\s", r.stdout, re.M) is not None


def run_fixture(fx, prbot, model, out, use_output, extra_args):
    """Builds the fixture's repository and reviews it; returns (rc, seconds, comment, review or None, err)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    with tempfile.TemporaryDirectory(prefix="prbot-eval-") as tmp:
        repo = os.path.join(tmp, "repo")
        base, head = build_repo(fx, repo)
        full_name = "eval/" + fx["name"]
        event = {"number": 1, "pull_request": {
            "number": 1, "title": fx["title"], "body": fx["description"], "draft": False, "user": {"login": "eval"},
            "base": {"sha": base, "repo": {"full_name": full_name}},
            "head": {"sha": head, "repo": {"full_name": full_name, "fork": False}}}}
        event_path = os.path.join(tmp, "event.json")
        with open(event_path, "w") as f:
            json.dump(event, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_", "RUNNER_"))}
        env.update(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=event_path,
                   GITHUB_REPOSITORY=full_name, GITHUB_WORKSPACE=repo, GITHUB_API_URL="http://127.0.0.1:9",
                   RUNNER_TEMP=tmp)
        args = [prbot, "review", "--dry-run", "--model", model, *extra_args]
        if use_output:
            args += ["--output", out]
        start = time.monotonic()
        r = subprocess.run(args, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
    # in Actions a dry run's body comes between ::stop-commands::TOKEN and ::TOKEN:: (bot/review.c)
    body = re.sub(r"\A::stop-commands::(\w+)\n(.*)\n::\1::\n\Z", r"\2", r.stdout, flags=re.S)
    r = subprocess.CompletedProcess(r.args, r.returncode, body, r.stderr)
    with open(os.path.join(out, "comment.md"), "w") as f:
        f.write(r.stdout)
    with open(os.path.join(out, "stderr.log"), "w") as f:
        f.write(r.stderr)
    err = r.stderr.strip().splitlines()[-1] if r.returncode != 0 and r.stderr.strip() else ""
    review = None
    if use_output and r.returncode == 0:
        try:
            with open(os.path.join(out, "review.json")) as f:
                review = json.load(f)
        except (OSError, ValueError) as e:
            return 1, seconds, r.stdout, None, f"review.json: {e}"
    return r.returncode, seconds, r.stdout, review, err


def yes_no(v):
    return "n/a" if v is None else ("yes" if v else "no")


def table(rows):
    lines = ["| fixture | language | bug | named | anchored | findings | false | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for fx, res, seconds in rows:
        bug = fx["bug"]
        if res is None:
            lines.append(f"| {fx['name']} | {fx['language']} | {bug['kind'] if bug else 'clean'} | prbot failed "
                         f"| | | | {seconds:.1f} |")
            continue
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {:.1f} |".format(
            fx["name"], fx["language"], bug["kind"] if bug else "clean", yes_no(res["named"]) if bug else "-",
            yes_no(res["anchored"]) if bug else "-", res["findings"], "-" if bug else res["false"], seconds))
    return "\n".join(lines)


def summary(rows, use_output):
    scored = [(fx, res) for fx, res, _ in rows if res is not None]
    bugs = [res for fx, res in scored if fx["bug"]]
    clean = [res for fx, res in scored if not fx["bug"]]
    named = sum(1 for r in bugs if r["named"])
    anchored = f"{sum(1 for r in bugs if r['anchored'])}/{len(bugs)}" if use_output else "n/a"
    false = sum(r["false"] for r in clean)
    total = sum(s for _, _, s in rows)
    return (f"named {named}/{len(bugs)}, anchored {anchored}, false findings {false} on {len(clean)} clean PRs, "
            f"{total:.0f} s in all")


def main(argv):
    prbot = os.path.abspath(os.environ.get("PRBOT") or os.path.join(ROOT, "prbot"))
    model = os.environ.get("EVAL_MODEL") or default_model()
    out_root = os.path.abspath(os.environ.get("EVAL_OUT") or os.path.join(ROOT, "build", "eval"))
    if not os.path.isfile(model):
        print(f"eval: no model at {model}: run `bash tests/setup.sh` or set EVAL_MODEL=path.gguf", file=sys.stderr)
        return 1
    if not os.access(prbot, os.X_OK):
        print(f"eval: no prbot binary at {prbot}: run `make` or set PRBOT", file=sys.stderr)
        return 1
    names = argv or fixture_names()
    try:
        fixtures = [load_fixture(n) for n in names]
    except ValueError as e:
        print(f"eval: fixture {e}", file=sys.stderr)
        return 1
    extra = []
    for var, flag in (("EVAL_MAX_TOKENS", "--max-tokens"), ("EVAL_TIME_BUDGET", "--time-budget"),
                      ("EVAL_THREADS", "--threads")):
        if os.environ.get(var):
            extra += [flag, os.environ[var]]
    prompt = os.environ.get("EVAL_PROMPT") or ""
    if prompt:
        extra += ["--prompt", prompt]
    prompt_file = prompt if os.path.isfile(prompt) else os.path.join(ROOT, "prompts", (prompt or "review") + ".txt")
    use_output = has_output_flag(prbot)
    phrases = []
    if os.path.isfile(prompt_file):  # else prbot itself says what is wrong with the name
        with open(prompt_file) as f:
            phrases = prompt_phrases(f.read())
    print(f"eval: {len(fixtures)} fixtures, model {os.path.basename(model)}, "
          + ("findings from review.json (--output)" if use_output
             else "findings from the markdown comment (prbot review has no --output yet: anchored is n/a)"),
          flush=True)
    rows, failures = [], 0
    for fx in fixtures:
        out = os.path.join(out_root, fx["name"])
        rc, seconds, comment, review, err = run_fixture(fx, prbot, model, out, use_output, extra)
        res = score(fx, comment, review, phrases) if rc == 0 else None
        if rc != 0:
            failures += 1
            print(f"eval: {fx['name']}: prbot review failed: {err} (log: {out}/stderr.log)", file=sys.stderr)
        rows.append((fx, res, seconds))
        print(f"eval: {fx['name']}: {seconds:.1f} s", file=sys.stderr, flush=True)
    report = table(rows) + "\n\n" + summary(rows, use_output) + "\n"
    with open(os.path.join(out_root, "table.md"), "w") as f:
        f.write(report)
    print(report, end="")
    print(f"eval: each fixture's comment, log and review.json are in {out_root}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
