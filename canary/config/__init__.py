"""Validated configuration: Kayenta canary configs (JSON as is, or our strict YAML) and plans.

Config is validated once, at the edge; after that these frozen models travel, not dicts.
Every rejection is a `canary.errors.ConfigError` naming the file, metric and field.
"""

from canary.config._base import FrozenMap
from canary.config.canary import (
    DEFAULT_JUDGE,
    SEQUENTIAL_JUDGE,
    CanaryConfig,
    ClassifierConfig,
    GuardsConfig,
    JudgeConfig,
    ScoreThresholds,
)
from canary.config.metric import (
    Direction,
    EffectSize,
    MetricAnalysisConfig,
    MetricConfig,
    NanStrategy,
    Outliers,
    ThresholdRange,
)
from canary.config.plan import AnalysisPlan, Duration, Thresholds, parse_duration
from canary.config.query import HistogramCounters, OtherQuery, PrometheusQuery, RatioCounters

__all__ = [
    "AnalysisPlan",
    "Duration",
    "Thresholds",
    "parse_duration",
    "DEFAULT_JUDGE",
    "SEQUENTIAL_JUDGE",
    "CanaryConfig",
    "GuardsConfig",
    "HistogramCounters",
    "RatioCounters",
    "ClassifierConfig",
    "FrozenMap",
    "JudgeConfig",
    "ScoreThresholds",
    "Direction",
    "EffectSize",
    "MetricAnalysisConfig",
    "MetricConfig",
    "NanStrategy",
    "OtherQuery",
    "Outliers",
    "ThresholdRange",
    "PrometheusQuery",
]
