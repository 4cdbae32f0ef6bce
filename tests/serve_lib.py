"""tests/serve_lib.py - start `prbot serve` on loopback and talk to it with the stdlib.

Server(args) runs the binary with --port 0, reads the port from its first log
line, waits for GET /health to say 200, and stops it (SIGTERM, then SIGKILL)
on exit; its log is kept in .log. Every network call has a timeout, so a hung
server fails a test instead of hanging the suite.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

from testlib import PRBOT, TESTDATA, Skip

TINY = os.path.join(TESTDATA, "models", "stories260K.gguf")
CACHE = os.environ.get("PRBOT_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "prbot")
SMOL = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
TIMEOUT = 30


def require(path):
    if not os.path.exists(path):
        raise Skip(f"{path} not found (tests/setup.sh fetches it)")
    return path


class Server:
    def __init__(self, model=TINY, *args, models_dir=None, env=None):
        require(model)
        self.tmp = None
        if models_dir is None:
            self.tmp = tempfile.TemporaryDirectory()
            models_dir = self.tmp.name
        self.models_dir = models_dir
        self.args = [PRBOT, "serve", "--model", model, "--models", models_dir, "--port", "0", *args]
        self.env = dict(os.environ, **(env or {}))
        self.log_lines = []
        self.health = []  # (status, body) of each poll until the first 200

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=self.env)
        m = None
        for _ in range(20):  # the listening line, among the first few
            line = self.proc.stderr.readline()
            self.log_lines.append(line)
            m = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if m or not line:
                break
        if not m:
            self.proc.kill()
            raise AssertionError(f"no listening line: {self.log!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            try:
                status, _, body = self.request("GET", "/health")
                self.health.append((status, json.loads(body)))
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.01)
        self.__exit__(None, None, None)
        raise AssertionError("the server did not become healthy")

    def _read_log(self):
        for line in self.proc.stderr:
            self.log_lines.append(line)

    @property
    def log(self):
        return "".join(self.log_lines)

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        if self.tmp:
            self.tmp.cleanup()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout=TIMEOUT):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=TIMEOUT):
        """One request; returns (status, headers dict, body bytes)."""
        c = self.connect(timeout)
        try:
            data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, timeout=TIMEOUT):
        status, _, data = self.request(method, path, body, headers, timeout)
        return status, json.loads(data)

    def stream(self, path, body, headers=None, timeout=TIMEOUT):
        """POSTs and yields (seconds since sent, line) for each line of the body as it arrives."""
        c = self.connect(timeout)
        try:
            t0 = time.time()
            c.request("POST", path, body=json.dumps(body), headers=headers or {})
            r = c.getresponse()
            if r.status != 200:
                raise AssertionError(f"HTTP {r.status}: {r.read()[:300]!r}")
            while True:
                line = r.readline()
                if not line:
                    break
                yield time.time() - t0, line.decode().rstrip("\r\n")
        finally:
            c.close()


def sse_events(lines):
    """The data fields of server-sent events, parsed: JSON objects, or the string "[DONE]"."""
    out = []
    for t, line in lines:
        if not line:
            continue
        assert line.startswith("data: "), f"not an SSE data line: {line!r}"
        data = line[6:]
        out.append((t, data if data == "[DONE]" else json.loads(data)))
    return out


def ndjson(lines):
    return [(t, json.loads(line)) for t, line in lines if line]
