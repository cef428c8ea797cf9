"""Read the files of one directory of a commit, as text, without checking anything out.

How a build finds the app's own release config (`.canary/`): plumbing commands only
(`ls-tree`, `cat-file`), so nothing from the repository is ever executed, no hook runs and
no work tree is written. Shared by the local builder (its mirror) and the cluster builders
(a shallow fetch of the one commit into a temporary directory by the flow process).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from canary.appconfig import MAX_BYTES
from canary.errors import BuildError, ConfigError, PlatformError


def _git(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    try:
        return subprocess.run(["git", *args], capture_output=True, env=env, timeout=timeout,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlatformError(f"git {args[0]} failed: {exc}", transient=True) from None


def read_directory(git_dir: Path, commit: str, directory: str) -> dict[str, str] | None:
    """{path relative to `directory`: text} of every file under it at `commit`, or None
    when the commit has no such directory. ConfigError when the files are too big or not
    UTF-8 text (they are config, named in the error)."""
    res = _git("--git-dir", str(git_dir), "ls-tree", "-r", "-z", "--long", "--end-of-options",
               commit, "--", f"{directory.strip('/')}/")  # fmt: skip
    if res.returncode != 0:
        raise BuildError(f"git ls-tree {commit[:12]} failed: {res.stderr.decode(errors='replace')}")
    files: dict[str, str] = {}
    total = 0
    for entry in filter(None, res.stdout.split(b"\0")):
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, obj, size = meta.split()
        path = raw_path.decode(errors="replace")
        if kind != b"blob" or mode == b"120000":  # a submodule or a symlink: not config
            continue
        total += int(size)
        if total > MAX_BYTES:
            raise ConfigError(f"{directory}/ at {commit[:12]}: its files add up to more than "
                              f"{MAX_BYTES // 1024} KiB; keep only the release config there")  # fmt: skip
        blob = _git("--git-dir", str(git_dir), "cat-file", "blob", obj.decode())
        try:
            text = blob.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} at {commit[:12]}: not UTF-8 text") from None
        files[path.removeprefix(directory.strip("/") + "/")] = text
    return files or None


def fetch_directory(repo: str, commit: str, directory: str) -> dict[str, str] | None:
    """`read_directory` of a remote repository: a shallow fetch of just `commit` into a
    temporary bare repository (servers that refuse to serve a bare commit id, such as old
    git daemons without uploadpack.allowReachableSHA1InWant, give a BuildError)."""
    with tempfile.TemporaryDirectory(prefix="canary-config-") as tmp:
        git_dir = Path(tmp) / "r.git"
        init = _git("init", "--bare", "--quiet", str(git_dir))
        if init.returncode != 0:
            raise BuildError(f"git init failed: {init.stderr.decode(errors='replace')}")
        res = _git("--git-dir", str(git_dir), "fetch", "--quiet", "--depth", "1", "--no-tags",
                   "--", repo, commit)  # fmt: skip
        if res.returncode != 0:
            msg = res.stderr.decode(errors="replace").strip()
            raise BuildError(f"git fetch of {commit[:12]} from {repo!r} failed: {msg}")
        return read_directory(git_dir, commit, directory)
