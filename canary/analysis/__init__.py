"""The multi-interval analysis, pure parts: judgement windows, and the decisions after each look."""

from canary.analysis.decision import (
    Action,
    Decision,
    decide,
    fails_fast,
    final_decision,
    in_marginal_band,
)
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
    "Action",
    "Decision",
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
