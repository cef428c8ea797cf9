"""What a person reads about a release: per-interval tables and the final markdown report.

Pure text building (no Prefect): the flows hand these to Prefect artifacts, tests read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy/scipy stay out of flows that only publish (the build flow)
    from canary.judge import IntervalJudgement


@dataclass(frozen=True, kw_only=True)
class JudgementRecord:
    """One judgement of a release, as remembered for the report."""

    index: int
    window_start: datetime
    window_end: datetime
    canary_share: int
    judgement: IntervalJudgement


def interval_rows(record: JudgementRecord) -> list[dict[str, Any]]:
    """The per-interval table: one row per judged series, with the window it covers."""
    window = f"{record.window_start:%H:%M:%S}–{record.window_end:%H:%M:%S}"
    rows = []
    for row in record.judgement.rows():
        rows.append({"interval": record.index, "window": window, **row})
    return rows


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
            "| metric | result | baseline mean | canary mean | CI | reason |",
            "|---|---|---|---|---|---|",
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
            lines.append(
                f"| {name}{muted} | {row['classification']}{flag} | {_fmt(row['baseline_mean'])} | "
                f"{_fmt(row['canary_mean'])} | {ci} | {row['reason']} |"
            )
    if cleanup:
        lines += ["", "## Cleanup", ""] + [f"- {step}" for step in cleanup]
    return "\n".join(lines) + "\n"
