"""The canary config: Kayenta's JSON accepted as is, or our strict YAML with the same keys."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path

import yaml
from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from canary.config._base import FrozenMap, Model, Number, is_kayenta, thaw, validate
from canary.config.metric import MetricConfig
from canary.config.plan import Thresholds
from canary.errors import ConfigError

DEFAULT_JUDGE = "NetflixACAJudge-v1.0"
#: Our request-level, anytime-valid judge (docs/judge.md); configs opt in by naming it.
SEQUENTIAL_JUDGE = "sequential-v1"

#: The canary config's `classifier.scoreThresholds`: the same model as the analysis plan's.
ScoreThresholds = Thresholds


class JudgeConfig(Model):
    """Which judge runs; `judge_configurations` is unused by Kayenta's judge and kept verbatim."""

    name: str = DEFAULT_JUDGE
    judge_configurations: FrozenMap[str, object] = Field(
        default_factory=FrozenMap, alias="judgeConfigurations"
    )


class GuardsConfig(Model):
    """Our extension: the checks every look makes before any metric is believed.

    `requests` selects a request counter (``${scope}`` bound as in queries); without it the
    first ratio metric's `total`, else the first histogram's +Inf bucket, counts requests.
    Each track must get at least `minRequests` new requests per look, and the canary's
    share of the pair's requests must match its traffic weight (a sample-ratio test at
    `splitAlpha`, anytime-valid like the metrics).
    """

    requests: str | None = Field(None, min_length=1)
    min_requests: int = Field(10, alias="minRequests", ge=0)
    split_alpha: Number = Field(0.001, alias="splitAlpha", gt=0, lt=1)


class ClassifierConfig(Model):
    """Group weights (percent) for the weighted score.

    `score_thresholds` is accepted for compatibility but NOT used by the judge: as in
    Kayenta, the thresholds of the analysis request (`AnalysisPlan.thresholds`) rule
    (judge spec, section 6).
    """

    group_weights: FrozenMap[str, Number] = Field(default_factory=FrozenMap, alias="groupWeights")
    score_thresholds: ScoreThresholds | None = Field(None, alias="scoreThresholds")


class CanaryConfig(Model):
    """A Kayenta canary config (judge spec, section 8).

    Build it with `from_kayenta` (Kayenta JSON with Kayenta's tolerance) or `load` (a .json
    file the same way, a .yaml file strictly). `to_kayenta` gives Kayenta JSON back.
    """

    id: str | None = None
    name: str | None = None
    description: str | None = None
    config_version: str | None = Field(None, alias="configVersion")
    applications: tuple[str, ...] = ()
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    templates: FrozenMap[str, str] = Field(default_factory=FrozenMap)
    metrics: tuple[MetricConfig, ...] = ()
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    created_timestamp: StrictInt | None = Field(None, alias="createdTimestamp")
    updated_timestamp: StrictInt | None = Field(None, alias="updatedTimestamp")
    created_timestamp_iso: str | None = Field(None, alias="createdTimestampIso")
    updated_timestamp_iso: str | None = Field(None, alias="updatedTimestampIso")

    @field_validator("config_version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        # Kayenta's field is a string; old samples write the number 1.0.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("applications", "metrics", mode="before")
    @classmethod
    def _null_list(cls, value: object, info: ValidationInfo) -> object:
        return () if value is None and is_kayenta(info) else value

    @model_validator(mode="after")
    def _unique_metric_names(self) -> CanaryConfig:
        seen: set[str] = set()
        for metric in self.metrics:
            if metric.name in seen:
                raise PydanticCustomError(
                    "duplicate_metric",
                    "Canary config '{config}': metric name '{metric}' is duplicated.",
                    {"config": self.name or "", "metric": metric.name},
                )
            seen.add(metric.name)
        for metric in self.metrics:
            if self.sequential and metric.evidence == "series" and not metric.canary.muted:
                raise PydanticCustomError(
                    "series_in_sequential",
                    "metric '{metric}' is judged from range-query points, which the {judge} "
                    "judge does not decide on: give it a ratio or histogram query, mute it "
                    "(shown, not scored), or use the Kayenta judge {kayenta}",
                    {"metric": metric.name, "judge": SEQUENTIAL_JUDGE, "kayenta": DEFAULT_JUDGE},
                )
            if not self.sequential and metric.evidence != "series":
                raise PydanticCustomError(
                    "counts_in_kayenta",
                    "metric '{metric}' is a {kind} metric (request counts): set judge.name to "
                    "{judge} to judge it, or give it a query",
                    {"metric": metric.name, "kind": metric.evidence, "judge": SEQUENTIAL_JUDGE},
                )
        return self

    @property
    def sequential(self) -> bool:
        """True when our request-level judge runs, False for Kayenta's NetflixACAJudge."""
        return self.judge.name == SEQUENTIAL_JUDGE

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def from_kayenta(cls, data: Mapping[str, object], *, source: str = "<dict>") -> CanaryConfig:
        """Kayenta JSON, with Kayenta's tolerance (unknown fields dropped, value fallbacks).

        Args:
            data: The parsed JSON object.
            source: What error messages name (the file).

        Returns:
            The validated config.

        Raises:
            ConfigError: The data is no valid canary config.
        """
        return _validate_top(data, source=source, kayenta=True)

    @classmethod
    def from_yaml_data(cls, data: object, *, source: str = "<yaml>") -> CanaryConfig:
        """Our strict form (same camelCase keys as Kayenta; unknown keys are errors).

        Args:
            data: The parsed YAML document.
            source: What error messages name (the file).

        Returns:
            The validated config.

        Raises:
            ConfigError: The data is no valid canary config, or it has no name.
        """
        return _validate_top(data, source=source, kayenta=False)

    @classmethod
    def load(cls, path: str | Path) -> CanaryConfig:
        """Read a config file: `.json` as Kayenta JSON, leniently; `.yaml`/`.yml` strictly.

        Args:
            path: The file.

        Returns:
            The validated config.

        Raises:
            ConfigError: The file cannot be read or parsed, or is no valid canary config.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the canary config: {exc.strerror}") from None
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
                ) from None
            return cls.from_kayenta(data, source=str(path))
        if suffix in (".yaml", ".yml"):
            return cls.from_yaml_data(_load_yaml(text, path), source=str(path))
        raise ConfigError(f"{path}: unknown canary config format; name it .json, .yaml or .yml")

    # -- output and lookups -------------------------------------------------------------

    def to_kayenta(self) -> dict[str, object]:
        """Kayenta JSON; `from_kayenta(c.to_kayenta()) == c`.

        Returns:
            The config as Kayenta's JSON object (our extensions only when set).
        """
        out: dict[str, object] = {}
        for key, value in (
            ("id", self.id),
            ("name", self.name),
            ("description", self.description),
            ("configVersion", self.config_version),
        ):
            if value is not None:
                out[key] = value
        out["applications"] = list(self.applications)
        out["judge"] = {
            "name": self.judge.name,
            "judgeConfigurations": thaw(self.judge.judge_configurations),
        }
        out["templates"] = dict(self.templates)
        out["metrics"] = [m.to_kayenta() for m in self.metrics]
        classifier: dict[str, object] = {"groupWeights": dict(self.classifier.group_weights)}
        if self.classifier.score_thresholds is not None:
            thresholds = self.classifier.score_thresholds
            classifier["scoreThresholds"] = {
                "pass": thresholds.pass_,
                "marginal": thresholds.marginal,
            }
        out["classifier"] = classifier
        if self.guards != GuardsConfig():
            out["guards"] = self.guards.model_dump(by_alias=True, exclude_none=True)
        for key, stamp in (
            ("createdTimestamp", self.created_timestamp),
            ("updatedTimestamp", self.updated_timestamp),
            ("createdTimestampIso", self.created_timestamp_iso),
            ("updatedTimestampIso", self.updated_timestamp_iso),
        ):
            if stamp is not None:
                out[key] = stamp
        return out

    def metric(self, name: str) -> MetricConfig:
        """The metric called `name`.

        Raises:
            ConfigError: The config has no such metric (the message lists its metrics).
        """
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(repr(m.name) for m in self.metrics) or "none"
        raise ConfigError(
            f"Canary config {self.name or ''!r} has no metric named {name!r} (metrics: {known})"
        )

    def prometheus_metrics(self) -> tuple[MetricConfig, ...]:
        """The metrics this project can query (their query type is prometheus)."""
        return tuple(m for m in self.metrics if m.is_prometheus)


def _validate_top(data: object, *, source: str, kayenta: bool) -> CanaryConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: a canary config must be a mapping of keys to values, "
            f"not {type(data).__name__}"
        )
    config = validate(CanaryConfig, data, source=source, kayenta=kayenta)
    if not kayenta and not config.name:
        raise ConfigError(f"{source}: name: required key is missing; give the config a name")
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, object]:
        """The mapping of `node`, as SafeLoader builds it.

        Raises:
            yaml.constructor.ConstructorError: A key is given twice.
        """
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, path: Path) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
