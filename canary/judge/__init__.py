"""The pure statistical judge: Kayenta's NetflixACAJudge-v1.0, reproduced exactly.

numpy/scipy only; no I/O, logging, clock or global randomness (noise for constant data
comes from an explicit `rng`, or a fixed-seed generator per call). Inputs are validated,
results are frozen objects that carry the reasons behind them.
"""

from canary.judge.classify import (
    DIRECTIONS,
    EFFECT_SIZE_MEASURES,
    Classification,
    MetricResult,
    classify_metric,
)
from canary.judge.interval import (
    IntervalJudgement,
    MetricJudgement,
    SeriesPair,
    judge,
)
from canary.judge.mannwhitney import IntervalError, WilcoxonInterval, wilcoxon_interval, zeroin
from canary.judge.preprocess import (
    NAN_STRATEGIES,
    OUTLIER_STRATEGIES,
    SampleStats,
    iqr_outlier_mask,
)
from canary.judge.result import JudgeResult, ResultRow
from canary.judge.score import (
    NODATA_THRESHOLD_PERCENT,
    ScoredMetric,
    ScoreResult,
    Verdict,
    classify_score,
    passes,
    round_half_up,
    score,
)

__all__ = [
    "DIRECTIONS",
    "EFFECT_SIZE_MEASURES",
    "NAN_STRATEGIES",
    "NODATA_THRESHOLD_PERCENT",
    "OUTLIER_STRATEGIES",
    "Classification",
    "IntervalError",
    "IntervalJudgement",
    "JudgeResult",
    "MetricJudgement",
    "MetricResult",
    "ResultRow",
    "SampleStats",
    "ScoreResult",
    "ScoredMetric",
    "SeriesPair",
    "Verdict",
    "WilcoxonInterval",
    "classify_metric",
    "classify_score",
    "iqr_outlier_mask",
    "judge",
    "passes",
    "round_half_up",
    "score",
    "wilcoxon_interval",
    "zeroin",
]
