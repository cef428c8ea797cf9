"""Several apps on one chain (ChainConfig.extra_apps → register_blocks and the local stack),
without starting anything: the commands the chain would run are captured."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo import chain as chain_module
from demo.chain import Chain, ChainConfig
from scripts.register_blocks import parse_apps


def test_the_single_app_is_the_default(tmp_path: Path) -> None:
    assert ChainConfig(home=tmp_path).apps == {"goldengoose": 18080}
    config = ChainConfig(home=tmp_path, app="gg01", app_port=18101,
                         extra_apps={"gg02": 18102, "gg01": 1})  # fmt: skip
    assert config.apps == {"gg01": 18101, "gg02": 18102}  # `app` keeps its own port


def _commands(tmp_path: Path, config: ChainConfig, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    ran: list[list[str]] = []
    monkeypatch.setattr(Chain, "start_server", lambda self: None)
    monkeypatch.setattr(Chain, "start_worker", lambda self: None)
    monkeypatch.setattr(Chain, "_start", lambda self, name, argv, env: tmp_path / f"{name}.log")
    monkeypatch.setattr(Chain, "_run", lambda self, argv, what, timeout=180: ran.append(argv) or "")
    monkeypatch.setattr(chain_module, "poll", lambda *a, **k: None)
    Chain(config).start()
    return ran


def test_every_app_reaches_the_blocks_and_the_stack(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = ChainConfig(home=tmp_path, app="gg01", app_port=18101, extra_apps={"gg02": 18102},
                         webhook_secret="x")  # fmt: skip
    register, stack = _commands(tmp_path, config, monkeypatch)[:2]
    assert register[1] == "scripts/register_blocks.py" and stack[1:3] == ["-m", "canary.platforms.local"]
    for argv in (register, stack):
        apps = [argv[i + 1] for i, word in enumerate(argv) if word == "--app"]
        assert apps == ["gg01=18101", "gg02=18102"]


def test_one_app_runs_the_commands_it_always_did(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    register, stack = _commands(tmp_path, ChainConfig(home=tmp_path, webhook_secret="x"),
                                monkeypatch)[:2]  # fmt: skip
    assert [register[i + 1] for i, w in enumerate(register) if w == "--app"] == ["goldengoose=18080"]
    assert stack[-2:] == ["--app", "goldengoose=18080"]
    assert parse_apps(["goldengoose=18080"], 1) == [("goldengoose", 18080)]


def test_register_blocks_apps() -> None:
    assert parse_apps(["goldengoose"], 18080) == [("goldengoose", 18080)]
    assert parse_apps(["a", "b=18082"], 18081) == [("a", 18081), ("b", 18082)]
    for bad, why in ((["a", "b"], "needs =PORT"), (["a=x"], "must be a number"),
                     (["a=1", "a=2"], "named twice")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_apps(bad, 1)


def test_the_demo_notifies_only_when_a_receiver_url_is_set(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """CANARY_NOTIFY_URL set: register_blocks gets --notify (the URL stays in the environment)."""
    config = ChainConfig(home=tmp_path, webhook_secret="x")
    monkeypatch.delenv("CANARY_NOTIFY_URL", raising=False)
    assert "--notify" not in _commands(tmp_path, config, monkeypatch)[0]
    monkeypatch.setenv("CANARY_NOTIFY_URL", "http://127.0.0.1:9/secret-path")
    register = _commands(tmp_path, config, monkeypatch)[0]
    assert register[register.index("--notify") + 1] == "webhook"
    assert register[register.index("--stuck-after") + 1] == "600"
    assert not any("secret-path" in word for word in register)


def test_the_clients_skip_csrf_tokens_the_chains_server_never_asks_for(tmp_path: Path) -> None:
    """The chain's clients ask for no CSRF token (a request per client they make) because
    its server has CSRF protection off: Prefect's default, and nothing the chain sets."""
    from prefect.settings.models.server.api import ServerAPISettings

    chain = Chain(ChainConfig(home=tmp_path))
    assert chain.client_env()["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] == "false"
    assert ServerAPISettings.model_fields["csrf_protection_enabled"].default is False
    server = chain.server_env()
    assert not any("CSRF_PROTECTION" in name for name in server)
