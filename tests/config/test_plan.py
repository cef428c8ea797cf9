"""AnalysisPlan, Thresholds, durations and Kayenta standalone-canary-analysis requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canary.config import AnalysisPlan, Thresholds, parse_duration
from canary.errors import ConfigError
from tests.config.kayenta_fixtures import REQUESTS

T0 = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
TH = {"pass": 90, "marginal": 75}


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (90, 90),
        (1.5, 1.5),
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1d", 86400),
        ("250ms", 0.25),
        ("PT5M", 300),
        ("pt1h30m", 5400),
        ("PT0.5S", 0.5),
        ("P1DT1S", 86401),
        (timedelta(minutes=2), 120),
        (0, 0),
    ],
)
def test_durations(given: Any, seconds: float) -> None:
    assert parse_duration(given) == timedelta(seconds=seconds)


@pytest.mark.parametrize("given", ["", "abc", "5 minutes", "-5m", -1, True, "PT", "P", "5x", None])
def test_bad_durations(given: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(given)


def test_plan_defaults_and_duration_forms() -> None:
    plan = AnalysisPlan(lifetime="10m", interval=120, thresholds=TH)
    assert plan.lifetime == timedelta(minutes=10)
    assert plan.interval == timedelta(minutes=2)
    assert (plan.begin_after, plan.lookback, plan.control_offset) == (timedelta(0),) * 3
    assert plan.step == timedelta(seconds=60)
    assert plan.thresholds == Thresholds(pass_=90, marginal=75)
    assert plan.end_time is None and plan.start_time is None and plan.whole_minutes is False


def test_plan_accepts_camel_case_keys_like_the_rest_of_the_yaml() -> None:
    plan = AnalysisPlan.model_validate(
        {
            "endTime": "2024-01-31T13:00:00Z",
            "beginAfter": "1m",
            "controlOffset": "1h",
            "thresholds": TH,
        }
    )
    assert plan.end_time == T0 + timedelta(hours=1)
    assert plan.control_offset == timedelta(hours=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give either lifetime or end_time"),
        ({"lifetime": "1h", "end_time": T0}, "give either lifetime or end_time"),
        ({"lifetime": 0}, "lifetime must be longer than 0"),
        ({"lifetime": "1h", "step": 1.5}, "step must be a whole number of seconds"),
        ({"lifetime": "1h", "step": 0}, "step must be a whole number of seconds"),
        ({"lifetime": "1h", "lookback": "-1m"}, "lookback: '-1m' is not a duration"),
        ({"lifetime": "1h", "intervall": "1m"}, "unknown key 'intervall'"),
        ({"end_time": T0, "start_time": T0}, "end_time must be after start_time"),
        ({"end_time": datetime(2024, 1, 1)}, "end_time: Input should have timezone info"),
        ({"lifetime": "1h", "whole_minutes": "yes"}, "'yes' is not a boolean"),
    ],
)
def test_plan_rejections(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AnalysisPlan(**{"thresholds": TH, **kwargs})


def test_thresholds_are_required_and_checked() -> None:
    with pytest.raises(ConfigError, match="thresholds: required key is missing"):
        AnalysisPlan(lifetime="1h")
    with pytest.raises(ConfigError, match="marginal 80.0 is above pass 70.0"):
        Thresholds(pass_=70, marginal=80)
    with pytest.raises(ConfigError, match="it must be <= 100"):
        Thresholds.model_validate({"pass": 101})
    assert Thresholds().pass_ is None and Thresholds(marginal=50).marginal == 50.0
    assert Thresholds(pass_=75, marginal=75).marginal == 75.0


def standalone(**overrides: Any) -> dict[str, Any]:
    request = {
        "scopes": [
            {
                "scopeName": "default",
                "controlScope": "app-baseline",
                "experimentScope": "app-canary",
                "startTimeIso": "2024-01-31T12:00:00Z",
                "step": 10,
                "controlOffsetInMinutes": 60,
                "extendedScopeParams": {"namespace": "prod"},
            }
        ],
        "thresholds": {"pass": 95.0, "marginal": 75.0},
        "lifetimeDurationMins": 30,
        "beginAfterMins": 5,
        "lookbackMins": 10,
        "analysisIntervalMins": 15,
        "siteLocal": {"x": 1},
    }
    request.update(overrides)
    return request


def test_kayenta_request_is_read_in_whole_minutes() -> None:
    plan = AnalysisPlan.from_kayenta_request(standalone())
    assert plan.start_time == T0
    assert plan.end_time is None
    assert plan.lifetime == timedelta(minutes=30)
    assert plan.interval == timedelta(minutes=15)
    assert plan.begin_after == timedelta(minutes=5)
    assert plan.lookback == timedelta(minutes=10)
    assert plan.control_offset == timedelta(minutes=60)
    assert plan.step == timedelta(seconds=10)
    assert plan.thresholds == Thresholds(pass_=95, marginal=75)
    assert plan.whole_minutes is True


def test_kayenta_request_defaults_and_string_numbers() -> None:
    request = {
        "scopes": [{"step": "1", "startTimeIso": ""}],
        "thresholds": {"pass": 80, "marginal": 60},
        "lifetimeDurationMins": "20",
    }
    plan = AnalysisPlan.from_kayenta_request(request)
    assert plan.start_time is None
    assert plan.lifetime == timedelta(minutes=20)
    assert plan.interval is None
    assert plan.step == timedelta(seconds=1)
    assert (plan.begin_after, plan.lookback, plan.control_offset) == (timedelta(0),) * 3
    assert AnalysisPlan.from_kayenta_request({**request, "scopes": [{}]}).step == timedelta(
        minutes=1
    )


def test_kayenta_request_end_time_wins_over_lifetime() -> None:
    scope = {**standalone()["scopes"][0], "endTimeIso": "2024-01-31T12:45:30Z"}
    plan = AnalysisPlan.from_kayenta_request(standalone(scopes=[scope]))
    assert plan.end_time == T0 + timedelta(minutes=45, seconds=30)
    assert plan.lifetime is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lifetimeDurationMins": None}, "lifetimeDurationMins is required"),
        ({"thresholds": None}, "thresholds is required"),
        ({"scopes": []}, "needs a list of at least one scope"),
        ({"beginAfterMins": 1.5}, "beginAfterMins: 1.5 is not a whole number"),
        ({"lookbackMins": "ten"}, "lookbackMins: 'ten' is not a whole number"),
        ({"beginAfterMins": -1}, "begin_after: -60 is not a duration"),
        ({"thresholds": {"pass": 50, "marginal": 60}}, "marginal 60.0 is above pass 50.0"),
        ({"scopes": [{"startTimeIso": "yesterday"}]}, "startTimeIso: 'yesterday' is not an ISO"),
        ({"scopes": [{"startTimeIso": "2024-01-31T12:00:00"}]}, "has no time zone"),
    ],
)
def test_kayenta_request_rejections(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AnalysisPlan.from_kayenta_request(standalone(**overrides), source="req.json")


@pytest.mark.needs("kayenta")
def test_a_single_judgement_execution_request_is_not_a_standalone_request() -> None:
    text = (REQUESTS / "kayenta-web-CanaryControllerTest-execution-request.json").read_text()
    with pytest.raises(ConfigError, match="^req.json: scopes: .*CanaryExecutionRequest"):
        AnalysisPlan.from_kayenta_request(json.loads(text), source="req.json")
