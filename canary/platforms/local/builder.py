"""Git builder: a commit's tree checked out into a content-addressed artifact store.

The artifact is keyed by the git tree id of the app directory, so the "image" reference
``local/<app>@sha1:<tree>`` pins exactly the bytes that run, the same commit (or any commit
with the same tree) is never built twice, and a rebuild can't silently change what a
reference means. Sources are mirrored into ``<state>/git/`` (a path, a file:// URL or any
URL git can fetch); a commit missing from the mirror triggers one fetch before failing.

Store layout: ``artifacts/<tree>/`` (the files, read-only by convention) and
``artifacts/<tree>.json`` (written last: its presence means "complete").
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from canary.errors import BuildError, ConfigError, PlatformError
from canary.platforms.gitfiles import read_directory
from canary.platforms.local import procs
from canary.platforms.local.spec import AppSpec, process_env, render

IMAGE_RE = re.compile(r"^local/(?P<app>[A-Za-z0-9][A-Za-z0-9._-]*)@sha1:(?P<tree>[0-9a-f]{40})$")
_REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/^~-]*$")
_APP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Artifact:
    """A built commit: its image reference and the tree its processes run from."""

    image: str  # local/<app>@sha1:<tree>
    app: str
    commit: str
    tree: str
    path: Path  # the checked-out tree the processes run from
    version: str
    source: str
    built: bool  # False when the store already held it (no rebuild)

    def to_json(self) -> dict[str, object]:
        """The artifact's record (artifacts/<tree>.json), its path as a string."""
        d = {k: getattr(self, k) for k in ("image", "app", "commit", "tree", "version", "source")}
        return {**d, "path": str(self.path)}


def image_for(app: str, tree: str) -> str:
    """The image reference of ``app`` built from git tree ``tree``."""
    return f"local/{app}@sha1:{tree}"


def parse_image(image: str) -> tuple[str, str]:
    """(app, tree) of a local image reference, ConfigError for anything else."""
    m = IMAGE_RE.match(image)
    if not m:
        raise ConfigError(
            f"image {image!r} is not a local artifact reference local/<app>@sha1:<tree>"
        )
    return m["app"], m["tree"]


class GitBuilder:
    """`canary.ports.Builder`: builds the app directory `subdir` of a repo (path or URL)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        app: str | None = None,
        subdir: str = "",
        python: str | None = None,
        git: str = "git",
    ) -> None:
        if app is not None and not _APP_RE.match(app):
            raise ConfigError(f"app name {app!r} must be 1-63 of A-Z a-z 0-9 . _ -")
        if subdir.startswith("/") or ".." in subdir.split("/"):
            raise ConfigError(f"subdir {subdir!r} must be a relative path inside the repository")
        self.state = Path(state_dir)
        self.app, self.subdir = app, subdir.strip("/")
        self.python = python or sys.executable
        self.git = git
        self.store = self.state / "artifacts"

    def app_for(self, repo: str) -> str:
        """The app a repository builds: the builder's own, else named after the repository."""
        if self.app:
            return self.app
        base = (self.subdir or repo.rstrip("/")).rsplit("/", 1)[-1].removesuffix(".git")
        name = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-._")[:63]
        if not name:
            raise ConfigError(f"cannot derive an app name from {repo!r}; pass app=")
        return name

    # -- git ------------------------------------------------------------------------------
    def _git(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
        try:
            res = subprocess.run(
                [self.git, *args], capture_output=True, env=env, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PlatformError(f"git {args[0]} failed: {exc}", transient=True) from None
        if check and res.returncode != 0:
            msg = res.stderr.decode(errors="replace").strip()
            raise BuildError(
                f"git {' '.join(a for a in args if not a.startswith('/'))} failed: {msg}"
            )
        return res

    def mirror_of(self, repo: str) -> Path:
        """Where the bare mirror of ``repo`` lives."""
        return self.state / "git" / (hashlib.sha256(repo.encode()).hexdigest()[:16] + ".git")

    def _sync_mirror(self, repo: str, mirror: Path) -> None:
        if (mirror / "HEAD").exists():
            self._git("--git-dir", str(mirror), "fetch", "--prune", "--quiet", "origin")
            return
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".mirror-", dir=mirror.parent))
        try:
            self._git("clone", "--mirror", "--quiet", "--", repo, str(tmp / "m.git"))
            os.replace(tmp / "m.git", mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _resolve(self, mirror: Path, rev: str) -> str | None:
        if not (mirror / "HEAD").exists():
            return None
        res = self._git(
            "--git-dir",
            str(mirror),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{rev}^{{commit}}",
            check=False,
        )
        return res.stdout.decode().strip() if res.returncode == 0 else None

    def resolve(self, repo: str, commit: str) -> tuple[str, str]:
        """(full commit id, tree id of the app directory); BuildError saying what is missing."""
        if not _REV_RE.match(commit) or len(commit) > 200:
            raise BuildError(f"commit {commit!r} is not a valid git revision")
        mirror = self.mirror_of(repo)
        with procs.locked(mirror.with_suffix(".lock")):
            # An object id names the same commit forever: fetch only when it is missing. A
            # branch, tag or HEAD moves, so it is always resolved against a fresh fetch.
            fixed = re.fullmatch(r"[0-9a-f]{7,40}", commit) is not None
            full = self._resolve(mirror, commit) if fixed else None
            if full is None:
                self._sync_mirror(repo, mirror)
                full = self._resolve(mirror, commit)
        if full is None:
            raise BuildError(f"commit {commit!r} not found in {repo!r} (after fetching all refs)")
        spec = f"{full}:{self.subdir}" if self.subdir else f"{full}^{{tree}}"
        res = self._git(
            "--git-dir",
            str(mirror),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            spec,
            check=False,
        )
        tree = res.stdout.decode().strip()
        kind = (
            self._git("--git-dir", str(mirror), "cat-file", "-t", tree, check=False)
            if tree
            else None
        )
        if not tree or kind is None or kind.stdout.strip() != b"tree":
            raise BuildError(f"commit {full[:12]} of {repo!r} has no directory {self.subdir!r}")
        return full, tree

    # -- Builder ----------------------------------------------------------------------------
    def is_ancestor(self, repo: str, older: str, newer: str) -> bool | None:
        """True if commit `older` is an ancestor of `newer` in `repo` (so `newer` is the
        newer one), False if not, None when either commit is unknown to the mirror."""
        mirror = self.mirror_of(repo)
        if not (mirror / "HEAD").exists():
            return None
        for rev in (older, newer):
            if self._resolve(mirror, rev) is None:
                return None
        res = self._git("--git-dir", str(mirror), "merge-base", "--is-ancestor",
                        "--end-of-options", older, newer, check=False)  # fmt: skip
        if res.returncode in (0, 1):
            return res.returncode == 0
        return None

    def config_files(self, repo: str, commit: str, directory: str = ".canary") -> dict[str, str] | None:
        """The files under `directory` of the app directory at `commit` (None: it has none),
        read from the mirror with git plumbing: nothing of the repository runs."""
        full, _ = self.resolve(repo, commit)  # fetches the commit into the mirror if missing
        where = f"{self.subdir}/{directory}" if self.subdir else directory
        return read_directory(self.mirror_of(repo), full, where)

    def build(self, repo: str, commit: str) -> str:
        """The image reference of `commit` (built now, or found in the store)."""
        return self.build_artifact(repo, commit).image

    def build_artifact(self, repo: str, commit: str) -> Artifact:
        """Build ``commit`` (or find it built already); the artifact."""
        app = self.app_for(repo)
        full, tree = self.resolve(repo, commit)
        with procs.locked(self.store / f"{tree}.lock"):
            found = load_artifact(self.state, image_for(app, tree))
            if found is not None:
                return found
            return self._build(repo, app, full, tree)

    def _build(self, repo: str, app: str, commit: str, tree: str) -> Artifact:
        self.store.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{tree[:12]}-", dir=self.store))
        try:
            blob = self._git(
                "--git-dir", str(self.mirror_of(repo)), "archive", "--format=tar", tree
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                tar.extractall(tmp, filter="data")
            try:
                spec = AppSpec.load(tmp)
            except ConfigError as exc:
                raise BuildError(f"commit {commit[:12]}: {exc}") from None
            version = _version(tmp, spec, commit)
            if spec.build:
                self._run_build(spec, tmp, app, commit, tree, version)
            final = self.store / tree
            if final.exists():  # a crashed earlier build left its tree but no metadata
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        art = Artifact(image_for(app, tree), app, commit, tree, final, version, repo, True)
        procs.write_json(self.store / f"{tree}.json", {**art.to_json(), "built_at": time.time()})
        return art

    def _run_build(
        self, spec: AppSpec, root: Path, app: str, commit: str, tree: str, version: str
    ) -> None:
        assert spec.build is not None
        values = {
            "port": "0",
            "track": "build",
            "version": version,
            "app": app,
            "python": self.python,
        }
        argv = render(spec.build, values, self.python)
        env = process_env(
            spec, os.environ, app=app, track="build", version=version, port=0, python=self.python
        )
        log = self.store / f"{tree}.build.log"
        try:
            with open(log, "wb") as out:
                res = subprocess.run(
                    argv,
                    cwd=root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=spec.build_timeout,
                )
        except subprocess.TimeoutExpired:
            raise BuildError(
                f"commit {commit[:12]}: build {argv} timed out after "
                f"{spec.build_timeout:g}s; log {log}"
            ) from None
        except OSError as exc:
            raise BuildError(f"commit {commit[:12]}: build {argv} could not start: {exc}") from None
        if res.returncode != 0:
            raise BuildError(
                f"commit {commit[:12]}: build {argv} exited with {res.returncode}; log {log}, "
                f"last lines:\n{procs.tail(log)}"
            )


def _version(root: Path, spec: AppSpec, commit: str) -> str:
    path = root / spec.version_file
    if path.is_file():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", lines[0].strip()):
            return lines[0].strip()
    return commit[:12]


def load_artifact(state_dir: str | os.PathLike[str], image: str) -> Artifact | None:
    """The artifact ``image`` names, None when it is not in the store."""
    app, tree = parse_image(image)
    meta = procs.read_mapping(Path(state_dir) / "artifacts" / f"{tree}.json")
    path = Path(state_dir) / "artifacts" / tree
    if not meta or not path.is_dir():
        return None
    return Artifact(image, app, str(meta.get("commit")), tree, path, str(meta.get("version")),
                    str(meta.get("source")), False)  # fmt: skip
