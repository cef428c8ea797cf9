"""The git builder against real repositories (a path and a file:// URL)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from canary.errors import BuildError, ConfigError
from canary.platforms.local.builder import GitBuilder, load_artifact, parse_image
from canary.ports import Builder
from tests.platforms.local.conftest import git, make_app_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_app_repo(tmp_path / "app")


def counting_build(repo: Path, counter: Path, exit_code: int = 0) -> None:
    """A canary.yaml whose build step appends to `counter` (outside the artifact)."""
    code = (
        f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); "
        f"p.open('a').write('x'); print('building in', pathlib.Path.cwd()); "
        f"sys.exit({exit_code})"
    )
    (repo / "canary.yaml").write_text(f"build: [python, -c, {code!r}]\nready_timeout: 10\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "build step")


def test_same_commit_gives_the_same_artifact_without_rebuilding(repo: Path, tmp_path: Path) -> None:
    counter = tmp_path / "builds"
    counting_build(repo, counter)
    builder = GitBuilder(tmp_path / "state", app="goldengoose", python=sys.executable)
    assert isinstance(builder, Builder)
    head = git(repo, "rev-parse", "HEAD")
    first = builder.build_artifact(str(repo), head)
    assert first.built and counter.read_text() == "x"
    assert first.image == f"local/goldengoose@sha1:{git(repo, 'rev-parse', 'HEAD^{tree}')}"
    assert (first.path / "server.py").is_file() and first.version == "1.0.0"
    stamp = (first.path / "server.py").stat().st_mtime_ns

    again = builder.build_artifact(str(repo), head[:8])  # a short id resolves the same
    assert not again.built and again.image == first.image and again.path == first.path
    assert builder.build(str(repo), "main") == first.image  # so does a branch name
    git(repo, "commit", "-q", "--allow-empty", "-m", "same tree")  # new commit, same tree
    assert builder.build(str(repo), "HEAD") == first.image
    assert counter.read_text() == "x"  # built exactly once
    assert (first.path / "server.py").stat().st_mtime_ns == stamp
    assert load_artifact(tmp_path / "state", first.image) == again
    assert parse_image(first.image) == ("goldengoose", first.tree)


def test_a_new_commit_is_a_new_artifact_and_is_fetched(repo: Path, tmp_path: Path) -> None:
    url = f"file://{repo}"
    builder = GitBuilder(tmp_path / "state")  # app name derived from the repo
    v1 = builder.build_artifact(url, "HEAD")
    assert v1.app == "app" and v1.version == "1.0.0" and v1.source == url
    (repo / "VERSION").write_text("2.0.0\n")
    git(repo, "commit", "-qam", "v2")
    v2 = builder.build_artifact(url, git(repo, "rev-parse", "HEAD"))  # not in the mirror yet
    assert v2.built and v2.image != v1.image and v2.version == "2.0.0"
    (repo / "VERSION").write_text("2.1.0\n")
    git(repo, "commit", "-qam", "v2.1")
    v21 = builder.build_artifact(url, "main")  # a branch moves: always fetched afresh
    assert v21.version == "2.1.0" and v21.commit == git(repo, "rev-parse", "HEAD")
    assert v1.path.is_dir()  # the store keeps old artifacts (roll back needs them)


def test_missing_commit_fails_with_the_reason(repo: Path, tmp_path: Path) -> None:
    builder = GitBuilder(tmp_path / "state", app="goldengoose")
    with pytest.raises(BuildError, match=r"commit '0123456789abcdef' not found in .*app") as info:
        builder.build(str(repo), "0123456789abcdef")
    assert not info.value.transient
    with pytest.raises(BuildError, match="not a valid git revision"):
        builder.build(str(repo), "--upload-pack=touch /tmp/x")
    with pytest.raises(BuildError, match="git clone"):
        builder.build(str(tmp_path / "no-such-repo"), "HEAD")
    sub = GitBuilder(tmp_path / "state", app="goldengoose", subdir="services/api")
    with pytest.raises(BuildError, match="has no directory 'services/api'"):
        sub.build(str(repo), "HEAD")


def test_failing_build_command_fails_and_caches_nothing(repo: Path, tmp_path: Path) -> None:
    counter = tmp_path / "builds"
    counting_build(repo, counter, exit_code=3)
    builder = GitBuilder(tmp_path / "state", app="goldengoose", python=sys.executable)
    for attempt in (1, 2):  # a failure is never cached: the retry runs the build again
        with pytest.raises(BuildError, match=r"exited with 3.*\n.*building in") as info:
            builder.build(str(repo), "HEAD")
        assert counter.read_text() == "x" * attempt
    assert "build [" in str(info.value) and "log " in str(info.value)
    store = tmp_path / "state" / "artifacts"
    assert not list(store.glob("*.json")) and not [p for p in store.iterdir() if p.is_dir()]


def test_broken_tree_fails_the_build(repo: Path, tmp_path: Path) -> None:
    (repo / "canary.yaml").write_text("command: python server.py\n")  # a string, not argv
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "broken spec")
    builder = GitBuilder(tmp_path / "state", app="goldengoose")
    with pytest.raises(BuildError, match=r"canary.yaml: 'command' must be a non-empty list"):
        builder.build(str(repo), "HEAD")


def test_builder_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        GitBuilder(tmp_path, app="no spaces")
    with pytest.raises(ConfigError):
        GitBuilder(tmp_path, subdir="../outside")
    with pytest.raises(ConfigError):
        parse_image("docker.io/library/python:3.11")
