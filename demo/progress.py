"""What a push's runs are doing, on one line while they run."""

from __future__ import annotations

import re
import shutil
import sys
import time
from typing import TextIO

from store.records import Artifact, FlowRun

_JUDGEMENT = re.compile(r"judgement #(\d+): score ([-\d.]+) → (\w+)")


def clock(seconds: float) -> str:
    """Seconds as ``m:ss`` (negative counts as 0)."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def judgement_text(interval: Artifact | None) -> str | None:
    """``judgement #2 score 100 → Pass`` from a run's newest canary-interval table, if any.

    Args:
        interval: The run's newest canary-interval artifact (None: not judged yet).

    Returns:
        The judgement in words, ``judged`` when its caption says no more, or None.
    """
    if interval is None:
        return None
    m = _JUDGEMENT.search(interval.description)
    return f"judgement #{m[1]} score {m[2]} → {m[3]}" if m else "judged"


def status_line(label: str, commit: str, build: FlowRun | None,
                release: FlowRun | None, judgement: str | None) -> str:  # fmt: skip
    """What each run of one push is doing.

    For example ``v2 1a2b3c4: build Completed · canary-release Running · judgement #2
    score 100 → Pass``.

    Args:
        label: The push's label (``v2``).
        commit: Its commit.
        build: Its build run, once there is one.
        release: Its canary-release run, once there is one.
        judgement: The newest judgement in words, if any.

    Returns:
        The line.
    """
    parts = [f"{label} {commit[:7]}:"]
    parts.append(f"build {build.state_name}" if build else "waiting for the build run")
    if build and build.state_type == "COMPLETED":
        parts.append(f"· canary-release {release.state_name}" if release
                     else "· waiting for the canary-release run")  # fmt: skip
    if judgement:
        parts.append(f"· {judgement}")
    return " ".join(parts)


class Progress:
    """One line rewritten in place on a terminal; plain lines otherwise.

    Off a terminal a line is written when it changes, or every `every` seconds, so logs of
    ``make demo > file`` stay readable.

    Args:
        stream: Where to write.
        tty: Whether it is a terminal (default: ask the stream).
        every: Seconds between repeats of an unchanged line off a terminal.
    """

    def __init__(self, stream: TextIO = sys.stdout, *, tty: bool | None = None,
                 every: float = 15.0) -> None:  # fmt: skip
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self._last_key: str | None = None
        self._last_time = 0.0
        self._open = False

    def update(self, elapsed: float, text: str) -> None:
        """Show `text`, `elapsed` seconds after the push."""
        line = f"  [+{clock(elapsed)}] {text}"  # time since the push
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            self.stream.write("\r" + line[:width] + "\x1b[K")
            self.stream.flush()
            self._open = True
            return
        now = time.monotonic()
        if text != self._last_key or now - self._last_time >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_key, self._last_time = text, now

    def done(self) -> None:
        """End the line (on a terminal) and forget the last text."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
        self._last_key = None
