"""The multi-interval analysis, pure parts: judgement windows and the stop/final decisions."""

from canary.analysis.windows import (
    JudgementWindow,
    effective_interval,
    effective_lifetime,
    final_decision,
    is_marginal,
    judgement_windows,
    should_stop_early,
)

__all__ = [
    "JudgementWindow",
    "effective_interval",
    "effective_lifetime",
    "final_decision",
    "is_marginal",
    "judgement_windows",
    "should_stop_early",
]
