"""The multi-interval analysis, pure parts: judgement windows, a look assessed, the decisions
after each look (the judge's, an operator's, a person's at a gate), and how a release ended."""

from canary.analysis.decision import (
    APPROVE,
    Action,
    Decision,
    GateAnswer,
    decide,
    fails_fast,
    final_decision,
    in_marginal_band,
)
from canary.analysis.ending import ReleaseNotPromoted, ReleaseResult, release_end, run_data
from canary.analysis.look import Assessment, Earlier, LookPlan, Observation, assess
from canary.analysis.planning import (
    LookSchedule,
    MetricPlan,
    ReleasePlan,
    check_effects,
    count_metrics,
    describe,
    plan_config,
    plan_metric,
)
from canary.analysis.windows import (
    JudgementWindow,
    effective_interval,
    effective_lifetime,
    judgement_windows,
)

__all__ = [
    "APPROVE",
    "Action",
    "Assessment",
    "Decision",
    "Earlier",
    "GateAnswer",
    "LookPlan",
    "Observation",
    "ReleaseNotPromoted",
    "ReleaseResult",
    "assess",
    "release_end",
    "run_data",
    "JudgementWindow",
    "LookSchedule",
    "MetricPlan",
    "ReleasePlan",
    "check_effects",
    "count_metrics",
    "describe",
    "plan_config",
    "plan_metric",
    "decide",
    "effective_interval",
    "effective_lifetime",
    "fails_fast",
    "final_decision",
    "in_marginal_band",
    "judgement_windows",
]
