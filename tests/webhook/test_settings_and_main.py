"""Configuration: refuse to start without the secret or the Prefect URL; branch settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from canary.errors import ConfigError
from tests.support.prefect_server import free_port
from tests.webhook.helpers import SECRET
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def run_relay(env_updates: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GITHUB_WEBHOOK_SECRET", "PREFECT_API_URL", "WEBHOOK_BRANCHES")
    }
    env.update({k: v for k, v in env_updates.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_refuses_to_start_without_the_secret(secret):
    done = run_relay({"GITHUB_WEBHOOK_SECRET": secret, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode != 0
    assert "refusing to start" in done.stderr
    assert "GITHUB_WEBHOOK_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_refuses_to_start_without_prefect_api_url():
    done = run_relay({"GITHUB_WEBHOOK_SECRET": SECRET})
    assert done.returncode != 0
    assert "PREFECT_API_URL is not set" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_refuses_a_non_http_prefect_url_without_echoing_it():
    done = run_relay({"GITHUB_WEBHOOK_SECRET": SECRET, "PREFECT_API_URL": "ftp://u:hunter2@x/api"})
    assert done.returncode != 0
    assert "must be an http(s) URL" in done.stderr
    assert "hunter2" not in done.stderr


def test_branches_from_env_and_flag():
    env = {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "PREFECT_API_URL": "http://127.0.0.1:4200/api/",
        "WEBHOOK_BRANCHES": " main, release/* ,,",
    }
    from_env = Settings.from_env(env)
    assert from_env.branches == ("main", "release/*")
    assert from_env.prefect_api_url == "http://127.0.0.1:4200/api"
    assert from_env.events_url == "http://127.0.0.1:4200/api/events"
    assert Settings.from_env(env, branches="develop").branches == ("develop",)
    assert Settings.from_env(env | {"WEBHOOK_BRANCHES": ""}).branches == ()


def test_tracking_rules():
    default = Settings(secret=SECRET, prefect_api_url="http://h/api")
    assert default.tracks("main", "main")
    assert not default.tracks("dev", "main")
    assert not default.tracks("main", None)
    globbed = Settings(secret=SECRET, prefect_api_url="http://h/api", branches=("release/*",))
    assert globbed.tracks("release/2.0", "main")
    assert not globbed.tracks("main", "main")


def test_auth_header_follows_prefect_client_rules():
    base = {"GITHUB_WEBHOOK_SECRET": SECRET, "PREFECT_API_URL": "http://h/api"}
    assert Settings.from_env(base).prefect_auth_header is None
    assert (
        Settings.from_env(base | {"PREFECT_API_KEY": "pnu_x"}).prefect_auth_header == "Bearer pnu_x"
    )
    both = base | {"PREFECT_API_KEY": "pnu_x", "PREFECT_API_AUTH_STRING": "admin:pass"}
    assert Settings.from_env(both).prefect_auth_header == "Basic YWRtaW46cGFzcw=="


@pytest.mark.parametrize(
    "fields",
    [
        {"secret": ""},
        {"prefect_api_url": "127.0.0.1:4200"},
        {"max_body_bytes": 0},
        {"prefect_timeout_s": 0},
    ],
    ids=["no-secret", "no-scheme", "zero-limit", "zero-timeout"],
)
def test_invalid_settings_are_config_errors(fields):
    with pytest.raises(ConfigError):
        Settings(**({"secret": SECRET, "prefect_api_url": "http://h/api"} | fields))


def test_names_every_missing_variable_at_once():
    done = run_relay({})
    assert done.returncode == 2
    assert "GITHUB_WEBHOOK_SECRET is not set" in done.stderr
    assert "PREFECT_API_URL is not set" in done.stderr
