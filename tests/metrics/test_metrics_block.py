"""`--metrics-block NAME`: the commands read from a saved metric-source block instead of
constructing a PrometheusMetricSource themselves (the block loader is faked here)."""

from __future__ import annotations

import json

import pytest

import store.blocks
from canary.config import MetricConfig
from canary.errors import ConfigError
from canary.values.counts import HistogramCounts, RatioCounts, SideCounts
from canary.values.scope import MetricScope
from canary.values.series import Series
from cli import check
from cli import main as canary_cli

SPEC = "deployments/releases/goldengoose.yaml"


class OneScopeSource:
    """A MetricSource of the narrowed port: fetch, fetch_counts, counter_increase, one scope each."""

    def __init__(self) -> None:
        self.scopes: list[str] = []
        self.closed = False

    def fetch(self, metric: MetricConfig, templates: object, scope: MetricScope) -> list[Series]:
        self.scopes.append(scope.scope)
        return [Series(tags={}, values=[1.0], start=scope.start, end=scope.end, step=1, query="q")]

    def fetch_counts(self, metric: MetricConfig, templates: object, scope: MetricScope) -> SideCounts:
        self.scopes.append(scope.scope)
        if metric.evidence == "ratio":
            return SideCounts(RatioCounts(events=5.0, total=1000.0), missing=False)
        return SideCounts(HistogramCounts((0.1, float("inf")), (900.0, 1000.0)), missing=False)

    def counter_increase(self, selector_template: str, templates: object, scope: MetricScope, *,
                         by: str | None = None, name: str = "") -> dict[str, float]:  # fmt: skip
        return {"": 1000.0}

    def close(self) -> None:
        self.closed = True


class FakeBlock:
    def __init__(self, source: OneScopeSource) -> None:
        self._source = source

    def source(self) -> OneScopeSource:
        return self._source


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> OneScopeSource:
    got = OneScopeSource()
    loaded: list[str] = []

    def load_block(name: str) -> object:
        loaded.append(name)
        return FakeBlock(got) if name == "prometheus-source/prod" else object()

    monkeypatch.setattr(store.blocks, "load_block", load_block)
    return got


def test_block_loads_its_source(source: OneScopeSource) -> None:
    assert check.load_metrics_block("prometheus-source/prod") is source
    with pytest.raises(ConfigError, match="no metric-source block"):
        check.load_metrics_block("local-platform/local")


def test_validate_queries_the_block(source: OneScopeSource) -> None:
    rows = check.validate(SPEC, metrics_block="prometheus-source/prod")
    probes = [r for r in rows if " @ " in r["check"]]
    assert probes and all(r["ok"] for r in probes), rows
    assert set(source.scopes) == {"baseline", "canary", "primary"} and source.closed


def test_plan_through_the_canary_command(source: OneScopeSource, capsys: pytest.CaptureFixture[str]) -> None:
    code = canary_cli.main(["plan", "--spec", SPEC, "--metrics-block", "prometheus-source/prod", "--json",
                            "--simulations", "20"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["metrics_block"] == "prometheus-source/prod" and "prometheus" not in data
    assert source.scopes and set(source.scopes) == {"primary"} and source.closed


def test_plan_needs_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        canary_cli.main(["plan", "--spec", SPEC])
    assert exc.value.code == 2 and "--prometheus" in capsys.readouterr().err


def test_pairing_lives_in_collect_for_every_store() -> None:
    from datetime import UTC, datetime, timedelta

    from canary.config.release import ReleaseSpec
    from canary.metrics.collect import fetch_counts_pair
    from canary.ports import MetricSource

    metric = ReleaseSpec.load(SPEC).load_canary_config().metrics[0]
    one = OneScopeSource()
    assert isinstance(one, MetricSource)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    control, experiment = (MetricScope(scope=s, start=end - timedelta(minutes=1), end=end)
                           for s in ("baseline", "canary"))  # fmt: skip
    pair = fetch_counts_pair(one, metric, {}, control, experiment)
    assert (pair.name, pair.missing, one.scopes) == (metric.name, (), ["baseline", "canary"])
