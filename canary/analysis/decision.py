"""The one place that says stop, continue or promote, from a judgement. Pure.

Two rule sets, one module:

* **Kayenta mode** (judge spec, section 7): fail fast when a judgement scores at or below
  the marginal threshold; otherwise decide on the *last* score only (`passes`).
* **Sequential mode** (count metrics, anytime-valid; docs/judge.md): a proven regression
  on a critical metric, missing data or a failed guard stops the release at once; once
  every critical and scored metric is *decided* within its tolerance (and `min_analysis`
  has passed) the release may be promoted early; otherwise it continues, and at the end of
  the lifetime the score decides as in Kayenta mode.

Guards (traffic, split, readiness) fail a release in both modes: no canary is promoted
blind. Every threshold comparison goes through `canary.judge.score.passes`, so the
asymmetry Kayenta users rely on (a score equal to the marginal threshold fails, one equal
to the pass threshold passes) holds everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from canary.config import Thresholds
from canary.judge.classify import Classification
from canary.judge.interval import IntervalJudgement, MetricJudgement
from canary.judge.score import passes

__all__ = ["Action", "Decision", "decide", "fails_fast", "final_decision", "in_marginal_band"]


class Action(StrEnum):
    """What a release does after a look: go on, promote the canary, or roll it back."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLL_BACK = "roll back"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a look, and why in words.

    Attributes:
        action: Continue, promote or roll back.
        reason: Why, in words (the report's headline and the run's state message).
        final: The release ends here.
        early: It ends before its last look.
        marginal: The last score sits in the band where a person may decide.
        manual: A person decided (an operator command, a manual gate), not the numbers.
    """

    action: Action
    reason: str
    final: bool
    early: bool = False
    marginal: bool = False
    #: a person decided (an operator command, a manual gate), not the numbers
    manual: bool = False


def _above_marginal(score: float, thresholds: Thresholds | None) -> bool:
    marginal = thresholds.marginal if thresholds is not None else None
    return passes(score, pass_threshold=None, marginal_threshold=marginal)


def fails_fast(score: float, thresholds: Thresholds | None) -> bool:
    """Whether a judgement before the last look stops the release (Kayenta's fail fast).

    Args:
        score: The judgement's summary score.
        thresholds: The config's thresholds; None: no marginal threshold.

    Returns:
        True when the score is at or below marginal, or not a number (fails closed).
    """
    return not math.isfinite(score) or not _above_marginal(score, thresholds)


def final_decision(last_score: float | None, thresholds: Thresholds | None) -> tuple[bool, str]:
    """The end-of-lifetime verdict from the last score only; earlier scores don't count.

    Args:
        last_score: The last judgement's summary score; None when none succeeded.
        thresholds: The config's pass and marginal thresholds, if any.

    Returns:
        (passed, reason): whether the release passes, and why in words.
    """
    if last_score is None:
        return False, "no successful canary judgements"
    if not math.isfinite(last_score):
        return False, f"the last score is {last_score}, not a number; failing closed"
    pass_, marginal = (thresholds.pass_, thresholds.marginal) if thresholds else (None, None)
    ok = passes(last_score, pass_threshold=pass_, marginal_threshold=marginal)
    if pass_ is None and marginal is None:
        return True, f"last score {last_score:g}; no thresholds were given, so it passes"
    if not _above_marginal(last_score, thresholds):
        return False, (f"last score {last_score:g} is at or below the marginal threshold "
                       f"{marginal:g}")  # fmt: skip
    if pass_ is None:
        return True, f"last score {last_score:g} is above marginal; no pass threshold was given"
    if not ok:
        return False, f"last score {last_score:g} is below the pass threshold {pass_:g}"
    return True, f"last score {last_score:g} reaches the pass threshold {pass_:g}"


def in_marginal_band(score: float | None, thresholds: Thresholds | None) -> bool:
    """Whether a score sits where a person may decide (a manual judgement).

    Args:
        score: A summary score, or None.
        thresholds: The config's thresholds, if any.

    Returns:
        True when the score is above the marginal threshold and below the pass threshold.
    """
    if score is None or not math.isfinite(score) or thresholds is None:
        return False
    if thresholds.pass_ is None:
        return False
    below_pass = not passes(score, pass_threshold=thresholds.pass_, marginal_threshold=None)
    return _above_marginal(score, thresholds) and below_pass


def _describe(m: MetricJudgement) -> str:
    flag = " (critical)" if m.critical else ""
    return f"{m.name} {m.classification.value}{flag}: {m.result.reason}"


def _failing(j: IntervalJudgement) -> list[MetricJudgement]:
    return [m for m in j.metrics if not m.metric.canary.muted
            and m.classification is not Classification.PASS]  # fmt: skip


def decide(
    judgement: IntervalJudgement,
    *,
    look: int,
    looks: int,
    elapsed: timedelta = timedelta(0),
    min_analysis: timedelta = timedelta(0),
    lifetime: timedelta | None = None,
) -> Decision:
    """The decision after one look: roll back, promote (early or at the end), or continue.

    Args:
        judgement: The look's judgement (every metric, the guards, the score).
        look: This look's number, 1-based.
        looks: How many looks the plan has.
        elapsed: Analysis time so far.
        min_analysis: An early promotion waits at least this long.
        lifetime: The analysis time the last look would have reached (an early promotion
            names the time it saves); None: `looks` equal intervals, as long as the ones
            so far.

    Returns:
        The decision, with its reason in words.
    """
    thresholds = judgement.thresholds
    score = judgement.summary_score
    last = look >= looks
    early = not last
    where = f"after look {look} of {looks}"

    guards = judgement.failed_guards
    if guards:
        text = "; ".join(f"{g.name}: {g.reason}" for g in guards)
        return Decision(Action.ROLL_BACK, f"guard failed {where}: {text}", True, early)

    if judgement.sequential:
        active = [m for m in judgement.metrics if not m.metric.canary.muted]
        blind = [m for m in active if m.classification is Classification.NODATA]
        if blind:
            text = "; ".join(_describe(m) for m in blind)
            return Decision(Action.ROLL_BACK, f"no data {where}, and a canary is never "
                            f"promoted blind: {text}", True, early)  # fmt: skip
        critical = [m for m in active if m.critical]
        if critical:
            text = "; ".join(_describe(m) for m in critical)
            return Decision(Action.ROLL_BACK, f"regression proven {where}: {text}", True, early)

    if early and fails_fast(score, thresholds):
        failing = "; ".join(_describe(m) for m in _failing(judgement)) or "no metric failed"
        marginal = thresholds.marginal if thresholds is not None else None
        limit = f"at or below the marginal threshold {marginal:g}" if marginal is not None else "not a number"
        return Decision(Action.ROLL_BACK, f"score {score:g} {where} is {limit}: {failing}",
                        True, early)  # fmt: skip

    waiting = ""
    if judgement.sequential and early:
        active = [m for m in judgement.metrics if not m.metric.canary.muted]
        if active and all(m.decided for m in active):
            if elapsed >= min_analysis:
                return Decision(Action.PROMOTE, (
                    f"every metric is within its tolerance, decided at look {look} of "
                    f"{looks} ({_seconds(elapsed)} of analysis): safe to promote now, "
                    f"{_saved(look, looks, elapsed, lifetime)}"), True, True)  # fmt: skip
            waiting = (f"; every metric is decided within its tolerance, but min_analysis "
                       f"{_seconds(min_analysis)} has not passed ({_seconds(elapsed)})")  # fmt: skip

    if not last:
        return Decision(Action.CONTINUE, f"no decision {where}; continuing{waiting}", False)

    ok, reason = final_decision(score, thresholds)
    if judgement.sequential:
        undecided = [m.name for m in judgement.metrics
                     if not m.metric.canary.muted and not m.decided]  # fmt: skip
        if ok and undecided:
            reason += (f"; no regression proven in {looks} looks (not yet decided within "
                       f"tolerance: {', '.join(undecided)})")  # fmt: skip
    if not ok:
        failing = "; ".join(_describe(m) for m in _failing(judgement))
        reason += f": {failing}" if failing else ""
    action = Action.PROMOTE if ok else Action.ROLL_BACK
    return Decision(action, reason, True, False, marginal=in_marginal_band(score, thresholds))


def _saved(look: int, looks: int, elapsed: timedelta, lifetime: timedelta | None) -> str:
    """The analysis an early promotion skips, in words: time and looks left."""
    if lifetime is None:
        lifetime = elapsed * looks / look if look > 0 else elapsed
    left = max(lifetime - elapsed, timedelta(0))
    rest = looks - look
    return (f"saving {_seconds(left)} of the {_seconds(lifetime)} lifetime "
            f"({rest} look{'s' if rest != 1 else ''} left)")


def _seconds(delta: timedelta) -> str:
    seconds = int(round(delta.total_seconds()))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
