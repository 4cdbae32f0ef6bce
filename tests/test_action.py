"""tests/test_action.py - runs action.yml's steps the way a runner would.

A small runner stand-in: reads action.yml (PyYAML), evaluates each step's
`if:` and the `${{ ... }}` expressions (inputs with their defaults, steps'
outputs, github.token, env, runner), sets the environment a runner sets
(GITHUB_ACTION_PATH, GITHUB_OUTPUT, GITHUB_EVENT_PATH, RUNNER_TEMP, ...)
and runs every `run:` with `bash -eo pipefail`. `actions/cache` steps are
emulated: the binary cache "hits" with the prbot under test (building the
whole project here would take minutes), the model cache misses so
`prbot model pull` really downloads from a local HTTP server. apt-get and
sudo are shims that record their calls. The fake GitHub API receives the
comment. The example workflows' job conditions are evaluated on sample
events (drafts and bots skipped).
"""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from fake_github import FakeGitHub  # noqa: E402
from testlib import PRBOT, TESTDATA, Skip, case, run_all  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(TESTDATA, "models", "stories260K.gguf")
TOKEN = "ghs_actionTESTtoken_77e1"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_yaml(path):
    try:
        import yaml
    except ImportError:
        raise Skip("PyYAML not installed (pip install pyyaml)")
    with open(path) as f:
        return yaml.safe_load(f)


def review_works():
    p = subprocess.run([PRBOT, "review", "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Skip("prbot review is not built yet (prbot review --help fails)")


# ------------------------------------------------------------ expressions

def lookup(path, ctx):
    cur = ctx
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return ""
    return cur


def eval_operand(tok, ctx):
    tok = tok.strip()
    if tok.startswith("'") and tok.endswith("'"):
        return tok[1:-1].replace("''", "'")
    if tok in ("true", "false"):
        return tok == "true"
    return lookup(tok, ctx)


def eval_expr(expr, ctx):
    """The subset action.yml and the workflows use: operands, ==, !=, &&, ||, !, (), endsWith()."""
    expr = expr.strip()
    if expr.startswith("("):  # a parenthesised whole: (a || b)
        depth = 0
        for i, ch in enumerate(expr):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        if i == len(expr) - 1:
            return eval_expr(expr[1:-1], ctx)
    for op in ("||", "&&"):
        depth, parts, cur = 0, [], ""
        i = 0
        while i < len(expr):
            ch = expr[i]
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and expr.startswith(op, i):
                parts.append(cur)
                cur = ""
                i += 2
                continue
            cur += ch
            i += 1
        if len(parts):  # as GitHub: || gives the first truthy operand, && the first falsy one (else the last)
            vals = [eval_expr(p, ctx) for p in parts + [cur]]
            pick = next((v for v in vals if bool(v) == (op == "||")), vals[-1])
            return pick
    if expr.startswith("!") and not expr.startswith("!="):
        return not eval_expr(expr[1:], ctx)
    m = re.fullmatch(r"endsWith\((.*),\s*('.*')\)", expr)
    if m:
        return str(eval_operand(m.group(1), ctx)).lower().endswith(eval_operand(m.group(2), ctx).lower())
    m = re.fullmatch(r"(.*?)\s*(==|!=)\s*(.*)", expr)
    if m:
        a, b = eval_operand(m.group(1), ctx), eval_operand(m.group(3), ctx)
        if isinstance(a, bool) or isinstance(b, bool):
            a, b = bool(a) if not isinstance(a, str) else a == "true", bool(b) if not isinstance(b, str) else b == "true"
        elif isinstance(a, str) and isinstance(b, str):
            a, b = a.lower(), b.lower()
        return (a == b) if m.group(2) == "==" else (a != b)
    return eval_operand(expr, ctx)


def substitute(text, ctx):
    def one(m):
        v = eval_expr(m.group(1), ctx)
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return EXPR.sub(one, str(text))


# ------------------------------------------------------------ the runner stand-in

def read_outputs(path):
    out = {}
    with open(path) as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.fullmatch(r"([\w-]+)<<(.+)", line)
        if m:
            end = m.group(2)
            j = lines.index(end, i + 1)
            out[m.group(1)] = "\n".join(lines[i + 1:j])
            i = j + 1
            continue
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        i += 1
    return out


def run_action(inputs, env_base, work, fake, binary_cache_hit=True):
    action = load_yaml(os.path.join(ROOT, "action.yml"))
    ctx = {"github": {"token": TOKEN}, "runner": {"os": "Linux", "arch": "X64", "temp": env_base["RUNNER_TEMP"]},
           "env": {"ImageOS": "ubuntu24"}, "steps": {}, "inputs": {}}
    for name, spec in action["inputs"].items():
        ctx["inputs"][name] = substitute(inputs.get(name, spec.get("default", "")), ctx)
    log = []
    for step in action["runs"]["steps"]:
        sid = step.get("id", "")
        if "if" in step and not eval_expr(EXPR.sub(lambda m: m.group(1), str(step["if"])), ctx):
            log.append(("skipped", step.get("name", sid)))
            continue
        if "uses" in step:
            assert step["uses"].startswith("actions/cache@"), step["uses"]
            path = substitute(step["with"]["path"], ctx)
            hit = binary_cache_hit and path.endswith("/prbot")
            if hit:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                shutil.copy(PRBOT, path)
            if sid:
                ctx["steps"][sid] = {"outputs": {"cache-hit": "true" if hit else "false"}}
            log.append(("cache", path, hit))
            continue
        out_file = os.path.join(work, f"output-{len(log)}")
        open(out_file, "w").close()
        env = dict(env_base)
        env["GITHUB_OUTPUT"] = out_file
        env.update({k: substitute(v, ctx) for k, v in (step.get("env") or {}).items()})
        script = substitute(step["run"], ctx)
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=env,
                           cwd=env_base["GITHUB_WORKSPACE"], capture_output=True, text=True, timeout=120)
        log.append(("run", step.get("name", sid), p.returncode, p.stdout, p.stderr))
        if p.returncode != 0:
            return None, log
        if sid:
            ctx["steps"][sid] = {"outputs": read_outputs(out_file)}
    outputs = {k: substitute(v["value"], ctx) for k, v in action["outputs"].items()}
    return outputs, log


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True)
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def make_checkout(workspace):
    os.makedirs(workspace)
    git(workspace, "init", "-q", "-b", "main")
    git(workspace, "config", "user.email", "t@example.com")
    git(workspace, "config", "user.name", "t")
    with open(os.path.join(workspace, "calc.c"), "w") as f:
        f.write("int add(int a, int b)\n{\n    return a + b;\n}\n")
    git(workspace, "add", "-A")
    base = git(workspace, "commit", "-q", "-m", "base")
    git(workspace, "checkout", "-q", "-b", "feature")
    with open(os.path.join(workspace, "calc.c"), "w") as f:
        f.write("int add(int a, int b)\n{\n    return a - b; /* oops */\n}\n")
    git(workspace, "add", "-A")
    head = git(workspace, "commit", "-q", "-m", "change add")
    return base, head


class ModelServer:
    def __init__(self, directory):
        handler = functools.partial(SimpleHTTPRequestHandler, directory=directory)
        handler.log_message = lambda *a: None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def url(self, name):
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"


def runner_env(tmp, fake, event_name, event):
    workspace = os.path.join(tmp, "workspace")
    shims = os.path.join(tmp, "shims")
    os.makedirs(shims)
    for tool in ("apt-get", "sudo"):
        with open(os.path.join(shims, tool), "w") as f:
            f.write(f'#!/bin/sh\necho "{tool} $*" >> "{tmp}/shim.log"\n')
            f.write('[ "$(basename "$0")" = sudo ] && exec "$@"\nexit 0\n')
        os.chmod(os.path.join(shims, tool), 0o755)
    event_path = os.path.join(tmp, "event.json")
    with open(event_path, "w") as f:
        json.dump(event, f)
    runner_temp = os.path.join(tmp, "runner_temp")
    os.makedirs(runner_temp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_", "INPUT_"))}
    env.update({
        "PATH": shims + os.pathsep + os.environ.get("PATH", ""), "HOME": os.path.join(tmp, "home"),
        "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": event_path,
        "GITHUB_REPOSITORY": fake.repo, "GITHUB_API_URL": fake.api_url, "GITHUB_WORKSPACE": workspace,
        "GITHUB_ACTION_PATH": ROOT, "GITHUB_STEP_SUMMARY": os.path.join(tmp, "summary.md"),
        "RUNNER_TEMP": runner_temp, "PRBOT_RETRY_MAX_WAIT": "0.05", "PRBOT_TESTDATA": TESTDATA,
    })
    return env, workspace


def pr_event(number, base, head, repo):
    return {"action": "synchronize", "number": number, "pull_request": {
        "number": number, "draft": False, "title": "Change add", "body": "",
        "user": {"login": "alice", "type": "User"},
        "base": {"sha": base, "ref": "main", "repo": {"full_name": repo}},
        "head": {"sha": head, "ref": "feature", "repo": {"full_name": repo}}}}


def step_log_text(log):
    return "\n".join(" | ".join(str(x) for x in entry) for entry in log)


@case
def action_posts_one_comment_on_a_pull_request():
    load_yaml(os.path.join(ROOT, "action.yml"))
    review_works()
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} missing")
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as fake, ModelServer(os.path.dirname(MODEL)) as ms:
        fake.add_pull(5)
        env, workspace = runner_env(tmp, fake, "pull_request", {})
        base, head = make_checkout(workspace)
        fake.pulls[5]["base"]["sha"], fake.pulls[5]["head"]["sha"] = base, head
        with open(env["GITHUB_EVENT_PATH"], "w") as f:
            json.dump(pr_event(5, base, head, fake.repo), f)
        import hashlib
        with open(MODEL, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        inputs = {"model-url": ms.url("stories260K.gguf"), "model-sha256": sha, "max-tokens": "24",
                  "include": "*.c, $(touch pwned)"}
        outputs, log = run_action(inputs, env, tmp, fake)
        text = step_log_text(log)
        assert outputs is not None, text[-3000:]
        assert TOKEN not in text, "token printed by a step"
        comments = fake.comments_of(5)
        assert len(comments) == 1, (comments, text[-2000:])
        assert "<!-- prbot:review -->" in comments[0]["body"]
        assert outputs["comment-url"] == comments[0]["html_url"], (outputs, text[-1500:])
        assert not os.path.exists(os.path.join(workspace, "pwned")), "an input was executed as a command"
        cached = os.path.join(env["HOME"], ".cache", "prbot", "models", "stories260K.gguf")
        assert os.path.exists(cached), "model not pulled into the cache the action restores"
        # the second run (a new push) updates the same comment
        outputs, log = run_action(inputs, env, tmp, fake)
        assert outputs is not None, step_log_text(log)[-3000:]
        assert len(fake.comments_of(5)) == 1 and fake.count("PATCH") == 1


@case
def action_dry_run_writes_body_file_and_posts_nothing():
    load_yaml(os.path.join(ROOT, "action.yml"))
    review_works()
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} missing")
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as fake:
        fake.add_pull(6)
        env, workspace = runner_env(tmp, fake, "pull_request", {})
        base, head = make_checkout(workspace)
        with open(env["GITHUB_EVENT_PATH"], "w") as f:
            json.dump(pr_event(6, base, head, fake.repo), f)
        outputs, log = run_action({"model-path": MODEL, "dry-run": "true", "max-tokens": "16"}, env, tmp, fake)
        assert outputs is not None, step_log_text(log)[-3000:]
        assert ("skipped", "Restore model") in log
        body_file = outputs["body-file"]
        assert body_file and os.path.exists(body_file), outputs
        with open(body_file) as f:
            assert "<!-- prbot:review -->" in f.read()
        assert fake.count("POST") == 0 and fake.count("PATCH") == 0 and fake.comments_of(6) == []


@case
def action_installs_only_missing_packages_with_sudo_shim():
    action = load_yaml(os.path.join(ROOT, "action.yml"))
    step = action["runs"]["steps"][0]
    assert "apt-get" in step["run"]
    with tempfile.TemporaryDirectory() as tmp:
        fake_dpkg_dir = os.path.join(tmp, "bin")
        os.makedirs(fake_dpkg_dir)
        with open(os.path.join(fake_dpkg_dir, "dpkg"), "w") as f:  # pretend libgit2-dev is missing
            f.write('#!/bin/sh\n[ "$2" = libgit2-dev ] && exit 1\nexit 0\n')
        for tool in ("apt-get", "sudo"):
            with open(os.path.join(fake_dpkg_dir, tool), "w") as f:
                f.write(f'#!/bin/sh\necho "{tool} $*" >> "{tmp}/calls"\n')
                f.write('[ "$(basename "$0")" = sudo ] && exec "$@"\nexit 0\n')
        for name in os.listdir(fake_dpkg_dir):
            os.chmod(os.path.join(fake_dpkg_dir, name), 0o755)
        env = dict(os.environ, PATH=fake_dpkg_dir + os.pathsep + os.environ["PATH"])
        p = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(tmp, "calls")) as f:
            calls = f.read()
        assert "apt-get update" in calls
        installs = [c for c in calls.splitlines() if c.startswith("apt-get") and " install " in c]
        assert installs and installs[-1].split()[-1] == "libgit2-dev", calls


@case
def example_workflows_skip_drafts_and_bots():
    wf = load_yaml(os.path.join(ROOT, "workflows", "pr-review.yml"))
    on = wf.get("on", wf.get(True))
    assert set(on["pull_request"]["types"]) == {"opened", "synchronize", "reopened", "ready_for_review"}
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert wf["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in wf["concurrency"]["group"]
    job = next(iter(wf["jobs"].values()))
    checkout = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    cond = job["if"]

    def runs(draft, login, user_type):
        pr = {"draft": draft, "user": {"login": login, "type": user_type}}
        return bool(eval_expr(cond, {"github": {"event": {"pull_request": pr}}}))

    assert runs(False, "alice", "User")
    assert not runs(True, "alice", "User")
    assert not runs(False, "dependabot[bot]", "Bot")
    assert not runs(False, "renovate[bot]", "User")
    manual = load_yaml(os.path.join(ROOT, "workflows", "manual.yml"))
    mon = manual.get("on", manual.get(True))
    assert mon["workflow_dispatch"]["inputs"]["pr-number"]["required"] is True
    uses = [s for s in next(iter(manual["jobs"].values()))["steps"] if "with" in s and "pr-number" in s["with"]]
    assert uses, "manual.yml must pass pr-number to the action"
    action = load_yaml(os.path.join(ROOT, "action.yml"))
    for name in ("model-url", "model-sha256", "model-path", "prompt", "github-token", "max-tokens", "time-budget",
                 "threads", "include", "exclude", "dry-run", "strict"):
        assert name in action["inputs"], name
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"
    for name in ("inline", "max-inline", "full", "output-dir", "post-from"):
        assert name in action["inputs"], name
    assert set(action["outputs"]) == {"comment-url", "review-url", "body-file"}
    # inputs must never be pasted into scripts (command injection); only into env:
    for step in action["runs"]["steps"]:
        assert "inputs." not in step.get("run", ""), step.get("name")


def model_step_outputs(tmp, cpus, mem_gib, inputs):
    """Runs only the step that picks the model, on a runner that reports cpus
    CPUs and mem_gib GiB (nproc and getconf shims); returns its outputs."""
    shims = os.path.join(tmp, f"shims-{cpus}-{mem_gib}")
    os.makedirs(shims)
    with open(os.path.join(shims, "nproc"), "w") as f:
        f.write(f"#!/bin/sh\necho {cpus}\n")
    with open(os.path.join(shims, "getconf"), "w") as f:
        f.write(f'#!/bin/sh\ncase "$1" in PAGE_SIZE) echo 4096;; _PHYS_PAGES) echo {mem_gib * 262144};; esac\n')
    for tool in ("nproc", "getconf"):
        os.chmod(os.path.join(shims, tool), 0o755)
    action = load_yaml(os.path.join(ROOT, "action.yml"))
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "model")
    ctx = {"inputs": {name: inputs.get(name, spec.get("default", "")) for name, spec in action["inputs"].items()},
           "github": {"token": TOKEN}, "steps": {}, "env": {}, "runner": {}}
    out = os.path.join(tmp, f"out-{cpus}-{mem_gib}")
    env = {"PATH": shims + os.pathsep + os.environ["PATH"], "HOME": tmp, "GITHUB_OUTPUT": out}
    env.update({k: substitute(v, ctx) for k, v in step["env"].items()})
    p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", substitute(step["run"], ctx)],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return read_outputs(out), p.stdout


@case
def default_model_is_chosen_for_the_runner():
    load_yaml(os.path.join(ROOT, "action.yml"))
    with tempfile.TemporaryDirectory() as tmp:
        # a private runner (2 vCPUs, 7 GB) gets the 1.5B with its pinned checksum
        out, said = model_step_outputs(tmp, 2, 7, {})
        assert out["url"].endswith("/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf") and len(out["sha256"]) == 64, out
        assert "2 CPUs" in said, said
        # a public runner (4 vCPUs, 16 GB) gets the 3B
        out, _ = model_step_outputs(tmp, 4, 16, {})
        assert out["url"].endswith("/qwen2.5-coder-3b-instruct-q4_k_m.gguf"), out
        # 4 CPUs, but the job asks for 2 threads: the 1.5B
        out, _ = model_step_outputs(tmp, 4, 15, {"threads": "2"})
        assert "1.5b" in out["url"], out
        # 4 CPUs with too little memory: the 1.5B
        out, _ = model_step_outputs(tmp, 8, 7, {})
        assert "1.5b" in out["url"], out
        # a model-url of the user's own is kept, with its checksum (or none)
        out, _ = model_step_outputs(tmp, 16, 64, {"model-url": "https://example.com/m.gguf"})
        assert out["url"] == "https://example.com/m.gguf" and out["sha256"] == "" and out["key"].startswith("prbot-model-")


@case
def fork_workflows_review_read_only_then_post():
    review_works()
    if not os.path.exists(MODEL):
        raise Skip(f"{MODEL} missing")
    wf_review = load_yaml(os.path.join(ROOT, "workflows", "fork-review.yml"))
    wf_post = load_yaml(os.path.join(ROOT, "workflows", "fork-post.yml"))
    assert "write" not in json.dumps(wf_review["permissions"]), wf_review["permissions"]
    assert wf_post["permissions"]["pull-requests"] == "write"
    trigger = wf_post.get("on", wf_post.get(True))["workflow_run"]
    assert trigger["workflows"] == [wf_review["name"]] and trigger["types"] == ["completed"]
    post_steps = next(iter(wf_post["jobs"].values()))["steps"]
    assert not any("checkout" in str(s.get("uses", "")) for s in post_steps), "the posting job must not check out"
    download = next(s for s in post_steps if str(s.get("uses", "")).startswith("actions/download-artifact"))
    assert "workflow_run.id" in download["with"]["run-id"]
    assert any("post-from" in (s.get("with") or {}) for s in post_steps)
    review_steps = next(iter(wf_review["jobs"].values()))["steps"]
    upload = next(s for s in review_steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == download["with"]["name"]
    from fake_github import pr_files_from_git
    with tempfile.TemporaryDirectory() as tmp, FakeGitHub(token=TOKEN) as fake:
        fake.add_pull(8, fork=True)
        env, workspace = runner_env(tmp, fake, "pull_request", {})
        base, head = make_checkout(workspace)
        fake.pulls[8]["base"]["sha"] = base
        fake.push(8, head, pr_files_from_git(workspace, base, head))
        with open(env["GITHUB_EVENT_PATH"], "w") as f:
            json.dump(pr_event(8, base, head, fake.repo), f)
        fake.read_only = True  # what a fork's pull_request job gets
        out_dir = os.path.join(tmp, "runner_temp", "prbot-review")
        outputs, log = run_action({"model-path": MODEL, "max-tokens": "16", "output-dir": out_dir}, env, tmp, fake)
        assert outputs is not None, step_log_text(log)[-3000:]
        assert fake.count("POST") == 0 and fake.count("PATCH") == 0, "the read-only half posted"
        assert os.path.exists(os.path.join(out_dir, "review.json")) and ("skipped", "Post") in log
        # the workflow_run half: a write token, the artifact, no checkout of the PR
        fake.read_only = False
        with open(env["GITHUB_EVENT_PATH"], "w") as f:
            json.dump({"action": "completed", "workflow_run": {
                "id": 99, "head_sha": head, "event": "pull_request", "conclusion": "success",
                "head_repository": {"full_name": "forker/demo"}, "pull_requests": []}}, f)
        env["GITHUB_EVENT_NAME"] = "workflow_run"
        outputs, log = run_action({"post-from": out_dir}, env, tmp, fake)
        assert outputs is not None, step_log_text(log)[-3000:]
        assert ("skipped", "Review") in log and ("skipped", "Download model") in log, log
        comments = fake.comments_of(8)
        assert len(comments) == 1 and "<!-- prbot:review -->" in comments[0]["body"], comments
        assert len(fake.reviews_of(8)) == 1
        assert outputs["comment-url"] == comments[0]["html_url"], outputs
        assert outputs["review-url"] == fake.reviews_of(8)[0]["html_url"], outputs


run_all()
