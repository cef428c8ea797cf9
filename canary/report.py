"""What a person reads about a release: per-interval tables and the final markdown report.

Pure text building (no Prefect): the flows hand these to Prefect artifacts, tests read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy/scipy stay out of flows that only publish (the build flow)
    from canary.analysis.decision import Decision
    from canary.judge import IntervalJudgement


@dataclass(frozen=True, kw_only=True)
class JudgementRecord:
    """One judgement of a release, as remembered for the report."""

    index: int
    window_start: datetime
    window_end: datetime
    canary_share: int
    judgement: IntervalJudgement
    #: what the decision module said after this look
    decision: Decision | None = None


def interval_rows(record: JudgementRecord) -> list[dict[str, Any]]:
    """The per-interval table: one row per judged series, then one per guard, then the
    decision, with the window it covers."""
    window = f"{record.window_start:%H:%M:%S}–{record.window_end:%H:%M:%S}"
    rows = []
    for row in record.judgement.rows():
        rows.append({"interval": record.index, "window": window, **row})
    blank = dict.fromkeys(rows[0], None) if rows else {}
    for guard in record.judgement.guards:
        rows.append({**blank, "interval": record.index, "window": window,
                     "metric": f"guard: {guard.name}", "kind": "guard",
                     "classification": "Pass" if guard.ok else "Fail", "reason": guard.reason})  # fmt: skip
    if record.decision is not None:
        rows.append({**blank, "interval": record.index, "window": window, "metric": "decision",
                     "kind": "decision", "classification": record.decision.action.value,
                     "reason": record.decision.reason})  # fmt: skip
    return rows


def _side(row: dict[str, Any], judgement: IntervalJudgement, side: str) -> str:
    """What a person compares for one side: a mean, a rate, or the latency quantiles."""
    from canary.judge.sequential import CountsResult, HistogramResult, format_value

    metric = next((m for m in judgement.metrics if m.name == row["metric"]), None)
    result = metric.result if metric is not None else None
    if isinstance(result, CountsResult):
        events, total = ((result.control_events, result.control_total) if side == "baseline"
                         else (result.experiment_events, result.experiment_total))  # fmt: skip
        rate = f"{100 * events / total:.3g}%" if total else "–"
        return f"{rate} ({events:.0f}/{total:.0f})"
    if isinstance(result, HistogramResult):
        bands = result.control_quantiles if side == "baseline" else result.experiment_quantiles
        return ", ".join(f"p{100 * b.quantile:g} {format_value(b.estimate, result.unit)}" for b in bands)
    return _fmt(row[f"{side}_mean"])


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_report(
    *,
    app: str,
    image: str,
    commit: str,
    outcome: str,
    reason: str,
    records: Sequence[JudgementRecord],
    thresholds: Any,
    cleanup: Sequence[str] = (),
    plan: Sequence[str] = (),
) -> str:
    """The final report: what happened, why, and the numbers behind it."""
    lines = [
        f"# Canary release of `{app}`: **{outcome}**",
        "",
        f"- commit `{commit}`",
        f"- image `{image}`",
        f"- decision: {reason}",
    ]
    if thresholds is not None:
        lines.append(f"- thresholds: pass {thresholds.pass_}, marginal {thresholds.marginal}")
    lines += ["", "## Judgements", ""]
    if not records:
        lines.append("No judgement completed (the release stopped before its first interval).")
    else:
        lines += [
            "| # | window | canary share | score | verdict | groups |",
            "|---|---|---|---|---|---|",
        ]
        for r in records:
            groups = ", ".join(f"{g} {s:g}" for g, s in r.judgement.group_scores.items())
            lines.append(
                f"| {r.index} | {r.window_start:%H:%M:%S}–{r.window_end:%H:%M:%S} | "
                f"{r.canary_share}% | {r.judgement.summary_score:g} | "
                f"{r.judgement.verdict.value} | {groups} |"
            )
        last = records[-1].judgement
        lines += [
            "",
            f"## Metrics in the last judgement (#{records[-1].index})",
            "",
            "| metric | result | decided | baseline | canary | CI | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in last.rows():
            ci = (
                f"[{_fmt(row['ci_lower'])}, {_fmt(row['ci_upper'])}]"
                if row["ci_lower"] is not None
                else "–"
            )
            flag = " (critical)" if row["critical"] else ""
            muted = " (muted)" if row["muted"] else ""
            name = row["metric"] + (f" {{{row['tags']}}}" if row["tags"] else "")
            decided = {True: "yes", False: "not yet", None: "–"}[row["decided"]]
            lines.append(
                f"| {name}{muted} | {row['classification']}{flag} | {decided} | "
                f"{_side(row, last, 'baseline')} | {_side(row, last, 'canary')} | {ci} | "
                f"{row['reason']} |"
            )
        if last.guards:
            lines += ["", f"## Guards at the last look (#{records[-1].index})", ""]
            lines += [f"- {'ok' if g.ok else 'FAILED'} {g.name}: {g.reason}" for g in last.guards]
        decisions = [r for r in records if r.decision is not None]
        if decisions:
            lines += ["", "## Why it stopped when it did", ""]
            lines += [f"- #{r.index} ({r.canary_share}% share, window ending "
                      f"{r.window_end:%H:%M:%S}): {r.decision.action.value}: {r.decision.reason}"  # type: ignore[union-attr]
                      for r in decisions]  # fmt: skip
    if plan:
        lines += ["", "## Plan (from production's traffic before the canary started)", ""]
        lines += [f"- {line}" for line in plan]
    if cleanup:
        lines += ["", "## Cleanup", ""] + [f"- {step}" for step in cleanup]
    return "\n".join(lines) + "\n"
