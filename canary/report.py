"""What a person reads about a release: the headline first, then the numbers behind it.

Pure text building (no Prefect): the flows hand these to Prefect artifacts, tests read them.
The report answers "what happened, which metric, by how much, how sure" in its first
lines: a headline, a narrow summary table (failing metrics first, units, 3 significant
digits) that fits the UI's artifact frame, the group scores, the guards, the decision's
timeline and a picture per metric; the long reasons come last. Times carry their zone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy/scipy stay out of flows that only publish (the build flow)
    from canary.analysis.decision import Decision
    from canary.config import Thresholds
    from canary.judge import IntervalJudgement
    from canary.judge.interval import MetricJudgement
    from canary.values.carried import LookTraffic, Restart


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
    #: the split planned and carried (read back) at the look, and the restarts since the
    #: look before; None where nothing was read back (re-analysis, backtest)
    traffic: LookTraffic | None = None


# -- numbers for people ----------------------------------------------------------------------


def sig(value: float | None, digits: int = 3) -> str:
    """3 significant digits, no exponent for everyday magnitudes; '–' for no number."""
    if value is None or not math.isfinite(value):
        return "∞" if value == math.inf else "–"
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text and 1e-4 <= abs(value) < 1e6:
        text = f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"
    return text


def clock(moment: datetime) -> str:
    """A time with its zone (the UI shows local time: never leave the zone to guessing)."""
    return f"{moment:%H:%M:%S} {moment.tzname() or 'UTC'}"


def duration(seconds: float) -> str:
    """Seconds as minutes:seconds ("2:05")."""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"


# -- one metric in words ----------------------------------------------------------------------


def _confidence(m: MetricJudgement) -> str:
    return f"{sig(100 * m.result.confidence)}% confidence"


def sides(m: MetricJudgement) -> tuple[str, str, str]:
    """(baseline, canary, effect) of one metric, with units, 3 significant digits."""
    return m.result.sides(sig)


def _phrase(m: MetricJudgement) -> str:
    """One failing metric as the headline says it."""
    if m.classification.value == "Nodata":
        text = f"{m.name}: no data"
    else:
        base, can, effect = sides(m)
        text = f"{m.name} {effect} (canary {_bare(can)} vs baseline {_bare(base)}, {_confidence(m)})"
    return text + (", critical" if m.critical else "")


def share_tolerance(m: MetricJudgement) -> bool:
    """True for a histogram metric whose tolerance bounds the share of slower requests at
    every bucket bound (toleranceOn: share), not its quantiles."""
    return m.metric.evidence == "histogram" and m.metric.canary.tolerance_on == "share"


def decided_at(records: Sequence[JudgementRecord]) -> dict[str, int]:
    """The look at which each sequential metric was first decided (a regression proven, or
    within tolerance proven), by metric name; undecided metrics are absent."""
    first: dict[str, int] = {}
    for record in records:
        for m in record.judgement.metrics:
            if m.decided and m.name not in first:
                first[m.name] = record.index
    return first


def _bare(side: str) -> str:
    """'p50 87.4 ms' -> '87.4 ms' (the effect already names the quantile)."""
    head, _, rest = side.partition(" ")
    return rest if head.startswith("p") and head[1:].replace(".", "").isdigit() else side


def failing(judgement: IntervalJudgement) -> list[MetricJudgement]:
    """The metrics that count against the canary, critical ones first."""
    bad = [m for m in judgement.metrics if not m.metric.canary.muted
           and m.classification.value != "Pass"]  # fmt: skip
    return sorted(bad, key=lambda m: not m.critical)


def explain_failing(judgement: IntervalJudgement) -> list[str]:
    """One line per failing metric (or guard): its effect and how sure, for the run's log."""
    lines = [f"guard {g.name} failed: {g.reason}" for g in judgement.failed_guards]
    lines += [_phrase(m) for m in failing(judgement)]
    return lines


def failing_metrics(records: Sequence[JudgementRecord]) -> list[dict[str, object]]:
    """The last look's failing metrics, for events (name, result, effect in words)."""
    if not records:
        return []
    return [{"metric": m.name, "result": m.classification.value, "critical": m.critical,
             "effect": _phrase(m)} for m in failing(records[-1].judgement)]  # fmt: skip


def headline(outcome: str, reason: str, records: Sequence[JudgementRecord],
             by_person: bool = False) -> str:  # fmt: skip
    """The first line: the outcome and the metric, by how much, how sure. `by_person`: a
    person decided (canary promote/abort, a manual judgement or gate): their reason leads."""
    word = {"promoted": "promoted", "rolled-back": "rolled back", "aborted": "aborted",
            "skipped": "not released"}.get(outcome, outcome)  # fmt: skip
    if not records or by_person:  # a hold approved: "promoted, overriding a failed analysis: ..."
        return f"{word}{', ' if reason.startswith('overriding ') else ': '}{reason}"
    last = records[-1].judgement
    guards = last.failed_guards
    if guards:
        return f"{word}: guard {guards[0].name} failed: {guards[0].reason}"
    bad = failing(last)
    if bad and outcome != "promoted":
        return f"{word}: " + "; ".join(_phrase(m) for m in bad[:3])
    decision = records[-1].decision
    if outcome == "promoted" and decision is not None and not decision.manual:
        looks = len(records)
        if decision.early:
            return f"{word}: every metric within its tolerance, decided at look {records[-1].index}"
        return (f"{word}: no regression proven in {looks} look{'s' * (looks > 1)}, "
                f"score {sig(last.summary_score)}")  # fmt: skip
    return f"{word}: {reason}"


def reason_tag(headline: str, limit: int = 100) -> str:
    """The headline without its outcome word, cut to `limit` characters: the run's ``why:``
    tag, which the Prefect UI shows in the run's header and in the runs list (a state's
    message only under Details). "rolled back: latency +215% p50 (...)" -> "latency +215%..."."""
    _, sep, rest = headline.partition(": ")
    return _short((rest if sep else headline).strip(), limit)


# -- tables ----------------------------------------------------------------------------------


def _metric_name(m: MetricJudgement) -> str:
    tags = ",".join(f"{k}={v}" for k, v in sorted(m.tags.items()))
    return f"{m.name}{' {' + tags + '}' if tags else ''}"


def _role(m: MetricJudgement) -> str:
    return "muted" if m.metric.canary.muted else ("critical" if m.metric.canary.critical else "")


def _metric_label(m: MetricJudgement) -> str:
    role = _role(m)
    return f"{_metric_name(m)}{f' ({role})' if role else ''}"


def look_window(record: JudgementRecord) -> str:
    """The look's window, for its table's description ("12:00:00 UTC – 12:00:30")."""
    return f"{clock(record.window_start)} – {record.window_end:%H:%M:%S}"


#: a metric's or guard's reason in the look's table is cut here (interval_rows)
TABLE_REASON = 80


def interval_rows(record: JudgementRecord) -> list[dict[str, object]]:
    """The per-look table: one row per judged metric, failing first, then one per guard and
    the decision. Human column names; a column empty in every row is left out.

    The UI shows a table artifact unwrapped in a frame of ~840 px: the answer comes first
    (metric, result, effect, canary, baseline: about 700 px, seen without scrolling), the
    window is in the table's description (look_window), and reasons are cut to
    TABLE_REASON characters (the decision's to 160: `canary status` shows it); the report's
    Details and the run's log have them whole."""
    j = record.judgement
    metrics = sorted(j.metrics, key=lambda m: (m.classification.value == "Pass", not m.critical))
    rows: list[dict[str, object]] = []
    for m in metrics:
        base, can, effect = sides(m)
        rows.append({
            "metric": _metric_name(m), "result": m.classification.value, "effect": effect,
            "canary": can, "baseline": base, "stops the release": "yes" if m.critical else "",
            "decided": _decided(m), "role": _role(m),
            "tolerance on": "shares" if share_tolerance(m) else "",
            "reason": _short(m.result.reason, TABLE_REASON), "look": record.index,
        })  # fmt: skip
    for guard in j.guards:
        rows.append({"metric": f"guard: {guard.name}", "result": "Pass" if guard.ok else "Fail",
                     "stops the release": "" if guard.ok else "yes",
                     "reason": _short(guard.reason, TABLE_REASON), "look": record.index})  # fmt: skip
    if record.decision is not None:
        rows.append({"metric": "decision", "result": record.decision.action.value,
                     "reason": _short(record.decision.reason), "look": record.index})  # fmt: skip
    columns = [c for c in dict.fromkeys(k for row in rows for k in row)
               if any(row.get(c) not in (None, "", "–") for row in rows)]  # fmt: skip
    return [{c: row.get(c, "") for c in columns} for row in rows]


def _decided(m: MetricJudgement) -> str:
    """Sequential results: decided yet? ("" for tests that never decide early)."""
    if m.result.decided is None:
        return ""
    return "yes" if m.decided else "not yet"


def _summary_table(judgement: IntervalJudgement, first: dict[str, int] | None = None) -> list[str]:
    """Four narrow columns (the UI's artifact frame is ~730 px wide); reasons come later.
    `first`: the look each metric was first decided at (decided_at)."""
    lines = ["| metric | result | effect | canary vs baseline |", "|---|---|---|---|"]
    order = sorted(judgement.metrics, key=lambda m: (m.metric.canary.muted,
                                                     m.classification.value == "Pass", not m.critical))  # fmt: skip
    for m in order:
        base, can, effect = sides(m)
        label = m.classification.value
        bad = label != "Pass" and not m.metric.canary.muted
        at = (first or {}).get(m.name)
        result = (f"**{label}**" if bad else label) + (
            (f", decided at look {at}" if at is not None else ", decided") if m.decided else "")
        notes = [n for n in (_role(m), "tolerance on shares" if share_tolerance(m) else "") if n]
        name = f"{_metric_name(m)}<br>*{', '.join(notes)}*" if notes else _metric_name(m)
        lines.append(f"| {name} | {result} | {effect} | {can} vs {base} |")
    return lines


def _short(text: str, limit: int = 160) -> str:
    """`text` cut to `limit` characters, with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- the report ------------------------------------------------------------------------------


def markdown_report(
    *,
    app: str,
    image: str,
    commit: str,
    outcome: str,
    reason: str,
    records: Sequence[JudgementRecord],
    thresholds: Thresholds | None,
    cleanup: Sequence[str] = (),
    plan: Sequence[str] = (),
    pictures: bool = True,
    by_person: bool = False,
) -> str:
    """The final report: what happened, why, and the numbers behind it."""
    lines = [f"# Canary release of `{app}`: **{outcome}**", "",
             f"**{headline(outcome, reason, records, by_person)}**", ""]  # fmt: skip
    lines += [f"- commit `{commit}`", f"- image `{image}`", f"- decision: {_short(reason)}"]
    if records:
        first, last = records[0], records[-1]
        spent = (last.window_end - first.window_start).total_seconds()
        lines.append(f"- decided at look {last.index}, at {clock(last.window_end)} after "
                     f"{duration(spent)} of analysis (canary share {last.canary_share}%)"
                     + _why_look(last))  # fmt: skip
    lines += _traffic_notes(records)
    if thresholds is not None:
        lines.append(f"- score thresholds: pass {sig(thresholds.pass_)}, marginal {sig(thresholds.marginal)}")
    if not records:
        lines += ["", "No judgement was made (the release stopped before its first look)."]
    else:
        last_j = records[-1].judgement
        lines += ["", f"## Metrics (look {records[-1].index})", "",
                  *_summary_table(last_j, decided_at(records))]  # fmt: skip
        groups = ", ".join(f"{g} {sig(s)}" for g, s in last_j.group_scores.items())
        lines += ["", f"Score {sig(last_j.summary_score)} ({groups})."]
        if last_j.guards:
            lines += ["", "## Guards", ""]
            lines += [f"- {'ok' if g.ok else '**FAILED**'} {g.name}: {g.reason}" for g in last_j.guards]
        lines += ["", "## Timeline", "", *_timeline(records)]
        if pictures:
            lines += _pictures(records)
        lines += ["", "## Details", "", f"Decision: {reason}", ""]
        for m in last_j.metrics:
            share = " (tolerance on the share of slower requests)" if share_tolerance(m) else ""
            lines.append(f"- **{_metric_label(m)}**{share} {m.classification.value}: {m.result.reason}")
    if plan:
        lines += ["", "## Plan (from production's traffic before the canary took any)", ""]
        lines += [f"- {line}" for line in plan]
    if cleanup:
        lines += ["", "## Cleanup", ""] + [f"- {step}" for step in cleanup]
    return "\n".join(lines) + "\n"


def _restarts(records: Sequence[JudgementRecord]) -> list[Restart]:
    """Every restart the looks saw, once each, oldest first."""
    seen = {(r.part, r.at): r for rec in records if rec.traffic for r in rec.traffic.restarts}
    return sorted(seen.values(), key=lambda r: r.at)


def _traffic_notes(records: Sequence[JudgementRecord]) -> list[str]:
    """Summary lines when the traffic did not go as planned: looks whose carried split
    differs from the planned one (or could not be read), and the restarts."""
    from canary.values.carried import split

    lines = []
    for r in records:
        t = r.traffic
        if t is not None and t.differs and t.carried is not None:
            lines.append(f"- **look {r.index}: the router carried {split(t.carried)}, not the "
                         f"planned {split(t.planned)}** (primary/baseline/canary %)")  # fmt: skip
        elif t is not None and t.carried is None:
            lines.append(f"- **look {r.index}: the split could not be read back** ({t.error})")
    restarts = _restarts(records)
    if restarts:
        parts = ", ".join(f"{r.part} at {clock(r.at)}" for r in restarts)
        lines.append(f"- **{len(restarts)} restart{'s' * (len(restarts) > 1)} during the "
                     f"analysis**: {parts}")  # fmt: skip
    return lines


def _timeline(records: Sequence[JudgementRecord]) -> list[str]:
    """The looks and the restarts in time order; each look with the split planned for it
    and the one the router carried, read back at the look."""
    from canary.values.carried import split

    events = [(records[0].window_start, f"- {clock(records[0].window_start)}: analysis windows begin")]
    for r in records:
        action = r.decision.action.value if r.decision is not None else r.judgement.verdict.value
        why = r.decision.reason if r.decision is not None else ""
        share = f"at {r.canary_share}% share"
        t = r.traffic
        if t is not None:
            carried = split(t.carried) if t.carried is not None else "unknown (not read back)"
            flag = " **(differs)**" if t.differs or t.carried is None else ""
            share = f"planned {split(t.planned)}, carried {carried}{flag}"
        events.append((r.window_end, f"- {clock(r.window_end)}: look {r.index} {share}, "
                       f"score {sig(r.judgement.summary_score)}: **{action}**"
                       + (f" ({_short(why, 120)})" if why else "")))  # fmt: skip
    events += [(x.at, f"- {clock(x.at)}: **{x.words()}**") for x in _restarts(records)]
    lines = [line for _, line in sorted(events, key=lambda e: e[0])]
    if any(r.traffic is not None for r in records):
        lines.append("- (splits in % primary/baseline/canary, read back from the router at each look)")
    return lines


def _why_look(record: JudgementRecord) -> str:
    """Why the release ended at this look, for sequential judgements: the metrics decided
    there (a regression proven, or within tolerance proven), or that none was."""
    j = record.judgement
    if not j.sequential or record.decision is None or record.decision.manual:
        return ""
    if j.failed_guards:
        return f": guard {j.failed_guards[0].name} failed"
    active = [m for m in j.metrics if not m.metric.canary.muted]
    decided = [m for m in active if m.decided]
    if not decided:
        return "" if record.decision.early else ": the last look, with no metric decided: the score decides"
    words = ", ".join(f"{m.name} {'within tolerance' if m.classification.value == 'Pass' else m.classification.value}"
                      for m in decided)  # fmt: skip
    rest = len(active) - len(decided)
    return f": decided {words}" + (f"; {rest} metric{'s' * (rest > 1)} not yet decided" if rest else "")


def _pictures(records: Sequence[JudgementRecord]) -> list[str]:
    """The pictures section: one PNG per metric, failing first."""
    from canary.pictures import metric_charts, png_data_uri

    charts = metric_charts(records)
    if not charts:
        return []
    lines = ["", "## Pictures", ""]
    for name, bad, png in charts:
        lines += [f"![{name}{' (failing)' if bad else ''}]({png_data_uri(png)})", ""]
    return lines
