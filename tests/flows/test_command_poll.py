"""How often a waiting release reads its operator command (flows.looks.wait_for_look):
every store.commands.POLL_SECONDS and once more as the wait ends, on a fake clock (no
server: the read is replaced, what is counted is when it happens)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import canary.waiting
import flows.looks
from canary.values.events import OperatorCommand
from store.commands import POLL_SECONDS

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class _Clock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now_at = START

    def now(self, tz: Any = None) -> datetime:
        return self.now_at

    def sleep(self, seconds: float) -> None:
        self.now_at += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(canary.waiting, "datetime", fake)
    monkeypatch.setattr(canary.waiting, "time", SimpleNamespace(sleep=fake.sleep))
    return fake


def _reads(monkeypatch: pytest.MonkeyPatch, clock: _Clock, answer_at: int | None = None) -> list[float]:
    at: list[float] = []

    def take(app: str, run_id: str) -> OperatorCommand | None:
        at.append((clock.now_at - START).total_seconds())
        if answer_at is not None and len(at) == answer_at:
            return OperatorCommand(app=app, action="abort", run=run_id, by="the test")
        return None

    monkeypatch.setattr(flows.looks, "take_command", take)
    return at


def test_the_command_is_read_every_poll_seconds_and_as_the_wait_ends(monkeypatch, clock) -> None:
    reads = _reads(monkeypatch, clock)
    window = SimpleNamespace(not_before=START + timedelta(seconds=12))
    assert flows.looks.wait_for_look("gg", "run-1", window) is None  # type: ignore[arg-type]
    assert POLL_SECONDS == 5.0
    assert reads == [5.0, 10.0, 12.0]  # a 10 s look wait: 2 reads, not the 5 of every 2 s
    assert clock.now_at == window.not_before


def test_a_command_ends_the_wait_at_the_read_that_finds_it(monkeypatch, clock) -> None:
    reads = _reads(monkeypatch, clock, answer_at=2)
    window = SimpleNamespace(not_before=START + timedelta(seconds=60))
    command = flows.looks.wait_for_look("gg", "run-1", window)  # type: ignore[arg-type]
    assert command is not None and command.action == "abort" and command.run == "run-1"
    assert reads == [5.0, 10.0]  # acted on within POLL_SECONDS of being left
