"""tests/test_eval.py - the review-quality harness (tests/eval/eval.py).

The fixtures are checked against their own patches; the scoring against
hand-written review.json documents and comments (so the review.json path is
tested before prbot writes one); the harness end to end against stand-in
prbot binaries with and without --output; and once with the real prbot and the
real Qwen2.5-Coder-0.5B model on four fixtures, with a time budget per review
so the case stays bounded in CI (also under the sanitizers). That last case
prints the table and checks that every review ran, never what the model said.
"""
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "eval"))
import eval as harness  # noqa: E402
from testlib import PRBOT, Skip, case, run_all  # noqa: E402

CI_FIXTURES = ["c-off-by-one", "py-mutation-while-iterating", "go-lock-not-released", "ts-clean"]
PHRASES = harness.prompt_phrases(open(os.path.join(harness.ROOT, "prompts", "review.txt")).read())


def fixture(name):
    return harness.load_fixture(name)


@case
def fixtures_cover_the_issue():
    fixtures = [fixture(n) for n in harness.fixture_names()]
    bugs = [f for f in fixtures if f["bug"]]
    clean = [f for f in fixtures if not f["bug"]]
    assert len(bugs) >= 12 and len(clean) >= 3, (len(bugs), len(clean))
    langs = {f["language"] for f in bugs}
    for want in ("C", "Python", "Go", "Rust"):
        assert want in langs, f"no {want} bug fixture"
    assert langs & {"JavaScript", "TypeScript"}, "no JavaScript/TypeScript bug fixture"
    for name in CI_FIXTURES:
        assert name in harness.fixture_names(), name


@case
def fixtures_build_and_mark_added_lines():
    with tempfile.TemporaryDirectory() as tmp:
        for name in harness.fixture_names():
            fx = fixture(name)
            repo = os.path.join(tmp, name)
            base, head = harness.build_repo(fx, repo)
            diff = harness.git(repo, "diff", base, head)
            assert harness.added_lines(diff + "\n") == harness.added_lines(fx["patch"]), name
            if fx["bug"]:
                lo, hi = fx["bug"]["lines"]
                with open(os.path.join(repo, fx["bug"]["file"])) as f:
                    assert len(f.read().splitlines()) >= hi, name


@case
def keywords_do_not_match_the_code_itself():
    # a keyword the diff already contains would be "named" by a model that only quotes the code
    for name in harness.fixture_names():
        fx = fixture(name)
        if not fx["bug"]:
            continue
        flat = " ".join(fx["patch"].split()).lower()
        for k in fx["bug"]["keywords"]:
            assert not re.search(k, flat, re.I), f"{name}: {k!r} matches the patch"


@case
def malformed_fixture_is_one_clear_error():
    fx = fixture("c-off-by-one")
    harness_dir = harness.FIXTURES
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "bad")
        os.makedirs(os.path.join(d, "base"))
        with open(os.path.join(d, "pr.patch"), "w") as f:
            f.write(fx["patch"])
        meta = {k: fx[k] for k in ("language", "title", "description", "bug")}
        meta["bug"] = dict(meta["bug"], lines=[2, 3])  # context of no hunk
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f)
        harness.FIXTURES = tmp
        try:
            harness.load_fixture("bad")
            raise AssertionError("lines outside the patch were accepted")
        except ValueError as e:
            assert "bad: bug lines 2-3 are not added lines" in str(e), e
        finally:
            harness.FIXTURES = harness_dir


def finding(path, line, title, body="", severity="bug", end_line=None, suggestion=None):
    f = {"path": path, "line": line, "severity": severity, "title": title, "body": body}
    if end_line:
        f["end_line"] = end_line
    if suggestion:
        f["suggestion"] = suggestion
    return f


def doc(findings):
    return {"version": 1, "repo": "", "pr": 0, "summary": "Adds a function.", "findings": findings}


@case
def review_json_anchors_within_three_lines():
    fx = fixture("c-off-by-one")  # src/strutil.c lines 29-31
    path, (lo, hi) = fx["bug"]["file"], fx["bug"]["lines"]
    for line, end, want in [(lo, None, True), (hi + 3, None, True), (hi + 4, None, False), (lo - 3, None, True),
                            (lo - 4, None, False), (lo - 10, lo - 3, True), (lo - 10, lo - 4, False)]:
        res = harness.score(fx, "", doc([finding(path, line, "Copy length", end_line=end)]), PHRASES)
        assert res["anchored"] is want, (line, end, res)
        assert res["named"] is False and res["findings"] == 1 and res["false"] is None, res
    for f in (finding("src/user.c", lo, "x"), finding(path, 0, "x")):
        assert harness.score(fx, "", doc([f]), PHRASES)["anchored"] is False, f


@case
def review_json_names_from_title_and_body_only():
    fx = fixture("c-off-by-one")
    path = fx["bug"]["file"]
    named = doc([finding(path, 90, "Writes one byte past the end of dst", "m can equal cap.")])
    res = harness.score(fx, "", named, PHRASES)
    assert res["named"] is True and res["anchored"] is False, res
    by_body = doc([finding(path, 90, "Copy", "This is an off-by-one: use cap - 1.")])
    assert harness.score(fx, "", by_body, PHRASES)["named"] is True
    only_code = doc([finding(path, 29, "Copy", "Looks fine.", suggestion="size_t m = n < cap - 1 ? n : cap - 1;")])
    assert harness.score(fx, "", only_code, PHRASES)["named"] is False


@case
def review_json_false_findings_on_clean():
    fx = fixture("c-clean")
    res = harness.score(fx, "", doc([]), PHRASES)
    assert res == {"findings": 0, "false": 0, "named": None, "anchored": None}, res
    found = [finding("src/text.c", 20, "a"), finding("src/text.c", 22, "b", severity="risk"),
             finding("src/text.c", 24, "c", severity="nit")]
    res = harness.score(fx, "", doc(found), PHRASES)
    assert res["findings"] == 3 and res["false"] == 2, res


def comment(model_text):
    return ("<!-- prbot:review -->\n### prbot review\n\n" + model_text +
            "\n\n<details><summary>Files: 1 reviewed, 0 skipped</summary>\n\n- `src/config.c` modified: "
            "leak\n\n</details>\n\n<sub>Model `m` · leak</sub>\n")


@case
def markdown_scoring_before_output_exists():
    fx = fixture("c-leak-error-path")
    hit = comment("**What changed**: reads whole files.\n\n**Risks and bugs**:\n"
                  "- `src/config.c:31`: buf is leaked when fread fails.\n- `src/config.c:20`: ftell on a pipe.")
    res = harness.score(fx, hit, None, PHRASES)
    assert res == {"findings": 2, "false": None, "named": True, "anchored": None}, res
    # the summary, the file list and the footer are not findings, and an echo of the prompt names nothing
    # (a template of its own: the review prompt asks for JSON now and names no kind of bug)
    instructions = "Only real issues: bugs, wrong logic, security problems, missing error handling, resource leaks, races."
    echo = comment("**What changed**: fixes a leak.\n\n**Risks and bugs**: " + instructions)
    res = harness.score(fx, echo, None, harness.prompt_phrases("[user]\n" + instructions))
    assert res["named"] is False and res["findings"] == 1, res
    none = comment("**What changed**: reads whole files.\n\n**Risks and bugs**: No problems found.")
    assert harness.score(fixture("c-clean"), none, None, PHRASES)["false"] == 0
    prose = comment("**What changed**: x.\n\n**Risks and bugs**: The loop in text.c never ends.")
    assert harness.score(fixture("c-clean"), prose, None, PHRASES)["false"] == 1
    quoted = comment("**Risks and bugs**:\n- `src/text.c:20`: wrong count.\n\n```diff\n+    size_t lines = 0;\n"
                     "+    while (s < end) {\n```\n")
    assert harness.score(fixture("c-clean"), quoted, None, PHRASES)["false"] == 1


# A stand-in prbot: checks it gets a dry run of a real PR repository, prints a
# comment and (when it has --output) writes a review.json with one finding on
# the first changed file, at the line FAKE_LINES gives for the fixture.
FAKE = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
HAS_OUTPUT = %s
args = sys.argv[1:]
if args[:2] == ["review", "--help"]:
    print("  --dry-run\n" + ("  --output DIR\n" if HAS_OUTPUT else ""))
    sys.exit(0)
assert args[0] == "review" and "--dry-run" in args and os.path.isfile(args[args.index("--model") + 1]), args
if os.environ.get("EVAL_PROMPT"):
    assert args[args.index("--prompt") + 1] == os.environ["EVAL_PROMPT"], args
name = os.environ["GITHUB_REPOSITORY"].split("/")[1]
if os.environ.get("FAIL_ON") == name:
    sys.exit("prbot review: the model exploded")
ev = json.load(open(os.environ["GITHUB_EVENT_PATH"]))["pull_request"]
files = subprocess.run(["git", "-C", os.environ["GITHUB_WORKSPACE"], "diff", "--name-only", ev["base"]["sha"],
                        ev["head"]["sha"]], capture_output=True, text=True, check=True).stdout.split()
line = int(dict(kv.split("=") for kv in os.environ["FAKE_LINES"].split(","))[name])
print("<!-- prbot:review -->\n### prbot review\n\n**Risks and bugs**:\n- an off-by-one")
if HAS_OUTPUT:
    finding = {"path": files[0], "line": line, "severity": "bug", "title": "off-by-one here", "body": ""}
    out = args[args.index("--output") + 1]
    json.dump({"version": 1, "findings": [finding]}, open(os.path.join(out, "review.json"), "w"))
'''

FAKE_LINES = "ts-indexof=19,go-lock-not-released=38,py-clean=5"  # bugs at 19 and 34


def run_harness(tmp, has_output, names, **env):
    fake = os.path.join(tmp, "prbot")
    with open(fake, "w") as f:
        f.write(FAKE % has_output)
    os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
    model = os.path.join(tmp, "model.gguf")
    open(model, "w").close()
    saved = dict(os.environ)
    os.environ.update(PRBOT=fake, EVAL_MODEL=model, EVAL_OUT=os.path.join(tmp, "out"), FAKE_LINES=FAKE_LINES, **env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = harness.main(names)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, out.getvalue(), err.getvalue()


def row(table, name):
    line = next(l for l in table.splitlines() if l.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


@case
def harness_reads_review_json_when_output_exists():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = run_harness(tmp, True, ["ts-indexof", "go-lock-not-released", "py-clean"])
        assert rc == 0, err
        assert "findings from review.json" in out, out
        assert row(out, "ts-indexof")[3:7] == ["yes", "yes", "1", "-"], out
        assert row(out, "go-lock-not-released")[3:7] == ["no", "no", "1", "-"], out
        assert row(out, "py-clean")[3:7] == ["-", "-", "1", "1"], out
        assert "named 1/2, anchored 1/2, false findings 1 on 1 clean PRs" in out, out
        assert os.path.isfile(os.path.join(tmp, "out", "ts-indexof", "review.json"))
        with open(os.path.join(tmp, "out", "table.md")) as f:
            assert f.read() in out


@case
def harness_without_output_marks_anchored_na():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = run_harness(tmp, False, ["ts-indexof", "py-clean"])
        assert rc == 0, err
        assert "anchored is n/a" in out and "anchored n/a" in out, out
        assert row(out, "ts-indexof")[3:5] == ["yes", "n/a"], out
        # a prompt of one's own: passed to prbot, and its text is what counts as an echo
        prompt = os.path.join(tmp, "mine.txt")
        with open(prompt, "w") as f:
            f.write("[user]\n{{diff}}\nLook for bugs. An off-by-one, for one.\n")
        rc, out, err = run_harness(tmp, False, ["ts-indexof"], EVAL_PROMPT=prompt)
        assert rc == 0, err
        assert row(out, "ts-indexof")[3:5] == ["no", "n/a"], out


@case
def harness_reports_a_failed_review_and_exits_1():
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = run_harness(tmp, True, ["ts-indexof", "py-clean"], FAIL_ON="py-clean")
        assert rc == 1, (rc, out)
        assert row(out, "py-clean")[3] == "prbot failed", out
        assert "py-clean: prbot review failed: prbot review: the model exploded" in err, err
        assert row(out, "ts-indexof")[3] == "yes", out


@case
def real_model_on_four_fixtures():
    model = harness.default_model()
    if not os.path.isfile(model):
        raise Skip(f"no model at {model} (bash tests/setup.sh fetches it)")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PRBOT=os.path.abspath(PRBOT), EVAL_OUT=tmp, EVAL_TIME_BUDGET="45")
        r = subprocess.run([sys.executable, os.path.join(harness.ROOT, "tests", "eval", "eval.py"), *CI_FIXTURES],
                           env=env, capture_output=True, text=True, timeout=600)
        sys.stdout.write("".join("    " + l + "\n" for l in r.stdout.splitlines()))
        assert r.returncode == 0, r.stderr[-2000:]
        for name in CI_FIXTURES:
            cells = row(r.stdout, name)
            assert cells[3] != "prbot failed", cells
            with open(os.path.join(tmp, name, "comment.md")) as f:
                assert f.read().startswith("<!-- prbot:review -->"), name


run_all()
