"""The demo's git repository: a bare one with the post-receive hook, and a working clone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from demo.config import DemoError
from demo.hooks import SECRET_ENV


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A predictable git: no user/system config (hooksPath, signing), a fixed identity.

    Args:
        extra: More environment (e.g. the webhook secret for the hook).

    Returns:
        The environment to run git with.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", SECRET_ENV)}  # fmt: skip
    env.update({
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "canary demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "canary demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    })  # fmt: skip
    env.update(extra or {})
    return env


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run git; its output (stdout and stderr).

    Raises:
        DemoError: git failed.
    """
    done = subprocess.run(["git", *args], cwd=cwd, env=dict(env or git_env()),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return (done.stdout + done.stderr).strip()


@dataclass
class DemoRepo:
    """The bare repository pushes go to, and the working clone commits are made in."""

    bare: Path
    work: Path

    def create(self, source: Path) -> None:
        """A fresh bare repository and a fresh working clone holding the app's files."""
        for path in (self.bare, self.work):
            if path.exists():
                shutil.rmtree(path)
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        # The repository's own config wins over anyone's core.hooksPath: our hook runs.
        git("--git-dir", str(self.bare), "config", "core.hooksPath", str(self.bare / "hooks"))
        shutil.copytree(source, self.work,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        git("init", "-q", "-b", "main", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, version: str, faults: Mapping[str, object]) -> str:
        """Commit `version` with its `faults` (faults.json); the commit's sha."""
        (self.work / "VERSION").write_text(f"{version}\n")
        (self.work / "faults.json").write_text(json.dumps(dict(faults)) + "\n")
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", f"goldengoose {version}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, secret: str | None = None) -> str:
        """`git push` of main; the hook (if installed) gets the secret from this environment."""
        extra = {SECRET_ENV: secret} if secret else {}
        return git("push", "-q", "origin", "main", cwd=self.work, env=git_env(extra))


_DELIVERY = re.compile(r"delivery \S+ \S+ [0-9a-f]{12} -> (\d{3}|unreachable)")


def check_delivery(push_output: str) -> None:
    """Check the hook's output shows a 2xx answer of the relay.

    Raises:
        DemoError: It does not.
    """
    answers = _DELIVERY.findall(push_output)
    if not answers or not all(a.isdigit() and 200 <= int(a) < 300 for a in answers):
        raise DemoError("the post-receive hook did not deliver the push to the relay:\n"
                        + (push_output or "(no output from the hook)"))  # fmt: skip
