"""Waiting for a judgement window to close, with progress while it does."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


def wait_until(moment: datetime, *, tick: Callable[[], None] | None = None,
               every: float = 2.0) -> None:  # fmt: skip
    """Block until `moment` (aware). The window's data only exists once it has passed."""
    while (remaining := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(every, remaining))
        if tick is not None:
            tick()
