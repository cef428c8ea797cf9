"""The app spec (canary.yaml): defaults, placeholders, and rejections that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.errors import ConfigError
from canary.platforms.local.spec import AppSpec, env_prefix, process_env, render


def test_defaults_run_goldengoose(tmp_path: Path) -> None:
    spec = AppSpec.load(tmp_path)  # no canary.yaml
    values = {
        "port": "8123",
        "track": "canary",
        "version": "2.0.0",
        "app": "goldengoose",
        "python": "/venv/bin/python",
    }
    assert render(spec.command, values, "/venv/bin/python") == [
        "/venv/bin/python",
        "server.py",
        "--port",
        "8123",
    ]
    env = process_env(
        spec,
        {"PATH": "/bin"},
        app="goldengoose",
        track="canary",
        version="2.0.0",
        port=8123,
        python="/venv/bin/python",
    )
    assert env["GOLDENGOOSE_TRACK"] == "canary" and env["GOLDENGOOSE_VERSION"] == "2.0.0"
    assert env["CANARY_TRACK"] == "canary" and env["CANARY_PORT"] == "8123"
    assert env["PATH"] == "/bin" and spec.health == "/healthz" and spec.build is None


def test_a_full_spec(tmp_path: Path) -> None:
    (tmp_path / "canary.yaml").write_text(
        "command: [node, app.js, '--listen=127.0.0.1:{port}']\n"
        "health: /ready\nmetrics: /prom\nenv: {APP_MODE: '{track}-{version}', N: 3}\n"
        "build: [python, -m, compileall, .]\nbuild_timeout: 60\nready_timeout: 5\n"
        "version_file: meta/version.txt\n"
    )
    spec = AppSpec.load(tmp_path)
    assert spec.command == ("node", "app.js", "--listen=127.0.0.1:{port}")
    assert (spec.health, spec.metrics, spec.ready_timeout) == ("/ready", "/prom", 5.0)
    env = process_env(spec, {}, app="my.app", track="baseline", version="7", port=1, python="py")
    assert env["APP_MODE"] == "baseline-7" and env["N"] == "3" and env["MY_APP_TRACK"] == "baseline"
    assert env_prefix("gold-goose") == "GOLD_GOOSE"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[1, 2]", "must hold a mapping"),
        ("comand: [python]", "unknown key.*'comand'"),
        ("command: []", "'command' must be a non-empty list"),
        ("command: [python, '{prot}']", r"unknown placeholder \{prot\}"),
        ("health: healthz", "'health' must be an HTTP path"),
        ("ready_timeout: 0", "'ready_timeout' must be a number of seconds"),
        ("env: [A]", "'env' must map names to strings"),
        ("version_file: ../VERSION", "'version_file' must be a relative path"),
        ("command: [a\n", "not readable YAML"),
    ],
)
def test_bad_specs_name_the_key(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "canary.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        AppSpec.load(tmp_path)
