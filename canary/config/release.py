"""What one canary release of an app needs besides the canary config: the release spec.

A release spec (deployments/releases/<app>.yaml, strict YAML) names the canary config, the
analysis plan (lifetime, interval, warm-up, lookback, thresholds), the traffic plan (the
canary's share per judgement; the baseline always gets the same share so the two are
comparable) and how each side is selected in the metric store (the scopes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from canary.config import AnalysisPlan, CanaryConfig
from canary.config._base import Model, validate
from canary.config.kubernetes import KubernetesRelease
from canary.errors import ConfigError
from canary.values.release import check_app_name
from canary.values.weights import Weights

if TYPE_CHECKING:
    from canary.values.scope import MetricScope

class TrafficPlan(Model):
    """The canary's (and the baseline's) share of traffic, in percent, per judgement.

    Judgement i runs at `steps[i-1]`; past the last step the last one holds. Each share
    applies to both baseline and canary, so 2 x share <= 100.
    """

    steps: tuple[int, ...] = (10,)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("traffic.steps needs at least one share")
        for share in steps:
            if not 0 < share <= 50:
                raise ValueError(
                    f"traffic share {share} is out of range: baseline and canary each get it, "
                    "so it must be 1..50"
                )
        return steps

    def weights(self, judgement: int) -> Weights:
        """The split at judgement `judgement` (1-based; the last step holds after the last)."""
        share = self.steps[min(judgement, len(self.steps)) - 1]
        return Weights(primary=100 - 2 * share, baseline=share, canary=share)


class Scopes(Model):
    """How the metric store tells the sides apart (Kayenta's control/experiment scopes)."""

    control: str = "baseline"
    experiment: str = "canary"
    #: production's own scope, for re-analysis after a promotion (old vs new production)
    production: str = "primary"
    location: str | None = None
    extended_scope_params: Mapping[str, str] = Field(default_factory=dict)

    def production_scope(self, start: datetime, end: datetime) -> MetricScope:
        """Production's own scope over [start, end] (planning, re-analysis)."""
        from canary.values.scope import MetricScope

        return MetricScope(scope=self.production, location=self.location, start=start, end=end,
                           step=1, extended_scope_params=self.extended_scope_params)  # fmt: skip


def read_yaml(path: Path, what: str) -> object:
    """The YAML document in `path`; ConfigError naming `what`, the file and the cause."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not valid YAML: {exc}") from None


class ReleaseSpec(Model):
    """Everything a canary release of `app` reads besides the image and commit."""

    app: str
    canary_config: str = Field(description="Path of the canary config, relative to this file.")
    analysis: AnalysisPlan
    traffic: TrafficPlan = Field(default_factory=TrafficPlan)
    scopes: Scopes = Field(default_factory=Scopes)
    ready_timeout_seconds: float = Field(120.0, gt=0)
    #: on a Marginal final score, pause for a person's decision (timeout = roll back)
    manual_judgement: bool = False
    manual_judgement_timeout_seconds: int = Field(600, gt=0)
    #: after these looks, pause for a person: continue or roll back (timeout = roll back)
    manual_gates: tuple[int, ...] = ()
    #: before promoting, pause for a person: promote or roll back (timeout = roll back)
    manual_gate_before_promotion: bool = False
    #: when the analysis fails: roll back at once, or hold (pause, traffic unchanged) until a
    #: person approves (promote anyway, recorded as overridden) or rejects; the hold's
    #: timeout rolls back (docs/operations.md, "Hold on failure")
    on_failure: Literal["roll_back", "hold"] = "roll_back"
    hold_timeout_seconds: int = Field(3600, gt=0, le=7 * 24 * 3600)
    #: how the app is released on Kubernetes (ignored by the local platform)
    kubernetes: KubernetesRelease = Field(default_factory=KubernetesRelease)
    source: str = Field("<spec>", exclude=True)

    @field_validator("app")
    @classmethod
    def _app(cls, app: str) -> str:
        try:
            return check_app_name(app)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("manual_gates")
    @classmethod
    def _gates(cls, gates: tuple[int, ...]) -> tuple[int, ...]:
        if any(g < 1 for g in gates):
            raise ValueError(f"manual_gates are look numbers, 1 or more; got {list(gates)}")
        return tuple(sorted(set(gates)))

    @model_validator(mode="after")
    def _lifetime_needed(self) -> ReleaseSpec:
        if self.analysis.end_time is not None or self.analysis.start_time is not None:
            raise ValueError(
                "a release analyses live traffic: give analysis.lifetime, not start/end times "
                "(those are for re-analysing a recorded window)"
            )
        return self

    @classmethod
    def load(cls, path: str | Path, *, default_app: str | None = None) -> ReleaseSpec:
        """`default_app` fills in a missing `app:` (a spec carried by the app's own commit
        may leave it out: the app is then the one named after its repository)."""
        path = Path(path)
        return cls.from_data(read_yaml(path, "release spec"), path, default_app=default_app)

    @classmethod
    def from_data(cls, data: object, path: str | Path, *,
                  default_app: str | None = None) -> ReleaseSpec:  # fmt: skip
        """The spec from `data` already read from `path` (read_yaml)."""
        if not isinstance(data, dict):
            raise ConfigError(f"release spec {path}: expected a mapping at the top level")
        if default_app is not None and "app" not in data:
            data = {"app": default_app, **data}
        return validate(cls, {**data, "source": str(path)}, source=str(path), kayenta=False)

    def canary_config_path(self) -> Path:
        """The canary config's file, resolved against this spec's directory."""
        base = Path(self.source).parent if self.source != "<spec>" else Path.cwd()
        return (base / self.canary_config).resolve()

    def load_canary_config(self) -> CanaryConfig:
        """The canary config, checked against this spec's analysis plan."""
        return self.checked(CanaryConfig.load(self.canary_config_path()))

    def checked(self, config: CanaryConfig) -> CanaryConfig:
        """`config`, checked against this spec's analysis plan (also for one not from a file).

        Raises:
            ConfigError: The sequential judge with a lookback or control offset.
        """
        if config.sequential and (self.analysis.lookback or self.analysis.control_offset):
            raise ConfigError(
                f"release spec {self.source}: canary config {config.name!r} uses the sequential "
                "judge, which counts requests since the analysis began: set analysis.lookback "
                "and analysis.control_offset to 0 (or drop them)"
            )
        return config
