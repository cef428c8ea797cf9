"""Plans in words: what a person reads in the release report and `python -m canary plan`."""

from __future__ import annotations

from canary.analysis.plans import LookSchedule, MetricPlan, ReleasePlan
from canary.judge.sequential import format_value

__all__ = ["describe"]


def describe(plan: ReleasePlan | MetricPlan) -> list[str]:
    """The plan in lines a person reads (for the release report and `python -m canary plan`)."""
    if isinstance(plan, MetricPlan):
        return _describe_metric(plan)
    s = plan.schedule
    lines = [f"plan for {plan.config!r} from production's last {_duration(plan.window)}: looks "
             f"every {_duration(s.interval)} after a {_duration(s.begin_after)} warm-up, "
             f"shares {', '.join(f'{x:g}%' for x in s.shares)} per track"]  # fmt: skip
    for metric in plan.metrics:
        lines.extend(_describe_metric(metric))
    lines.extend(plan.notes)
    return lines


def _describe_metric(p: MetricPlan) -> list[str]:
    """One metric's plan: what production shows, what catching min_effect needs, and how a
    canary no worse than production fares."""
    if not p.planned:
        return [f"{p.name}: no plan: {p.reason}"]
    seen, what = _seen_and_effect(p)
    chance = f"{100 * p.power:.0f}% probability"
    need, verdict = _need_and_verdict(p)
    lines = [f"{p.name}: {seen}; to catch {what} with {chance} {need}; {verdict}"]
    if p.aa_false_alarm is not None and p.aa_safe:
        lines.append(_no_worse_line(p, p.aa_false_alarm))
    lines.extend(f"  warning: {w}" for w in p.warnings)
    return lines


def _seen_and_effect(p: MetricPlan) -> tuple[str, str]:
    """(what production serves, the regression planned for) in words."""
    effect = f"-{100 * p.min_effect:.3g}%" if p.direction == "decrease" else f"+{100 * p.min_effect:.3g}%"
    if p.kind == "ratio":
        seen = f"production serves {p.request_rate:.3g} req/s at {_rate(p.baseline or 0)} errors"
        what = f"{effect} ({_rate(p.baseline or 0)} -> {_rate(p.canary or 0)})"
    else:
        qs = ", ".join(f"p{100 * q:g} {format_value(v, p.unit)}" for q, v in p.quantiles)
        seen = f"production serves {p.request_rate:.3g} req/s, {qs}"
        word = "faster" if p.direction == "decrease" else "slower"
        what = (f"{100 * p.min_effect:.3g}% {word} (p90 {format_value(p.baseline, p.unit)} -> "
                f"{format_value(p.canary, p.unit)})")  # fmt: skip
    if p.direction == "either":
        what += ", either direction tested"
    return seen, what


def _need_and_verdict(p: MetricPlan) -> tuple[str, str]:
    """(how long the canary needs, whether the lifetime suffices) in words."""
    s = p.schedule
    lifetime = f"the lifetime {_duration(s.lifetime)} ({s.looks} look{'s' if s.looks > 1 else ''})"
    at_life = p.lifetime_detection or 0.0
    if p.looks_needed is not None:
        k = p.looks_needed
        need = (f"the canary needs {k} look{'s' if k > 1 else ''} ({_duration(s.at(k))} at "
                f"{_shares(s, k)} share, ~{_about(p.requests[k - 1])} requests per track)")  # fmt: skip
        if k <= s.looks:
            return need, f"{lifetime} suffices: {_pct(at_life)}"
        return need, (f"{lifetime} gives {_pct(at_life)}: set lifetime to at least "
                      f"{_duration(k * s.interval)}")  # fmt: skip
    k = len(p.detection)
    need = (f"the canary needs more than {k} looks ({_duration(s.at(k))} at {_shares(s, k)} "
            f"share, ~{_about(p.requests[-1])} requests per track), by which it reaches "
            f"{_pct(p.detection[-1])}")  # fmt: skip
    return need, f"{lifetime} gives {_pct(at_life)}"


def _no_worse_line(p: MetricPlan, false_alarm: float) -> str:
    """How a canary no worse than production fares: decided within tolerance, false alarms."""
    s = p.schedule
    by = ""
    if p.safe_looks_needed is not None:
        k = p.safe_looks_needed
        by = f" ({_pct(p.power)} by look {k}, {_duration(s.at(k))})"
    else:
        half = next((k + 1 for k, x in enumerate(p.aa_safe) if x >= 0.5), None)
        if half is not None:
            by = f" (half by look {half}, {_duration(s.at(half))})"
    within = "within tolerance"
    if p.safe_rate is not None:
        within += f" or below the safe rate {_rate(p.safe_rate)}"
    elif p.tolerance_on == "share":
        within += " (on the share of slower requests)"
    line = (f"  if the canary is no worse: decided {within} (early promotion) in "
            f"{_pct(p.aa_safe[-1])} of releases within the lifetime{by}"
            + (", never at look 1" if p.kind == "histogram" else "")
            + f"; false alarms {_pct(false_alarm)} (at most alpha {_pct(p.alpha)})")  # fmt: skip
    if p.tolerance == 0 and p.safe_rate is None:
        line += ("; tolerance 0 asks to prove the canary no worse at all, which an equal "
                 "canary rarely shows: a tolerance (e.g. 0.1) lets it promote early")  # fmt: skip
        if p.kind == "ratio" and p.direction == "increase":
            line += ", and so does a safeRate (a rate the canary may always have)"
    return line


def _pct(share: float) -> str:
    value = 100 * share
    return f"{value:.2g}%" if value < 10 else f"{value:.0f}%"


def _rate(share: float) -> str:
    return f"{100 * share:.3g}%"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _about(n: float) -> str:
    return f"{float(f'{n:.2g}'):,.0f}" if n >= 10 else f"{n:.2g}"


def _shares(schedule: LookSchedule, looks: int) -> str:
    used = [schedule.share(k) for k in range(1, looks + 1)]
    lo, hi = min(used), max(used)
    return f"{lo:g}%" if lo == hi else f"{lo:g}-{hi:g}%"

