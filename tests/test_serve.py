"""tests/test_serve.py - `prbot serve` over loopback with real clients.

Each case starts the server binary (serve_lib.Server) with a test model and
talks to it with the Python standard library, `curl -N`, the `openai` package
when it is installed, and prbot's own clients. Formats are parsed line by
line as a streaming client would. Timing claims (streamed chunks arrive as
they are generated, a disconnect frees the server) use SmolLM2-135M from the
cache, which decodes slowly enough to see them; the tiny stories260K model
covers the formats. Every request and subprocess has a timeout.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_lib import SMOL, TINY, Server, ndjson, require, sse_events  # noqa: E402
from testlib import PRBOT, Skip, case, run_all  # noqa: E402

STORY = "Once upon a time, there was a little girl named Lily."
CHAT = [{"role": "user", "content": "Tell me a story about a cat."}]


def file_server(directory):
    """A static file server on loopback for /api/pull; the caller shuts it down."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=directory, **k)

        def log_message(self, *a):
            pass

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    files.daemon_threads = True
    threading.Thread(target=files.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return files


def completion_text(events):
    return "".join(e["choices"][0]["text"] for _, e in events if isinstance(e, dict) and e.get("choices"))


# ---- formats --------------------------------------------------------------------


@case
def openai_chat_non_streamed():
    with Server(TINY) as s:
        st, body = s.json("POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": 12, "temperature": 0})
        assert st == 200, body
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        ch = body["choices"][0]
        assert ch["message"]["role"] == "assistant" and ch["message"]["content"]
        assert ch["finish_reason"] in ("stop", "length")
        u = body["usage"]
        assert u["completion_tokens"] == 12 or ch["finish_reason"] == "stop", u
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


@case
def openai_chat_streamed_sse():
    with Server(TINY) as s:
        ev = sse_events(s.stream("/v1/chat/completions", {"messages": CHAT, "max_tokens": 10, "stream": True,
                                                            "stream_options": {"include_usage": True}}))
        assert ev[-1][1] == "[DONE]", ev[-1]
        chunks = [e for _, e in ev[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] in ("stop", "length")
        usage = chunks[-1]
        assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1, usage
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert len(text) > 0
        # without include_usage there is no usage chunk
        ev = sse_events(s.stream("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "stream": True}))
        assert all("usage" not in e for _, e in ev if isinstance(e, dict))


@case
def openai_completions_stop_and_seed():
    with Server(TINY) as s:
        body = {"prompt": STORY, "max_tokens": 30, "temperature": 0}
        st, full = s.json("POST", "/v1/completions", body)
        assert st == 200 and full["object"] == "text_completion", full
        text = full["choices"][0]["text"]
        assert len(text) > 10, text
        # a stop sequence taken from the greedy text ends it right before the sequence
        stop = text[6:9]
        st, cut = s.json("POST", "/v1/completions", dict(body, stop=[stop]))
        assert cut["choices"][0]["text"] == text[: text.index(stop)], (cut, text, stop)
        assert cut["choices"][0]["finish_reason"] == "stop"
        # the streamed form says the same
        ev = sse_events(s.stream("/v1/completions", dict(body, stream=True, stop=stop)))
        assert completion_text(ev) == text[: text.index(stop)]
        # a seed makes sampling repeatable
        sampled = dict(body, temperature=1.0, seed=42)
        a = s.json("POST", "/v1/completions", sampled)[1]["choices"][0]["text"]
        b = s.json("POST", "/v1/completions", sampled)[1]["choices"][0]["text"]
        assert a == b, (a, b)


@case
def ollama_generate_and_chat_ndjson():
    with Server(TINY) as s:
        lines = ndjson(s.stream("/api/generate", {"prompt": STORY, "raw": True, "options": {"num_predict": 8}}))
        *parts, last = [o for _, o in lines]
        assert all(p["done"] is False and "response" in p for p in parts)
        assert last["done"] is True and last["done_reason"] in ("stop", "length"), last
        for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                  "eval_duration"):
            assert isinstance(last[k], int), (k, last)
        assert last["eval_count"] == len(parts) and last["total_duration"] >= last["eval_duration"] > 0
        st, one = s.json("POST", "/api/generate", {"prompt": STORY, "raw": True, "stream": False,
                                                   "options": {"num_predict": 8}})
        assert st == 200 and one["done"] is True and one["response"] == "".join(p["response"] for p in parts)
        lines = ndjson(s.stream("/api/chat", {"messages": CHAT, "options": {"num_predict": 6}}))
        assert lines[-1][1]["done"] is True
        assert all(o["message"]["role"] == "assistant" for _, o in lines)


@case
def sse_generate_endpoint():
    with Server(TINY) as s:
        ev = sse_events(s.stream("/generate", {"prompt": STORY, "params": {"max_tokens": 7}}))
        tokens = [e for _, e in ev if "token" in e]
        assert [t["index"] for t in tokens] == list(range(len(tokens))) and len(tokens) >= 1
        assert ev[-1][1]["done"] is True and ev[-1][1]["total_tokens"] == 7, ev[-1]
        assert [e for _, e in ev if "error" in e] == []


@case
def version_models_tags_show_health():
    with Server(TINY) as s:
        st, v = s.json("GET", "/api/version")
        assert st == 200 and v["version"]
        st, m = s.json("GET", "/v1/models")
        assert st == 200 and m["object"] == "list" and m["data"][0]["id"] == "stories260K"
        st, t = s.json("GET", "/api/tags")
        assert t["models"][0]["name"] == "stories260K" and t["models"][0]["size"] > 0
        st, show = s.json("POST", "/api/show", {"model": "stories260K"})
        assert st == 200 and show["details"]["format"] == "gguf" and show["model_info"]["vocab_size"] == 512, show
        assert s.json("GET", "/health") == (200, {"status": "ok"})


@case
def health_is_503_while_loading():
    require(SMOL)  # repacking its weights takes long enough to be seen
    with Server(SMOL) as s:
        assert s.health[-1] == (200, {"status": "ok"}), s.health
        if len(s.health) == 1:
            raise Skip("the model was loaded before the first poll")
        assert all(h == (503, {"status": "loading"}) for h in s.health[:-1]), s.health


def curl(*args):
    r = subprocess.run(["curl", "-sN", "--max-time", "20", "-w", "\n%{http_code}", *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


@case
def curl_reaches_every_endpoint():
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    src = tempfile.mkdtemp()
    shutil.copy(TINY, os.path.join(src, "curl-pulled.gguf"))
    files = file_server(src)
    try:
        with Server(TINY) as s:
            u = s.url
            post = ["-H", "Content-Type: application/json", "-d"]
            streams = [("/v1/chat/completions", {"messages": CHAT, "max_tokens": 5, "stream": True}, "sse"),
                       ("/v1/completions", {"prompt": STORY, "max_tokens": 5, "stream": True}, "sse"),
                       ("/api/generate", {"prompt": STORY, "options": {"num_predict": 5}}, "ndjson"),
                       ("/api/chat", {"messages": CHAT, "options": {"num_predict": 5}}, "ndjson"),
                       ("/generate", {"prompt": STORY, "params": {"max_tokens": 5}}, "sse")]
            for path, body, kind in streams:
                code, out = curl(*post, json.dumps(body), u + path)
                lines = [(0, line) for line in out.split("\n")]
                events = sse_events(lines) if kind == "sse" else ndjson(lines)
                assert code == 200 and len(events) >= 3, (path, code, out[:300])
            for path in ("/v1/models", "/api/version", "/api/tags", "/health"):
                code, out = curl(u + path)
                assert code == 200 and json.loads(out), (path, out)
            code, out = curl(*post, json.dumps({"model": "stories260K"}), u + "/api/show")
            assert code == 200 and json.loads(out)["details"]["format"] == "gguf", out
            code, out = curl(*post, json.dumps({"name": "c", "modelpath": TINY}), u + "/api/create")
            assert code == 200 and json.loads(out) == {"status": "success"}, out
            code, out = curl("-X", "DELETE", *post, json.dumps({"name": "c"}), u + "/api/delete")
            assert code == 200, out
            url = f"http://127.0.0.1:{files.server_address[1]}/curl-pulled.gguf"
            code, out = curl(*post, json.dumps({"name": url}), u + "/api/pull")
            lines = [o for _, o in ndjson([(0, line) for line in out.split("\n")])]
            assert code == 200 and lines[-1]["status"] == "success", out
    finally:
        files.shutdown()
        files.server_close()
        shutil.rmtree(src, ignore_errors=True)


# ---- streaming, disconnects, load -------------------------------------------------


@case
def chunks_arrive_as_generated():
    require(SMOL)
    with Server(SMOL, "--parallel", "1") as s:
        ev = sse_events(s.stream("/v1/completions", {"prompt": STORY, "max_tokens": 120, "temperature": 0,
                                                     "stream": True}))
        times = [t for t, e in ev if isinstance(e, dict) and e["choices"] and e["choices"][0]["text"]]
        assert len(times) >= 100, len(times)
        # the first piece comes when it is generated, long before the last one
        assert times[0] < 0.25 * times[-1], (times[0], times[-1])


def long_request():
    return {"prompt": STORY, "max_tokens": 1500, "temperature": 0.9, "seed": 1, "stream": True}


@case
def disconnect_frees_the_slot():
    require(SMOL)
    with Server(SMOL, "--parallel", "1", "--queue", "4") as s:
        c = s.connect()
        c.request("POST", "/v1/completions", body=json.dumps(long_request()))
        r = c.getresponse()
        got = 0
        while got < 5:  # a few events, then hang up mid-stream
            line = r.readline()
            got += line.startswith(b"data: ")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        t0 = time.time()
        first = None
        for t, line in s.stream("/generate", {"prompt": STORY, "params": {"max_tokens": 3}}):
            if '"token"' in line:
                first = time.time() - t0
                break
        assert first is not None and first < 1.0, first
        deadline = time.time() + 5
        while "went away" not in s.log and time.time() < deadline:
            time.sleep(0.05)
        stopped = [line for line in s.log_lines if "went away" in line]
        assert stopped, s.log[-600:]
        n = int(stopped[0].split("stopped after ")[1].split()[0])
        assert n < 60, stopped[0]  # not the 1500 asked for


@case
def full_queue_gives_503():
    require(SMOL)
    with Server(SMOL, "--parallel", "1", "--queue", "1") as s:
        held = []
        for _ in range(2):  # one running, one waiting
            c = s.connect()
            c.request("POST", "/v1/completions", body=json.dumps(long_request()))
            held.append(c)
            time.sleep(0.2)
        st, headers, body = s.request("POST", "/v1/completions", {"prompt": STORY, "max_tokens": 2})
        assert st == 503 and headers.get("retry-after") == "1", (st, headers)
        assert json.loads(body)["error"]["type"] == "server_busy"
        for c in held:
            c.close()
        deadline = time.time() + 10
        while time.time() < deadline:  # the slots free up once the clients are gone
            st, _, _ = s.request("POST", "/v1/completions", {"prompt": STORY, "max_tokens": 2})
            if st == 200:
                break
            time.sleep(0.1)
        assert st == 200, st


@case
def concurrent_chats_never_mix():
    require(SMOL)
    prompts = ["Tell me about the sea.", "List three colors of fruit."]

    def run(s, p):
        """The answer's text, and when its first and last pieces arrived."""
        body = {"messages": [{"role": "user", "content": p}], "max_tokens": 40, "temperature": 0, "stream": True}
        t0 = time.time()
        ev = [(t0 + t, e) for t, e in sse_events(s.stream("/v1/chat/completions", body))
              if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content")]
        return "".join(e["choices"][0]["delta"]["content"] for _, e in ev), ev[0][0], ev[-1][0]

    alone = []
    for p in prompts:  # each on a fresh server: a fresh session, as each gets below
        with Server(SMOL) as s:
            alone.append(run(s, p)[0])
    with Server(SMOL, "--parallel", "2") as s:
        results = [None, None]
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(s, prompts[i]))) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert [r[0] for r in results] == alone, (results, alone)
    assert alone[0] != alone[1]
    # the two were generated at the same time, taking turns, not one after the other
    (_, a0, a1), (_, b0, b1) = results
    assert a0 < b1 and b0 < a1, results


# ---- bad input, keys -------------------------------------------------------------------


@case
def bad_requests_get_clear_errors():
    with Server(TINY, "--max-body", "4096") as s:
        cases = [
            ("POST", "/v1/chat/completions", "{not json", 400, "malformed JSON"),
            ("POST", "/v1/chat/completions", "[1,2]", 400, "JSON object"),
            ("POST", "/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
            ("POST", "/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, 400, "temperature"),
            ("POST", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
            ("POST", "/v1/completions", {"prompt": ""}, 400, "prompt"),
            ("POST", "/v1/chat/completions", {"messages": CHAT, "model": "nope"}, 404, "not found"),
            ("POST", "/api/generate", {"prompt": "x", "model": "nope"}, 404, "not found"),
            ("POST", "/v1/completions", {"prompt": "x" * 5000}, 413, "over 4096 bytes"),
            ("GET", "/v2/nothing", None, 404, "no endpoint"),
            ("GET", "/v1/chat/completions", None, 405, "not allowed"),
            ("POST", "/api/delete", {"name": "x"}, 405, "not allowed"),
        ]
        for method, path, body, want, words in cases:
            st, headers, data = s.request(method, path, body)
            assert st == want, (path, body if not isinstance(body, str) else body[:40], st, data[:200])
            err = json.loads(data)["error"]
            msg = err["message"] if isinstance(err, dict) else err
            assert words in msg, (path, msg)
            if path.startswith("/v1/"):
                assert err["code"] == want and err["type"], err
        # the server is still serving
        st, body = s.json("POST", "/v1/completions", {"prompt": STORY, "max_tokens": 3})
        assert st == 200 and body["usage"]["completion_tokens"] == 3, body
        assert s.proc.poll() is None


@case
def api_key_is_enforced():
    key = "sk-test-SECRET-4242"
    with Server(TINY, "--api-key", key) as s:
        body = {"prompt": STORY, "max_tokens": 2}
        assert s.request("POST", "/v1/completions", body)[0] == 401
        assert s.request("POST", "/v1/completions", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("POST", "/v1/completions", body, {"Authorization": key})[0] == 401
        assert s.request("POST", "/v1/completions", body, {"Authorization": f"Bearer {key}x"})[0] == 401
        assert s.request("GET", "/api/tags")[0] == 401
        assert s.request("POST", "/v1/completions", body, {"Authorization": f"Bearer {key}"})[0] == 200
        assert s.request("GET", "/health")[0] == 200  # probes need no key
    assert key not in s.log and "/v1/completions 401" in s.log and "/v1/completions 200" in s.log
    with Server(TINY, env={"PRBOT_API_KEY": key}) as s:
        assert s.request("GET", "/v1/models")[0] == 401
        assert s.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})[0] == 200


@case
def binds_loopback_by_default():
    with Server(TINY) as s:
        assert s.host == "127.0.0.1"


@case
def log_has_one_line_per_request():
    with Server(TINY) as s:
        s.request("GET", "/api/tags")
        s.json("POST", "/v1/completions", {"prompt": STORY, "max_tokens": 4})
        time.sleep(0.1)
    lines = [line for line in s.log_lines if line.startswith("prbot serve: GET") or line.startswith("prbot serve: POST")]
    assert any(l.startswith("prbot serve: GET /api/tags 200 tokens=0 ms=") for l in lines), lines
    assert any(l.startswith("prbot serve: POST /v1/completions 200 tokens=4 ms=") for l in lines), lines


# ---- sessions, registry -------------------------------------------------------------


@case
def continued_chat_reuses_its_prefix():
    with Server(TINY, "--parallel", "1") as s:
        msgs = [{"role": "user", "content": "Tell me about Lily and her dog."}]
        st, a = s.json("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 20, "temperature": 0})
        assert a["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, a["usage"]
        msgs += [a["choices"][0]["message"], {"role": "user", "content": "What happened next?"}]
        st, b = s.json("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 20, "temperature": 0})
        cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        # at least the whole first prompt was reused, and only the rest was prefilled
        assert cached >= a["usage"]["prompt_tokens"], (a["usage"], b["usage"])
        assert cached < b["usage"]["prompt_tokens"]
        # Ollama's count is of the tokens evaluated
        olla = s.stream("/api/chat", {"messages": msgs + [b["choices"][0]["message"],
                                                         {"role": "user", "content": "And then?"}],
                                      "options": {"num_predict": 5, "temperature": 0}})
        last = ndjson(olla)[-1][1]
        assert last["prompt_cached_count"] >= b["usage"]["prompt_tokens"], last
        assert 0 < last["prompt_eval_count"] < last["prompt_cached_count"], last


@case
def create_tags_delete_survive_restart():
    models = tempfile.mkdtemp()
    try:
        with Server(TINY, models_dir=models) as s:
            st, body = s.json("POST", "/api/create", {"name": "tiny:test", "modelpath": TINY})
            assert st == 200 and body["status"] == "success", body
            st, body = s.json("POST", "/api/create", {"name": "bad", "modelpath": "/nonexistent.gguf"})
            assert st == 400 and "nonexistent" in body["error"], body
            names = [m["name"] for m in s.json("GET", "/api/tags")[1]["models"]]
            assert "tiny:test" in names and "bad" not in names, names
            st, out = s.json("POST", "/api/generate", {"model": "tiny:test", "prompt": STORY, "raw": True,
                                                       "stream": False, "options": {"num_predict": 3}})
            assert st == 200 and out["model"] == "tiny:test", out
        with open(os.path.join(models, "models.json")) as f:
            assert json.load(f)["models"][0]["name"] == "tiny:test"
        with Server(TINY, models_dir=models) as s:  # a restart keeps it
            assert "tiny:test" in [m["id"] for m in s.json("GET", "/v1/models")[1]["data"]]
            assert s.json("DELETE", "/api/delete", {"name": "tiny:test"})[0] == 200
            st, body = s.json("DELETE", "/api/delete", {"name": "tiny:test"})
            assert st == 404 and "not found" in body["error"]
            assert s.json("POST", "/v1/completions", {"model": "tiny:test", "prompt": "x"})[0] == 404
        with Server(TINY, models_dir=models) as s:  # and the delete too
            assert [m["name"] for m in s.json("GET", "/api/tags")[1]["models"]] == ["stories260K"]
    finally:
        shutil.rmtree(models, ignore_errors=True)


@case
def least_recently_used_model_is_unloaded():
    with Server(TINY, "--memory", "1") as s:  # 1 MB: room for one 1.2 MB model at a time, whatever it is
        for name in ("a", "b"):
            assert s.json("POST", "/api/create", {"name": name, "modelpath": TINY})[0] == 200
        for name in ("a", "b", "stories260K", "a"):
            st, out = s.json("POST", "/v1/completions", {"model": name, "prompt": STORY, "max_tokens": 2})
            assert st == 200 and out["model"] == name, out
        time.sleep(0.1)
    unloads = [line.split("unloading ")[1].split()[0] for line in s.log_lines if "unloading " in line]
    loads = [line.split("loaded ")[1].split()[0] for line in s.log_lines if "prbot serve: loaded " in line]
    assert loads == ["stories260K", "a", "b", "stories260K", "a"], loads
    assert unloads == ["stories260K", "a", "b", "stories260K"], unloads


@case
def pull_streams_progress_and_registers():
    require(TINY)
    src = tempfile.mkdtemp()
    models = tempfile.mkdtemp()
    shutil.copy(TINY, os.path.join(src, "pulled-tiny.gguf"))

    files = file_server(src)
    try:
        with Server(TINY, models_dir=models, env={"PRBOT_RETRY_MAX_WAIT": "0.05"}) as s:
            url = f"http://127.0.0.1:{files.server_address[1]}/pulled-tiny.gguf"
            lines = [o for _, o in ndjson(s.stream("/api/pull", {"name": url}))]
            assert lines[0]["status"] and lines[-1]["status"] == "success", lines
            assert lines[-1]["name"] == "pulled-tiny" and os.path.exists(lines[-1]["path"])
            assert "pulled-tiny" in [m["name"] for m in s.json("GET", "/api/tags")[1]["models"]]
            bad = [o for _, o in ndjson(s.stream("/api/pull", {"name": url.replace("tiny", "missing")}))]
            assert "error" in bad[-1] and any("404" in o.get("status", "") for o in bad), bad
            assert s.json("POST", "/api/pull", {"name": "not a url"})[0] == 400
    finally:
        files.shutdown()
        files.server_close()
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(models, ignore_errors=True)


# ---- clients ------------------------------------------------------------------------------


@case
def openai_package_streams():
    try:
        import openai  # noqa: F401
    except ImportError:
        raise Skip("the openai package is not installed")
    with Server(TINY) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", timeout=30, max_retries=0)
        stream = client.chat.completions.create(model="stories260K", messages=CHAT, max_tokens=8, stream=True)
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert len(pieces) >= 1, pieces
        done = client.chat.completions.create(model="stories260K", messages=CHAT, max_tokens=4)
        assert done.usage.completion_tokens == 4


run_all()
