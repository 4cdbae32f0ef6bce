"""tests/fake_github.py - a fake GitHub REST API on 127.0.0.1 for prbot's tests.

A real HTTP server (stdlib ThreadingHTTPServer, port 0 = any free port) with
in-memory state: one repository, its pull requests, their files and issue
comments. It answers the handful of endpoints prbot uses, paginates like
GitHub (per_page, default 30, max 100; absolute Link URLs of the form
/repositories/ID/... with rel="next"/"last"), checks the bearer token, and
can misbehave on purpose:

  - faults: the next N matching requests answer with a given status, headers
    and body (500, 502, 429 + Retry-After, 403 secondary rate limit, ...);
    with `after=True` the request is processed first and then answered with
    the error (a POST that created the comment but "failed");
  - read_only: POST/PATCH/DELETE answer 403 "Resource not accessible by integration";
  - prefix: every path must start with e.g. /api/v3 (GitHub Enterprise Server);
  - unknown PRs, repos and comments are 404;
  - write_limit = (N, seconds): a secondary rate limit, as GitHub has for
    bursts of content creation: more than N writes (POST, PATCH, PUT, DELETE)
    within `seconds` answer 403 "You have exceeded a secondary rate limit"
    with Retry-After (counted in `rate_limited`);
  - reject_lines: {(path, line)}: review comments GitHub refuses although
    they are in the diff (our diff and GitHub's can differ), with 422.

Identity: GET /user answers like GitHub does for the token kind. By default
the token is an installation token (GitHub Actions' GITHUB_TOKEN): /user is
403 "Resource not accessible by integration" and comments prbot creates are
by "github-actions[bot]" (type Bot). With user_login="name" the token is a
person's: /user returns that login and prbot's comments are by that user.

Pull request reviews are checked the way GitHub checks them: commit_id must
be a commit of the PR; every comment's path must be a file of the PR with a
patch, its `line` a RIGHT-side line (added or context) of one of that
file's hunks, `start_line` (if any) before `line` in the same hunk, side
RIGHT; one bad comment rejects the whole review with 422 and creates
nothing. A review without `event` is PENDING (one per user and PR) and can
be deleted; reviews and their comments are listed with html_urls.

Every request is logged (method, path, query, headers, body, and the status
answered) for assertions.

In-process use (tests):

    with FakeGitHub(token="t0k", prefix="/api/v3") as gh:
        gh.add_pull(7, head_sha="...", base_sha="...")
        env["GITHUB_API_URL"] = gh.api_url
        gh.fail_next(2, 502)
        ...
        gh.comments_of(7), gh.count("POST")

As a program: `python3 tests/fake_github.py [--prefix /api/v3] [--token T]
[--pull N]... [--timeout SECONDS]` prints the port on the first line of
stdout, then serves until the timeout (default 300 s) or SIGTERM. Control
endpoints for that mode: GET /_control/log, GET /_control/comments/N,
POST /_control/fault {"count","status","headers","body","method","after"},
POST /_control/read_only {"on": true}. The server binds to 127.0.0.1 only and
never makes a request itself.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REPO_ID = 4242


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeGitHub:
    def __init__(self, repo="octo/demo", token="ghs_faketoken123", prefix="", timeout=120.0, user_login=None):
        self.repo = repo
        self.user_login = user_login
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.read_only = False
        self.pulls = {}
        self.files = {}
        self.comments = {}
        self.faults = []
        self.log = []
        self.next_comment_id = 1000
        self.reviews = {}
        self.review_comments = {}
        self.commits = {}
        self.next_review_id = 5000
        self.next_review_comment_id = 9000
        self.write_limit = None
        self.write_times = []
        self.rate_limited = 0
        self.reject_lines = set()
        self.lock = threading.Lock()
        self.timeout = timeout
        self.server = None
        self.thread = None
        self.timer = None

    # ------------------------------------------------------------ set-up
    def add_pull(self, number, head_sha="b" * 40, base_sha="a" * 40, draft=False, fork=False,
                 author="alice", author_type="User", title=None, body="PR body"):
        owner = self.repo.split("/")[0]
        head_repo = f"forker/{self.repo.split('/')[1]}" if fork else self.repo
        self.pulls[number] = {
            "number": number,
            "state": "open",
            "title": title or f"Pull request {number}",
            "body": body,
            "draft": draft,
            "user": {"login": author, "type": author_type},
            "html_url": f"https://github.example/{self.repo}/pull/{number}",
            "base": {"ref": "main", "sha": base_sha, "repo": {"full_name": self.repo, "owner": {"login": owner}}},
            "head": {"ref": "feature", "sha": head_sha, "repo": {"full_name": head_repo}},
        }
        self.files.setdefault(number, [])
        self.comments.setdefault(number, [])
        self.reviews.setdefault(number, [])
        self.review_comments.setdefault(number, [])
        self.commits.setdefault(number, set()).add(head_sha)

    def push(self, number, head_sha, files):
        """A new head for PR `number` (a push or force-push) with its files
        as the PR files API will list them (see pr_files_from_git)."""
        with self.lock:
            self.pulls[number]["head"]["sha"] = head_sha
            self.commits.setdefault(number, set()).add(head_sha)
            self.files[number] = list(files)

    def add_file(self, number, filename, status="modified", patch="@@ -1 +1 @@\n-a\n+b",
                 previous_filename=None, additions=1, deletions=1):
        f = {"filename": filename, "status": status, "additions": additions, "deletions": deletions,
             "changes": additions + deletions}
        if patch is not None:
            f["patch"] = patch
        if previous_filename:
            f["previous_filename"] = previous_filename
        self.files[number].append(f)

    def add_comment(self, number, body, login="someone"):
        with self.lock:
            return self._create_comment(number, body, login)

    def fail_next(self, count, status, headers=None, body=None, method=None, after=False):
        """The next `count` requests (of `method`, if given) answer `status`."""
        if body is None:
            body = {"message": f"injected failure {status}"}
        with self.lock:
            for _ in range(count):
                self.faults.append({"status": status, "headers": headers or {}, "body": body,
                                    "method": method, "after": after})

    # ------------------------------------------------------------ queries
    def comments_of(self, number):
        with self.lock:
            return [dict(c) for c in self.comments.get(number, [])]

    def count(self, method, path_contains=""):
        with self.lock:
            return sum(1 for r in self.log if r["method"] == method and path_contains in r["path"])

    def requests(self):
        with self.lock:
            return list(self.log)

    def reviews_of(self, number, pending=False):
        with self.lock:
            return [dict(r) for r in self.reviews.get(number, []) if pending or r["state"] != "PENDING"]

    def review_comments_of(self, number, review_id=None):
        with self.lock:
            return [dict(c) for c in self.review_comments.get(number, [])
                    if review_id is None or c["pull_request_review_id"] == review_id]

    # ------------------------------------------------------------ life cycle
    def start(self):
        fake = self

        class Handler(_Handler):
            state = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.timer = threading.Timer(self.timeout, self.server.shutdown)
        self.timer.daemon = True
        self.timer.start()
        return self

    def stop(self):
        if self.timer:
            self.timer.cancel()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self):
        return self.origin + self.prefix

    # ------------------------------------------------------------ internals (lock held)
    def _create_comment(self, number, body, login):
        self.next_comment_id += 1
        cid = self.next_comment_id
        c = {"id": cid, "body": body, "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
             "html_url": f"https://github.example/{self.repo}/pull/{number}#issuecomment-{cid}",
             "created_at": _now(), "updated_at": _now(), "issue": number}
        self.comments.setdefault(number, []).append(c)
        return c

    def _rate_limit(self, method):
        """The answer to a write over the secondary rate limit, or None."""
        if method == "GET" or not self.write_limit:
            return None
        count, window = self.write_limit
        now = time.monotonic()
        self.write_times = [t for t in self.write_times if now - t < window]
        if len(self.write_times) >= count:
            self.rate_limited += 1
            wait = max(1, int(window - (now - self.write_times[0]) + 0.999))
            return (403, {"message": "You have exceeded a secondary rate limit and have been temporarily blocked "
                                     "from content creation. Please retry your request again later.",
                          "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                    {"Retry-After": str(wait)})
        self.write_times.append(now)
        return None

    def _right_lines(self, number, path):
        """{line: hunk index} of the RIGHT side of a file's patch, or None if the PR has no such patch."""
        for f in self.files.get(number, []):
            if f["filename"] == path:
                return right_lines(f["patch"]) if f.get("patch") else None
        return None

    def _check_review_comment(self, number, c):
        if not isinstance(c, dict) or not isinstance(c.get("path"), str) or not isinstance(c.get("body"), str) \
                or not c["body"]:
            return "Invalid request: each comment needs a path and a body"
        if "position" in c and "line" in c:
            return "Invalid request: position and line are exclusive"
        if c.get("side", "RIGHT") != "RIGHT" or c.get("start_side", "RIGHT") != "RIGHT":
            return "Only RIGHT-side comments are expected in this test"
        lines = self._right_lines(number, c["path"])
        if lines is None:
            return "Path could not be resolved"
        line = c.get("line")
        if not isinstance(line, int) or isinstance(line, bool) or line not in lines:
            return "Pull request review thread line must be part of the diff"
        if (c["path"], line) in self.reject_lines:
            return "Line could not be resolved"
        if "start_line" in c:
            start = c["start_line"]
            if not isinstance(start, int) or isinstance(start, bool) or start >= line:
                return "Pull request review thread start line must precede the end line"
            if start not in lines or lines[start] != lines[line]:
                return "Pull request review thread start line must be part of the same hunk as the line"
        return None

    def _create_review(self, number, payload):
        commit = payload.get("commit_id")
        if commit not in self.commits.get(number, set()) and commit != self.pulls[number]["head"]["sha"]:
            return 422, {"message": "Unprocessable Entity", "errors": [f"No commit found for SHA: {commit}"]}
        event = payload.get("event")
        if event not in (None, "COMMENT", "APPROVE", "REQUEST_CHANGES"):
            return 422, {"message": "Unprocessable Entity", "errors": ["Invalid event"]}
        comments = payload.get("comments") or []
        body = payload.get("body") or ""
        if event in ("COMMENT", "REQUEST_CHANGES") and not body and not comments:
            return 422, {"message": "Unprocessable Entity", "errors": ["Review body can't be blank"]}
        me = self.user_login or "github-actions[bot]"
        if event is None and any(r["state"] == "PENDING" and r["user"]["login"] == me for r in self.reviews[number]):
            return 422, {"message": "Unprocessable Entity",
                         "errors": ["User can only have one pending review per pull request"]}
        errors = [e for e in (self._check_review_comment(number, c) for c in comments) if e]
        if errors:
            return 422, {"message": "Unprocessable Entity", "errors": errors[:1],
                         "documentation_url": "https://docs.github.com/rest/pulls/reviews#create-a-review"}
        self.next_review_id += 1
        rid = self.next_review_id
        base = f"https://github.example/{self.repo}/pull/{number}"
        review = {"id": rid, "user": {"login": me, "type": "User" if self.user_login else "Bot"}, "body": body,
                  "state": "PENDING" if event is None else "COMMENTED", "commit_id": commit,
                  "html_url": f"{base}#pullrequestreview-{rid}", "submitted_at": _now()}
        self.reviews[number].append(review)
        for c in comments:
            self.next_review_comment_id += 1
            cid = self.next_review_comment_id
            rc = {"id": cid, "pull_request_review_id": rid, "path": c["path"], "line": c["line"],
                  "start_line": c.get("start_line"), "side": "RIGHT", "body": c["body"], "commit_id": commit,
                  "user": review["user"], "html_url": f"{base}#discussion_r{cid}"}
            self.review_comments[number].append(rc)
        return 200, dict(review)

    def _take_fault(self, method):
        for i, f in enumerate(self.faults):
            if f["method"] is None or f["method"] == method:
                return self.faults.pop(i)
        return None


class _Handler(BaseHTTPRequestHandler):
    state = None  # the FakeGitHub, set by a subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read the request log instead
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------ plumbing
    def _send(self, status, obj, headers=None):
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self, method):
        fake = self.state
        url = urlsplit(self.path)
        raw_body = self._read_body()
        entry = {"method": method, "path": url.path, "query": url.query, "headers": dict(self.headers.items()),
                 "body": raw_body.decode("utf-8", "replace"), "time": time.monotonic()}
        if url.path.startswith("/_control/"):
            return self._control(method, url.path, raw_body)
        with fake.lock:
            fake.log.append(entry)
            fault = fake._take_fault(method)
        if fault and not fault["after"]:
            answer = (fault["status"], fault["body"], fault["headers"])
        else:
            with fake.lock:
                answer = fake._rate_limit(method) if url.path.startswith(fake.prefix + "/") else None
            if not answer:
                answer = self._api(method, url, raw_body)
                if fault:
                    answer = (fault["status"], fault["body"], fault["headers"])
        entry["status"] = answer[0]
        self._send(*answer)

    def _control(self, method, path, raw_body):
        fake = self.state
        if method == "GET" and path == "/_control/log":
            return self._send(200, fake.requests())
        m = re.fullmatch(r"/_control/comments/(\d+)", path)
        if method == "GET" and m:
            return self._send(200, fake.comments_of(int(m.group(1))))
        args = json.loads(raw_body or b"{}")
        if method == "POST" and path == "/_control/fault":
            fake.fail_next(args.get("count", 1), args["status"], args.get("headers"), args.get("body"),
                           args.get("method"), args.get("after", False))
            return self._send(200, {"ok": True})
        if method == "POST" and path == "/_control/read_only":
            fake.read_only = bool(args.get("on", True))
            return self._send(200, {"ok": True})
        return self._send(404, {"message": "unknown control endpoint"})

    # ------------------------------------------------------------ the API
    def _api(self, method, url, raw_body):
        fake = self.state
        path = url.path
        if fake.prefix:
            if not path.startswith(fake.prefix + "/"):
                return 404, {"message": "Not Found (missing API prefix)"}, None
            path = path[len(fake.prefix):]
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {fake.token}":
            return 401, {"message": "Bad credentials"}, None
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28" or \
                "application/vnd.github+json" not in self.headers.get("Accept", ""):
            return 400, {"message": "missing GitHub API headers"}, None
        if path == "/user" and method == "GET":
            if fake.user_login is None:
                return 403, {"message": "Resource not accessible by integration"}, None
            return 200, {"login": fake.user_login, "type": "User"}, None
        owner_repo = f"/repos/{fake.repo}"
        if path.startswith(owner_repo + "/"):
            rest = path[len(owner_repo):]
        elif path.startswith(f"/repositories/{REPO_ID}/"):
            rest = path[len(f"/repositories/{REPO_ID}"):]
        else:
            return 404, {"message": "Not Found"}, None
        query = parse_qs(url.query)
        with fake.lock:
            return self._route(method, rest, query, raw_body)

    def _route(self, method, rest, query, raw_body):
        fake = self.state
        m = re.fullmatch(r"/pulls/(\d+)", rest)
        if m and method == "GET":
            pr = fake.pulls.get(int(m.group(1)))
            return (200, pr, None) if pr else (404, {"message": "Not Found"}, None)
        m = re.fullmatch(r"/pulls/(\d+)/files", rest)
        if m and method == "GET":
            n = int(m.group(1))
            if n not in fake.pulls:
                return 404, {"message": "Not Found"}, None
            return self._page(fake.files[n], query, f"/pulls/{n}/files")
        m = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if m:
            n = int(m.group(1))
            if n not in fake.pulls:
                return 404, {"message": "Not Found"}, None
            if method == "GET":
                return self._page(fake.comments[n], query, f"/issues/{n}/comments")
            if method == "POST":
                if fake.read_only:
                    return 403, {"message": "Resource not accessible by integration"}, None
                body = json.loads(raw_body or b"{}").get("body")
                if not isinstance(body, str):
                    return 422, {"message": "Validation Failed"}, None
                return 201, fake._create_comment(n, body, fake.user_login or "github-actions[bot]"), None
        m = re.fullmatch(r"/pulls/(\d+)/reviews", rest)
        if m:
            n = int(m.group(1))
            if n not in fake.pulls:
                return 404, {"message": "Not Found"}, None
            if method == "GET":
                return self._page([r for r in fake.reviews[n]], query, f"/pulls/{n}/reviews")
            if method == "POST":
                if fake.read_only:
                    return 403, {"message": "Resource not accessible by integration"}, None
                try:
                    payload = json.loads(raw_body or b"{}")
                except ValueError:
                    return 400, {"message": "Problems parsing JSON"}, None
                status, obj = fake._create_review(n, payload)
                return status, obj, None
        m = re.fullmatch(r"/pulls/(\d+)/reviews/(\d+)", rest)
        if m and method == "DELETE":
            n, rid = int(m.group(1)), int(m.group(2))
            if fake.read_only:
                return 403, {"message": "Resource not accessible by integration"}, None
            for r in fake.reviews.get(n, []):
                if r["id"] == rid:
                    if r["state"] != "PENDING":
                        return 422, {"message": "Unprocessable Entity",
                                     "errors": ["Can not delete a non-pending pull request review"]}, None
                    fake.reviews[n].remove(r)
                    fake.review_comments[n] = [c for c in fake.review_comments[n]
                                               if c["pull_request_review_id"] != rid]
                    return 200, r, None
            return 404, {"message": "Not Found"}, None
        m = re.fullmatch(r"/pulls/(\d+)/reviews/(\d+)/comments", rest)
        if m and method == "GET":
            n, rid = int(m.group(1)), int(m.group(2))
            if not any(r["id"] == rid for r in fake.reviews.get(n, [])):
                return 404, {"message": "Not Found"}, None
            return self._page([c for c in fake.review_comments[n] if c["pull_request_review_id"] == rid], query,
                              f"/pulls/{n}/reviews/{rid}/comments")
        m = re.fullmatch(r"/issues/comments/(\d+)", rest)
        if m and method in ("PATCH", "GET"):
            cid = int(m.group(1))
            for lst in fake.comments.values():
                for c in lst:
                    if c["id"] == cid:
                        if method == "GET":
                            return 200, c, None
                        if fake.read_only:
                            return 403, {"message": "Resource not accessible by integration"}, None
                        body = json.loads(raw_body or b"{}").get("body")
                        if not isinstance(body, str):
                            return 422, {"message": "Validation Failed"}, None
                        c["body"] = body
                        c["updated_at"] = _now()
                        return 200, c, None
            return 404, {"message": "Not Found"}, None
        return 404, {"message": "Not Found"}, None

    def _page(self, items, query, route):
        fake = self.state
        per_page = max(1, min(100, int(query.get("per_page", ["30"])[0])))
        page = max(1, int(query.get("page", ["1"])[0]))
        last = max(1, (len(items) + per_page - 1) // per_page)
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"http://127.0.0.1:{fake.port}{fake.prefix}/repositories/{REPO_ID}{route}?per_page={per_page}"
        links = []
        if page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            links.append(f'<{base}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}&page=1>; rel="first"')
            links.append(f'<{base}&page={page - 1}>; rel="prev"')
        return 200, [dict(c) for c in chunk], ({"Link": ", ".join(links)} if links else None)


def right_lines(patch):
    """{new-file line: hunk index} for every RIGHT-side line (added or
    context) of a unified patch: the lines GitHub lets a review comment
    target. Written apart from prbot's C parser on purpose."""
    lines, hunk, new = {}, -1, 0
    for raw in patch.split("\n"):
        m = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@", raw)
        if m:
            hunk += 1
            new = int(m.group(1))
        elif hunk < 0 or raw.startswith("\\"):
            continue
        elif raw.startswith("+") or raw.startswith(" "):
            lines[new] = hunk
            new += 1
    return lines


def pr_files_from_git(repo, base, head):
    """The PR files API's answer for base...head of a local repository:
    filename, status, additions, deletions and patch (hunks only, as GitHub
    sends them), computed with the git CLI."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout

    statuses = {"A": "added", "M": "modified", "D": "removed", "R": "renamed", "C": "copied", "T": "changed"}
    files = []
    for line in git("diff", "--name-status", "-M", f"{base}...{head}").splitlines():
        parts = line.split("\t")
        kind, path = parts[0][0], parts[-1]
        prev = parts[1] if kind in "RC" else None
        num = git("diff", "--numstat", "-M", f"{base}...{head}", "--", *( [prev, path] if prev else [path])).split()
        adds, dels = (int(num[0]), int(num[1])) if num and num[0] != "-" else (0, 0)
        text = git("diff", "-M", f"{base}...{head}", "--", *([prev, path] if prev else [path]))
        at = text.find("\n@@")
        patch = text[at + 1:].rstrip("\n") if at >= 0 else None
        f = {"filename": path, "status": statuses.get(kind, "modified"), "additions": adds, "deletions": dels,
             "changes": adds + dels}
        if patch:
            f["patch"] = patch
        if prev:
            f["previous_filename"] = prev
        files.append(f)
    return files


def main():
    ap = argparse.ArgumentParser(description="fake GitHub API on 127.0.0.1")
    ap.add_argument("--repo", default="octo/demo")
    ap.add_argument("--token", default="ghs_faketoken123")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--user-login", default=None, help="a person's token with this login (default: Actions' token)")
    ap.add_argument("--pull", type=int, action="append", default=[], help="create this PR number")
    ap.add_argument("--read-only", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0, help="stop after this many seconds")
    args = ap.parse_args()
    fake = FakeGitHub(args.repo, args.token, args.prefix, args.timeout, args.user_login)
    fake.read_only = args.read_only
    for n in args.pull:
        fake.add_pull(n)
    fake.start()
    print(fake.port, flush=True)
    fake.thread.join()


if __name__ == "__main__":
    sys.exit(main())
