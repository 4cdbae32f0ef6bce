"""tests/test_review.py - `prbot review` end to end on real git repositories.

Each case builds a repository with the git CLI in a temporary directory and
runs the prbot binary with the real tiny model (stories260K: a trained
story model, not a reviewer, so we check the plumbing: the comment's
structure, the file lists, the footer, logs and exit codes, not its prose).
Actions cases use a fake GitHub API (tests/fake_github.py) on 127.0.0.1.
"""
import json
import re
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fake_github import FakeGitHub  # noqa: E402
from prfixture import git, write  # noqa: E402
from testlib import PRBOT, TESTDATA, Skip, case, run_all  # noqa: E402

MODEL = os.path.join(TESTDATA, "models", "stories260K.gguf")
TOKEN = "ghs_reviewSECRET987"
SHORT_PROMPT = "[system]\nBe brief.\n[user]\nReview {{title}} in {{repo}}.\n{{files}}\n{{diff}}\n"


def make_repo(tmp):
    """main: math.c; feature: math.c modified, util.c added, yarn.lock added, old.txt deleted."""
    repo = os.path.join(tmp, "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main", ".")
    write(os.path.join(repo, "math.c"), "int add(int a, int b)\n{\n    return a + b;\n}\n")
    write(os.path.join(repo, "old.txt"), "obsolete\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "feature")
    write(os.path.join(repo, "math.c"), "int add(int a, int b)\n{\n    return a - b;\n}\n")
    write(os.path.join(repo, "src", "util.c"), "int twice(int x) { return 2 * x; }\n")
    write(os.path.join(repo, "yarn.lock"), "# lock\n")
    git(repo, "rm", "-q", "old.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    head = git(repo, "rev-parse", "HEAD")
    return repo, base, head


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_", "RUNNER_"))}
    env.update(extra)
    return env


def run(args, env, cwd=None):
    return subprocess.run([PRBOT, "review", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def require_engine():
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} not found")
    r = subprocess.run([PRBOT, "tokenize", "--model", MODEL, "hello"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise Skip("the engine cannot tokenize with stories260K yet")


@case
def help_lists_every_flag():
    r = subprocess.run([PRBOT, "review", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for flag in ["--repo", "--base", "--head", "--pr", "--model", "--prompt", "--dry-run", "--threads",
                 "--max-tokens", "--time-budget", "--include", "--exclude", "--strict"]:
        assert flag in r.stdout, f"{flag} missing from --help"


@case
def usage_errors_exit_2():
    r = subprocess.run([PRBOT, "review", "--max-tokens", "0"], capture_output=True, text=True, env=clean_env())
    assert r.returncode == 2 and "--max-tokens" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([PRBOT, "review", "--bogus"], capture_output=True, text=True, env=clean_env())
    assert r.returncode == 2 and "--bogus" in r.stderr, (r.returncode, r.stderr)


@case
def missing_model_is_one_clear_line():
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        r = run(["--dry-run", "--repo", repo], clean_env(HOME=tmp, XDG_CACHE_HOME=os.path.join(tmp, "c")))
        assert r.returncode == 1, r.returncode
        last = r.stderr.strip().splitlines()[-1]
        assert "--model" in last and "PRBOT_MODEL" in last and "model pull" in last, last


@case
def dry_run_local_repo():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        prompt = os.path.join(tmp, "short.txt")
        write(prompt, SHORT_PROMPT)
        r = run(["--dry-run", "--model", MODEL, "--max-tokens", "24", "--prompt", prompt], clean_env(), cwd=repo)
        assert r.returncode == 0, r.stderr[-2000:]
        body = r.stdout
        assert body.startswith("<!-- prbot:short -->\n"), body[:80]
        assert body.count("<!-- prbot:") == 1
        assert "<details><summary>Files: 3 reviewed, 1 skipped</summary>" in body, body
        assert "`math.c` modified, +1 −1" in body and "`src/util.c` added, +1 −0" in body, body
        assert "`yarn.lock` added, +1 −0: lock file" in body, body
        assert "`old.txt` deleted, +0 −1" in body, body
        assert "24 generated" in body and "prompt tokens" in body and "tok/s" in body, body
        assert "dry-run: printed to stdout" in r.stderr.strip().splitlines()[-1]
        assert "----- generated text -----" in r.stderr and "prefill" in r.stderr


@case
def dry_run_builtin_prompts_and_globs():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        for name in ["review", "summary", "joke"]:
            r = run(["--dry-run", "--repo", repo, "--base", "main", "--model", MODEL, "--max-tokens", "8",
                     "--prompt", name, "--exclude", "src/**"], clean_env())
            assert r.returncode == 0, r.stderr[-2000:]
            assert r.stdout.startswith(f"<!-- prbot:{name} -->"), r.stdout[:60]
            assert "`src/util.c` added, +1 −0: excluded by --exclude src/**" in r.stdout, r.stdout
        r = run(["--dry-run", "--repo", repo, "--model", MODEL, "--prompt", "nope"], clean_env())
        assert r.returncode == 1 and "review, summary, joke" in r.stderr, r.stderr


@case
def nothing_reviewable_skips_the_model():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        r = run(["--dry-run", "--repo", repo, "--base", "main", "--model", MODEL, "--include", "*.nothing"],
                clean_env())
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Nothing to review" in r.stdout and "0 generated" in r.stdout, r.stdout
        assert "----- generated text -----" not in r.stderr


@case
def huge_diff_fits_the_context():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        write(os.path.join(repo, "big.c"), "".join(f"int v{i} = {i};\n" for i in range(30000)))
        for i in range(40):
            write(os.path.join(repo, "lib", f"m{i}.c"), f"int m{i}(void) {{ return {i}; }}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "huge")
        prompt = os.path.join(tmp, "short.txt")
        write(prompt, SHORT_PROMPT)
        r = run(["--dry-run", "--repo", repo, "--base", "main", "--model", MODEL, "--max-tokens", "8",
                 "--prompt", prompt], clean_env())
        assert r.returncode == 0, r.stderr[-2000:]
        line = [x for x in r.stderr.splitlines() if "prompt:" in x and "budget" in x]
        assert line, r.stderr[-2000:]
        m = re.search(r"prompt: (\d+) tokens \(budget (\d+)", line[0])
        assert m, line[0]
        tokens, budget = int(m.group(1)), int(m.group(2))
        assert tokens <= budget <= 2048, line[0]
        assert "over token budget" in r.stdout, r.stdout[-3000:]
        assert "`big.c` added, +30000 −0" in r.stdout, "the huge file must be listed"


def actions_env(tmp, gh, event_name, event, **extra):
    path = os.path.join(tmp, "event.json")
    with open(path, "w") as f:
        json.dump(event, f)
    summary = os.path.join(tmp, "summary.md")
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME=event_name, GITHUB_EVENT_PATH=path,
                    GITHUB_REPOSITORY=gh.repo if gh else "octo/demo", GITHUB_TOKEN=TOKEN,
                    GITHUB_API_URL=gh.api_url if gh else "http://127.0.0.1:9", GITHUB_STEP_SUMMARY=summary,
                    GITHUB_OUTPUT=os.path.join(tmp, "output"), RUNNER_TEMP=tmp, PRBOT_RETRY_MAX_WAIT="0")
    env.update(extra)
    return env


def pr_event(number, base, head):
    return {"number": number, "pull_request": {
        "number": number, "title": "Change math", "body": "b", "draft": False, "user": {"login": "alice"},
        "base": {"sha": base, "repo": {"full_name": "octo/demo"}},
        "head": {"sha": head, "repo": {"full_name": "octo/demo", "fork": False}}}}


@case
def actions_pull_request_posts_one_comment():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as gh:
        repo, base, head = make_repo(tmp)
        gh.add_pull(7, head_sha=head, base_sha=base)
        env = actions_env(tmp, gh, "pull_request", pr_event(7, base, head), GITHUB_WORKSPACE=repo)
        for _ in range(2):
            r = run(["--model", MODEL, "--max-tokens", "8"], env)
            assert r.returncode == 0, r.stderr[-2000:]
        comments = gh.comments_of(7)
        assert len(comments) == 1, comments
        assert comments[0]["body"].startswith("<!-- prbot:review -->"), comments[0]["body"][:80]
        assert "::group::" in r.stderr and "::endgroup::" in r.stderr
        assert "comment updated: " in r.stderr.strip().splitlines()[-1], r.stderr[-500:]
        with open(os.path.join(tmp, "output")) as f:
            out = f.read()
        assert "comment-url=" in out and "body-file=" in out, out
        assert TOKEN not in r.stderr + r.stdout


@case
def shallow_checkout_falls_back_to_files_api():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as gh:
        repo, base, head = make_repo(tmp)
        shallow = os.path.join(tmp, "shallow")
        git(tmp, "clone", "-q", "--depth", "1", "--branch", "feature", "file://" + repo, shallow)
        gh.add_pull(9, head_sha=head, base_sha=base)
        gh.add_file(9, "api_only.c", status="added", patch="@@ -0,0 +1 @@\n+int api;", additions=1, deletions=0)
        gh.add_file(9, "Cargo.lock", status="modified")
        gh.add_file(9, "logo.png", status="added", patch=None, additions=0, deletions=0)
        env = actions_env(tmp, gh, "pull_request", pr_event(9, base, head), GITHUB_WORKSPACE=shallow)
        r = run(["--model", MODEL, "--max-tokens", "8"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "not in this checkout" in r.stderr and "files API" in r.stderr, r.stderr[-2000:]
        assert gh.count("GET", "/pulls/9/files") >= 1
        body = gh.comments_of(9)[0]["body"]
        assert "`api_only.c` added, +1 −0" in body and "`Cargo.lock` modified, +1 −1: lock file" in body, body
        assert "PR files API" in body, body
        # no checkout at all (a workflow without actions/checkout): the API too
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        env["GITHUB_WORKSPACE"] = empty
        r = run(["--model", MODEL, "--max-tokens", "4"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        body = gh.comments_of(9)
        assert len(body) == 1 and "no git checkout" in body[0]["body"], body
        env["GITHUB_WORKSPACE"] = shallow
        # --dry-run never touches the network, so it cannot fall back: a clear error instead
        r = run(["--model", MODEL, "--dry-run"], env)
        assert r.returncode == 1 and "fetch-depth" in r.stderr.strip().splitlines()[-1], r.stderr[-500:]


@case
def workflow_dispatch_fetches_the_pull():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as gh:
        repo, base, head = make_repo(tmp)
        gh.add_pull(11, head_sha=head, base_sha=base, title="Dispatched")
        env = actions_env(tmp, gh, "workflow_dispatch", {"inputs": {"pr-number": "11"}}, GITHUB_WORKSPACE=repo)
        r = run(["--model", MODEL, "--max-tokens", "8"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert gh.count("GET", "/pulls/11") >= 1 and len(gh.comments_of(11)) == 1
        assert "PR #11 by alice" in r.stderr, r.stderr[-2000:]


@case
def api_failure_does_not_fail_the_build_unless_strict():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as gh:
        repo, base, head = make_repo(tmp)
        gh.add_pull(5, head_sha=head, base_sha=base)
        env = actions_env(tmp, gh, "pull_request", pr_event(5, base, head), GITHUB_WORKSPACE=repo,
                          PRBOT_RETRY_ATTEMPTS="1")
        gh.fail_next(20, 500)
        r = run(["--model", MODEL, "--max-tokens", "4"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "::warning::" in r.stderr and "--strict" in r.stderr, r.stderr[-1000:]
        with open(env["GITHUB_STEP_SUMMARY"]) as f:
            assert "<!-- prbot:review -->" in f.read()
        r = run(["--model", MODEL, "--max-tokens", "4", "--strict"], env)
        assert r.returncode == 1, r.stderr[-1000:]
        assert TOKEN not in r.stderr + r.stdout


def hostile_repo(tmp, segments=24, depth=250):
    """main: keep.c; pr: a .gitattributes whose pattern makes a backtracking
    matcher exponential on deep paths, a file 40 directories deep, and one
    whose path is 250 components of 255 bytes (64 KB), built with plumbing:
    no checkout could hold it. A PR can push exactly this."""
    repo = os.path.join(tmp, "hostile")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main", ".")
    write(os.path.join(repo, "keep.c"), "int keep;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")

    def obj(args, data):
        env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@e")
        return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True,
                              env=env).stdout.decode().strip()

    pattern = "**/*/" * segments + "b"
    attrs = obj(["hash-object", "-w", "--stdin"], f"{pattern} linguist-generated\n".encode())
    blob = obj(["hash-object", "-w", "--stdin"], b"int hidden = 1;\n")
    leaf = obj(["mktree"], f"100644 blob {blob}\tf.c\n".encode())
    deep, long = leaf, leaf
    for _ in range(39):
        deep = obj(["mktree"], f"040000 tree {deep}\ta\n".encode())
    comp = "a" * 255
    for _ in range(depth - 1):
        long = obj(["mktree"], f"040000 tree {long}\t{comp}\n".encode())
    root = obj(["mktree"], (git(repo, "ls-tree", "HEAD") + f"\n100644 blob {attrs}\t.gitattributes\n"
                            f"040000 tree {deep}\ta\n040000 tree {long}\t{comp}\n").encode())
    commit = obj(["commit-tree", root, "-p", "HEAD", "-m", "hostile"], b"")
    git(repo, "update-ref", "refs/heads/pr", commit)
    return repo


@case
def hostile_attributes_and_a_64kb_path_are_reviewed_in_normal_time():
    # libgit2 read the head's .gitattributes and took minutes on this; now the
    # attributes are the base's and every matcher is linear (the 120 s timeout
    # of run() is the bound; it takes well under a second)
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo = hostile_repo(tmp)
        t0 = time.monotonic()
        r = run(["--dry-run", "--repo", repo, "--base", "main", "--head", "pr", "--model", MODEL,
                 "--max-tokens", "8"], clean_env())
        seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stderr[-2000:]
        body = r.stdout
        assert "<details><summary>Files: 2 reviewed, 1 skipped</summary>" in body, body[-3000:]
        assert "path longer than 4096 bytes" in body and "aaaa…`" in body, body[-3000:]
        assert "/f.c` added, +1 −0\n" in body, "the deep file must be reviewed, not hidden by the PR's attributes"
        assert len(body) < 16384, len(body)
        print(f"hostile PR reviewed in {seconds:.2f} s", file=sys.stderr)


def runner_commands(output):
    """The workflow commands the Actions runner would run in this output: a
    line starting with "::" (after blanks), except between
    ::stop-commands::TOKEN and ::TOKEN::."""
    commands, stop = [], None
    for line in output.splitlines():
        line = line.lstrip()
        if stop is not None:
            if line == f"::{stop}::":
                stop = None
            continue
        m = re.match(r"::([A-Za-z-]+)[^:]*::(.*)", line)
        if not m:
            continue
        if m.group(1) == "stop-commands":
            stop = m.group(2)
        else:
            commands.append(line)
    return commands


@case
def generated_text_cannot_run_workflow_commands():
    tool = os.path.join(os.environ.get("TOOL_BIN_DIR", "build/tools"), "tiny_model")
    if not os.access(tool, os.X_OK):
        raise Skip(f"{tool} not built")
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as gh:
        model = os.path.join(tmp, "says.gguf")
        said = "ok\n::error::pwned\n::add-mask::hunter2\n  ::warning file=a.c::indented\n"
        subprocess.run([tool, "--out", model, "--text", said], check=True)
        repo, base, head = make_repo(tmp)
        # a file name with a line break and a command of its own in it
        write(os.path.join(repo, "x\n::error::from-a-path\n.c"), "int x;\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "path")
        head = git(repo, "rev-parse", "HEAD")
        gh.add_pull(3, head_sha=head, base_sha=base)
        env = actions_env(tmp, gh, "pull_request", pr_event(3, base, head), GITHUB_WORKSPACE=repo)
        tokens = []
        # a free-text prompt posts what the model said; the review prompt's dry run prints its findings
        for args in (["--max-tokens", "3", "--prompt", "summary"],
                     ["--max-tokens", "2", "--dry-run", "--base", base, "--head", head]):
            r = run(["--model", model, *args], env)
            output = r.stderr + r.stdout
            if "summary" in args:
                assert r.returncode == 0, r.stderr[-2000:]
            else:
                # this one-token vocabulary cannot write the findings JSON: the run must end with the
                # grammar's one-line error, and its log (the path above included) must still run nothing
                assert r.returncode == 0 or "grammar: dead end" in r.stderr, r.stderr[-2000:]
            if "summary" in args:  # under the findings grammar the model cannot write this text at all
                assert "::error::pwned" in r.stderr, "the generated text should still stream to the log"
            commands = runner_commands(output)
            assert all(re.match(r"::(group|endgroup|warning|notice)::", c) for c in commands), commands
            assert not [c for c in commands if "pwned" in c or "hunter2" in c or "from-a-path" in c], commands
            tokens.append(set(re.findall(r"::stop-commands::(\S+)", output)))
        # one token per run, drawn afresh (the text cannot know it), long enough not to be guessed
        assert all(len(t) == 1 for t in tokens) and tokens[0] != tokens[1], tokens
        assert all(len(next(iter(t))) >= 32 for t in tokens), tokens
        body = gh.comments_of(3)[0]["body"]
        assert "::error::pwned" in body  # the comment shows what the model said; only the log must not run it


@case
def files_cut_to_nothing_by_the_size_cap_are_not_listed_as_reviewed():
    require_engine()
    with tempfile.TemporaryDirectory() as tmp:
        repo, _, _ = make_repo(tmp)
        write(os.path.join(repo, "one_line.min.txt"), "x" * (300 * 1024) + "\n")  # one 300 KB line
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "long line")
        r = run(["--dry-run", "--repo", repo, "--base", "main", "--model", MODEL, "--max-tokens", "4"], clean_env())
        assert r.returncode == 0, r.stderr[-2000:]
        entry = [x for x in r.stdout.splitlines() if "one_line.min.txt" in x]
        assert entry and "not shown" in entry[0], entry
        reviewed = r.stdout.split("**Reviewed**")[1].split("**Skipped**")[0]
        assert "one_line.min.txt" not in reviewed, reviewed


@case
def actions_environment_errors_name_the_variable():
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_REPOSITORY="o/r",
                    PRBOT_MODEL=MODEL)
    r = run([], env)
    assert r.returncode == 1 and "GITHUB_EVENT_PATH" in r.stderr.strip().splitlines()[-1], r.stderr


run_all()
