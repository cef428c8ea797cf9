"""One metric of a canary config and its judge settings (judge spec, sections 3 and 8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import (
    AliasChoices,
    AliasPath,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from canary.config._base import Model, Number, choice, is_kayenta
from canary.config.query import (
    Evidence,
    HistogramCounters,
    OtherQuery,
    PrometheusQuery,
    Query,
    RatioCounters,
    evidence_of,
)

Direction = Literal["increase", "decrease", "either"]
NanStrategy = Literal["remove", "replace"]
Measure = Literal["meanRatio", "cles"]
ToleranceOn = Literal["quantile", "share"]

_GATES = {
    "allowed_increase": "allowedIncrease",
    "allowed_decrease": "allowedDecrease",
    "critical_increase": "criticalIncrease",
    "critical_decrease": "criticalDecrease",
}


class EffectSize(Model):
    """Effect-size gates. Their defaults depend on the measure: 1.0 for meanRatio, 0.5 for cles."""

    measure: Measure = "meanRatio"
    allowed_increase: Number = Field(1.0, alias="allowedIncrease")
    allowed_decrease: Number = Field(1.0, alias="allowedDecrease")
    critical_increase: Number = Field(1.0, alias="criticalIncrease")
    critical_decrease: Number = Field(1.0, alias="criticalDecrease")

    @model_validator(mode="before")
    @classmethod
    def _defaults_follow_measure(cls, data: object) -> object:
        if not isinstance(data, Mapping) or data.get("measure") != "cles":
            return data
        out = dict(data)
        for name, alias in _GATES.items():
            if name not in out and alias not in out:
                out[alias] = 0.5
        return out

    @field_validator("measure", mode="before")
    @classmethod
    def _measure(cls, value: object, info: ValidationInfo) -> object:
        # Kayenta mode: anything but "cles" is the mean ratio (the default measure).
        return choice(value, ("meanRatio", "cles"), info, "meanRatio")


class Outliers(Model):
    """IQR outlier removal (judge spec, section 4); off unless strategy is "remove"."""

    strategy: Literal["keep", "remove"] = "keep"
    outlier_factor: Number = Field(3.0, alias="outlierFactor", gt=0)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: object, info: ValidationInfo) -> object:
        return choice(value, ("keep", "remove"), info, "keep")


class ThresholdRange(Model):
    """Flagger-style absolute bounds on the canary's mean over the window (our extension).

    Kayenta only compares canary against baseline; Flagger checks absolute limits
    (success rate >= 99 %, p99 <= 500 ms). A metric with a `thresholdRange` is judged by its
    bounds instead of the rank test: above `max` is High, below `min` is Low.
    """

    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise PydanticCustomError("empty_range", "thresholdRange needs min, max or both", {})
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "bad_range", "thresholdRange min {lo} is above max {hi}", {"lo": self.min, "hi": self.max}
            )
        return self


class MetricAnalysisConfig(Model):
    """Kayenta's `analysisConfigurations.canary` for one metric, defaults as in Kayenta.

    Kayenta mode maps an unknown `direction` to "either", an unknown `nanStrategy` to
    "remove" and an unknown outlier strategy to "keep"; strict mode rejects them. Both modes
    want real booleans and numbers (an int is fine where a float is expected).
    """

    direction: Direction = "either"
    nan_strategy: NanStrategy = Field("remove", alias="nanStrategy")
    critical: StrictBool = False
    must_have_data: StrictBool = Field(False, alias="mustHaveData")
    muted: StrictBool = False
    effect_size: EffectSize = Field(default_factory=EffectSize, alias="effectSize")
    outliers: Outliers = Field(default_factory=Outliers)
    threshold_range: ThresholdRange | None = Field(None, alias="thresholdRange")
    # -- our extension for count metrics (the sequential judge) ------------------------------
    #: false-alarm rate of this metric over the whole release (all looks together)
    alpha: Number | None = Field(None, gt=0, lt=1)
    #: relative effect that is no regression: 0.1 = the canary may be up to 10 % worse
    tolerance: Number | None = Field(None, ge=0)
    #: the smallest regression worth catching, relative (0.5 = +50 %), for `canary plan`
    min_effect: Number | None = Field(None, alias="minEffect", gt=0)
    #: histogram metrics: what `tolerance` bounds, every quantile ("quantile", the default:
    #: p99 at most (1 + tolerance) x the baseline's) or, at every bucket bound, the share of
    #: requests slower than it ("share": at most (1 + tolerance) x the baseline's share)
    tolerance_on: ToleranceOn | None = Field(None, alias="toleranceOn")
    #: ratio metrics with direction increase: a rate the canary may always have (0.01 = 1 %);
    #: a Pass is also decided once the canary's own rate is proven below it
    safe_rate: Number | None = Field(None, alias="safeRate", gt=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: object, info: ValidationInfo) -> object:
        # Kayenta's path helper yields the default for a null as for a missing key.
        if isinstance(data, Mapping) and is_kayenta(info):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: object, info: ValidationInfo) -> object:
        return choice(value, ("increase", "decrease", "either"), info, "either")

    @field_validator("nan_strategy", mode="before")
    @classmethod
    def _nan_strategy(cls, value: object, info: ValidationInfo) -> object:
        return choice(value, ("remove", "replace"), info, "remove")

    @field_validator("tolerance_on", mode="before")
    @classmethod
    def _tolerance_on(cls, value: object, info: ValidationInfo) -> object:
        # our extension: no Kayenta fallback, a wrong value is an error in both modes
        return None if value is None else choice(value, ("quantile", "share"), info, None)

    def to_kayenta(self) -> dict[str, object]:
        """These settings as Kayenta JSON, our extensions only when set.

        Returns:
            The `analysisConfigurations.canary` object of a Kayenta metric.
        """
        out: dict[str, object] = self.model_dump(by_alias=True)
        for key in ("alpha", "tolerance", "minEffect", "toleranceOn", "safeRate"):
            if out[key] is None:
                del out[key]  # our extensions: absent from plain Kayenta configs
        if self.threshold_range is None:
            del out["thresholdRange"]  # keep plain Kayenta configs byte-for-byte Kayenta
        else:
            out["thresholdRange"] = self.threshold_range.model_dump(exclude_none=True)
        return out


_CANARY = AliasChoices(
    AliasPath("analysisConfigurations", "canary"), AliasPath("extensions", "canary"), "canary"
)


class MetricConfig(Model):
    """One entry of `metrics[]`.

    `scope_name` keeps what the file said (None when absent); `scope` is the scope actually
    used, "default" for an absent name. Kayenta would refuse to run such a metric ("Canary
    scope for metric named ... is null"); every sample without scopeName is meant for the
    default scope, so we run it there. The oldest configs carry the judge settings under
    `extensions.canary` instead of `analysisConfigurations.canary`; both are read the same way.
    """

    # The key check of the base class does the rejecting; pydantic's own would flag an
    # `analysisConfigurations` without a `canary` entry, since the alias path then misses it.
    model_config = ConfigDict(extra="ignore")
    _extra_keys: ClassVar[frozenset[str]] = frozenset({"analysisConfigurations", "extensions"})

    name: str = Field(min_length=1)
    query: Query | None = None
    groups: tuple[str, ...] = ()
    scope_name: str | None = Field(None, alias="scopeName")
    canary: MetricAnalysisConfig = Field(
        default_factory=MetricAnalysisConfig, validation_alias=_CANARY
    )

    @model_validator(mode="before")
    @classmethod
    def _analysis_keys(cls, data: object, info: ValidationInfo) -> object:
        if not isinstance(data, Mapping) or is_kayenta(info):
            return data
        present = [k for k in ("analysisConfigurations", "extensions", "canary") if k in data]
        if len(present) > 1:
            raise PydanticCustomError(
                "duplicate_analysis",
                "both {keys} are given; keep only analysisConfigurations",
                {"keys": " and ".join(present)},
            )
        for key in present[:1]:
            section = data[key]
            if key != "canary" and isinstance(section, Mapping):
                extra = [k for k in section if k != "canary"]
                if extra:
                    raise PydanticCustomError(
                        "unknown_key",
                        "{where}: unknown key {key}; only 'canary' is allowed here",
                        {"where": key, "key": ", ".join(map(repr, extra))},
                    )
        return data

    @model_validator(mode="after")
    def _settings_fit_the_kind(self, info: ValidationInfo) -> MetricConfig:
        """toleranceOn is for histogram metrics, safeRate for ratio metrics (direction
        increase). Kayenta JSON keeps Kayenta's leniency for series metrics, which the
        Kayenta judge judges without these settings."""
        cfg, kind = self.canary, self.evidence
        if kind == "series" and is_kayenta(info):
            return self
        where = "analysisConfigurations.canary"
        if cfg.tolerance_on is not None and kind != "histogram":
            raise PydanticCustomError(
                "tolerance_on_kind",
                "{where}.toleranceOn applies to histogram metrics only (what a latency "
                "tolerance bounds), and {metric} is a {kind} metric: remove toleranceOn",
                {"where": where, "metric": repr(self.name), "kind": kind},
            )
        if cfg.safe_rate is not None and kind != "ratio":
            raise PydanticCustomError(
                "safe_rate_kind",
                "{where}.safeRate applies to ratio metrics only (a rate the canary may always "
                "have), and {metric} is a {kind} metric: remove safeRate",
                {"where": where, "metric": repr(self.name), "kind": kind},
            )
        if cfg.safe_rate is not None and cfg.direction != "increase":
            raise PydanticCustomError(
                "safe_rate_direction",
                "{where}.safeRate bounds the canary's rate from above, so metric {metric} "
                "needs direction: increase (it has {direction}): set direction: increase, "
                "or remove safeRate",
                {"where": where, "metric": repr(self.name), "direction": repr(cfg.direction)},
            )
        return self

    @property
    def scope(self) -> str:
        """The request scope this metric is fetched with ("default" when not named)."""
        return self.scope_name or "default"

    @property
    def is_prometheus(self) -> bool:
        """True when this project can query the metric (its query type is prometheus)."""
        return isinstance(self.query, PrometheusQuery)

    @property
    def ratio_counters(self) -> RatioCounters | None:
        """A ratio metric's counters (events and total), None for any other metric."""
        return self.query.ratio if isinstance(self.query, PrometheusQuery) else None

    @property
    def histogram_counters(self) -> HistogramCounters | None:
        """A histogram metric's buckets and unit, None for any other metric."""
        return self.query.histogram if isinstance(self.query, PrometheusQuery) else None

    @property
    def evidence(self) -> Evidence:
        """What the metric is judged on: the one source of truth for its kind.

        Returns:
            "ratio" or "histogram" (count metrics, read from `ratio_counters` or
            `histogram_counters`) or "series" (a range query, Kayenta's way).
        """
        return evidence_of(self.ratio_counters, self.histogram_counters)

    def to_kayenta(self) -> dict[str, object]:
        """This metric as Kayenta JSON; `scopeName` only when the file gave one.

        Returns:
            One entry of a Kayenta config's `metrics` list.
        """
        out: dict[str, object] = {"name": self.name}
        if self.query is not None:
            out["query"] = self.query.to_kayenta()
        out["groups"] = list(self.groups)
        out["analysisConfigurations"] = {"canary": self.canary.to_kayenta()}
        if self.scope_name is not None:
            out["scopeName"] = self.scope_name
        return out


__all__ = [
    "Direction",
    "Evidence",
    "EffectSize",
    "MetricAnalysisConfig",
    "MetricConfig",
    "NanStrategy",
    "OtherQuery",
    "Outliers",
    "PrometheusQuery",
    "ThresholdRange",
    "ToleranceOn",
]
