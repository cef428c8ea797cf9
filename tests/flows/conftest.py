"""A real Prefect test server for tests/flows, and the fake blocks the flows load.

The harness (a uvicorn subprocess on a fresh SQLite DB) starts once for this package and is
torn down when its last test is done, so test directories that run after tests/flows never
see its PREFECT_API_URL. Startup takes 14-22 s on a 2-core box, hence the 120 s deadline.
The event persister flushes every 0.5 s instead of 5 s so events can be read back quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import canary.metrics.collect
import flows.build
import flows.canary_release
import flows.reanalysis
import flows.reconcile
import store.blocks
import tasks._retry
import tasks.analysis
import tasks.history
import tasks.platform
from canary.analysis.ending import ReleaseNotPromoted
from canary.errors import ConfigError
from canary.values.outcome import Outcome
from tests.flows.fakes import FakeCountsSource, FakeMetricsBlock, FakePlatform, Recorder
from tests.support.istio_prometheus import IstioPrometheus
from tests.support.kube import Namespace

REPO = Path(__file__).resolve().parents[2]
CANARY_CONFIG = REPO / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml"
SEQUENTIAL_CONFIG = REPO / "deployments" / "canary-configs" / "goldengoose.yaml"
PLATFORM, METRICS = "fake-platform/test", "fake-metrics/test"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "registry.test/new:0123456789ab"
PRODUCTION = "registry.test/prod:fedcba987654"

_SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
}


@pytest.fixture(scope="package", autouse=True)
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        for name, value in _SERVER_ENV.items():
            mp.setitem(os.environ, name, value)
        with prefect_test_harness(server_startup_timeout=120):
            yield


#: Every task the flows call with retries, as (module, attribute) the flows look it up by.
_RETRYING = [
    (tasks.platform, name)
    for name in (
        "reconcile_for_release",
        "read_production_image",
        "order_commits",
        "deploy_tracks",
        "set_traffic",
        "promote_image",
        "roll_back_traffic",
        "remove_tracks",
        "restore_routes",
    )
] + [(tasks.history, "read_production"), (tasks.analysis, "observe"), (flows.build, "build_image")]


@dataclass
class Env:
    """One test's world: the shared call log, the fakes, the spec file and the call args."""

    app: str
    rec: Recorder
    platform: FakePlatform
    source: FakeCountsSource
    spec: Path
    loaded: list[str]

    def release_args(self, **override: str) -> dict[str, str]:
        args = {
            "app": self.app,
            "image": IMAGE,
            "commit": COMMIT,
            "config": str(self.spec),
            "platform": PLATFORM,
            "metrics": METRICS,
        }
        return {**args, **override}

    def build_args(self, **override: str) -> dict[str, str]:
        args = {
            "repo": f"https://git.test/{self.app}.git",
            "commit": COMMIT,
            "app": self.app,
            "platform": PLATFORM,
        }
        return {**args, **override}


def write_spec(
    path: Path,
    app: str,
    *,
    lifetime: str = "3s",
    steps: tuple[int, ...] = (10, 20),
    canary_config: Path = CANARY_CONFIG,
    **extra: object,
) -> Path:
    spec = {
        "app": app,
        "canary_config": str(canary_config),
        "analysis": {
            "lifetime": lifetime,
            "interval": "1s",
            "begin_after": "0s",
            "step": "1s",
            "thresholds": {"pass": 95, "marginal": 75},
        },
        "traffic": {"steps": list(steps)},
        "scopes": {
            "control": "baseline",
            "experiment": "canary",
            "extended_scope_params": {"rate_window": "5s"},
        },
        "ready_timeout_seconds": 7,
        **extra,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def fast_retries(mp: pytest.MonkeyPatch) -> None:
    """Retry delays 0 instead of 2, 4, 8 s; retry counts and the transient-only condition stay
    (the tasks', and tasks._retry.retrying's for the reads a flow makes in its own run)."""
    for module, name in _RETRYING:
        fast = getattr(module, name).with_options(retry_delay_seconds=0, retry_jitter_factor=None)
        mp.setattr(module, name, fast)
    mp.setattr(tasks._retry, "RETRY_DELAYS", lambda retries: [0.0] * retries)


def install(
    mp: pytest.MonkeyPatch,
    directory: Path,
    app: str,
    *,
    bad: tuple[str, ...] = (),
    production: str | None = PRODUCTION,
    ignore_weights: bool = False,
    lifetime: str = "3s",
    sequential: bool = False,
    starve: float = 1.0,
    missing: tuple[str, ...] = (),
) -> Env:
    """Fresh fakes for `app`, returned by every load_block the flows call, and its spec.

    `sequential` judges with the default config (count metrics) instead of the Kayenta one.
    """
    rec = Recorder()
    platform = FakePlatform(rec, production=production, ignore_weights=ignore_weights)
    source = FakeCountsSource(rec, bad=bad, starve=starve, missing=missing)
    blocks = {PLATFORM: platform, METRICS: FakeMetricsBlock(source)}
    loaded: list[str] = []

    def load_block(name: str) -> object:
        loaded.append(name)
        if name not in blocks:
            raise ConfigError(f"block {name!r} is not one of the test's fakes")
        return blocks[name]

    # The fakes answer a control/experiment pair at once (their made-up data knows which side
    # is the canary): the flows' one pairing seam is pointed at them.
    mp.setattr(canary.metrics.collect, "fetch_pair",
               lambda src, metric, templates, control, experiment:
               src.fetch_pair(metric, templates, control, experiment))  # fmt: skip
    mp.setattr(canary.metrics.collect, "fetch_counts_pair",
               lambda src, metric, templates, control, experiment:
               src.fetch_counts_pair(metric, templates, control, experiment))  # fmt: skip
    for module in (store.blocks, flows.canary_release, flows.build, flows.reanalysis, flows.reconcile):
        mp.setattr(module, "load_block", load_block)
    config = SEQUENTIAL_CONFIG if sequential else CANARY_CONFIG
    spec = write_spec(directory / f"{app}.yaml", app, lifetime=lifetime, canary_config=config)
    return Env(app=app, rec=rec, platform=platform, source=source, spec=spec, loaded=loaded)


@pytest.fixture
def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make_env(app, **knobs) -> Env: fakes patched in, fast retries (see install())."""
    fast_retries(monkeypatch)
    return lambda app, **knobs: install(monkeypatch, tmp_path, app, **knobs)


def released(state: object) -> dict:
    """The result of a release that ran and ended in its outcome's named state: Promoted
    (type Completed), RolledBack (type Failed, so that alerting on failed runs sees it) or
    Aborted (type Cancelled), with the headline as its message. A run that did not promote
    carries its result in a ReleaseNotPromoted (Prefect resolves a failed state's data into
    an exception)."""
    outcome = Outcome.from_state_name(state.name)  # type: ignore[attr-defined]
    assert outcome in (Outcome.PROMOTED, Outcome.ROLLED_BACK, Outcome.ABORTED), (
        state.name, state.message)  # type: ignore[attr-defined]  # fmt: skip
    assert state.type.value == outcome.state.type  # type: ignore[attr-defined]
    result = state.result(raise_on_failure=False)  # type: ignore[attr-defined]
    if outcome is not Outcome.PROMOTED:
        assert isinstance(result, ReleaseNotPromoted), result
        result = result.result
    assert result["outcome"] == outcome.value
    assert state.message == result["headline"]  # type: ignore[attr-defined]
    return dict(result)


@pytest.fixture
def prometheus(namespace: Namespace) -> Iterator[IstioPrometheus]:
    """A Prometheus stub serving Istio's sidecar metrics for the test's namespace (the
    Kubernetes release tests: no Istio data plane runs here)."""
    with IstioPrometheus(namespace=namespace.name) as stub:
        yield stub
    assert stub.hook_errors == []
