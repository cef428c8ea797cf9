"""Waiting for a condition with a deadline (never a bare sleep): the tests' one poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(what: str, check: Callable[[], Any], timeout: float = 20.0, every: float = 0.25) -> Any:
    """`check()` until it returns something truthy (returned); AssertionError naming `what`
    once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)
