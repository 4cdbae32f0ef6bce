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
  - read_only: POST/PATCH answer 403 "Resource not accessible by integration";
  - prefix: every path must start with e.g. /api/v3 (GitHub Enterprise Server);
  - unknown PRs, repos and comments are 404.

Identity: GET /user answers like GitHub does for the token kind. By default
the token is an installation token (GitHub Actions' GITHUB_TOKEN): /user is
403 "Resource not accessible by integration" and comments prbot creates are
by "github-actions[bot]" (type Bot). With user_login="name" the token is a
person's: /user returns that login and prbot's comments are by that user.

Every request is logged (method, path, query, headers) for assertions.

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
                 "body": raw_body.decode("utf-8", "replace")}
        if url.path.startswith("/_control/"):
            return self._control(method, url.path, raw_body)
        with fake.lock:
            fake.log.append(entry)
            fault = fake._take_fault(method)
        if fault and not fault["after"]:
            return self._send(fault["status"], fault["body"], fault["headers"])
        status, obj, headers = self._api(method, url, raw_body)
        if fault:
            return self._send(fault["status"], fault["body"], fault["headers"])
        self._send(status, obj, headers)

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
