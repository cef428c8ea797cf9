"""Reading a commit's `.canary/` from real git repositories, without running anything:
the local builder from its mirror, the cluster builders by a shallow fetch of the commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canary.errors import BuildError, ConfigError
from canary.platforms import gitfiles
from canary.platforms.local.builder import GitBuilder
from tests.platforms.local.conftest import git, make_app_repo

RELEASE = "canary_config: configs/canary.yaml\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_app_repo(tmp_path / "app")


def add_config(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / ".canary" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / ".canary" / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "release config")
    return git(repo, "rev-parse", "HEAD")


def test_the_local_builder_reads_the_config_of_that_commit(repo: Path, tmp_path: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    commit = add_config(repo, {"release.yaml": RELEASE, "configs/canary.yaml": "metrics: []\n"})
    # the commit is read, never the work tree
    (repo / ".canary" / "release.yaml").write_text("changed in the work tree, not committed\n")
    builder = GitBuilder(tmp_path / "state", app="app")
    assert builder.config_files(f"file://{repo}", commit) == {
        "release.yaml": RELEASE, "configs/canary.yaml": "metrics: []\n"}  # fmt: skip
    assert builder.config_files(f"file://{repo}", before) is None  # no .canary/: fallback


def test_the_local_builder_reads_it_inside_the_app_directory(tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    (mono / "shop" / ".canary").mkdir(parents=True)
    (mono / ".canary").mkdir()
    (mono / ".canary" / "release.yaml").write_text("another app's\n")
    git(mono, "init", "-q", "-b", "main")
    (mono / "shop" / ".canary" / "release.yaml").write_text(RELEASE)
    os.symlink("/etc/passwd", mono / "shop" / ".canary" / "leak.yaml")
    git(mono, "add", "-A")
    git(mono, "commit", "-qm", "mono")
    builder = GitBuilder(tmp_path / "state", app="shop", subdir="shop")
    # a symlink is not followed (it would name a file outside the commit)
    assert builder.config_files(str(mono), "HEAD") == {"release.yaml": RELEASE}


def test_an_unknown_commit_is_a_build_error(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not found"):
        GitBuilder(tmp_path / "state").config_files(str(repo), "f" * 40)


def test_a_shallow_fetch_reads_one_commit_of_a_bare_repository(repo: Path, tmp_path: Path) -> None:
    commit = add_config(repo, {"release.yaml": RELEASE})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    assert gitfiles.fetch_directory(f"file://{bare}", commit, ".canary") == {"release.yaml": RELEASE}
    assert gitfiles.fetch_directory(f"file://{bare}", git(repo, "rev-parse", "HEAD^"), ".canary") is None
    with pytest.raises(BuildError, match="git fetch of ffffffffffff"):
        gitfiles.fetch_directory(f"file://{bare}", "f" * 40, ".canary")


def test_too_many_bytes_or_binary_files_are_config_errors(repo: Path, tmp_path: Path) -> None:
    big = add_config(repo, {"release.yaml": "#" * (gitfiles.MAX_BYTES + 1)})
    builder = GitBuilder(tmp_path / "state")
    with pytest.raises(ConfigError, match="more than 64 KiB"):
        builder.config_files(str(repo), big)
    (repo / ".canary" / "release.yaml").write_bytes(b"\xff\xfe")
    git(repo, "commit", "-qam", "binary")
    with pytest.raises(ConfigError, match="release.yaml at .*: not UTF-8 text"):
        builder.config_files(str(repo), "HEAD")
