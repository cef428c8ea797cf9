"""Response conversion (both alignments), the mixer, and MetricScope validation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from canary.errors import ConfigError, MetricsError
from canary.metrics.series import mix, to_series
from canary.values.scope import MetricScope, epoch_millis, iso_instant, scope_pair
from canary.values.series import MetricPair, Series

T0 = datetime(2020, 7, 27, 19, 17, 36, tzinfo=UTC)
S0 = T0.timestamp()


def window(minutes: float = 1, step: int = 10, start: datetime = T0) -> MetricScope:
    return MetricScope(scope="s", start=start, end=start + timedelta(minutes=minutes), step=step)


def matrix(labels: dict[str, str], points: list[tuple[float, str | None]]) -> dict:
    return {"metric": labels, "values": [[ts, v] for ts, v in points]}


# -- Kayenta packing ------------------------------------------------------------------------


def test_packed_like_kayenta_with_gap_and_special_values():
    result = [
        matrix(
            {"__name__": "m", "code": "200"},
            [(S0, "1"), (S0 + 1, "NaN"), (S0 + 3, "+Inf"), (S0 + 4, "-Inf"), (S0 + 5, "2.5")],
        )
    ]
    (series,) = to_series(result, query="q", scope=window(step=5))
    assert dict(series.tags) == {"code": "200"}
    assert series.metric_id == "m"
    np.testing.assert_array_equal(series.values, [1.0, np.nan, np.inf, -np.inf, 2.5])
    assert series.step == 1  # from the first two samples, not the requested 5
    assert series.start == T0
    assert series.end == T0 + timedelta(seconds=5)  # start + count * step: the gap vanished
    assert series.query == "q"
    assert not series.values.flags.writeable


def test_packed_single_sample_has_step_zero():
    (series,) = to_series([matrix({}, [(S0 + 0.349, "3")])], query="q", scope=window())
    assert series.step == 0 and series.expected_points == 0
    assert epoch_millis(series.start) == int((S0 + 0.349) * 1000)


def test_packed_null_values_skipped_but_counted_in_end():
    (series,) = to_series([matrix({}, [(S0, "1"), (S0 + 10, None), (S0 + 20, "3")])],
                          query="q", scope=window())  # fmt: skip
    np.testing.assert_array_equal(series.values, [1.0, 3.0])
    assert series.end == T0 + timedelta(seconds=30)


def test_empty_answer_gives_one_placeholder():
    s = window(minutes=10, step=60)
    (series,) = to_series([], query="q", scope=s)
    assert dict(series.tags) == {} and len(series.values) == 0
    assert (series.start, series.end, series.step) == (s.start, s.end, 60)
    assert series.expected_points == 10  # the mixer pads it to (end - start) / step


def test_non_numeric_sample_is_an_error():
    with pytest.raises(MetricsError, match="non-numeric"):
        to_series([matrix({}, [(S0, "abc")])], query="q", scope=window())


# -- grid alignment ---------------------------------------------------------------------------


def test_grid_places_samples_on_the_step_grid():
    s = window(minutes=1, step=10)  # 7 evaluation steps: 0, 10, ..., 60 s
    result = [matrix({"track": "canary"}, [(S0, "1"), (S0 + 20, "3"), (S0 + 60, "7")])]
    (series,) = to_series(result, query="q", scope=s, align="grid")
    np.testing.assert_array_equal(series.values, [1, np.nan, 3, np.nan, np.nan, np.nan, 7])
    assert (series.start, series.step, series.expected_points) == (T0, 10, 7)


def test_grid_with_fractional_start():
    start = T0 + timedelta(milliseconds=349)
    s = window(minutes=0.5, step=10, start=start)
    ts = [round(start.timestamp() + k * 10, 3) for k in range(4)]
    (series,) = to_series([matrix({}, [(t, str(k)) for k, t in enumerate(ts)])],
                          query="q", scope=s, align="grid")  # fmt: skip
    np.testing.assert_array_equal(series.values, [0, 1, 2, 3])


def test_grid_empty_answer_is_all_nan():
    s = window(minutes=1, step=10)
    (series,) = to_series([], query="q", scope=s, align="grid")
    assert len(series.values) == 7 and np.isnan(series.values).all()


def test_unknown_alignment():
    with pytest.raises(ValueError):
        to_series([], query="q", scope=window(), align="nearest")  # type: ignore[arg-type]


# -- the mixer --------------------------------------------------------------------------------


def series(tags: dict[str, str], values: list[float], step: int = 60, start: datetime = T0,
           end: datetime | None = None) -> Series:  # fmt: skip
    end = end or start + timedelta(seconds=len(values) * step)
    return Series(tags=tags, values=values, start=start, end=end, step=step, query="q")


def test_mix_untagged_pair():
    (pair,) = mix("m", [series({}, [1, 2, 3])], [series({}, [4, 5])])
    assert isinstance(pair, MetricPair) and pair.name == "m" and dict(pair.tags) == {}
    np.testing.assert_array_equal(pair.control_values, [1, 2, 3])
    np.testing.assert_array_equal(pair.experiment_values, [4, 5])  # no cross-side alignment


def test_mix_placeholder_padded_with_nan():
    placeholder = series({}, [], end=T0 + timedelta(minutes=5))
    (pair,) = mix("m", [series({}, [1, 2, 3, 4, 5])], [placeholder])
    assert len(pair.experiment_values) == 5 and np.isnan(pair.experiment_values).all()


def test_mix_groups_by_tags_and_pads_missing_side():
    control = [series({"code": "200"}, [1, 2]), series({"code": "500"}, [0, 0])]
    experiment = [series({"code": "200"}, [3, 4]), series({"code": "503"}, [9, 9])]
    pairs = mix("m", control, experiment)
    assert [dict(p.tags) for p in pairs] == [{"code": "200"}, {"code": "500"}, {"code": "503"}]
    np.testing.assert_array_equal(pairs[1].experiment_values, [np.nan, np.nan])
    np.testing.assert_array_equal(pairs[2].control_values, [np.nan, np.nan])


def test_mix_untagged_placeholder_stands_in_for_every_tag_set():
    placeholder = series({}, [], end=T0 + timedelta(minutes=3))
    experiment = [series({"code": "200"}, [1, 2, 3]), series({"code": "500"}, [0, 0, 0])]
    pairs = mix("m", [placeholder], experiment)
    assert [dict(p.tags) for p in pairs] == [{"code": "200"}, {"code": "500"}]
    for p in pairs:
        assert len(p.control_values) == 3 and np.isnan(p.control_values).all()
    reverse = mix("m", experiment, [placeholder])
    assert len(reverse) == 2 and np.isnan(reverse[0].experiment_values).all()


def test_mix_different_tag_keys_is_an_error():
    with pytest.raises(ConfigError, match="tag keys"):
        mix("m", [series({"code": "200"}, [1])], [series({"track": "x"}, [1])])


def test_mix_needs_both_sides():
    with pytest.raises(MetricsError):
        mix("m", [], [series({}, [1])])


def test_inf_kept_through_mixer():
    (pair,) = mix("m", [series({}, [math.inf, -math.inf])], [series({}, [1, 2])])
    assert list(pair.control_values) == [math.inf, -math.inf]


# -- MetricScope ------------------------------------------------------------------------------


def test_iso_instant_like_java():
    assert iso_instant(T0) == "2020-07-27T19:17:36Z"
    assert iso_instant(T0 + timedelta(milliseconds=349)) == "2020-07-27T19:17:36.349Z"
    assert iso_instant(T0 + timedelta(microseconds=540500)) == "2020-07-27T19:17:36.540500Z"
    cest = timezone(timedelta(hours=2))
    assert iso_instant(T0.astimezone(cest)) == "2020-07-27T19:17:36Z"


def test_scope_validation():
    with pytest.raises(ConfigError, match="time zone"):
        MetricScope(start=datetime(2020, 1, 1), end=T0)
    with pytest.raises(ConfigError, match="before start"):
        MetricScope(start=T0, end=T0 - timedelta(seconds=1))
    for step in (0, -5, 1.5, True, "60"):
        with pytest.raises(ConfigError, match="step"):
            MetricScope(start=T0, end=T0, step=step)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="strings"):
        MetricScope(start=T0, end=T0, extended_scope_params={"q": 0.99})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="ISO-8601"):
        MetricScope(start="yesterday", end=T0)  # type: ignore[arg-type]


def test_scope_is_frozen_and_copies_params():
    params = {"ns": "a"}
    s = MetricScope(start="2020-07-27T19:17:36Z", end=T0, extended_scope_params=params)
    params["ns"] = "b"
    assert s.extended_scope_params["ns"] == "a" and s.start == T0
    with pytest.raises(AttributeError):
        s.scope = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.extended_scope_params["ns"] = "c"  # type: ignore[index]


def test_scope_from_kayenta_request():
    s = MetricScope.from_kayenta({
        "scope": "myapp-canary", "location": "ns1", "start": "2020-07-27T19:17:36.349Z",
        "end": "2020-07-27T19:27:36Z", "step": "1",
        "extendedScopeParams": {"project": "p", "resourceType": "gce_instance", "q": 0.99,
                                "flag": True},
    })  # fmt: skip
    assert (s.project, s.resource_type, s.step) == ("p", "gce_instance", 1)
    assert s.extended_scope_params == {"project": "p", "resourceType": "gce_instance",
                                       "q": "0.99", "flag": "true"}  # fmt: skip
    with pytest.raises(ConfigError, match="^Start time is required.$"):
        MetricScope.from_kayenta({"end": "2020-07-27T19:27:36Z"})
    with pytest.raises(ConfigError, match="^End time is required.$"):
        MetricScope.from_kayenta({"start": "2020-07-27T19:27:36Z", "end": ""})


def test_points_and_scope_pair():
    control, experiment = scope_pair(
        baseline="baseline", canary="canary", start=T0, end=T0 + timedelta(minutes=10), step=60,
        location="local", extended_scope_params={"app": "gg"},
        control_offset=timedelta(hours=1),
    )  # fmt: skip
    assert (control.scope, experiment.scope) == ("baseline", "canary")
    assert control.start == T0 - timedelta(hours=1) and experiment.start == T0
    assert experiment.points == 11
    assert control.extended_scope_params == {"app": "gg"}
    assert experiment.shifted(timedelta(minutes=1)).start == T0 + timedelta(minutes=1)
