"""One look at a canary, assessed: guards, then the judge, then the decision. Pure.

A look is what the release flow, re-analysis and backtest all do with one window's data:
the flow's ``observe`` task reads an :class:`Observation` from the metric store (series,
counts and the request counters, in one pass, the window's scopes built once), and
:func:`assess` turns it into an :class:`Assessment` (the guards' results, the judgement and
the decision). What the looks before it saw travels in :class:`Earlier`, so a look is
judged the same way wherever it is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from canary.analysis.decision import Decision, decide
from canary.analysis.windows import JudgementWindow, judgement_windows
from canary.config import AnalysisPlan, CanaryConfig, Thresholds
from canary.judge import IntervalJudgement, judge
from canary.judge.guards import GuardResult, evaluate_guards
from canary.values.counts import CountsPair
from canary.values.series import MetricPair

__all__ = ["Assessment", "Earlier", "LookPlan", "Observation", "assess"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one look read from the metric store over its window.

    Attributes:
        window: The judgement window the data covers.
        pairs: The series metrics' control/experiment pairs, in config order.
        counts: The count metrics' counts since the analysis began, in config order.
        requests: (baseline, canary) requests over the window, for the guards; None when
            the config has no request counter.
    """

    window: JudgementWindow
    pairs: tuple[MetricPair, ...] = ()
    counts: tuple[CountsPair, ...] = ()
    requests: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class LookPlan:
    """How the looks of one analysis are judged and decided.

    Attributes:
        config: The canary config the metrics are judged with.
        thresholds: The score thresholds (None: the config's own, or none).
        windows: Every look's window, in order (one for a single look judged on its own).
        min_analysis: The analysis time before an early promotion is allowed.
        split: The canary's share of the pair's traffic; None takes each count metric's
            observed share (valid for a single look only, as re-analysis judges).
        guarded: Whether the guards (readiness, traffic, split) run at each look.
    """

    config: CanaryConfig
    thresholds: Thresholds | None
    windows: tuple[JudgementWindow, ...]
    min_analysis: timedelta = timedelta(0)
    split: float | None = 0.5
    guarded: bool = True

    @classmethod
    def for_release(cls, plan: AnalysisPlan, config: CanaryConfig, *, start: datetime) -> LookPlan:
        """The looks of a canary release whose analysis begins at ``start``.

        Args:
            plan: The release spec's analysis plan.
            config: The canary config.
            start: When the analysis begins (aware; normally now).

        Returns:
            The plan, with every judgement window of the analysis.
        """
        return cls(config=config, thresholds=plan.thresholds, min_analysis=plan.min_analysis,
                   windows=judgement_windows(plan, start=start))  # fmt: skip

    @classmethod
    def single(cls, config: CanaryConfig, window: JudgementWindow, *,
               thresholds: Thresholds | None = None, split: float | None = 0.5) -> LookPlan:  # fmt: skip
        """One look judged on its own, without guards (re-analysis, backtest).

        Args:
            config: The canary config.
            window: The one window judged.
            thresholds: The score thresholds.
            split: The canary's share of traffic (None: the observed share).

        Returns:
            The plan.
        """
        return cls(config=config, thresholds=thresholds, windows=(window,), split=split,
                   guarded=False)  # fmt: skip

    @property
    def looks(self) -> int:
        """How many looks the analysis plans."""
        return len(self.windows)

    @property
    def lifetime(self) -> timedelta:
        """The analysis time the last look reaches (an early promotion names what it saves)."""
        last = self.windows[-1]
        return last.experiment_end - last.experiment_start

    def progress(self, now: datetime, start: datetime) -> float:
        """How far the analysis is at ``now``, in percent of its real-time schedule.

        Args:
            now: The time now.
            start: When the analysis began.

        Returns:
            A percentage (not clamped).
        """
        total = (self.windows[-1].not_before - start).total_seconds() or 1.0
        return 100 * (now - start).total_seconds() / total


@dataclass(frozen=True, slots=True)
class Earlier:
    """What the looks before this one saw: the guards' and the sequential judge's memory.

    Attributes:
        requests: The requests counted at the last look that had a counter.
        counts: The count metrics' counts at each earlier look, oldest first.
    """

    requests: tuple[float, float] = (0.0, 0.0)
    counts: tuple[tuple[CountsPair, ...], ...] = ()

    def then(self, observation: Observation) -> Earlier:
        """The memory after ``observation``'s look.

        Args:
            observation: The look just made.

        Returns:
            The memory the next look starts from.
        """
        return Earlier(requests=observation.requests or self.requests,
                       counts=(*self.counts, observation.counts))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Assessment:
    """A look's verdict and what to do next.

    Attributes:
        judgement: The judge's answer (with the guards' results attached).
        decision: Stop, continue or promote, and why.
        earlier: The memory the next look starts from.
    """

    judgement: IntervalJudgement
    decision: Decision
    earlier: Earlier = field(default_factory=Earlier)


def assess(observation: Observation, plan: LookPlan, *,
           readiness: Mapping[str, str | None] | None = None,
           earlier: Earlier | None = None) -> Assessment:  # fmt: skip
    """Guards, judge, decision: one look, from what it observed.

    Args:
        observation: The look's data.
        plan: How the analysis judges and decides.
        readiness: Each track's readiness at the look (None, or why it is not serving);
            only used when the plan is guarded.
        earlier: What the looks before saw (None: this is the first look).

    Returns:
        The assessment.
    """
    earlier = earlier or Earlier()
    window = observation.window
    guards: tuple[GuardResult, ...] = ()
    if plan.guarded:
        guards = evaluate_guards(
            readiness=dict(readiness or {}), requests=observation.requests,
            previous=earlier.requests, min_requests=plan.config.guards.min_requests,
            split_alpha=plan.config.guards.split_alpha,
        )  # fmt: skip
    judgement = judge(plan.config, observation.pairs, thresholds=plan.thresholds,
                      counts=observation.counts, guards=guards, split=plan.split,
                      history=earlier.counts, planned_looks=plan.looks)  # fmt: skip
    decision = decide(judgement, look=window.index, looks=plan.looks,
                      elapsed=window.experiment_end - window.experiment_start,
                      min_analysis=plan.min_analysis, lifetime=plan.lifetime)  # fmt: skip
    return Assessment(judgement, decision, earlier.then(observation))
