"""tests/test_publish.py - posting a review: `prbot post --from DIR` against
the fake GitHub API, with hand-written review documents (no model, so every
expectation is exact).

First the fake itself is checked to refuse what GitHub refuses (a comment
off the diff, a range across hunks, one bad comment sinking the review, a
burst of writes), since every later case relies on it. Then the publishing
path that `prbot review` shares: one review and one summary per run, lines
placed on the diff, --max-inline, a finding never posted twice, a 422 that
never loses the review, secondary rate limits, a 5xx after the review was
created; and the checks `prbot post` makes on an artifact it does not trust.
"""
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fake_github import FakeGitHub  # noqa: E402
from prfixture import PullRequest, actions_env, clean_env, workflow_run_event  # noqa: E402
from testlib import PRBOT, case, run_all  # noqa: E402

TOKEN = "ghs_publishSECRET42"

UTIL_BASE = "".join(f"int f{i}(int x) {{ return x + {i}; }}\n" for i in range(1, 41))
UTIL_NEW = UTIL_BASE.replace("return x + 5;", "return x - 5;").replace(
    "return x + 30;", "return x * 30;\n/* added a */\n/* added b */")
MAIN_NEW = "int main(void)\n{\n    return f5(1);\n}\n"


def make_pr(tmp):
    """util.c: hunks around line 5 (2-8) and line 30 (27-35); main.c added (1-4)."""
    pr = PullRequest(tmp, {"src/util.c": UTIL_BASE, "README.md": "readme\n"})
    pr.commit({"src/util.c": UTIL_NEW, "src/main.c": MAIN_NEW})
    return pr


@contextlib.contextmanager
def pr_on_fake():
    """A temporary directory, the fake GitHub, and make_pr's pull request registered there as #3."""
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as fake:
        pr = make_pr(tmp)
        pr.register(fake, 3)
        yield tmp, fake, pr


def finding(path, line, severity="bug", title="A problem", body="Why it is wrong.", **extra):
    f = {"path": path, "line": line, "severity": severity, "title": title, "body": body}
    f.update(extra)
    return f


def write_doc(tmp, pr, number, findings, summary="Changes f5 and f30 and adds main.", name="artifact", **extra):
    out = os.path.join(tmp, name)
    os.makedirs(out, exist_ok=True)
    doc = {"version": 1, "repo": "octo/demo", "pr": number, "base_sha": pr.base, "head_sha": pr.head,
           "model": "test-model", "prompt": "review", "summary": summary, "findings": findings,
           "files": {"reviewed": ["src/util.c", "src/main.c"], "not_shown": [], "skipped": []},
           "stats": {"prompt_tokens": 100, "generated_tokens": 50, "seconds": 1.5}}
    doc.update(extra)
    with open(os.path.join(out, "review.json"), "w") as f:
        json.dump(doc, f)
    return out


def post(tmp, fake, pr, out, *args, event_head=None, prs=(), **env_extra):
    event = workflow_run_event(tmp, event_head or pr.head, prs)
    env = actions_env(tmp, fake, TOKEN, "workflow_run", event, **env_extra)
    r = subprocess.run([PRBOT, "post", "--from", out, *args], env=env, capture_output=True, text=True, timeout=120)
    assert TOKEN not in r.stdout + r.stderr, "token leaked"
    return r


def summary_of(fake, number):
    ours = [c for c in fake.comments_of(number) if "<!-- prbot:review -->" in c["body"]]
    assert len(ours) == 1, f"{len(ours)} summary comments"
    return ours[0]["body"]


def state_of(body):
    m = re.search(r"<!-- prbot:state v1 ([A-Za-z0-9+/=]+) -->", body)
    assert m, "no state in the summary"
    return json.loads(base64.b64decode(m.group(1)))


def no_422(fake):
    bad = [r for r in fake.requests() if r.get("status") == 422 and "/reviews" in r["path"] and
           json.loads(r["body"] or "{}").get("event")]
    assert not bad, f"{len(bad)} reviews answered 422"


# ---------------------------------------------------------------- the fake itself

def api(fake, method, path, payload=None):
    req = urllib.request.Request(fake.api_url + f"/repos/{fake.repo}" + path, method=method,
                                 data=json.dumps(payload).encode() if payload is not None else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json",
                                          "X-GitHub-Api-Version": "2022-11-28"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@case
def fake_enforces_github_review_rules():
    with pr_on_fake() as (tmp, fake, pr):
        good = {"path": "src/util.c", "line": 5, "side": "RIGHT", "body": "ok"}

        def review(*comments, event="COMMENT", commit=None):
            payload = {"commit_id": commit or pr.head, "body": "b", "comments": list(comments)}
            if event:
                payload["event"] = event
            return api(fake, "POST", "/pulls/3/reviews", payload)

        cases = [
            ({"path": "src/util.c", "line": 15, "side": "RIGHT", "body": "x"}, "part of the diff"),   # between hunks
            ({"path": "nope.c", "line": 1, "side": "RIGHT", "body": "x"}, "Path could not be resolved"),
            ({"path": "README.md", "line": 1, "side": "RIGHT", "body": "x"}, "Path could not be resolved"),
            ({"path": "src/util.c", "line": 30, "start_line": 5, "side": "RIGHT", "body": "x"}, "same hunk"),
            ({"path": "src/util.c", "line": 5, "start_line": 5, "side": "RIGHT", "body": "x"}, "precede"),
            ({"path": "src/util.c", "line": 5, "side": "RIGHT", "body": ""}, "body"),
        ]
        for bad, why in cases:
            status, answer = review(good, bad)
            assert status == 422 and why in json.dumps(answer), (bad, status, answer)
        assert fake.reviews_of(3, pending=True) == [], "a refused review must create nothing"
        status, _ = review(good, commit="f" * 40)
        assert status == 422, "unknown commit"
        status, answer = review(good, {"path": "src/util.c", "line": 31, "start_line": 28, "side": "RIGHT",
                                       "body": "range"}, {"path": "src/main.c", "line": 1, "side": "RIGHT", "body": "new"})
        assert status == 200 and answer["state"] == "COMMENTED", answer
        assert len(fake.review_comments_of(3, answer["id"])) == 3
        # pending: one per user, deletable; a submitted review is not
        status, pending = review(good, event=None)
        assert status == 200 and pending["state"] == "PENDING"
        status, answer = review(good, event=None)
        assert status == 422 and "one pending review" in json.dumps(answer)
        assert api(fake, "DELETE", f"/pulls/3/reviews/{pending['id']}")[0] == 200
        assert api(fake, "DELETE", f"/pulls/3/reviews/{fake.reviews_of(3)[0]['id']}")[0] == 422
        # secondary rate limit on a burst of writes
        fake.write_limit = (2, 30.0)
        statuses = [review(good)[0] for _ in range(3)]
        assert statuses[:2] == [200, 200] and statuses[2] == 403 and fake.rate_limited == 1, statuses


# ---------------------------------------------------------------- publishing

@case
def post_places_findings_on_the_diff():
    with pr_on_fake() as (tmp, fake, pr):
        out = write_doc(tmp, pr, 3, [
            finding("src/util.c", 5, title="Subtraction instead of addition", suggestion="int f5(int x) { return x + 5; }"),
            finding("src/util.c", 30, end_line=32, severity="risk", title="Range over the new lines"),
            finding("src/util.c", 11, severity="nit", title="Two lines below the hunk", model_line=11),
            finding("src/util.c", 20, severity="risk", title="Far from any hunk", model_line=20),
            finding("src/main.c", 3, severity="nit", title="New file"),
        ])
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        reviews = fake.reviews_of(3)
        assert len(reviews) == 1 and reviews[0]["commit_id"] == pr.head and reviews[0]["state"] == "COMMENTED"
        comments = {(c["path"], c["line"]): c for c in fake.review_comments_of(3)}
        assert set(comments) == {("src/util.c", 5), ("src/util.c", 32), ("src/util.c", 8), ("src/main.c", 3)}, comments
        assert comments[("src/util.c", 32)]["start_line"] == 30
        assert "```suggestion\nint f5(int x) { return x + 5; }\n```" in comments[("src/util.c", 5)]["body"]
        assert "**Bug: Subtraction instead of addition**" in comments[("src/util.c", 5)]["body"]
        no_422(fake)
        body = summary_of(fake, 3)
        for c in comments.values():
            assert c["html_url"] in body, f"summary lacks the link {c['html_url']}"
        assert reviews[0]["html_url"] in body
        assert "Far from any hunk" in body and "line 20: line not in the diff" in body, body
        assert "**Findings: 5** (1 bug, 2 risks, 2 nits), 4 as inline comments" in body, body
        st = state_of(body)
        assert st["head"] == pr.head and len(st["fps"]) == 5 and len(st["findings"]) == 5
        with open(os.path.join(tmp, "output")) as f:
            outputs = f.read()
        assert "review-url=" in outputs and "comment-url=" in outputs


@case
def second_run_posts_no_duplicate():
    with pr_on_fake() as (tmp, fake, pr):
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="Off-by-one!"), finding("src/main.c", 2)])
        assert post(tmp, fake, pr, out).returncode == 0
        # a push that does not touch util.c's line 5; the model reports the same problem (other case, punctuation)
        pr.commit({"src/main.c": MAIN_NEW + "/* more */\n"})
        pr.register(fake, 3)
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="off by one"),
                                     finding("src/main.c", 5, title="Another problem")], since_sha=pr.base)
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        comments = fake.review_comments_of(3)
        keys = sorted((c["path"], c["line"]) for c in comments)
        assert keys == [("src/main.c", 2), ("src/main.c", 5), ("src/util.c", 5)], keys
        assert len(fake.reviews_of(3)) == 2, "one review per run"
        body = summary_of(fake, 3)
        assert "Earlier findings on this pull request: 2" in body and "**Findings: 1**" in body, body
        assert f"Reviewed the commits after {pr.base[:7]} (up to {pr.head[:7]})" in body, body
        assert len(state_of(body)["fps"]) == 3


@case
def max_inline_keeps_the_most_severe():
    with pr_on_fake() as (tmp, fake, pr):
        sev = ["nit", "risk", "bug", "nit", "bug", "risk", "nit"]
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 2 + i, severity=s, title=f"P{i}") for i, s in enumerate(sev)])
        r = post(tmp, fake, pr, out, "--max-inline", "3")
        assert r.returncode == 0, r.stderr[-2000:]
        lines = sorted(c["line"] for c in fake.review_comments_of(3))
        assert lines == [3, 4, 6], f"bugs (4, 6) then the first risk (3): {lines}"
        body = summary_of(fake, 3)
        assert body.count("over the limit of inline comments") == 4, body


@case
def a_refused_comment_never_loses_the_review():
    with pr_on_fake() as (tmp, fake, pr):
        fake.reject_lines = {("src/util.c", 30)}  # GitHub's diff disagrees with ours on this line
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="Good one"),
                                     finding("src/util.c", 30, title="Refused one"),
                                     finding("src/main.c", 1, title="Another good one")])
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        reviews = fake.reviews_of(3)
        assert len(reviews) == 1 and not fake.reviews_of(3, pending=True)[1:], "no pending review left behind"
        lines = sorted((c["path"], c["line"]) for c in fake.review_comments_of(3, reviews[0]["id"]))
        assert lines == [("src/main.c", 1), ("src/util.c", 5)], lines
        body = summary_of(fake, 3)
        assert "Refused one" in body and "GitHub refused the line" in body, body
        assert "refuses the comment on src/util.c:30" in r.stderr
        # every comment refused: the review goes out without comments
        fake.reject_lines = {("src/util.c", 5), ("src/main.c", 1)}
        pr.commit({"src/main.c": MAIN_NEW + "/* x */\n"})
        pr.register(fake, 3)
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="New A"), finding("src/main.c", 1, title="New B")])
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(fake.reviews_of(3)) == 2 and len(fake.review_comments_of(3)) == 2
        assert "New A" in summary_of(fake, 3)


@case
def secondary_rate_limit_is_waited_out():
    with pr_on_fake() as (tmp, fake, pr):
        fake.write_limit = (1, 1.0)
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5)])
        r = post(tmp, fake, pr, out, PRBOT_RETRY_MAX_WAIT="2")
        assert r.returncode == 0, r.stderr[-2000:]
        assert fake.rate_limited >= 1 and "rate limited" in r.stderr, r.stderr[-1500:]
        assert len(fake.reviews_of(3)) == 1 and len(fake.comments_of(3)) == 1
        # with GitHub's recommended pacing between writes the limit is never hit
        fake.rate_limited = 0
        fake.write_times = []
        pr.commit({"src/main.c": MAIN_NEW + "/* y */\n"})
        pr.register(fake, 3)
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 30)])
        r = post(tmp, fake, pr, out, PRBOT_WRITE_INTERVAL="1.05")
        assert r.returncode == 0 and fake.rate_limited == 0, (fake.rate_limited, r.stderr[-1500:])


@case
def server_error_after_creating_is_not_a_second_review():
    with pr_on_fake() as (tmp, fake, pr):
        fake.fail_next(1, 502, method="POST", after=True)  # the review is created, the answer is lost
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5)])
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(fake.reviews_of(3)) == 1, fake.reviews_of(3)
        assert "created all the same" in r.stderr


@case
def server_errors_creating_the_review_wait_and_count_like_every_retry():
    """A 5xx on the review's POST is retried like any other write: after
    retry.h's wait, at most PRBOT_RETRY_ATTEMPTS rounds, each after a search
    that counts only our own reviews (a stranger's review quoting the run's
    marker is not ours)."""
    with pr_on_fake() as (tmp, fake, pr):
        with fake.lock:
            fake.reviews[3].append({"id": 4000, "user": {"login": "mallory", "type": "User"}, "state": "COMMENTED",
                                    "body": f"quoting <!-- prbot:review-run {pr.head} -->", "commit_id": pr.head,
                                    "html_url": "https://github.example/octo/demo/pull/3#pullrequestreview-4000"})
        fake.fail_next(2, 503, method="POST")
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5)])
        r = post(tmp, fake, pr, out, PRBOT_RETRY_ATTEMPTS="3", PRBOT_RETRY_MAX_WAIT="0.3")
        assert r.returncode == 0, r.stderr[-2000:]
        ours = [x for x in fake.reviews_of(3) if x["user"]["login"] != "mallory"]
        assert len(ours) == 1 and len(fake.review_comments_of(3)) == 1, fake.reviews_of(3)
        posts = [x["time"] for x in fake.requests() if x["method"] == "POST" and x["path"].endswith("/reviews")]
        assert len(posts) == 3, posts
        gaps = [b - a for a, b in zip(posts, posts[1:])]
        assert min(gaps) >= 0.29, f"no wait between the review's attempts: {gaps}"
        summary_of(fake, 3)
    # two 5xx and two attempts allowed: the review is given up (the summary still says what was found)
    with pr_on_fake() as (tmp, fake, pr):
        fake.fail_next(2, 503, method="POST")
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="Kept in the summary")])
        r = post(tmp, fake, pr, out, PRBOT_RETRY_ATTEMPTS="2")
        assert fake.count("POST", "/reviews") == 2 and fake.reviews_of(3) == [], r.stderr[-2000:]
        assert "Kept in the summary" in summary_of(fake, 3), r.stderr[-2000:]


@case
def inline_false_posts_only_the_summary():
    with pr_on_fake() as (tmp, fake, pr):
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="Only in the summary")])
        r = post(tmp, fake, pr, out, "--inline", "false")
        assert r.returncode == 0, r.stderr[-2000:]
        assert fake.reviews_of(3) == [] and fake.count("POST", "/reviews") == 0
        body = summary_of(fake, 3)
        assert "Only in the summary" in body and "inline comments are off" in body


@case
def no_findings_says_so_in_prbots_words():
    with pr_on_fake() as (tmp, fake, pr):
        out = write_doc(tmp, pr, 3, [])
        r = post(tmp, fake, pr, out)
        assert r.returncode == 0, r.stderr[-2000:]
        body = summary_of(fake, 3)
        assert "No problems found in the changes shown to the model." in body
        assert len(fake.reviews_of(3)) == 1 and "no new inline comments" in fake.reviews_of(3)[0]["body"]


# ---------------------------------------------------------------- an artifact it does not trust

@case
def tampered_artifacts_are_refused_before_posting():
    with pr_on_fake() as (tmp, fake, pr):
        fake.add_pull(4, head_sha="c" * 40, base_sha=pr.base)
        good = [finding("src/util.c", 5)]
        cases = [
            ("another repository", dict(findings=good, repo="evil/demo"), {}, "repository"),
            ("a path outside the PR", dict(findings=[finding(".github/workflows/x.yml", 1)]), {}, "not a file"),
            ("a path escaping the tree", dict(findings=[finding("../../etc/passwd", 1)]), {}, "path"),
            ("a made-up head", dict(findings=good, head_sha="d" * 40), {"event_head": "d" * 40}, "moved on"),
            ("another run's commit", dict(findings=good), {"event_head": "e" * 40}, "workflow run"),
            ("another PR", dict(findings=good, number=4), {"prs": (3,)}, "other pull requests"),
            ("a bad severity", dict(findings=[finding("src/util.c", 5, severity="critical!")]), {}, "severity"),
            ("a huge body", dict(findings=[finding("src/util.c", 5, body="x" * 5000)]), {}, "longer"),
            ("too many findings", dict(findings=[finding("src/util.c", 5)] * 21), {}, "at most"),
        ]
        for what, doc, kw, why in cases:
            number = doc.pop("number", 3)
            out = write_doc(tmp, pr, number, doc.pop("findings"), name="artifact-" + what.replace(" ", "-"), **doc)
            r = post(tmp, fake, pr, out, **kw)
            stale = why == "moved on"
            assert r.returncode == (0 if stale else 1), f"{what}: exit {r.returncode}: {r.stderr[-500:]}"
            assert why in r.stderr.strip().splitlines()[-1], f"{what}: {r.stderr[-500:]}"
        os.makedirs(os.path.join(tmp, "artifact"), exist_ok=True)
        with open(os.path.join(tmp, "artifact", "review.json"), "w") as f:
            f.write("{not json")
        r = post(tmp, fake, pr, os.path.join(tmp, "artifact"))
        assert r.returncode == 1 and "not valid JSON" in r.stderr, r.stderr
        os.remove(os.path.join(tmp, "artifact", "review.json"))
        os.symlink("/etc/hostname", os.path.join(tmp, "artifact", "review.json"))
        r = post(tmp, fake, pr, os.path.join(tmp, "artifact"))
        assert r.returncode == 1 and "symbolic link" in r.stderr, r.stderr
        assert fake.count("POST") == 0 and fake.count("PATCH") == 0, "nothing may be written for a refused artifact"


@case
def post_dry_run_checks_and_prints():
    with pr_on_fake() as (tmp, fake, pr):
        out = write_doc(tmp, pr, 3, [finding("src/util.c", 5, title="Printed, not posted"),
                                     finding("src/util.c", 30, end_line=32, severity="risk", title="A range")])
        r = post(tmp, fake, pr, out, "--dry-run")
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Printed, not posted" in r.stdout and "#### src/util.c:5\n" in r.stdout, r.stdout
        # a range shows as the review would post it (start_line..line), as `prbot review --dry-run` prints it
        assert "#### src/util.c:30-32\n" in r.stdout and "2 inline comments" in r.stdout, r.stdout
        # in Actions the artifact's text is printed between stop-commands with a fresh token
        lines = r.stdout.splitlines()
        m = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[0])
        assert m and lines[-1] == f"::{m.group(1)}::", (lines[0], lines[-1])
        assert fake.count("POST") == 0 and fake.count("PATCH") == 0


@case
def post_usage_errors():
    r = subprocess.run([PRBOT, "post"], capture_output=True, text=True, env=clean_env())
    assert r.returncode == 2 and "--from" in r.stderr
    r = subprocess.run([PRBOT, "post", "--from", "/nonexistent"], capture_output=True, text=True, env=clean_env())
    assert r.returncode == 1 and "review.json" in r.stderr


run_all()
