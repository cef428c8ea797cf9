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
from typing import Literal, TypeAlias

from canary.config import Thresholds
from canary.judge.classify import Classification
from canary.judge.interval import IntervalJudgement, MetricJudgement
from canary.judge.score import passes
from canary.values.events import OperatorCommand

__all__ = [
    "APPROVE",
    "Action",
    "Decision",
    "Gate",
    "GateAnswer",
    "decide",
    "fails_fast",
    "final_decision",
    "go_duration",
    "in_marginal_band",
]

#: The manual gates a release may wait at (docs: store.gates).
Gate: TypeAlias = Literal["judgement", "before-promotion", "after-look", "held"]
#: What a person may answer at a gate.
Answer: TypeAlias = Literal["promote", "continue", "roll back"]
#: The answer that lets a release go on at each gate (``canary approve``); any other answer
#: (``canary reject``: "roll back") rolls back.
APPROVE: dict[Gate, Answer] = {"judgement": "promote", "before-promotion": "promote",
                               "after-look": "continue", "held": "promote"}  # fmt: skip
_GATE_NAMES: dict[Gate, str] = {"judgement": "manual judgement",
                                "before-promotion": "before-promotion gate",
                                "after-look": "after-look gate",
                                "held": "hold after a failed analysis"}  # fmt: skip


class Action(StrEnum):
    """What a release does after a decision."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLL_BACK = "roll back"


@dataclass(frozen=True, slots=True)
class GateAnswer:
    """What a person answered at a manual gate, or that nobody did in time.

    Attributes:
        gate: The gate asked at.
        question: The question shown to the person.
        answer: Their answer; None when nobody answered within the timeout.
        comment: Their comment, if any.
        timeout_seconds: How long the release waited for an answer.
    """

    gate: Gate
    question: str
    answer: Answer | None
    comment: str = ""
    timeout_seconds: int = 0

    @property
    def go_on(self) -> bool:
        """True when the answer lets the release go on (silence never does)."""
        return self.answer is not None and self.answer == APPROVE[self.gate]

    @property
    def reason(self) -> str:
        """The answer in words, after the question (a hold: after the analysis' reason)."""
        if self.gate == "held":
            return self._held_reason()
        if self.answer is None:
            return (f"{self.question} Rolled back: nobody answered the {_GATE_NAMES[self.gate]} "
                    f"within {go_duration(self.timeout_seconds)}")  # fmt: skip
        note = f" ({self.comment})" if self.comment else ""
        if self.gate == "judgement":
            verb = "promoted" if self.go_on else "rolled back"
            return f"{self.question} A person {verb} by manual judgement{note}"
        chose = self.answer if self.go_on else "roll back"
        return f"{self.question} A person chose to {chose}{note}"

    def _held_reason(self) -> str:
        """A hold's end; the question is the failed analysis' reason."""
        if self.answer is None:
            return (f"held after a failed analysis, and nobody answered within "
                    f"{go_duration(self.timeout_seconds)}: {self.question}")  # fmt: skip
        note = f" ({self.comment})" if self.comment else ""
        if self.go_on:
            return f"overriding a failed analysis: {self.question}; a person approved{note}"
        return f"held after a failed analysis, a person rejected it{note}: {self.question}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a look, and why in words.

    `final` is True when the release ends here; `early` when it ends before its last
    look; `marginal` when the last score sits in the band where a person may decide.
    """

    action: Action
    reason: str
    final: bool
    early: bool = False
    marginal: bool = False
    #: a person decided (an operator command, a manual gate), not the numbers
    manual: bool = False
    #: an operator aborted the release (``canary abort``)
    aborted: bool = False
    #: False when no verdict could be made (the metrics could not be read): no score
    judged: bool = True
    #: a person promoted a release whose analysis failed (``on_failure: hold``, approved)
    overridden: bool = False

    @classmethod
    def commanded(cls, command: OperatorCommand, *, look: int, looks: int) -> Decision:
        """An operator's ``canary promote`` / ``canary abort``, as the decision of a look.

        Args:
            command: The command taken for this run.
            look: The look the command came before (1-based).
            looks: The planned number of looks.

        Returns:
            Promote now (the rest of the analysis skipped), or abort.
        """
        if command.action == "promote":
            return cls(Action.PROMOTE, f"promoted by {command.by} (canary promote) before look "
                       f"{look} of {looks}: the rest of the analysis skipped", True, early=True,
                       manual=True)  # fmt: skip
        return cls(Action.ROLL_BACK, f"aborted by {command.by} (canary abort) before look {look} "
                   f"of {looks}", True, early=True, manual=True, aborted=True)  # fmt: skip

    @classmethod
    def from_gate(cls, answer: GateAnswer, *, prior: Decision) -> Decision:
        """A person's answer at a manual gate (or nobody's), as the decision.

        Args:
            answer: The answer.
            prior: The decision the gate was asked after.

        Returns:
            ``prior`` when a person lets an after-look gate go on (the analysis continues);
            else promote or roll back, decided by a person.
        """
        if answer.gate == "after-look" and answer.go_on:
            return prior
        action = Action.PROMOTE if answer.go_on else Action.ROLL_BACK
        early = prior.early or answer.gate == "after-look"
        overridden = answer.gate == "held" and answer.go_on
        return cls(action, answer.reason, True, early=early, manual=True, overridden=overridden)

    @classmethod
    def unjudged(cls, reason: str, *, look: int, looks: int) -> Decision:
        """A rollback without a verdict: look ``look`` could not be made (metrics unreadable).

        Args:
            reason: What could not be read, in words.
            look: The look that could not be made (1-based).
            looks: The planned number of looks.

        Returns:
            A final rollback that carries no score.
        """
        return cls(Action.ROLL_BACK, f"no verdict: look {look} of {looks} could not be made: "
                   f"{reason}", True, early=look < looks, judged=False)  # fmt: skip


def _above_marginal(score: float, thresholds: Thresholds | None) -> bool:
    marginal = thresholds.marginal if thresholds is not None else None
    return passes(score, pass_threshold=None, marginal_threshold=marginal)


def fails_fast(score: float, thresholds: Thresholds | None) -> bool:
    """Fail fast when a judgement scores at or below marginal; a NaN score fails closed.

    Args:
        score: The judgement's summary score.
        thresholds: The score thresholds (None: no marginal threshold).

    Returns:
        True when the release stops here.
    """
    return not math.isfinite(score) or not _above_marginal(score, thresholds)


def final_decision(last_score: float | None, thresholds: Thresholds | None) -> tuple[bool, str]:
    """Passed or not, from the last score only; earlier marginal scores don't count.

    Args:
        last_score: The last judgement's score (None: no judgement succeeded).
        thresholds: The score thresholds.

    Returns:
        (passed, the reason in words).
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
    """Above the marginal threshold and below the pass threshold: where a person may decide.

    Args:
        score: The score (None or NaN: never in the band).
        thresholds: The score thresholds (both must be set).

    Returns:
        True in the band.
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
    """The decision after look `look` of `looks` (1-based), `elapsed` into the analysis.

    `lifetime` is the analysis time the last look would have reached (an early promotion
    names the time it saves); None: `looks` equal intervals, as long as the ones so far.

    Args:
        judgement: The look's judgement.
        look: The look (1-based).
        looks: The planned number of looks.
        elapsed: The analysis time the look's window covers.
        min_analysis: The analysis time before an early promotion is allowed.
        lifetime: The analysis time the last look reaches.

    Returns:
        Stop (roll back), continue, or promote, with the reason in words.
    """
    last = look >= looks
    early = not last
    where = f"after look {look} of {looks}"

    stop = _stops(judgement, where, early)
    if stop is not None:
        return stop

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
    return _at_the_end(judgement, looks)


def _stops(judgement: IntervalJudgement, where: str, early: bool) -> Decision | None:
    """A rollback now: a failed guard, a blind or critical sequential metric, or (before
    the last look) a score at or below marginal; None when none of them holds."""
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

    thresholds, score = judgement.thresholds, judgement.summary_score
    if early and fails_fast(score, thresholds):
        failing = "; ".join(_describe(m) for m in _failing(judgement)) or "no metric failed"
        marginal = thresholds.marginal if thresholds is not None else None
        limit = f"at or below the marginal threshold {marginal:g}" if marginal is not None else "not a number"
        return Decision(Action.ROLL_BACK, f"score {score:g} {where} is {limit}: {failing}",
                        True, early)  # fmt: skip
    return None


def _at_the_end(judgement: IntervalJudgement, looks: int) -> Decision:
    """The decision at the last look: the last score decides (Kayenta's rule)."""
    thresholds, score = judgement.thresholds, judgement.summary_score
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


def go_duration(seconds: float) -> str:
    """A duration as Go (and Kubernetes) spell it: ``5m0s``, ``1h2m3s``, ``45s``."""
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _seconds(delta: timedelta) -> str:
    seconds = int(round(delta.total_seconds()))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
