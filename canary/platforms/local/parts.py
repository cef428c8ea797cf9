"""What the supervisor records of each part it keeps alive, and how `status` reads it back.

`Part` is one part's record (kept in ``stack/supervisor.json`` between checks), `Probe` what
one look at a part saw; `read_status` and `health_now` read the records for `status`.
Every restart is also appended to ``stack/restarts.jsonl`` (`record_restart`), which a
release reads at each look (`restarts_since`, canary.ports.RestartLog).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter

from canary.errors import PlatformError
from canary.platforms.local import procs
from canary.platforms.local.procs import JSON, as_mapping
from canary.values.carried import Restart

#: one JSON object a line: {"part", "at" (epoch s), "why", "result"}, appended per restart
RESTARTS_FILE = "restarts.jsonl"


@dataclass
class Part:
    """What the supervisor knows of one part; kept in supervisor.json between checks."""

    name: str
    #: running | dead | restarting | failed, and: unhealthy (alive, not answering: left
    #: alone), absent (nothing recorded to keep alive), promoting (left to the release)
    health: str = "unknown"
    pid: int | None = None
    #: none | restarted | rerouted | waiting | restart-failed | gave-up | left-alone
    action: str = "none"
    detail: str = ""
    restarts: int = 0  # restart attempts since the last reset
    attempts: list[float] = field(default_factory=list)  # epoch seconds, within the window
    last_restart: float | None = None
    last_reason: str = ""  # why the last restart was needed
    last_error: str = ""  # why the last restart failed ("" if it worked)
    next_attempt: float | None = None
    healthy_after: float | None = None  # seconds from the last restart decision to healthy

    def to_json(self) -> JSON:
        """The record as kept in supervisor.json."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Part:
        """The record kept by ``to_json`` (keys it does not know are dropped)."""
        known = {f.name for f in fields(cls)}
        return _PART.validate_python({k: v for k, v in as_mapping(data).items() if k in known})


_PART = TypeAdapter(Part)


@dataclass(frozen=True)
class Probe:
    """What one look at a part saw (health as in Part.health) and did (action)."""

    health: str
    pid: int | None = None
    detail: str = ""
    action: str = "none"


def gone(rec: procs.ProcessRecord) -> str:
    """Why a recorded process is no longer ours; its exit status if we are its parent."""
    child = procs._CHILDREN.get(rec.pid)
    code = None
    if child is not None:  # ours: reap it. A dying process loses its cmdline (so it is not
        with contextlib.suppress(subprocess.TimeoutExpired):  # ours any more) a moment
            code = child.wait(timeout=0.5)  # before it can be waited for
            procs._CHILDREN.pop(rec.pid, None)
    if code is None:
        return f"pid {rec.pid} is gone"
    if code < 0:
        return f"pid {rec.pid} was killed by {signal.Signals(-code).name}"
    return f"pid {rec.pid} exited with status {code}"


def now_text(epoch: float) -> str:
    """``epoch`` as an ISO 8601 UTC timestamp with milliseconds (the log's format)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def read_status(state_dir: str | os.PathLike[str]) -> JSON:
    """The supervisor's last check (supervisor.json) plus whether it still runs and how long
    ago it checked; {} if no supervisor ever ran there."""
    stack_dir = Path(state_dir) / "stack"
    doc = procs.read_mapping(stack_dir / "supervisor.json")
    if not doc:
        return {}
    raw = procs.read_mapping(stack_dir / "supervisor.pid.json")
    rec = procs.ProcessRecord.from_json(as_mapping(raw["process"])) if raw.get("process") else None
    checked = doc.get("checked")
    doc["running"] = rec is not None and procs.is_ours(rec)
    doc["age"] = round(time.time() - checked, 1) if isinstance(checked, int | float) and checked else None
    return doc


def health_now(alive: bool | None, part: Mapping[str, object] | None) -> str:
    """A part's health for `status`: the live check (`alive`; None = nothing recorded) wins,
    the supervisor's last look (`part`, from a running supervisor) says restarting/failed."""
    if alive:
        return "running"
    said = (part or {}).get("health")
    if said in ("restarting", "failed"):
        return str(said)
    return "dead" if alive is False else "not running"


def record_restart(stack_dir: Path, part: str, at: float, why: str, result: str) -> None:
    """Append one restart to ``stack/restarts.jsonl`` (what `restarts_since` reads).

    Args:
        stack_dir: The stack's directory (``<state>/stack``).
        part: The part restarted (``haproxy``, ``production/<app>``...).
        at: When the restart was decided (epoch seconds).
        why: Why it was needed.
        result: What came of it.
    """
    stack_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"part": part, "at": at, "why": why, "result": result})
    with open(stack_dir / RESTARTS_FILE, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def restarts_since(state_dir: str | os.PathLike[str], since: datetime,
                   parts: Collection[str]) -> list[Restart]:  # fmt: skip
    """The restarts of `parts` recorded since `since`, oldest first.

    Args:
        state_dir: The local platform's state directory.
        since: Only restarts at or after this moment (aware).
        parts: Which parts count (e.g. the router and one app's production).

    Returns:
        The restarts; [] when none was recorded (or no supervisor ever ran).

    Raises:
        PlatformError: The file cannot be read.
    """
    path = Path(state_dir) / "stack" / RESTARTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PlatformError(f"cannot read {path}: {exc}") from exc
    found: list[Restart] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a crash: skipped
            doc = as_mapping(json.loads(line))
            at, part = doc.get("at"), doc.get("part")
            if isinstance(at, int | float) and part in parts and at >= since.timestamp():
                found.append(Restart(str(part), datetime.fromtimestamp(at, UTC),
                                     str(doc.get("why", "")), str(doc.get("result", ""))))  # fmt: skip
    return sorted(found, key=lambda r: r.at)
