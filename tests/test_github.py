"""tests/test_github.py - bot/github.c against the fake GitHub API.

Drives the client through tests/tools/gh_tool (a thin CLI over github.h)
against tests/fake_github.py running in this process on 127.0.0.1: comment
upsert across pages, retries on 5xx/429/rate-limit 403, give-up limits,
404 and read-only answers, GHES path prefix, PR and file listing, Link
safety, and that the token never shows up in any output.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fake_github import FakeGitHub  # noqa: E402
from testlib import Skip, case, run_all  # noqa: E402

TOOL = os.path.join(os.environ.get("TOOL_BIN_DIR", "build/tools"), "gh_tool")
TOKEN = "ghs_SECRETtoken_4b1d7e9a"
MARKER = "<!-- prbot:review -->"


def need_tool():
    if not os.access(TOOL, os.X_OK):
        raise Skip(f"{TOOL} not built (make tests-build)")


def run_tool(fake, *args, extra_env=None, body=None, timeout=60):
    need_tool()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_"))}
    env.update({"GITHUB_API_URL": fake.api_url, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": fake.repo,
                "PRBOT_RETRY_MAX_WAIT": "0.05"})
    env.update(extra_env or {})
    argv = [TOOL] + [str(a) for a in args]
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write(body if body is not None else f"{MARKER}\nhello from the test\n")
        body_path = f.name
    argv = [body_path if a == "BODY" else a for a in argv]
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(body_path)
    assert TOKEN not in p.stdout and TOKEN not in p.stderr, "token leaked into output"
    return p


def new_fake(**kw):
    fake = FakeGitHub(repo="octo/demo", token=TOKEN, **kw)
    fake.add_pull(7)
    return fake


@case
def upsert_first_run_creates_exactly_one_comment():
    with new_fake() as fake:
        fake.add_comment(7, "unrelated comment")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("created https://github.example/octo/demo/pull/7#issuecomment-"), p.stdout
        ours = [c for c in fake.comments_of(7) if MARKER in c["body"]]
        assert len(ours) == 1 and len(fake.comments_of(7)) == 2
        assert fake.count("POST") == 1 and fake.count("PATCH") == 0
        for r in fake.requests():
            assert r["headers"].get("Authorization") == f"Bearer {TOKEN}"
            assert r["headers"].get("User-Agent") == "prbot"


@case
def upsert_rerun_updates_in_place_on_a_later_page():
    with new_fake() as fake:
        for i in range(150):
            fake.add_comment(7, f"chatter {i}")
        fake.add_comment(7, f"{MARKER}\nold review", login="github-actions[bot]")
        for i in range(20):
            fake.add_comment(7, f"more chatter {i}")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", body=f"{MARKER}\nnew review\n")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("updated "), p.stdout
        comments = fake.comments_of(7)
        assert len(comments) == 171
        ours = [c for c in comments if MARKER in c["body"]]
        assert len(ours) == 1 and "new review" in ours[0]["body"]
        assert fake.count("POST") == 0 and fake.count("PATCH") == 1
        # page 2 came from following the Link header (GitHub's /repositories/ID form)
        assert fake.count("GET", "/repositories/") == 1, fake.requests()
        # a third run changes nothing in the count either
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0 and len(fake.comments_of(7)) == 171


@case
def upsert_retries_500_and_502():
    with new_fake() as fake:
        fake.fail_next(1, 500)
        fake.fail_next(1, 502, method="POST")
        fake.fail_next(1, 502)
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0, p.stderr
        assert len(fake.comments_of(7)) == 1
        assert "HTTP 500" in p.stderr and "HTTP 502" in p.stderr, p.stderr


@case
def upsert_post_that_failed_after_creating_is_not_duplicated():
    with new_fake() as fake:
        fake.fail_next(1, 502, method="POST", after=True)  # created, but the client sees 502
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0, p.stderr
        assert len(fake.comments_of(7)) == 1, fake.comments_of(7)
        assert p.stdout.startswith("updated "), p.stdout
        assert fake.count("POST") == 1 and fake.count("PATCH") == 1


@case
def retry_after_on_429_is_honoured():
    with new_fake() as fake:
        fake.fail_next(1, 429, headers={"Retry-After": "1"}, method="POST")
        t0 = time.monotonic()
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", extra_env={"PRBOT_RETRY_MAX_WAIT": "5"})
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        assert elapsed >= 0.95, f"retried after {elapsed:.2f}s, Retry-After said 1s"
        assert elapsed < 4.5, f"took {elapsed:.2f}s"
        assert len(fake.comments_of(7)) == 1 and fake.count("POST") == 2


@case
def retry_after_is_capped_by_max_wait():
    with new_fake() as fake:
        fake.fail_next(1, 403, headers={"Retry-After": "3600"},
                       body={"message": "You have exceeded a secondary rate limit."})
        t0 = time.monotonic()
        p = run_tool(fake, "pull", 7, extra_env={"PRBOT_RETRY_MAX_WAIT": "0.2"})
        assert p.returncode == 0, p.stderr
        assert time.monotonic() - t0 < 3


@case
def secondary_rate_limit_403_is_retried():
    with new_fake() as fake:
        fake.fail_next(1, 403, body={"message": "You have exceeded a secondary rate limit. Please wait."},
                       method="POST")
        reset = int(time.time())  # already passed: wait only the minimum
        fake.fail_next(1, 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
                       body={"message": "API rate limit exceeded"}, method="GET")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0, p.stderr
        assert len(fake.comments_of(7)) == 1
        assert "rate limited" in p.stderr


@case
def retries_give_up_after_the_attempt_limit():
    with new_fake() as fake:
        fake.fail_next(50, 502)
        p = run_tool(fake, "pull", 7, extra_env={"PRBOT_RETRY_ATTEMPTS": "3"})
        assert p.returncode == 1, p
        assert "gave up after 3 attempts" in p.stderr, p.stderr
        assert fake.count("GET") == 3


@case
def upsert_gives_up_when_post_keeps_failing():
    with new_fake() as fake:
        fake.fail_next(50, 503, method="POST")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", extra_env={"PRBOT_RETRY_ATTEMPTS": "4"})
        assert p.returncode == 1
        assert fake.count("POST") == 4 and len(fake.comments_of(7)) == 0


@case
def unknown_pr_is_not_found():
    with new_fake() as fake:
        p = run_tool(fake, "upsert", 99, MARKER, "BODY")
        assert p.returncode == 2, p
        assert "#99 not found in octo/demo" in p.stderr, p.stderr
        p = run_tool(fake, "pull", 99)
        assert p.returncode == 2 and "#99 not found" in p.stderr
        assert fake.count("GET") - fake.count("GET", "/user") == 2  # a 404 is not retried


@case
def read_only_token_is_forbidden_not_retried():
    with new_fake() as fake:
        fake.read_only = True
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 3, p
        assert "Resource not accessible by integration" in p.stderr
        assert fake.count("POST") == 1 and len(fake.comments_of(7)) == 0


@case
def bad_token_is_a_clear_error_without_the_token():
    with new_fake() as fake:
        p = run_tool(fake, "pull", 7, extra_env={"GITHUB_TOKEN": TOKEN + "x"})
        assert p.returncode == 1
        assert "HTTP 401" in p.stderr and "token is invalid" in p.stderr, p.stderr
        assert TOKEN not in p.stderr


@case
def ghes_path_prefix_is_kept():
    with new_fake(prefix="/api/v3") as fake:
        for i in range(120):
            fake.add_comment(7, f"c{i}")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0, p.stderr
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", extra_env={"GITHUB_API_URL": fake.api_url + "/"})
        assert p.returncode == 0 and p.stdout.startswith("updated "), p.stdout + p.stderr
        assert len(fake.comments_of(7)) == 121
        assert all(r["path"].startswith("/api/v3/") for r in fake.requests())
        p = run_tool(fake, "pull", 7, extra_env={"GITHUB_API_URL": fake.origin})
        assert p.returncode == 2  # without the prefix the server has no such route


@case
def pull_get_reports_shas_fork_draft_and_bots():
    with new_fake() as fake:
        fake.add_pull(8, head_sha="1" * 40, base_sha="2" * 40, draft=True, fork=True,
                      author="dependabot[bot]", author_type="Bot", title="Bump x")
        p = run_tool(fake, "pull", 8)
        assert p.returncode == 0, p.stderr
        kv = dict(line.split("=", 1) for line in p.stdout.splitlines())
        assert kv["head_sha"] == "1" * 40 and kv["base_sha"] == "2" * 40
        assert kv["draft"] == "1" and kv["fork"] == "1" and kv["author_is_bot"] == "1"
        assert kv["title"] == "Bump x" and kv["head_repo"] == "forker/demo"
        p = run_tool(fake, "pull", 7)
        kv = dict(line.split("=", 1) for line in p.stdout.splitlines())
        assert kv["draft"] == "0" and kv["fork"] == "0" and kv["author_is_bot"] == "0"


@case
def pull_files_follows_all_pages():
    with new_fake() as fake:
        for i in range(248):
            fake.add_file(7, f"src/f{i:03}.c", patch="@@ -1 +1 @@\n-x\n+y")
        fake.add_file(7, "new/name.c", status="renamed", previous_filename="old/name.c")
        fake.add_file(7, "logo.png", status="added", patch=None, additions=0, deletions=0)
        p = run_tool(fake, "files", 7)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[-1] == "total 250", lines[-1]
        assert "renamed new/name.c old/name.c +1 -1 " in p.stdout
        assert "added logo.png - +0 -0 0" in p.stdout
        assert fake.count("GET", "/repos/") == 1 and fake.count("GET", "/repositories/") == 2


@case
def next_link_to_another_host_is_refused():
    with new_fake() as fake:
        fake.fail_next(1, 200, headers={"Link": '<http://198.51.100.1/steal?page=2>; rel="next"'}, body=[],
                       method="GET")
        p = run_tool(fake, "files", 7)
        assert p.returncode == 1 and "refusing to follow" in p.stderr, p.stderr
        assert fake.count("GET") == 1


@case
def next_link_that_only_starts_like_the_api_never_gets_the_token():
    # "http://127.0.0.1:PORT@127.0.0.1:OTHER/..." starts with the API base as a
    # string, but its host is the other server (the part before '@' is a user name)
    with new_fake() as fake, FakeGitHub(repo="octo/demo", token="other") as other:
        for link in (f"{fake.origin}@127.0.0.1:{other.port}/repos/octo/demo/pulls/7/files?page=2",
                     f"{fake.origin}.evil.example/repos/octo/demo/pulls/7/files?page=2",
                     f"{fake.origin}0/repos/octo/demo/pulls/7/files?page=2"):
            fake.fail_next(1, 200, headers={"Link": f'<{link}>; rel="next"'}, body=[], method="GET")
            p = run_tool(fake, "files", 7, timeout=30)
            assert p.returncode == 1 and "refusing to follow" in p.stderr, (link, p.stderr)
        assert other.requests() == [], "the token went to another server"


@case
def next_link_outside_the_ghes_path_is_refused():
    with new_fake(prefix="/api/v3") as fake:
        fake.fail_next(1, 200, headers={"Link": f'<{fake.origin}/api/v3evil/repos/octo/demo/pulls/7/files?page=2>; '
                                                'rel="next"'}, body=[], method="GET")
        p = run_tool(fake, "files", 7)
        assert p.returncode == 1 and "refusing to follow" in p.stderr, p.stderr
        fake.fail_next(1, 200, headers={"Link": f'<{fake.origin}/api/v3/../other/files?page=2>; rel="next"'},
                       body=[], method="GET")
        p = run_tool(fake, "files", 7)
        assert p.returncode == 1 and "refusing to follow" in p.stderr, p.stderr


@case
def upsert_updates_only_its_own_comment():
    with new_fake() as fake:
        spoof = fake.add_comment(7, f"{MARKER}\nI wrote the marker myself", login="mallory")
        other = fake.add_comment(7, f"<!-- prbot:summary -->\n- `{MARKER}.c` added", login="github-actions[bot]")
        quoted = fake.add_comment(7, f"> {MARKER}\n> quoted", login="github-actions[bot]")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY")
        assert p.returncode == 0 and p.stdout.startswith("created "), (p.stdout, p.stderr)
        bodies = {c["id"]: c["body"] for c in fake.comments_of(7)}
        assert bodies[spoof["id"]].endswith("myself") and bodies[other["id"]].endswith("added")
        assert bodies[quoted["id"]].endswith("quoted") and fake.count("PATCH") == 0
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", body=f"{MARKER}\nsecond run\n")
        assert p.returncode == 0 and p.stdout.startswith("updated "), p.stdout
        ours = [c for c in fake.comments_of(7) if c["body"].startswith(MARKER + "\n")
                and c["user"]["login"] == "github-actions[bot]"]
        assert len(ours) == 1 and "second run" in ours[0]["body"]
        assert fake.count("GET", "/user") == 2, "the identity is asked once per run"


@case
def upsert_with_a_persons_token_keeps_that_persons_comment():
    with new_fake(user_login="alice") as fake:
        bot = fake.add_comment(7, f"{MARKER}\nby the Actions token", login="github-actions[bot]")
        mine = fake.add_comment(7, f"{MARKER}\nby alice's token earlier", login="alice")
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", body=f"{MARKER}\nnew\n")
        assert p.returncode == 0 and p.stdout.startswith("updated "), (p.stdout, p.stderr)
        bodies = {c["id"]: c["body"] for c in fake.comments_of(7)}
        assert bodies[mine["id"]].endswith("new\n") and bodies[bot["id"]].endswith("Actions token")


@case
def debug_output_redacts_the_token():
    with new_fake() as fake:
        p = run_tool(fake, "upsert", 7, MARKER, "BODY", extra_env={"PRBOT_DEBUG": "1"})
        assert p.returncode == 0, p.stderr
        assert "Authorization: [redacted]" in p.stderr, p.stderr[:2000]
        assert "X-GitHub-Api-Version: 2022-11-28" in p.stderr


@case
def step_summary_is_appended():
    need_tool()
    with tempfile.TemporaryDirectory() as d:
        summary = os.path.join(d, "summary.md")
        with open(summary, "w") as f:
            f.write("earlier step\n")
        body = os.path.join(d, "body.md")
        with open(body, "w") as f:
            f.write("## review\nall good")
        env = dict(os.environ, GITHUB_STEP_SUMMARY=summary)
        p = subprocess.run([TOOL, "summary", body], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        with open(summary) as f:
            assert f.read() == "earlier step\n## review\nall good\n"
        env.pop("GITHUB_STEP_SUMMARY")
        p = subprocess.run([TOOL, "summary", body], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "GITHUB_STEP_SUMMARY is not set" in p.stderr


# ------------------------------------------------------------ prbot review end to end

MODEL = os.path.join(os.environ.get("PRBOT_TESTDATA", "../shared/testdata"), "models", "stories260K.gguf")
PRBOT = os.environ.get("PRBOT", "./prbot")


def need_review():
    p = subprocess.run([PRBOT, "review", "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Skip("prbot review is not built yet (prbot review --help fails)")
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} missing")


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True)
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def make_checkout(d):
    repo = os.path.join(d, "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    with open(os.path.join(repo, "util.c"), "w") as f:
        f.write("int twice(int x)\n{\n    return 2 * x;\n}\n")
    git(repo, "add", "-A")
    base = git(repo, "commit", "-q", "-m", "base")
    with open(os.path.join(repo, "util.c"), "w") as f:
        f.write("int twice(int x)\n{\n    return x + x + 1;\n}\n")
    git(repo, "add", "-A")
    head = git(repo, "commit", "-q", "-m", "head")
    return repo, base, head


def checkout_for(d):
    """The test repository in d, made on first use: (path, base sha, head sha)."""
    repo = os.path.join(d, "repo")
    if not os.path.exists(repo):
        return make_checkout(d)
    revs = [subprocess.run(["git", "-C", repo, "rev-parse", r], capture_output=True, text=True).stdout.strip()
            for r in ("HEAD~1", "HEAD")]
    return repo, revs[0], revs[1]


def run_review(fake, d, number, event_name="pull_request", event=None, args=(), extra_env=None):
    repo, base, head = checkout_for(d)
    if number in fake.pulls:
        fake.pulls[number]["base"]["sha"], fake.pulls[number]["head"]["sha"] = base, head
    if event is None:
        event = {"action": "synchronize", "number": number, "pull_request": {
            "number": number, "draft": False, "title": "t", "body": "", "user": {"login": "alice", "type": "User"},
            "base": {"sha": base, "ref": "main", "repo": {"full_name": fake.repo}},
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": fake.repo}}}}
    event_path = os.path.join(d, "event.json")
    with open(event_path, "w") as f:
        json.dump(event, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_"))}
    env.update({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": event_path,
                "GITHUB_REPOSITORY": fake.repo, "GITHUB_API_URL": fake.api_url, "GITHUB_TOKEN": TOKEN,
                "GITHUB_WORKSPACE": repo, "GITHUB_STEP_SUMMARY": os.path.join(d, "summary.md"),
                "PRBOT_RETRY_MAX_WAIT": "0.05"})
    env.update(extra_env or {})
    p = subprocess.run([PRBOT, "review", "--repo", repo, "--model", MODEL, "--max-tokens", "16", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert TOKEN not in p.stdout and TOKEN not in p.stderr, "token leaked into prbot review's output"
    return p


def ours(fake, number):
    return [c for c in fake.comments_of(number) if "<!-- prbot:" in c["body"]]


@case
def review_creates_one_comment_then_updates_it_on_a_later_page():
    need_review()
    with new_fake() as fake, tempfile.TemporaryDirectory() as d:
        for i in range(120):
            fake.add_comment(7, f"discussion {i}")
        p = run_review(fake, d, 7)
        assert p.returncode == 0, p.stderr[-2000:]
        assert len(ours(fake, 7)) == 1 and fake.count("POST", "/issues/") == 1
        url = ours(fake, 7)[0]["html_url"]
        assert url in p.stdout + p.stderr, "the result line should show the comment URL"
        p = run_review(fake, d, 7, extra_env={"PRBOT_DEBUG": "1"})
        assert p.returncode == 0, p.stderr[-2000:]
        assert len(ours(fake, 7)) == 1 and fake.count("POST", "/issues/") == 1 and fake.count("PATCH") == 1
        assert len(fake.comments_of(7)) == 121
        assert fake.count("GET", "/repositories/") >= 2  # page 2 was read both times


@case
def review_survives_500_502_429_and_403_retry_after():
    need_review()
    with new_fake() as fake, tempfile.TemporaryDirectory() as d:
        fake.fail_next(1, 500)
        fake.fail_next(1, 502)
        fake.fail_next(1, 429, headers={"Retry-After": "0"})
        fake.fail_next(1, 403, headers={"Retry-After": "0"}, body={"message": "You have exceeded a secondary rate limit"})
        fake.fail_next(1, 502, method="POST")
        p = run_review(fake, d, 7)
        assert p.returncode == 0, p.stderr[-2000:]
        assert len(ours(fake, 7)) == 1, fake.comments_of(7)
        assert fake.faults == [], "not every injected fault was hit"


@case
def review_unknown_pr_is_a_clear_error():
    need_review()
    with new_fake() as fake, tempfile.TemporaryDirectory() as d:
        p = run_review(fake, d, 99, event_name="workflow_dispatch", event={"inputs": {"pr-number": "99"}})
        assert p.returncode != 0
        assert "#99" in p.stderr and "not found" in p.stderr, p.stderr[-1500:]
        p = run_review(fake, d, 99, args=("--strict",))
        assert p.returncode != 0 and "not found" in p.stderr, p.stderr[-1500:]


@case
def review_read_only_token_writes_job_summary_and_exits_0():
    need_review()
    with new_fake() as fake, tempfile.TemporaryDirectory() as d:
        fake.read_only = True
        p = run_review(fake, d, 7)
        assert p.returncode == 0, p.stderr[-2000:]
        with open(os.path.join(d, "summary.md")) as f:
            assert "<!-- prbot:" in f.read()
        assert fake.comments_of(7) == []
        assert "summary" in p.stderr.lower(), p.stderr[-1500:]


@case
def review_ghes_prefix_and_workflow_dispatch_fetch_the_pr_first():
    need_review()
    with new_fake(prefix="/api/v3") as fake, tempfile.TemporaryDirectory() as d:
        p = run_review(fake, d, 7, event_name="workflow_dispatch", event={"inputs": {"pr-number": "7"}})
        assert p.returncode == 0, p.stderr[-2000:]
        reqs = fake.requests()
        assert reqs and reqs[0]["method"] == "GET" and reqs[0]["path"] == "/api/v3/repos/octo/demo/pulls/7", reqs[:2]
        assert all(r["path"].startswith("/api/v3/") for r in reqs)
        assert len(ours(fake, 7)) == 1


run_all()
