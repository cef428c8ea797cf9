"""What one release asks of the Prefect server, counted on the server afterwards, and the
machine-readable tail of concurrent_releases.py (one `name=value` line per figure).

Counted for a flow run (the alone release's canary-release run), with plain HTTP against
the chain's API (no Prefect client: the bench only reads):

- task runs (POST /task_runs/count) and artifacts (POST /artifacts/count) of the run;
- log lines (POST /logs/filter, paged) of the run and its task runs;
- events whose resource or a related resource is the run (POST /events/filter: task-run
  and flow-run states, artifact creates and updates, our canary.* events), by name.

Every event is also evaluated by the server against every automation's trigger, so the
event count is the bookkeeping that costs the server most per release.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

__all__ = ["alone_release", "count_bookkeeping", "pss_mib", "tail_lines"]

_PAGE = 200


def count_bookkeeping(api_url: str, run_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
    """Task runs, artifacts, log lines and events of one flow run (events by name).

    Args:
        api_url: The chain's API URL (``http://127.0.0.1:PORT/api``).
        run_id: The flow run's id.
        timeout: Per request, seconds.

    Returns:
        ``{"task_runs": n, "artifacts": n, "log_lines": n, "events": n, "events_by_name": {...}}``.
    """
    run = {"id": {"any_": [run_id]}}
    with httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout) as http:
        task_runs = _checked(http.post("/task_runs/count", json={"flow_runs": run}))
        artifacts = _checked(http.post("/artifacts/count", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}))
        loggers = _logger_names(lambda offset: _checked(http.post("/logs/filter", json={
            "logs": {"flow_run_id": {"any_": [run_id]}}, "limit": _PAGE, "offset": offset})))  # fmt: skip
        names = _event_names(http, run_id)
        tasks = collections.Counter(t["name"] for t in _checked(http.post("/task_runs/filter", json={
            "flow_runs": run, "limit": _PAGE})))  # fmt: skip
    return {"task_runs": int(task_runs), "artifacts": int(artifacts), "log_lines": sum(loggers.values()),
            "events": sum(names.values()), "events_by_name": dict(sorted(names.items())),
            "log_lines_by_logger": dict(sorted(loggers.items())),
            "task_runs_by_name": dict(sorted(tasks.items()))}  # fmt: skip


def _logger_names(page: Callable[[int], list[Any]]) -> collections.Counter[str]:
    """Each logger's (and level's) count among all the log lines a paged filter holds."""
    names: collections.Counter[str] = collections.Counter()
    offset = 0
    while True:
        got = page(offset)
        names.update(f"{line.get('name')} {line.get('level')}" for line in got)
        offset += len(got)
        if len(got) < _PAGE:
            return names


def _event_names(http: httpx.Client, run_id: str) -> collections.Counter[str]:
    """Each event name's count among the events about the run (its resource or related)."""
    body = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{run_id}"]},
                       "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}  # fmt: skip
    answer = _checked(http.post("/events/filter", json=body))
    names: collections.Counter[str] = collections.Counter()
    while True:
        names.update(e["event"] for e in answer.get("events", []))
        nxt = answer.get("next_page")
        if not nxt:
            return names
        answer = _checked(http.get(nxt))


def _checked(response: httpx.Response) -> Any:
    """The answer's JSON; an HTTP error raised (a count of 0 must not hide a bad query)."""
    response.raise_for_status()
    return response.json()


def pss_mib(pid: int) -> float | None:
    """A process's proportional set size (/proc/PID/smaps_rollup: pages shared with other
    processes counted by their share), in MiB; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def alone_release(flows: Iterable[Any], run_ids: dict[str, str], api_url: str,
                  clk_tck: int) -> dict[str, Any]:  # fmt: skip
    """The alone release's own figures: each of its flow runs' CPU (sampled each second, a
    lower bound) and PSS peak, and what its canary-release run asked of the server.

    Args:
        flows: The sampler's flow-run processes (FlowProc: run_id, ticks, peak_pss).
        run_ids: kind ("build", "canary-release") -> flow run id, of the alone release.
        api_url: The chain's API URL.
        clk_tck: Clock ticks per second.

    Returns:
        ``release_cpu_s``, ``build_cpu_s``, ``release_pss_peak_mib`` and ``bookkeeping``.
    """
    found: dict[str, Any] = {}
    for proc in flows:
        for kind, run_id in run_ids.items():
            if proc.run_id == run_id:
                short = "release" if kind == "canary-release" else kind
                found[f"{short}_cpu_s"] = found.get(f"{short}_cpu_s", 0.0) + proc.ticks / clk_tck
                found[f"{short}_pss_peak_mib"] = max(found.get(f"{short}_pss_peak_mib", 0.0), proc.peak_pss)
    if "canary-release" in run_ids:
        try:
            found["bookkeeping"] = count_bookkeeping(api_url, run_ids["canary-release"])
        except (httpx.HTTPError, ValueError) as exc:
            found["bookkeeping_error"] = repr(exc)
    return found


def _cpu(phase: dict[str, Any], key: str) -> float:
    return float(phase["cpu_s"][key])


def figures(r: dict[str, Any]) -> dict[str, float | None]:
    """One run's figures (one database, one N) by their tail names."""
    a, t, idle = r["alone"], r["together"], r["idle"]
    idle_rate = _cpu(idle, "server") / idle["wall_s"] if idle["wall_s"] else 0.0
    over = a["overhead_max_s"]
    mine = r.get("alone_release", {})
    return {
        "cpu_per_release_s": sum(a["cpu_s"].values()),
        "cpu_per_release_above_idle_s": sum(a["cpu_s"].values()) - idle_rate * a["wall_s"],
        "cpu_per_release_together_s": sum(t["cpu_s"].values()) / t["n"] if t["n"] else None,
        "server_cpu_per_release_s": _cpu(a, "server") - idle_rate * a["wall_s"],
        "server_cpu_idle_per_s": idle_rate,
        "worker_cpu_per_release_s": _cpu(a, "worker"),
        "flow_runs_cpu_per_release_s": _cpu(a, "flow_runs"),
        "release_flow_run_cpu_s": mine.get("release_cpu_s"),
        "build_flow_run_cpu_s": mine.get("build_cpu_s"),
        "flow_run_rss_peak_mib": max(a["release_rss_mib"] + t["release_rss_mib"], default=None),
        "flow_run_pss_peak_mib": mine.get("release_pss_peak_mib"),
        "overhead_alone_s": over,
        "overhead_ratio_max": t["overhead_max_s"] / over if over and t["overhead_max_s"] is not None else None,
        "max_over_median": (t["decision_max_s"] / t["decision_median_s"]
                            if t["decision_median_s"] else None),  # fmt: skip
        **{f"{k}_per_release": v for k, v in mine.get("bookkeeping", {}).items() if not k.endswith("_by_name") and not k.endswith("_by_logger")},
    }  # fmt: skip


def tail_lines(results: list[dict[str, Any]]) -> list[str]:
    """The machine-readable tail: ``name=value db=<db> n=<N>``, one line per figure."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"error=1 db={r['db']} n={r['n']}")
            continue
        for name, value in figures(r).items():
            shown = "nan" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
            lines.append(f"{name}={shown} db={r['db']} n={r['n']}")
        lines.append(f"cores={os.cpu_count()} db={r['db']} n={r['n']}")
    return lines
