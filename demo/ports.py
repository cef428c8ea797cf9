"""Who listens on the demo's ports: a port held by something the demo did not start is a
conflict, reported with what holds it and a free port to use instead."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from demo.config import PORTS


def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP `port` (any address, IPv4 or IPv6) in this netns.

    Args:
        port: The TCP port.

    Returns:
        The inodes of the listening sockets (empty when nothing listens).
    """
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(cols[9]))
    return found


def listening_holders(port: int) -> dict[int, str] | None:
    """The processes listening on `port`.

    Args:
        port: The TCP port.

    Returns:
        {pid: command line}; None when nothing listens. An empty dict means something
        listens but its process is not visible to this user.
    """
    inodes = listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    holders: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        links = set()
        for fd in fds:  # one may close while we look (our own listing's fd does)
            with contextlib.suppress(OSError):
                links.add(os.readlink(fd))
        if links & wanted:
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            holders[int(entry.name)] = cmd.strip() or "?"
    return holders


def session_of(pid: int) -> int | None:
    """The session id of process `pid`, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[3])


def _free_suggestion(port: int, taken: set[int]) -> int:
    for candidate in range(port + 1, min(port + 200, 65535)):
        if candidate not in taken and not listening_inodes(candidate):
            return candidate
    return port + 1


def port_conflicts(
    ports: Mapping[str, int],
    our_sessions: set[int],
    *,
    holders_of: Callable[[int], dict[int, str] | None] = listening_holders,
    sessions: Callable[[int], int | None] = session_of,
) -> list[str]:
    """One message per port (keyed by ChainConfig attribute) that something not ours holds.

    A listener is ours when its process belongs to the session of a process the demo
    recorded (every part is started as the leader of its own session).

    Args:
        ports: The ports the demo wants, by ChainConfig attribute.
        our_sessions: Session ids of the demo's recorded processes.
        holders_of: Who listens on a port (see ``listening_holders``).
        sessions: The session id of a pid.

    Returns:
        What to do about each conflict, in words (empty: no conflict).
    """
    problems = []
    by_attr = {attr: (flag, what) for attr, flag, what in PORTS}
    seen: dict[int, str] = {}
    for attr, port in ports.items():
        flag, what = by_attr[attr]
        if port in seen:
            problems.append(f"port {port} is given for both {seen[port]} and {flag}: "
                            f"every part needs its own port")  # fmt: skip
            continue
        seen[port] = flag
        holders = holders_of(port)
        if holders is None:
            continue
        if holders and all(sessions(pid) in our_sessions for pid in holders):
            continue
        who = ", ".join(f"pid {pid} ({cmd[:80]})" for pid, cmd in sorted(holders.items()))
        who = who or "a process this user cannot see"
        other = _free_suggestion(port, set(ports.values()))
        problems.append(
            f"port {port} ({what}) is already in use by {who}, which this demo did not start.\n"
            f"    Free it (stop that process; `ss -ltnp 'sport = :{port}'` shows it), or run the "
            f"demo on another port:\n"
            f"    make demo DEMO_ARGS='{flag} {other}'   (or: python -m demo {flag} {other})"
        )
    return problems
