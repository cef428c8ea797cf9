"""Waiting for a judgement window to close, with progress while it does (no Prefect: a
plain clock loop the release flow ticks through)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


def wait_until(moment: datetime, *, tick: Callable[[], T | None] | None = None,
               every: float = 2.0) -> T | None:  # fmt: skip
    """Block until `moment` (aware): the window's data only exists once it has passed.

    `tick` runs every `every` seconds; the first value it returns that is not None ends the
    wait early and is returned (an operator's command, say)."""
    while (remaining := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(every, remaining))
        if tick is not None and (got := tick()) is not None:
            return got
    return None
