"""tests/prfixture.py - pull requests as real git repositories, for the tests
of inline reviews (test_publish.py, test_inline.py).

A PR is a repository in a temporary directory with a `main` branch and a
`feature` branch; `commit(files)` adds a commit to feature, `force(files)`
rewrites it from main (a force-push). `register(fake, number)` puts the PR
into a FakeGitHub with the files the PR files API would list for it, and
`event(...)` writes the pull_request event GitHub Actions would hand prbot.
"""
import json
import os
import subprocess

from fake_github import pr_files_from_git


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e", GIT_CONFIG_NOSYSTEM="1", HOME=cwd)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class PullRequest:
    def __init__(self, tmp, base_files, name="repo"):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        git(self.dir, "init", "-q", "-b", "main", ".")
        git(self.dir, "config", "commit.gpgsign", "false")
        self._put(base_files)
        git(self.dir, "add", "-A")
        git(self.dir, "commit", "-qm", "base")
        self.base = git(self.dir, "rev-parse", "HEAD")
        git(self.dir, "checkout", "-qb", "feature")
        self.head = self.base

    def _put(self, files):
        for path, text in files.items():
            full = os.path.join(self.dir, path)
            if text is None:
                if os.path.exists(full):
                    os.remove(full)
            else:
                write(full, text)

    def commit(self, files, message="change"):
        """A new commit on feature (a push)."""
        self._put(files)
        git(self.dir, "add", "-A")
        git(self.dir, "commit", "-qm", message)
        self.head = git(self.dir, "rev-parse", "HEAD")
        return self.head

    def force(self, files, message="rewritten"):
        """feature rewritten from main (a force-push): the old head is gone from the branch."""
        git(self.dir, "checkout", "-q", "main")
        git(self.dir, "branch", "-D", "feature")
        git(self.dir, "checkout", "-qb", "feature")
        self._put(files)
        git(self.dir, "add", "-A")
        git(self.dir, "commit", "-qm", message)
        git(self.dir, "reflog", "expire", "--expire=now", "--all")
        git(self.dir, "gc", "-q", "--prune=now")
        self.head = git(self.dir, "rev-parse", "HEAD")
        return self.head

    def files(self):
        return pr_files_from_git(self.dir, self.base, self.head)

    def register(self, fake, number, **kw):
        if number not in fake.pulls:
            fake.add_pull(number, head_sha=self.head, base_sha=self.base, **kw)
        fake.push(number, self.head, self.files())

    def event(self, tmp, number, title="Change", fork=False):
        path = os.path.join(tmp, f"event-{number}.json")
        head_repo = "forker/demo" if fork else "octo/demo"
        with open(path, "w") as f:
            json.dump({"number": number, "pull_request": {
                "number": number, "title": title, "body": "", "draft": False, "user": {"login": "alice"},
                "base": {"sha": self.base, "repo": {"full_name": "octo/demo"}},
                "head": {"sha": self.head, "repo": {"full_name": head_repo, "fork": fork}}}}, f)
        return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PRBOT_", "RUNNER_"))}
    env.update(extra)
    return env


def actions_env(tmp, fake, token, event_name, event_path, **extra):
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME=event_name, GITHUB_EVENT_PATH=event_path,
                    GITHUB_REPOSITORY=fake.repo, GITHUB_TOKEN=token, GITHUB_API_URL=fake.api_url,
                    GITHUB_STEP_SUMMARY=os.path.join(tmp, "step-summary.md"),
                    GITHUB_OUTPUT=os.path.join(tmp, "output"), RUNNER_TEMP=tmp, PRBOT_RETRY_MAX_WAIT="0",
                    PRBOT_WRITE_INTERVAL="0")
    env.update(extra)
    return env


def workflow_run_event(tmp, head_sha, prs=(), head_repo="forker/demo"):
    path = os.path.join(tmp, "workflow_run.json")
    with open(path, "w") as f:
        json.dump({"action": "completed", "workflow_run": {
            "head_sha": head_sha, "event": "pull_request", "conclusion": "success",
            "head_repository": {"full_name": head_repo},
            "pull_requests": [{"number": n} for n in prs]}}, f)
    return path
