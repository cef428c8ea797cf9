"""``python -m demo status`` and ``python -m demo stop``: what runs, and stopping exactly it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from canary.platforms.local import procs
from demo.chain import Chain, ChainConfig, ChainError
from demo.config import APP, Records

#: A JSON document of the local stack or its supervisor, as they write it.
Doc = dict[str, Any]


def _stack_status(home: Path) -> Doc:
    from canary.platforms.local.stack import LocalStack

    state = home / "local"
    if not state.exists():
        return {}
    return LocalStack.from_state(state).status()


def _hhmmss(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))


def restart_note(part: Mapping[str, Any] | None) -> str:
    """How often the supervisor restarted a part, and why it last did.

    For example ``restarts 1, last 07:13:36Z: pid 28589 was killed by SIGKILL`` (and why
    it failed, when it gave up or is retrying).

    Args:
        part: The supervisor's record of the part, if any.

    Returns:
        The note ("" without a record).
    """
    if not part:
        return ""
    note = f"restarts {part.get('restarts', 0)}"
    if part.get("last_restart"):
        note += f", last {_hhmmss(part['last_restart'])}: {part.get('last_reason') or '?'}"
    if part.get("health") == "failed":
        note += f"; FAILED: {part.get('detail')}"
    elif part.get("health") == "restarting" and part.get("last_error"):
        note += f"; retrying after: {part['last_error']}"
    return note


def _line(name: str, state: str, *extras: str) -> str:
    extra = " · ".join(e for e in extras if e)
    return f"  {name:<15} {state:<22} {extra}".rstrip()


def _urls(settings: Mapping[str, int]) -> dict[str, str]:
    def port(name: str) -> str:
        return str(settings.get(name, "?"))

    return {
        "prefect-server": f"http://127.0.0.1:{port('prefect_port')}",
        "relay": f"http://127.0.0.1:{port('relay_port')}/github",
        "prometheus": f"http://127.0.0.1:{port('prometheus_port')}",
        "haproxy": f"{APP} on http://127.0.0.1:{port('app_port')}/",
        "load": f"steady load on http://127.0.0.1:{port('app_port')}/",
    }


def _chain_lines(home: Path, records: Records, sup: Doc, urls: Mapping[str, str]) -> list[str]:
    """The chain's processes, the load and the supervisor."""
    running, chain = records.running(), records.chain_parts()  # (the load ends by itself)
    lines = []
    for name in ("prefect-server", "worker", "relay", "load", "supervisor"):
        rec = running.get(name)
        dead = chain.get(name)  # recorded, but no longer that process
        state = (f"running (pid {rec.pid})" if rec
                 else f"dead (pid {dead.pid})" if dead else "not running")  # fmt: skip
        extra = urls.get(name, "") if rec else ""
        if name == "supervisor" and rec and sup.get("age") is not None:
            every = float(sup.get("interval") or 2)
            late = sup["age"] > 5 * every + 30  # a restart may take a while (ready timeouts)
            extra = (f"{'STALE: ' if late else ''}checks every {every:g} s, last "
                     f"{sup['age']:g} s ago; log {home / 'local' / 'stack' / 'supervisor.log'}")  # fmt: skip
        lines.append(_line(name, state, extra))
    return lines


def _stack_lines(home: Path, records: Records, sup: Doc, urls: Mapping[str, str]) -> list[str]:
    """HAProxy, Prometheus and every app's workloads, with the supervisor's notes."""
    from canary.platforms.local.supervisor import health_now

    # Restarting/failed only from a supervisor that runs; its counts are history either way.
    parts = (sup.get("parts") or {}) if sup.get("running") else {}
    notes = sup.get("parts") or {}
    running, recorded = records.running(), records.stack_parts()
    lines = []
    for name in ("haproxy", "prometheus"):
        rec = running.get(name) or recorded.get(name)
        health = health_now((name in running) if name in recorded else None, parts.get(name))
        pid = rec.pid if rec else (parts.get(name) or {}).get("pid")
        state = f"{health} (pid {pid})" if pid else health
        lines.append(_line(name, state, urls[name] if name in running else "",
                           restart_note(notes.get(name))))  # fmt: skip
    for app, entry in sorted(_stack_status(home).get("apps", {}).items()):
        part = f"production/{app}"
        for w in entry.get("workloads", []):
            health = "running" if w.get("alive") else "dead"
            note = ""
            if w["role"] == "primary":
                health = health_now(bool(w.get("alive")), parts.get(part))
                note = restart_note(notes.get(part))
            lines.append(_line(f"{app} {w['role']}", f"{health} (pid {w['pid']})",
                               f"version {w.get('version')} on port {w.get('port')}", note))  # fmt: skip
        if not any(w["role"] == "primary" for w in entry.get("workloads", [])) and part in notes:
            lines.append(_line(f"{app} primary", health_now(None, parts.get(part)),
                               (notes[part].get("detail") or ""), restart_note(notes[part])))  # fmt: skip
    return lines


def status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print what of the demo runs and how healthy each part is.

    Args:
        args: The command line (``--home``).
        out: Where to print.

    Returns:
        The exit code (0).
    """
    from canary.platforms.local.supervisor import read_status

    home = args.home.resolve()
    records = Records(home)
    urls = _urls(records.settings() or {})
    sup = read_status(home / "local")
    print(f"demo in {home}", file=out)
    for line in _chain_lines(home, records, sup, urls) + _stack_lines(home, records, sup, urls):
        print(line, file=out)
    return 0


def stop(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Stop exactly what the demo started (by verified pid), and say what.

    Args:
        args: The command line (``--home``).
        out: Where to print.

    Returns:
        The exit code: 0, or 1 when something is still running.
    """
    home = args.home.resolve()
    records = Records(home)
    if not home.exists():
        print(f"nothing to stop: {home} does not exist", file=out)
        return 0
    stopped: list[str] = []
    load = records.load()
    if load is not None and procs.stop(load, timeout=10):
        stopped.append(f"load generator (pid {load.pid})")
    records.update(load=None)
    before = records.running()
    workloads = [
        f"{app} {w['role']} (pid {w['pid']})"
        for app, entry in sorted(_stack_status(home).get("apps", {}).items())
        for w in entry.get("workloads", []) if w.get("alive")
    ]  # fmt: skip
    try:
        Chain(ChainConfig(home=home)).stop()
    except ChainError as exc:
        print(f"stopping the local stack failed: {exc}", file=out)
        return 1
    after = records.running()
    for name in ("supervisor", "relay", "worker", "prefect-server", "prometheus", "haproxy"):
        if name in before and name not in after:
            stopped.append(f"{name} (pid {before[name].pid})")
    stopped += workloads
    records.update(settings=None)
    print("\n".join(["stopped:", *(f"  {item}" for item in stopped)]) if stopped
          else "nothing was running", file=out)  # fmt: skip
    left = records.running()
    if left:
        print("still running: " + ", ".join(f"{n} (pid {r.pid})" for n, r in left.items()),
              file=out)  # fmt: skip
        return 1
    return 0
