"""The numbers concurrent_releases.py reports (per release, per phase) and its tables: one
column per database, then where the overhead goes, then every release."""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from canary.values.events import ReleaseEnded
from canary.values.outcome import Outcome
from store.records import FlowRun, Recorded

PROMOTED = Outcome.PROMOTED.value

#: the overhead of a release (push → decision − analysis), in the order it is spent
SEGMENTS = (
    "push → build Running (relay, automation, worker poll, process start)",
    "build Running → end (checkout, .canary/ checks, event)",
    "build end → release Running (automation, worker poll, process start)",
    "release Running → first deploy (spec, blocks, lock, reconcile)",
    "deploy + ready (baseline, canary)",
    "past the analysis (wait for metrics, last look, promote, cleanup)",
)


@dataclass
class Release:
    """One push's release, followed: its runs, its end event and when it was decided."""

    app: str
    commit: str
    pushed: float
    build: FlowRun | None = None
    run: FlowRun | None = None
    ended: Recorded[ReleaseEnded] | None = None
    outcome: str = "undecided"
    decided: float | None = None  # epoch of the decision
    decided_by: str = ""
    flow_rss_mib: dict[str, float] = field(default_factory=dict)  # deployment -> peak
    first_deploy: float | None = None  # start of the release's first deploy task
    ready: float | None = None  # end of its last wait-ready task: the analysis starts

    @property
    def run_ids(self) -> list[str]:
        """The ids of its build and canary-release runs (those there are)."""
        return [run.id for run in (self.build, self.run) if run is not None]

    def segments(self, analysis: float) -> dict[str, float | None]:
        """push → decision − analysis, split at the runs' states and the release's tasks
        (None where a boundary is missing); the parts add up to the overhead."""
        build, run = self.build, self.run
        marks = [self.pushed, build.start if build else None, build.end if build else None,
                 run.start if run else None, self.first_deploy, self.ready]  # fmt: skip
        parts: dict[str, float | None] = {}
        for name, a, b in zip(SEGMENTS[:-1], marks, marks[1:], strict=False):
            parts[name] = b - a if a is not None and b is not None else None
        last = (self.decided - self.ready - analysis
                if self.decided is not None and self.ready is not None else None)  # fmt: skip
        parts[SEGMENTS[-1]] = last
        return parts

    def to_json(self, analysis: float) -> dict[str, Any]:
        """Its numbers, as the results' JSON has them."""
        def since_push(epoch: float | None) -> float | None:
            return None if epoch is None else epoch - self.pushed

        decision = since_push(self.decided)
        ended = self.ended.model if self.ended is not None else None
        return {
            "app": self.app, "commit": self.commit, "outcome": self.outcome,
            "decided_by": self.decided_by, "push_to_decision_s": decision,
            "overhead_s": None if decision is None else decision - analysis,
            "push_to_build_end_s": since_push(self.build.end if self.build else None),
            "push_to_release_running_s": since_push(self.run.start if self.run else None),
            "release_state": self.run.state_name if self.run else None,
            "looks": ended.judgements if ended else None,
            "reason": (ended.reason if ended else None) or (self.run.message if self.run else None),
            "flow_rss_peak_mib": self.flow_rss_mib,
            "segments_s": self.segments(analysis),
        }  # fmt: skip


def phase_numbers(releases: list[Release], analysis: float) -> dict[str, Any]:
    """The numbers of one phase (alone, all at once) and its releases'."""
    rows = [r.to_json(analysis) for r in releases]
    times = [r["push_to_decision_s"] for r in rows if r["push_to_decision_s"] is not None]
    rss = [r["flow_rss_peak_mib"].get("canary-release") for r in rows]
    builds = [r["flow_rss_peak_mib"].get("build") for r in rows]
    return {
        "releases": rows, "n": len(rows),
        "correct": sum(r["outcome"] == PROMOTED for r in rows),
        "decided": len(times),
        "decision_median_s": statistics.median(times) if times else None,
        "decision_max_s": max(times) if times else None,
        "overhead_median_s": statistics.median(times) - analysis if times else None,
        "overhead_max_s": max(times) - analysis if times else None,
        "release_rss_mib": [x for x in rss if x],
        "build_rss_mib": [x for x in builds if x],
    }  # fmt: skip


# -- the tables ------------------------------------------------------------------------------
def _s(x: float | None, unit: str = " s") -> str:
    return "-" if x is None or x != x else f"{x:.1f}{unit}"


def _target(value: float | None, limit: float) -> str:
    if value is None:
        return "- FAIL (not measured)"
    return f"{value:.2f} {'PASS' if value <= limit else 'FAIL (missed)'}"


def _cpu(phase: dict[str, Any], key: str) -> str:
    secs = phase["cpu_s"][key]
    return f"{secs:.1f} s ({100 * secs / phase['wall_s']:.0f}%)"


def _rss(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {max(values):.0f}" if values else "-"


def _probe(phase: dict[str, Any]) -> str:
    p = phase["probe"]
    err = f", {p['errors']} err" if p["errors"] else ""
    return f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} / {p['max_ms']:.0f}{err}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _decision_rows(r: dict[str, Any]) -> dict[str, str]:
    """Correctness, push → decision, overhead and the two targets."""
    a, t = r["alone"], r["together"]
    alone_over = a["overhead_max_s"]
    over_ratio = (t["overhead_max_s"] / alone_over if alone_over and t["overhead_max_s"] is not None
                  else None)  # fmt: skip
    spread = (t["decision_max_s"] / t["decision_median_s"]
              if t["decision_median_s"] else None)  # fmt: skip
    return {
        "releases promoted (good commits) alone + all": f"{a['correct']}/{a['n']} + {t['correct']}/{t['n']}",
        "alone: push → decision": _s(a["decision_max_s"]),
        "alone: overhead (− analysis)": _s(alone_over),
        "all at once: push → decision median / max": f"{_s(t['decision_median_s'])} / {_s(t['decision_max_s'])}",
        "all at once: overhead median / slowest": f"{_s(t['overhead_median_s'])} / {_s(t['overhead_max_s'])}",
        "TARGET slowest overhead / alone <= 2": _target(over_ratio, 2.0),
        "TARGET max / median push → decision <= 1.5": _target(spread, 1.5),
    }  # fmt: skip


def _resource_rows(r: dict[str, Any]) -> dict[str, str]:
    """Memory and CPU of every part."""
    a, t = r["alone"], r["together"]
    pg = r["db"] == "postgres"
    cores = os.cpu_count() or 1
    spent = {k: sum(r[k]["cpu_s"].values()) for k in ("alone", "together")}
    return {
        "release flow-run RSS peak med / max, MiB": _rss(a["release_rss_mib"] + t["release_rss_mib"]),
        "build flow-run RSS peak med / max, MiB": _rss(a["build_rss_mib"] + t["build_rss_mib"]),
        "all at once: flow runs' RSS summed, peak": _s(t["rss_peak_mib"]["flows"], " MiB"),
        "worker RSS peak (all at once)": _s(t["rss_peak_mib"]["worker"], " MiB"),
        "server RSS peak, process tree (all at once)": _s(t["rss_peak_mib"]["server"], " MiB"),
        "PostgreSQL RSS peak (all at once)": _s(t["rss_peak_mib"]["postgres"], " MiB") if pg else "-",
        "server CPU (tree), % of a core: idle 10 s": _cpu(r["idle"], "server"),
        "server CPU (tree), % of a core: alone": _cpu(r["alone"], "server"),
        "server CPU (tree), % of a core: all at once": _cpu(r["together"], "server"),
        "worker CPU: alone": _cpu(r["alone"], "worker"),
        "worker CPU: all at once": _cpu(r["together"], "worker"),
        "PostgreSQL CPU: alone": _cpu(r["alone"], "postgres") if pg else "-",
        "PostgreSQL CPU: all at once": _cpu(r["together"], "postgres") if pg else "-",
        "flow runs' CPU (reaped): alone / all at once": " / ".join(f"{r[k]['cpu_s']['flow_runs']:.0f} s" for k in ("alone", "together")),
        "CPU per release, all parts: alone / all at once ÷ N": f"{spent['alone']:.1f} / {spent['together'] / t['n']:.1f} s",
        f"all at once: CPU of all parts ÷ {cores} cores / wall": f"{spent['together'] / cores:.0f} / {t['wall_s']:.0f} s",
    }  # fmt: skip


def _machine_rows(r: dict[str, Any]) -> dict[str, str]:
    """The machine, the API's latency, the load and the wall times."""
    load, busy = r["load"], r["machine_busy"]
    return {
        "machine CPU busy (all cores): idle / alone": f"{_pct(busy['idle'])} / {_pct(busy['alone'])}",
        "machine CPU busy: all at once / until last Running": f"{_pct(busy['together'])} / {_pct(busy['together_starts'])}",
        "API p50 / p95 / max ms, idle (load only)": _probe(r["idle"]),
        "API p50 / p95 / max ms, alone": _probe(r["alone"]),
        "API p50 / p95 / max ms, all at once": _probe(r["together"]),
        "load: sent / planned, non-2xx, transport err": f"{load['sent']}/{load['planned']}, {load['non_2xx']}, {load['transport_errors']}",
        "load: worst send lag / worst p99": f"{load['max_send_lag_ms']:.0f} / {load['p99_ms_worst']:.0f} ms",
        "wall: chain start / bootstrap / all at once": f"{r['chain_start_s']:.0f} / {r['bootstrap_s']:.0f} / {r['together']['wall_s']:.0f} s",
        "1-min load average start → end": f"{r['loadavg_start']:.1f} → {r['loadavg_end']:.1f}",
    }  # fmt: skip


def rows_for(r: dict[str, Any]) -> dict[str, str]:
    """Label -> cell of one run (one database)."""
    if "error" in r:
        return {"error": r["error"][:60]}
    return {**_decision_rows(r), **_resource_rows(r), **_machine_rows(r)}


def _columns(results: list[dict[str, Any]]) -> list[str]:
    """The main table: one row per label, one column per database."""
    cols = [rows_for(r) for r in results]
    labels = list(dict.fromkeys(k for c in cols for k in c))
    width = max(len(k) for k in labels) + 2
    colw = [max([len(v) for v in c.values()] + [len(r["db"])]) + 2 for c, r in zip(cols, results, strict=True)]
    lines = [(f"{'':<{width}}" + "".join(f"{r['db']:<{w}}" for r, w in zip(results, colw, strict=True))).rstrip()]
    for label in labels:
        cells = "".join(f"{c.get(label, '-'):<{w}}" for c, w in zip(cols, colw, strict=True))
        lines.append(f"{label:<{width}}{cells}".rstrip())
    return lines


def _segment(rel: dict[str, Any], key: str) -> float | None:
    return rel["overhead_s"] if key == "= overhead" else rel["segments_s"].get(key)


def _overhead_table(results: list[dict[str, Any]]) -> list[str]:
    """Where the overhead goes: the alone release | median / max of all at once."""
    lines = ["Where the overhead goes (s): the alone release | median / max of all at once"]
    ok = [r for r in results if "error" not in r]
    segw = max(len(x) for x in SEGMENTS) + 2
    lines.append((f"{'':<{segw}}" + "".join(f"{r['db']:<22}" for r in ok)).rstrip())
    for name in (*SEGMENTS, "= overhead"):
        cells = []
        for r in ok:
            alone = [_segment(x, name) for x in r["alone"]["releases"]]
            many = [v for v in (_segment(x, name) for x in r["together"]["releases"]) if v is not None]
            a_txt = _s(alone[0], "") if alone else "-"
            m_txt = (f"{statistics.median(many):.1f} / {max(many):.1f}" if many else "-")
            cells.append(f"{a_txt:>5} | {m_txt:<14}")
        lines.append(f"{name:<{segw}}" + "".join(f"{c:<22}" for c in cells).rstrip())
    return lines


def _per_release(results: list[dict[str, Any]]) -> list[str]:
    """Every release, the alone one first, and why one was not promoted."""
    lines = ["Per release (all at once, and the alone one first): push → build done, → "
             "release Running, → decision; overhead; looks; RSS of its flow runs (MiB)"]  # fmt: skip
    for r in results:
        if "error" in r:
            continue
        lines.append(f"  {r['db']}:")
        for label, rel in [("alone", x) for x in r["alone"]["releases"]] + [
                ("", x) for x in sorted(r["together"]["releases"], key=lambda x: x["push_to_decision_s"] or 1e9)]:  # fmt: skip
            rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(rel["flow_rss_peak_mib"].items()))
            lines.append(
                f"    {rel['app']:<6}{label:<6}{rel['outcome']:<13}"
                f"build {_s(rel['push_to_build_end_s']):>7}  running {_s(rel['push_to_release_running_s']):>7}  "
                f"decision {_s(rel['push_to_decision_s']):>7} ({rel['decided_by'] or '-'})  "
                f"overhead {_s(rel['overhead_s']):>7}  looks {rel['looks'] if rel['looks'] is not None else '-'}  "
                f"{rss}")  # fmt: skip
            if rel["outcome"] != PROMOTED:
                lines.append(f"          why: {(rel['reason'] or '?')[:300]}")
    return lines


def render(n: int, results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The whole report of one N: the main table, the overhead's parts, every release."""
    analysis = args.begin_after + args.lifetime
    looks = -(-args.lifetime // args.interval)
    head = (f"Concurrent releases, N = {n} app(s) on one chain (one server, one worker, one relay, "
            f"one local stack), {args.rate:g} req/s steady load on each; configured analysis "
            f"{analysis:g} s per release (begin_after {args.begin_after:g} s + lifetime "
            f"{args.lifetime:g} s, {looks:g} looks every {args.interval:g} s, no early "
            f"promotion); {os.cpu_count()} cores")  # fmt: skip
    return "\n".join([head, "", *_columns(results), "", *_overhead_table(results), "",
                      *_per_release(results)])  # fmt: skip
