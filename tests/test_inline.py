"""tests/test_inline.py - inline reviews end to end with the real code model.

Qwen2.5-Coder-0.5B-Instruct (tests/setup.sh fetches it) reviews small pull
requests against the fake GitHub API, which checks reviews as GitHub does
(tests/fake_github.py). What the model finds is its own business; what is
checked is everything prbot promises around it:

  - every run posts exactly one review and keeps exactly one summary comment,
    and no 422 (or any other error) reaches the user;
  - the model's answer parses on every run (the rate is printed);
  - a second push reviews only the new commits and posts no finding twice,
    judged independently of prbot's fingerprints: (path, the line's text at
    the reviewed commit, the title normalised) must be unique over all inline
    comments on the PR;
  - a force-push reviews the whole PR again (still without repeats);
  - a fork's run writes its review with a read-only token and posts nothing;
    `prbot post` posts it from the artifact;
  - no comment, review or summary body contains text of the prompt template.

Budget: about 10 model runs of a few seconds each. Under the sanitizers
(PRBOT in build-asan/) only the first fixture runs, with fewer tokens;
PRBOT_INLINE_FIXTURES=N overrides. Each case prints its time on stderr.
"""
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fake_github import FakeGitHub  # noqa: E402
from prfixture import PullRequest, actions_env, git, workflow_run_event  # noqa: E402
from testlib import PRBOT, Skip, case, run_all  # noqa: E402

TOKEN = "ghs_inlineSECRET_5150"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def model_path():
    p = os.environ.get("PRBOT_QWEN")
    if p:
        return p
    cache = os.environ.get("PRBOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "prbot")
    return os.path.join(cache, "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")


MODEL = model_path()
SANITIZED = "build-asan" in PRBOT
N_FIXTURES = int(os.environ.get("PRBOT_INLINE_FIXTURES", "1" if SANITIZED else "3"))
MAX_TOKENS = "160" if SANITIZED else "320"

# ---------------------------------------------------------------- fixtures: (base files, push 1, push 2, force-push)

C_BASE = {"src/buffer.c": """#include <stdlib.h>
#include <string.h>

#include "buffer.h"

/* A growable byte buffer. */
int buffer_init(struct buffer *b, size_t cap)
{
    b->data = malloc(cap);
    if (!b->data)
        return -1;
    b->len = 0;
    b->cap = cap;
    return 0;
}

void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
}
""", "src/buffer.h": """struct buffer {
    char *data;
    size_t len, cap;
};
int buffer_init(struct buffer *b, size_t cap);
void buffer_free(struct buffer *b);
int buffer_append(struct buffer *b, const char *s, size_t n);
"""}
C_PUSH1 = {"src/buffer.c": C_BASE["src/buffer.c"] + """
/* Appends n bytes of s, growing the buffer when needed. */
int buffer_append(struct buffer *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2;
        char *p = realloc(b->data, cap);
        b->data = p;
        b->cap = cap;
    }
    for (size_t i = 0; i <= n; i++)
        b->data[b->len + i] = s[i];
    b->len += n;
    return 0;
}
"""}
C_PUSH2 = {"src/buffer.c": C_PUSH1["src/buffer.c"] + """
/* Removes the last n bytes. */
void buffer_drop(struct buffer *b, size_t n)
{
    b->len -= n;
}
"""}
C_FORCE = {"src/buffer.c": C_PUSH2["src/buffer.c"].replace("size_t cap = b->cap * 2;", "size_t cap = b->cap * 2 + n;")}

PY_BASE = {"app/orders.py": '''"""Order totals."""


def total(order):
    return sum(item["price"] * item["qty"] for item in order["items"])
'''}
PY_PUSH1 = {"app/orders.py": PY_BASE["app/orders.py"] + '''

def cheapest(order):
    """The cheapest item, or None for an empty order."""
    items = order["items"]
    if items:
        return None
    return min(items, key=lambda item: item["price"])


def apply_discount(order, percent):
    for item in order["items"]:
        if percent > 100:
            order["items"].remove(item)
        item["price"] = item["price"] * (100 - percent) / 100
    return order
'''}
PY_PUSH2 = {"app/orders.py": PY_PUSH1["app/orders.py"] + '''

def count(order):
    n = 0
    for item in order["items"]:
        n = item["qty"]
    return n
'''}
PY_FORCE = {"app/orders.py": PY_PUSH2["app/orders.py"].replace('"""The cheapest item', '"""Return the cheapest item')}

JS_BASE = {"web/api.js": """export async function getJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.json();
}
"""}
JS_PUSH1 = {"web/api.js": JS_BASE["web/api.js"] + """
export async function loadUser(id) {
  const user = getJson(`/api/users/${id}`);
  if (user.disabled) {
    return null;
  }
  return user;
}
"""}
JS_PUSH2 = {"web/api.js": JS_PUSH1["web/api.js"] + """
export function userLabel(user) {
  return user.name + " <" + user.email + ">";
}
"""}
JS_FORCE = {"web/api.js": JS_PUSH2["web/api.js"].replace("return user.name", "return user.fullName")}

FIXTURES = [("c", C_BASE, C_PUSH1, C_PUSH2, C_FORCE), ("py", PY_BASE, PY_PUSH1, PY_PUSH2, PY_FORCE),
            ("js", JS_BASE, JS_PUSH1, JS_PUSH2, JS_FORCE)][:N_FIXTURES]

# ---------------------------------------------------------------- checks

parse_results = []


def template_phrases():
    """Phrases of the review template that no body may contain: every run of 8
    words, and every line fragment (between quotes) of 30+ characters."""
    with open(os.path.join(ROOT, "prompts", "review.txt")) as f:
        text = re.sub(r"\{\{\w+\}\}", "\n", f.read())
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = {" ".join(words[i:i + 8]) for i in range(len(words) - 7)}
    frags = {p.strip().lower() for line in text.splitlines() for p in re.split(r'"', line) if len(p.strip()) >= 30}
    return grams, frags


GRAMS, FRAGMENTS = template_phrases()


def assert_no_template_text(body, where):
    low = body.lower()
    for frag in FRAGMENTS:
        assert frag not in low, f"{where} contains template text: {frag!r}"
    words = re.findall(r"[a-z0-9]+", low)
    for i in range(len(words) - 7):
        g = " ".join(words[i:i + 8])
        assert g not in GRAMS, f"{where} contains template text: {g!r}"


def norm_title(body):
    m = re.match(r"\*\*(?:Bug|Risk|Nit): (.*?)\*\*", body)
    assert m, f"inline comment without prbot's heading: {body[:80]!r}"
    return " ".join(re.findall(r"[a-z0-9]+", m.group(1).lower()))


def line_text(repo, commit, path, line):
    text = git(repo, "show", f"{commit}:{path}")
    lines = text.split("\n")
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def review(tmp, fake, pr, number, *args, event_name="pull_request", expect_post=True):
    """One `prbot review` run as a pull_request job; checks its promises and returns stderr."""
    pr.register(fake, number)
    event = pr.event(tmp, number)
    env = actions_env(tmp, fake, TOKEN, event_name, event, GITHUB_WORKSPACE=pr.dir)
    reviews_before = len(fake.reviews_of(number))
    t0 = time.monotonic()
    r = subprocess.run([PRBOT, "review", "--model", MODEL, "--max-tokens", MAX_TOKENS, *args], env=env,
                       capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - t0
    assert TOKEN not in r.stdout + r.stderr, "token leaked"
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"findings: (parsed|parsed after closing a cut-short answer|answer not readable), (\d+) kept", r.stderr)
    assert m, r.stderr[-2000:]
    parse_results.append(m.group(1) != "answer not readable")
    print(f"  run {number} ({' '.join(args) or 'default'}): {seconds:.1f} s, findings {m.group(1)}, {m.group(2)} kept",
          file=sys.stderr)
    assert m.group(1) != "answer not readable", "the model's answer did not parse:\n" + r.stderr[-3000:]
    if expect_post:
        assert len(fake.reviews_of(number)) == reviews_before + 1, "one review per run"
        assert "warning" not in r.stderr.lower() or "could not post the review" not in r.stderr, r.stderr[-2000:]
    ours = [c for c in fake.comments_of(number) if "<!-- prbot:review -->" in c["body"]]
    assert len(ours) == 1, f"{len(ours)} summary comments"
    assert not [q for q in fake.requests() if q.get("status") == 422], "GitHub answered 422"
    return r.stderr


def check_bodies(fake, number):
    bodies = [("summary", c["body"]) for c in fake.comments_of(number)]
    bodies += [("review", r["body"]) for r in fake.reviews_of(number)]
    bodies += [(f"comment {c['path']}:{c['line']}", c["body"]) for c in fake.review_comments_of(number)]
    for where, body in bodies:
        assert_no_template_text(body, where)


class Repeats:
    """Inline comments posted on a PR so far, by (path, line text at the
    reviewed commit, normalised title); update() after each run, while the
    reviewed commit still exists (a force-push later removes it)."""

    def __init__(self):
        self.seen, self.done = {}, set()

    def update(self, fake, number, repo):
        for c in fake.review_comments_of(number):
            if c["id"] in self.done:
                continue
            self.done.add(c["id"])
            key = (c["path"], line_text(repo, c["commit_id"], c["path"], c["line"]), norm_title(c["body"]))
            assert key not in self.seen, f"finding posted twice: {key} ({self.seen[key]} and {c['html_url']})"
            self.seen[key] = c["html_url"]


def require_model():
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} not found (tests/setup.sh fetches it)")


@case
def pushes_and_force_push_with_the_real_model():
    require_model()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN, timeout=3600) as fake:
        for k, (name, base, push1, push2, force) in enumerate(FIXTURES):
            number = 20 + k
            t0 = time.monotonic()
            pr = PullRequest(tmp, base, name=f"repo-{name}")
            repeats = Repeats()
            pr.commit(push1, "first push")
            err = review(tmp, fake, pr, number)
            assert "incremental review" not in err
            repeats.update(fake, number, pr.dir)
            first_head = pr.head
            pr.commit(push2, "second push")
            err = review(tmp, fake, pr, number)
            assert f"only the commits {first_head[:12]}..{pr.head[:12]}" in err, err[-2000:]
            summary = [c for c in fake.comments_of(number) if "<!-- prbot:review -->" in c["body"]][0]["body"]
            assert f"Reviewed the commits after {first_head[:7]} (up to {pr.head[:7]})" in summary, summary[-2000:]
            repeats.update(fake, number, pr.dir)
            pr.force(force, "rewritten")
            err = review(tmp, fake, pr, number)
            assert "not an ancestor" in err and "reviewing the whole PR" in err, err[-2000:]
            repeats.update(fake, number, pr.dir)
            check_bodies(fake, number)
            summary = [c for c in fake.comments_of(number) if "<!-- prbot:review -->" in c["body"]][0]["body"]
            for c in fake.review_comments_of(number):
                assert c["html_url"] in summary, "the summary must link every inline comment"
            print(f"fixture {name}: {time.monotonic() - t0:.1f} s, {len(fake.reviews_of(number))} reviews, "
                  f"{len(fake.review_comments_of(number))} inline comments", file=sys.stderr)


@contextlib.contextmanager
def first_fixture():
    """The first fixture's base files as a pull request, with the fake GitHub (the model must exist)."""
    require_model()
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN, timeout=3600) as fake:
        yield tmp, fake, PullRequest(tmp, FIXTURES[0][1])


@case
def full_flag_reviews_everything():
    _, _, push1, push2, _ = FIXTURES[0]
    with first_fixture() as (tmp, fake, pr):
        repeats = Repeats()
        pr.commit(push1)
        review(tmp, fake, pr, 30)
        repeats.update(fake, 30, pr.dir)
        pr.commit(push2)
        err = review(tmp, fake, pr, 30, "--full")
        assert "--full: reviewing the whole PR" in err and "incremental review" not in err, err[-2000:]
        repeats.update(fake, 30, pr.dir)


@case
def fork_review_writes_an_artifact_then_post_posts_it():
    _, _, push1, _, _ = FIXTURES[0]
    with first_fixture() as (tmp, fake, pr):
        pr.commit(push1)
        pr.register(fake, 40, fork=True)
        fake.read_only = True
        out = os.path.join(tmp, "artifact")
        env = actions_env(tmp, fake, TOKEN, "pull_request", pr.event(tmp, 40, fork=True), GITHUB_WORKSPACE=pr.dir)
        t0 = time.monotonic()
        r = subprocess.run([PRBOT, "review", "--model", MODEL, "--max-tokens", MAX_TOKENS, "--output", out], env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        assert fake.count("POST") == 0 and fake.count("PATCH") == 0, "the read-only job must not post"
        with open(os.path.join(out, "review.json")) as f:
            doc = json.load(f)
        assert doc["pr"] == 40 and doc["head_sha"] == pr.head and doc["repo"] == "octo/demo"
        assert doc["parse"] in ("parsed", "repaired"), doc["parse"]
        parse_results.append(True)
        for name_ in ("summary.md", "review-request.json"):
            assert os.path.getsize(os.path.join(out, name_)) > 0
        fake.read_only = False
        event = workflow_run_event(tmp, pr.head)
        env = actions_env(tmp, fake, TOKEN, "workflow_run", event)
        p = subprocess.run([PRBOT, "post", "--from", out], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "checked against PR #40" in p.stderr
        assert len(fake.reviews_of(40)) == 1 and len(fake.comments_of(40)) == 1
        posted = sorted((c["path"], c["line"]) for c in fake.review_comments_of(40))
        planned = sorted((c["path"], c["line"]) for c in json.load(open(os.path.join(out, "review-request.json")))["comments"])
        assert posted == planned, (posted, planned)
        check_bodies(fake, 40)
        print(f"fork flow: {time.monotonic() - t0:.1f} s, {len(posted)} inline comments", file=sys.stderr)


@case
def structured_output_parsed_on_every_run():
    if not parse_results:
        raise Skip("no model run happened")
    rate = sum(parse_results) / len(parse_results)
    print(f"structured output parsed on {sum(parse_results)}/{len(parse_results)} runs ({rate:.0%})", file=sys.stderr)
    assert rate == 1.0, f"{rate:.0%}"


run_all()
