"""The analysis plan: when to judge, over which windows, against which thresholds.

Our own keyword/YAML form (strict) plus a reader for Kayenta's standalone-canary-analysis
request (judge spec, section 7), which works in whole minutes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, overload

from pydantic import AwareDatetime, BeforeValidator, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from canary.config._base import Model, Number, validate
from canary.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_COMPACT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_COMPACT_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ISO = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> timedelta:
    """A timedelta from a timedelta, seconds (int/float/"90"), "90s"/"5m"/"1h30m", or "PT5M".

    Args:
        value: The duration as written.

    Returns:
        The duration.

    Raises:
        PydanticCustomError: `value` is no duration (or a negative one).
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (text := value.strip()):
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _COMPACT.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _COMPACT_PART.findall(text))
        elif (iso := _ISO.fullmatch(text)) and any(iso.groupdict().values()) and text[-1] != "T":
            parts = {k: float(v or 0) for k, v in iso.groupdict().items()}
            seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        else:
            seconds = float("nan")
    else:
        seconds = float("nan")
    if not seconds >= 0:  # also catches NaN
        raise PydanticCustomError(
            "duration",
            "{value} is not a duration; write seconds (90) or a length such as 90s, 5m, "
            "1h30m or PT5M (never negative)",
            {"value": repr(value)},
        )
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Thresholds(Model):
    """Score thresholds of the analysis (these rule, not the canary config's scoreThresholds).

    Either may be absent, with Kayenta's meaning (judge spec, section 7 step 6). Scores run
    from 0 to 100, so thresholds must too.
    """

    pass_: Number | None = Field(None, alias="pass", ge=0, le=100)
    marginal: Number | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.pass_ is not None and self.marginal is not None and self.marginal > self.pass_:
            raise PydanticCustomError(
                "thresholds_order",
                "marginal {marginal} is above pass {pass_}; marginal must be at most pass",
                {"marginal": self.marginal, "pass_": self.pass_},
            )
        return self


class AnalysisPlan(Model):
    """When and over which windows the canary is judged (judge spec, section 7).

    Give `lifetime` or `end_time` (not both). `interval` None, 0 or longer than the lifetime
    means one judgement over the whole lifetime. `lookback` 0 means growing windows.
    `whole_minutes` applies Kayenta's rule that a lifetime derived from `end_time` is counted
    in whole minutes; it is set by `from_kayenta_request`, while our own plans use exact
    durations (short local demos run in seconds).
    """

    lifetime: Duration | None = None
    end_time: AwareDatetime | None = Field(None, alias="endTime")
    start_time: AwareDatetime | None = Field(None, alias="startTime")
    interval: Duration | None = None
    begin_after: Duration = Field(timedelta(0), alias="beginAfter")
    lookback: Duration = timedelta(0)
    control_offset: Duration = Field(timedelta(0), alias="controlOffset")
    step: Duration = timedelta(seconds=60)
    #: the sequential judge promotes early only after this much analysis (0: when decided)
    min_analysis: Duration = Field(timedelta(0), alias="minAnalysis")
    thresholds: Thresholds
    whole_minutes: StrictBool = Field(False, alias="wholeMinutes")
    #: release specs spell the plan's keys in snake_case (`begin_after`); the camelCase
    #: aliases stay accepted (Kayenta's spelling)
    _snake_case_keys: ClassVar[bool] = True

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisPlan:
        def fail(kind: str, message: str) -> PydanticCustomError:
            return PydanticCustomError(kind, message)

        if (self.lifetime is None) == (self.end_time is None):
            raise fail("plan_length", "give either lifetime or end_time (exactly one of them)")
        if self.lifetime is not None and self.lifetime <= timedelta(0):
            raise fail("plan_lifetime", "lifetime must be longer than 0")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise fail("plan_order", "end_time must be after start_time")
        seconds = self.step.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise fail("plan_step", "step must be a whole number of seconds, at least 1")
        return self

    @classmethod
    def from_kayenta_request(
        cls, request: Mapping[str, object], *, source: str = "<request>"
    ) -> AnalysisPlan:
        """Read a Kayenta standalone-canary-analysis request (unknown fields are ignored).

        Times come from the first scope, as in Kayenta. A given `endTimeIso` wins over
        `lifetimeDurationMins` (Kayenta ignores the latter then).

        Args:
            request: The parsed request JSON.
            source: What error messages name.

        Returns:
            The plan, in whole minutes as Kayenta has it.

        Raises:
            ConfigError: The request is incomplete or a value is invalid.
        """
        if not isinstance(request, Mapping):
            raise ConfigError(f"{source}: a request must be a mapping of keys to values")
        scopes = request.get("scopes")
        if not isinstance(scopes, list) or not scopes or not isinstance(scopes[0], Mapping):
            raise ConfigError(
                f"{source}: scopes: a standalone canary analysis request needs a list of at "
                "least one scope (a map of scopes is a single-judgement CanaryExecutionRequest)"
            )
        scope = scopes[0]
        end = _iso(scope, "endTimeIso", source)
        data: dict[str, object] = {
            "start_time": _iso(scope, "startTimeIso", source),
            "end_time": end,
            "step": _whole(scope, "step", source, "scopes[0].", default=60),
            "control_offset": 60 * _whole(scope, "controlOffsetInMinutes", source, "scopes[0].", 0),
            "begin_after": 60 * _whole(request, "beginAfterMins", source, "", 0),
            "lookback": 60 * _whole(request, "lookbackMins", source, "", 0),
            "thresholds": request.get("thresholds"),
            "whole_minutes": True,
        }
        interval = _whole(request, "analysisIntervalMins", source, "", None)
        data["interval"] = None if interval is None else 60 * interval
        if end is None:
            lifetime = _whole(request, "lifetimeDurationMins", source, "", None)
            if lifetime is None:
                raise ConfigError(
                    f"{source}: lifetimeDurationMins is required when scopes[0].endTimeIso "
                    "is not given"
                )
            data["lifetime"] = 60 * lifetime
        if data["thresholds"] is None:
            raise ConfigError(f"{source}: thresholds is required ({{pass, marginal}})")
        return validate(cls, data, source=source, kayenta=False)


def _iso(scope: Mapping[str, object], key: str, source: str) -> datetime | None:
    value = scope.get(key)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{source}: scopes[0].{key}: {value!r} is not an ISO-8601 instant "
            "(e.g. 2024-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise ConfigError(f"{source}: scopes[0].{key}: {value!r} has no time zone; add Z")
    return parsed


@overload
def _whole(data: Mapping[str, object], key: str, source: str, where: str, default: int) -> int: ...
@overload
def _whole(
    data: Mapping[str, object], key: str, source: str, where: str, default: None
) -> int | None: ...
def _whole(
    data: Mapping[str, object], key: str, source: str, where: str, default: int | None
) -> int | None:
    """A whole number; like Kayenta's JSON mapper, a numeric string such as "1" is accepted."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"{source}: {where}{key}: {value!r} is not a whole number")
