"""The `canary` CLI without a server: every command's --json, table headers, the time
left, and backtest's thresholds."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import canary.metrics.collect
from cli import check, operate
from cli.main import _parser, _table, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _required_args(parser: argparse.ArgumentParser) -> list[str]:
    """The fewest arguments the command parses with: its positionals and required options."""
    args: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.nargs != "?":
            args.append("x")
        elif action.required:
            args += [action.option_strings[0], "x"]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            args += [group._group_actions[0].option_strings[0], "x"]
    return args


def test_every_command_takes_json_before_or_after_it() -> None:
    commands = _commands()
    assert {"status", "history", "promote", "abort", "retry", "approve", "reject", "validate",
            "plan", "backtest"} <= set(commands)  # fmt: skip
    for name, parser in commands.items():
        args = _required_args(parser)
        for argv in (["--json", name, *args], [name, "--json", *args], [name, *args, "--json"]):
            parsed = _parser().parse_args(argv)
            assert parsed.command == name and parsed.json is True, argv
        assert _parser().parse_args([name, *args]).json is False, name
        after = _parser().parse_args([name, *args, "--api", "http://x/api"])
        assert after.api == "http://x/api", name


def test_plan_takes_json_before_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import canary.__main__

    seen: list[list[str]] = []
    monkeypatch.setattr(canary.__main__, "main", lambda argv, **_: seen.append(list(argv)) or 0)
    assert main(["--json", "plan", "--spec", "s.yaml"]) == 0
    assert main(["plan", "--spec", "s.yaml", "--json"]) == 0
    assert seen == [["plan", "--spec", "s.yaml", "--json"], ["plan", "--spec", "s.yaml", "--json"]]


def test_status_json_after_the_app_parses_and_asks_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's `canary status APP --json` (rc 2 before): it parses, and fails only
    because nothing answers at the address given."""
    code = main(["status", "goldengoose", "--json", "--api", "http://127.0.0.1:9/api"])
    err = capsys.readouterr().err
    assert code == 1 and "did not answer" in err, err


def test_table_headers_are_human_json_keys_are_identifiers() -> None:
    table = _table([{"app": "a", "canary_share": 10, "time_left_seconds": 5, "duration_seconds": 3}])
    assert table.splitlines()[0].split("  ") == ["app", "canary share", "time left (s)", "duration (s)"]


def test_time_left_counts_down_from_the_planned_end_and_never_grows() -> None:
    """A fake clock through the warm-up and the analysis: the planned end is fixed, so the
    time left falls by every second that passes and stops at 0."""
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    ends = start + timedelta(seconds=8 + 30)  # begin_after 8 s, lifetime 30 s
    left = [operate.time_left(ends, start + timedelta(seconds=s)) for s in range(0, 60)]
    assert left[0] == 38 and left[8] == 30 and left[38:] == [0] * 22
    assert all(b == max(0, a - 1) for a, b in zip(left, left[1:], strict=False))
    assert operate.time_left(None, start) is None  # before the analysis starts


def test_backtest_decides_with_the_specs_thresholds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release spec with thresholds (or a canary config with scoreThresholds) is judged
    against them, never "no thresholds were given, so it passes"."""
    from canary.values.events import ReleaseEnded
    from canary.values.outcome import Outcome
    from store.events import StoredEvent
    from tests.flows.conftest import CANARY_CONFIG, SEQUENTIAL_CONFIG, write_spec
    from tests.flows.fakes import FakeCountsSource, Recorder

    source = FakeCountsSource(Recorder())
    monkeypatch.setattr(canary.metrics.collect, "fetch_pair",
                        lambda src, m, t, c, e: src.fetch_pair(m, t, c, e))  # fmt: skip
    monkeypatch.setattr(canary.metrics.collect, "fetch_counts_pair",
                        lambda src, m, t, c, e: src.fetch_counts_pair(m, t, c, e))  # fmt: skip

    @contextmanager
    def fake_source(prometheus: str | None, block: str | None) -> Iterator[Any]:
        yield source

    monkeypatch.setattr(check, "metric_source", fake_source)
    end = datetime.now(UTC)
    ended = ReleaseEnded(app="bt", outcome=Outcome.PROMOTED, commit="c" * 40,
                         window_start=end - timedelta(seconds=60), window_end=end)  # fmt: skip
    recorded = SimpleNamespace(events=lambda app, names: [StoredEvent(end, ended.event_name, ended)])
    for config in (SEQUENTIAL_CONFIG, CANARY_CONFIG):
        spec = write_spec(tmp_path / "spec.yaml", "bt", canary_config=config)
        for path in (spec, config):
            (row,) = check.backtest(recorded, "bt", str(path), "http://prometheus.test")  # type: ignore[arg-type]
            assert "reaches the pass threshold 95" in row["why_new"], (path, row)
            assert "no thresholds were given" not in row["why_new"], (path, row)
