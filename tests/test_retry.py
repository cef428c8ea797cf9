"""tasks._retry.retrying: the tasks' retry rule for a read a flow makes in its own run (a
readiness read at each look): transient errors retried up to RETRIES times, nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import tasks._retry as retry
from canary.errors import ConfigError, PlatformError


@pytest.fixture(autouse=True)
def no_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "RETRY_DELAYS", lambda retries: [0.0] * retries)


def _failing(errors: list[Exception]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def read() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "read"

    return calls, read


def test_transient_errors_are_retried_until_the_read_succeeds() -> None:
    calls, read = _failing([PlatformError("503", transient=True)] * 3)
    assert retry.retrying(read) == "read" and len(calls) == 4  # RETRIES more tries


def test_a_transient_error_beyond_the_retries_is_raised() -> None:
    calls, read = _failing([PlatformError("503", transient=True)] * 4)
    with pytest.raises(PlatformError, match="503"):
        retry.retrying(read)
    assert len(calls) == 1 + retry.RETRIES


def test_a_permanent_error_is_never_retried() -> None:
    calls, read = _failing([PlatformError("503", transient=True), ConfigError("bad"), PlatformError("x")])
    with pytest.raises(ConfigError, match="bad"):
        retry.retrying(read)
    assert len(calls) == 2
