"""Fixtures for the local platform: a real git repo of goldengoose, a real HAProxy + Prometheus.

One stack per session (HAProxy and Prometheus start in ~0.2 s, but Prometheus needs ~5 s
before its first samples, so it is shared); every test that runs workloads leaves the app
with no process and 100 % primary. The finalizers stop every process by its recorded pid
and then assert that nothing the platform marked is still alive.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary.platforms.local import procs
from canary.platforms.local.builder import GitBuilder
from canary.platforms.local.haproxy import HAProxyRouter
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.workloads import MARKER, ProcessWorkloads
from canary.values.weights import Weights

ROOT = Path(__file__).resolve().parents[3]
GOLDENGOOSE = ROOT / "examples" / "goldengoose"
APP = "goldengoose"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }
    res = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return res.stdout.strip()


def make_app_repo(path: Path) -> Path:
    """A git repo whose root is a copy of examples/goldengoose (the artifact layout)."""
    shutil.copytree(GOLDENGOOSE, path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (path / "faults.json").unlink(missing_ok=True)
    (path / "VERSION").write_text("1.0.0\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "v1")
    return path


@dataclass(frozen=True)
class Commits:
    repo: str
    v1: str
    v2: str
    bad: str


@pytest.fixture(scope="session")
def commits(tmp_path_factory: pytest.TempPathFactory) -> Commits:
    repo = make_app_repo(tmp_path_factory.mktemp("repo") / "goldengoose")
    v1 = git(repo, "rev-parse", "HEAD")
    (repo / "VERSION").write_text("2.0.0\n")
    git(repo, "commit", "-qam", "v2")
    v2 = git(repo, "rev-parse", "HEAD")
    (repo / "VERSION").write_text("3.0.0\n")
    (repo / "faults.json").write_text('{"added_latency_ms": 150}\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bad: +150 ms")
    return Commits(str(repo), v1, v2, git(repo, "rev-parse", "HEAD"))


@dataclass(frozen=True)
class Images:
    v1: str
    v2: str
    bad: str


@dataclass
class Platform:
    state: Path
    stack: LocalStack
    router: HAProxyRouter
    workloads: ProcessWorkloads
    images: Images
    commits: Commits

    @property
    def url(self) -> str:
        return self.stack.frontend_url(APP) + "/"

    def marked(self) -> list[procs.ProcessRecord]:
        return procs.find_marked({MARKER: str(self.state.resolve())})


@pytest.fixture(scope="session")
def session_platform(
    tmp_path_factory: pytest.TempPathFactory, commits: Commits
) -> Iterator[Platform]:
    state = tmp_path_factory.mktemp("st")
    builder = GitBuilder(state, app=APP, python=sys.executable)
    images = Images(
        *(builder.build(commits.repo, c) for c in (commits.v1, commits.v2, commits.bad))
    )
    stats_port, prometheus_port = procs.free_ports(2)
    stack = LocalStack(
        state,
        haproxy_bin=HAPROXY,
        prometheus_bin=PROMETHEUS,
        haproxy_stats_port=stats_port,
        prometheus_port=prometheus_port,
        scrape_interval=0.5,
    )
    stack.add_app(APP)
    platform = Platform(state, stack, stack.router(), stack.workloads(), images, commits)
    try:
        stack.start()
        yield platform
    finally:
        stack.stop()
        for rec in platform.marked():  # belt and braces: the assertion below names them
            procs.stop(rec)
    assert not platform.marked(), "workload processes outlived the session"


@pytest.fixture
def platform(session_platform: Platform) -> Iterator[Platform]:
    """Production on v1 before the test; no workload and 100 % primary after it."""
    p = session_platform
    p.workloads.promote(APP, p.images.v1)
    p.router.rollback(APP)
    try:
        yield p
    finally:
        p.workloads.stop_all(APP)
        p.router.set_weights(APP, Weights.all_primary())
        leftovers = p.marked()
        for rec in leftovers:
            procs.stop(rec)
        assert not leftovers, f"processes left behind: {leftovers}"
