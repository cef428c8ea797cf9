"""The per-side query scope (Kayenta's ``PrometheusCanaryScope``), validated once.

A canary analysis queries the same metric twice, once per side (control = baseline,
experiment = canary), each with its own ``MetricScope``. ``start``/``end``/``step`` become the
range-query arguments; ``scope``, ``location``, ``project``, ``resource_type`` and
``extended_scope_params`` become template bindings and GCE/AWS matchers (see promql.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from canary.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _instant(name: str, value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"scope {name} {value!r} is not an ISO-8601 instant such as 2020-07-27T19:17:36Z"
            ) from None
    if not isinstance(value, datetime):
        raise ConfigError(f"scope {name} must be a datetime or ISO-8601 string, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            f"scope {name} {value.isoformat()} has no time zone; give an aware datetime "
            "(e.g. datetime.now(UTC)) or an ISO string ending in Z"
        )
    return value.astimezone(UTC)


def _optional_text(name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"scope {name} must be a string, got {value!r}")


def iso_instant(moment: datetime) -> str:
    """Render like Java's ``Instant.toString()``: UTC, ``Z``, fraction of 0/3/6 digits as needed.

    (Java may also print 9 digits; Python datetimes stop at microseconds.)

    Args:
        moment: A timezone-aware instant.

    Returns:
        The ISO-8601 text, e.g. ``2020-07-27T19:17:36.500Z``.
    """
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def epoch_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, truncated (Java ``Instant.toEpochMilli``).

    Args:
        moment: A timezone-aware instant.

    Returns:
        The milliseconds since 1970-01-01T00:00:00Z.
    """
    return (moment - _EPOCH) // _MS


@dataclass(frozen=True, kw_only=True)
class MetricScope:
    """One side's scope. ``step`` is whole seconds; instants are timezone-aware UTC.

    Empty strings and None are equivalent for scope/location/project/resource_type, as in
    Kayenta. ``extended_scope_params`` is copied into a read-only mapping.
    """

    scope: str | None = None
    location: str | None = None
    start: datetime
    end: datetime
    step: int = 60
    extended_scope_params: Mapping[str, str] = field(default_factory=dict, hash=False)
    project: str | None = None
    resource_type: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("scope", "location", "project", "resource_type"):
            set_(self, name, _optional_text(name, getattr(self, name)))
        set_(self, "start", _instant("start", self.start))
        set_(self, "end", _instant("end", self.end))
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 1:
            raise ConfigError(
                f"scope step must be a whole number of seconds >= 1, got {self.step!r}"
            )
        if self.end < self.start:
            raise ConfigError(
                f"scope end {iso_instant(self.end)} is before start {iso_instant(self.start)}"
            )
        params = self.extended_scope_params
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"extended_scope_params must be a mapping, got {params!r}")
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigError(
                    f"extended_scope_params entries must be strings, got {key!r}: {value!r}"
                )
        set_(self, "extended_scope_params", MappingProxyType(dict(params)))

    @property
    def points(self) -> int:
        """Evaluation steps Prometheus answers for this window: start, start+step, ... <= end."""
        span_ms = epoch_millis(self.end) - epoch_millis(self.start)
        return span_ms // (self.step * 1000) + 1

    def shifted(self, delta: timedelta) -> MetricScope:
        """The same scope moved in time (e.g. a control window offset into the past)."""
        return replace(self, start=self.start + delta, end=self.end + delta)

    @classmethod
    def from_kayenta(cls, data: Mapping[str, Any]) -> MetricScope:
        """Build from a Kayenta scope object (``controlScope`` / ``experimentScope``).

        Like Kayenta's ``PrometheusCanaryScopeFactory``: ``project`` and ``resourceType`` are
        taken from ``extendedScopeParams`` when those keys are present, and stay there too.
        Scalars in ``extendedScopeParams`` and a string ``step`` are coerced the way Jackson
        coerces them into Kayenta's ``Map<String, String>`` / ``Long``.

        Args:
            data: The scope object, with Kayenta's camelCase keys.

        Returns:
            The validated scope.

        Raises:
            ConfigError: A required time is missing or a value is malformed.
        """
        raw_params = data.get("extendedScopeParams") or {}
        if not isinstance(raw_params, Mapping):
            raise ConfigError(f"extendedScopeParams must be an object, got {raw_params!r}")
        params = {str(k): _jackson_text(k, v) for k, v in raw_params.items()}
        step = data.get("step", 60)
        if isinstance(step, str) and step.strip().isdigit():
            step = int(step.strip())
        if data.get("start") in (None, ""):
            raise ConfigError("Start time is required.")
        if data.get("end") in (None, ""):
            raise ConfigError("End time is required.")
        return cls(
            scope=data.get("scope"),
            location=data.get("location"),
            start=data["start"],
            end=data["end"],
            step=step,
            extended_scope_params=params,
            project=params["project"] if "project" in params else data.get("project"),
            resource_type=(
                params["resourceType"] if "resourceType" in params else data.get("resourceType")
            ),
        )


def _jackson_text(key: object, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise ConfigError(f"extendedScopeParams[{key!r}] must be a string, got {value!r}")


def scope_pair(
    *,
    baseline: str,
    canary: str,
    start: datetime,
    end: datetime,
    step: int = 60,
    location: str | None = None,
    extended_scope_params: Mapping[str, str] | None = None,
    control_offset: timedelta = timedelta(0),
) -> tuple[MetricScope, MetricScope]:
    """(control, experiment) scopes over one window, differing only in ``scope``.

    ``control_offset`` moves the control window earlier (Kayenta's
    ``controlOffsetInMinutes``), e.g. to compare against a pre-deploy baseline.

    Args:
        baseline: The control side's ``scope`` (e.g. its track selector).
        canary: The experiment side's ``scope``.
        start: The experiment window's start.
        end: The experiment window's end.
        step: The query resolution in whole seconds.
        location: The ``location`` of both sides.
        extended_scope_params: Template bindings shared by both sides.
        control_offset: How much earlier the control window is.

    Returns:
        (control, experiment).

    Raises:
        ConfigError: A value is invalid (see ``MetricScope``).
    """
    params = dict(extended_scope_params or {})
    control = MetricScope(
        scope=baseline,
        location=location,
        start=start - control_offset,
        end=end - control_offset,
        step=step,
        extended_scope_params=params,
    )
    experiment = MetricScope(
        scope=canary,
        location=location,
        start=start,
        end=end,
        step=step,
        extended_scope_params=params,
    )
    return control, experiment
