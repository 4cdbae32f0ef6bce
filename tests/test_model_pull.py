"""tests/test_model_pull.py - `prbot model pull` against a local file server.

A small stdlib HTTP server on 127.0.0.1 serves testdata's stories260K.gguf
with Range support and can misbehave: drop the connection halfway, ignore
Range, answer like Hugging Face (302 with X-Linked-Etag), or 404. The
expected sha256 is computed here with hashlib, independently of prbot.
"""
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from testlib import PRBOT, TESTDATA, Skip, case, run_all  # noqa: E402

MODEL = os.path.join(TESTDATA, "models", "stories260K.gguf")


class FileServer:
    def __init__(self, data):
        self.data = data
        self.sha = hashlib.sha256(data).hexdigest()
        self.drop_next = 0         # this many GETs send half the body, then close
        self.ignore_range = False
        self.linked_etag = None    # value for X-Linked-Etag on the /resolve/ redirect
        self.log = []
        self.lock = threading.Lock()

    def __enter__(self):
        fs = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with fs.lock:
                    fs.log.append({"path": self.path, "range": self.headers.get("Range")})
                    drop = fs.drop_next > 0
                    if drop:
                        fs.drop_next -= 1
                path = self.path.split("?")[0]
                if path.startswith("/resolve/"):
                    self.send_response(302)
                    self.send_header("Location", "/cdn/" + path.rsplit("/", 1)[1])
                    if fs.linked_etag:
                        self.send_header("X-Linked-Etag", f'"{fs.linked_etag}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not path.endswith(".gguf"):
                    body = b'{"error":"not found"}'
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not fs.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                if start >= len(fs.data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(fs.data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                part = fs.data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(fs.data) - 1}/{len(fs.data)}")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if drop:
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.timer = threading.Timer(60, self.server.shutdown)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path="/models/stories260K.gguf"):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def ranges(self):
        with self.lock:
            return [r["range"] for r in self.log if r["range"]]


def model_bytes():
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} missing")
    with open(MODEL, "rb") as f:
        return f.read()


def pull(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRBOT_") or k in ("PRBOT_TESTDATA",)}
    env["PRBOT_RETRY_MAX_WAIT"] = "0.05"
    env.update(env_extra or {})
    return subprocess.run([PRBOT, "model", "pull", *args], env=env, capture_output=True, text=True, timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


@case
def full_download_verified_and_cached():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        p = pull(fs.url(), "--sha256", fs.sha.upper(), "--cache", cache)
        assert p.returncode == 0, p.stderr
        path = os.path.join(cache, "stories260K.gguf")
        assert p.stdout == path + "\n", repr(p.stdout)
        assert read(path) == data
        assert os.listdir(cache) == ["stories260K.gguf"]
        assert "verified" in p.stderr
        # not a TTY: periodic progress lines, ending at 100%
        assert "(100%)" in p.stderr, p.stderr
        # second run: the cached file is verified and nothing is downloaded
        n = len(fs.log)
        p = pull(fs.url(), "--sha256", fs.sha, "--cache", cache)
        assert p.returncode == 0 and p.stdout == path + "\n"
        assert len(fs.log) == n


@case
def resume_on_a_second_run_uses_range():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        fs.drop_next = 1
        p = pull(fs.url(), "--sha256", fs.sha, "--cache", cache, env_extra={"PRBOT_DOWNLOAD_ATTEMPTS": "1"})
        assert p.returncode == 1, p.stderr
        assert "run the command again to resume" in p.stderr, p.stderr
        part = os.path.join(cache, "stories260K.gguf.part")
        half = os.path.getsize(part)
        assert 0 < half < len(data) and read(part) == data[:half]
        assert not os.path.exists(os.path.join(cache, "stories260K.gguf"))
        p = pull(fs.url(), "--sha256", fs.sha, "--cache", cache)
        assert p.returncode == 0, p.stderr
        assert fs.ranges() == [f"bytes={half}-"], fs.ranges()
        assert read(os.path.join(cache, "stories260K.gguf")) == data
        assert not os.path.exists(part)


@case
def dropped_connection_resumes_within_one_run():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        fs.drop_next = 2
        p = pull(fs.url(), "--sha256", fs.sha, "--cache", cache)
        assert p.returncode == 0, p.stderr
        assert len(fs.ranges()) == 2 and "resuming" in p.stderr
        assert read(os.path.join(cache, "stories260K.gguf")) == data


@case
def server_ignoring_range_restarts_cleanly():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        with open(os.path.join(cache, "stories260K.gguf.part"), "wb") as f:
            f.write(b"\xff" * 1000)  # junk a range-honouring server would have continued
        fs.ignore_range = True
        p = pull(fs.url(), "--sha256", fs.sha, "--cache", cache)
        assert p.returncode == 0, p.stderr
        assert "starting over" in p.stderr
        assert read(os.path.join(cache, "stories260K.gguf")) == data


@case
def checksum_mismatch_keeps_cached_file_and_leaves_no_part():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        wrong = hashlib.sha256(b"something else").hexdigest()
        p = pull(fs.url(), "--sha256", wrong, "--cache", cache)
        assert p.returncode == 1
        assert "checksum mismatch" in p.stderr and wrong in p.stderr and fs.sha in p.stderr, p.stderr
        assert os.listdir(cache) == [], os.listdir(cache)
        # an already cached file (different content) survives a failed re-download
        cached = os.path.join(cache, "stories260K.gguf")
        with open(cached, "wb") as f:
            f.write(b"previous model")
        p = pull(fs.url(), "--sha256", wrong, "--cache", cache)
        assert p.returncode == 1 and "checksum mismatch" in p.stderr
        assert read(cached) == b"previous model"
        assert os.listdir(cache) == ["stories260K.gguf"]


@case
def hugging_face_linked_etag_is_verified():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as cache:
        fs.linked_etag = fs.sha
        url = fs.url("/resolve/main/stories260K.gguf")
        p = pull(url + "?download=true", "--cache", cache)
        assert p.returncode == 0, p.stderr
        assert "from the server's ETag" in p.stderr, p.stderr
        assert read(os.path.join(cache, "stories260K.gguf")) == data
        fs.linked_etag = hashlib.sha256(b"x").hexdigest()
        p = pull(url, "--cache", cache, "--output", "other.gguf")
        assert p.returncode == 1 and "checksum mismatch" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(cache, "other.gguf"))
        assert not os.path.exists(os.path.join(cache, "other.gguf.part"))


@case
def http_errors_and_bad_arguments_are_clear():
    with FileServer(b"") as fs, tempfile.TemporaryDirectory() as cache:
        p = pull(fs.url("/models/missing.bin"), "--cache", cache)
        assert p.returncode == 1 and "HTTP 404" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(cache, "missing.bin"))
        p = pull(fs.url(), "--sha256", "abc", "--cache", cache)
        assert p.returncode == 1 and "64 hex digits" in p.stderr
        p = pull("ftp://example.invalid/x.gguf", "--cache", cache)
        assert p.returncode == 1 and "https://" in p.stderr
        p = pull(fs.url(), "--output", "../escape.gguf", "--cache", cache)
        assert p.returncode == 1 and "bad file name" in p.stderr


@case
def default_cache_follows_the_environment():
    data = model_bytes()
    with FileServer(data) as fs, tempfile.TemporaryDirectory() as home:
        p = pull(fs.url(), "--sha256", fs.sha, env_extra={"XDG_CACHE_HOME": os.path.join(home, "xdg")})
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == os.path.join(home, "xdg", "prbot", "stories260K.gguf")
        p = pull(fs.url(), "--sha256", fs.sha, "--quiet",
                 env_extra={"PRBOT_CACHE": os.path.join(home, "pc"), "XDG_CACHE_HOME": "/nonexistent"})
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert p.stdout.strip() == os.path.join(home, "pc", "stories260K.gguf")


run_all()
