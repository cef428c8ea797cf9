"""In-memory stand-ins for a platform block and a metrics block, for the flow tests.

Both record every call, in order, into one shared `Recorder` so a test can check the
interleaving (traffic set before that window's metrics are fetched, cleanup after promote).
Failures are scripted per call: `fail("remove:baseline", lambda: PlatformError(...), times=1)`
raises on the first matching call(s) only; `times=None` raises on every matching call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from canary.values.carried import Restart
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts, SideCounts
from canary.values.series import MetricPair, Series
from canary.values.weights import Weights

#: (mean, standard deviation) of each goldengoose metric on a healthy version.
HEALTHY = {
    "success-rate": (99.8, 0.05),
    "error-ratio": (0.002, 0.0005),
    "5xx-count": (2.0, 0.5),
    "latency-p50": (0.05, 0.005),
    "latency-p99": (0.2, 0.02),
    "flagger-request-success-rate": (99.8, 0.05),
    "flagger-request-duration-p99": (0.2, 0.02),
}
LATENCY = ("latency-p50", "latency-p99")
POINTS = 60


@dataclass
class _Failure:
    make: Callable[[], BaseException]
    times: int | None  # None: every call
    after: int = 0  # the first `after` matching calls succeed


@dataclass
class Recorder:
    """One ordered log of (name, *args) tuples shared by the fakes, plus scripted failures."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)

    def fail(self, key: str, make: Callable[[], BaseException], times: int | None = 1,
             *, after: int = 0) -> None:  # fmt: skip
        """Raise `make()` on calls named `key` ("deploy") or `key:track` ("deploy:canary"),
        from the call after the first `after` matching ones on."""
        self.failures.setdefault(key, []).append(_Failure(make, times, after))

    def record(self, name: str, *args: Any, track: str | None = None) -> None:
        self.calls.append((name, *args))
        for key in ([f"{name}:{track}"] if track else []) + [name]:
            for failure in self.failures.get(key, []):
                if failure.after > 0:
                    failure.after -= 1
                    continue
                if failure.times is None:
                    raise failure.make()
                if failure.times > 0:
                    failure.times -= 1
                    raise failure.make()

    def named(self, *names: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in names]

    def count(self, name: str) -> int:
        return len(self.named(name))


class _Builder:
    def __init__(self, platform: FakePlatform, app: str) -> None:
        self._platform, self._app = platform, app

    def build(self, repo: str, commit: str) -> str:
        self._platform.rec.record("build", self._app, repo, commit)
        return f"registry.test/{self._app}:{commit[:12]}"

    def config_files(self, repo: str, commit: str) -> dict[str, str] | None:
        """The commit's `.canary/` files: the fake's `config_files` (None: it has none)."""
        self._platform.rec.record("config_files", self._app, repo, commit)
        return self._platform.config_files

    def is_ancestor(self, repo: str, older: str, newer: str) -> bool | None:
        """Ancestry from the fake's history: a list of commits, oldest first."""
        history = self._platform.history
        if older not in history or newer not in history:
            return None
        return history.index(older) < history.index(newer)


class _Workloads:
    def __init__(self, rec: Recorder, platform: FakePlatform | None = None) -> None:
        self.rec = rec
        self.platform = platform
        #: track -> (from which look on, why) it is not serving: kills a track mid-release
        self.down: dict[str, tuple[int, str]] = {}
        self.looks: dict[str, int] = {}

    def deploy(self, app: str, track: str, image: str) -> None:
        self.rec.record("deploy", app, track, image, track=track)

    def wait_ready(self, app: str, track: str, timeout: float) -> None:
        self.rec.record("wait_ready", app, track, timeout, track=track)

    def serving(self, app: str, track: str) -> str | None:
        self.rec.record("serving", app, track, track=track)
        self.looks[track] = self.looks.get(track, 0) + 1
        from_look, reason = self.down.get(track, (0, None))
        return reason if self.looks[track] >= from_look else None

    def promote(self, app: str, image: str) -> None:
        self.rec.record("promote", app, image)
        if self.platform is not None:
            self.platform.production = image  # what production runs now, read back later

    def remove(self, app: str, track: str) -> None:
        self.rec.record("remove", app, track, track=track)


class _Router:
    def __init__(self, platform: FakePlatform) -> None:
        self._platform = platform

    def set_weights(self, app: str, weights: Weights) -> None:
        self._platform.rec.record("set_weights", app, weights)
        if not self._platform.ignore_weights:
            self._platform.weights[app] = weights

    def read_weights(self, app: str) -> Weights:
        self._platform.rec.record("read_weights", app)
        return self._platform.weights.get(app, Weights.all_primary())

    def rollback(self, app: str) -> None:
        self._platform.rec.record("rollback", app)
        if not self._platform.ignore_weights:
            self._platform.weights[app] = Weights.all_primary()

    def restore(self, app: str) -> None:
        """The fake platform's routes are its own: all traffic to production."""
        self.rollback(app)


@dataclass
class _App:
    """FakePlatform.for_app: each call goes to the fake's per-app method (and is logged)."""

    platform: FakePlatform
    app: str
    spec: Any

    def builder(self) -> _Builder:
        return self.platform.builder_for(self.app, self.spec)

    def workloads(self) -> _Workloads:
        return self.platform.workloads(self.app, self.spec)

    def router(self) -> _Router:
        return self.platform.router(self.app, self.spec)

    def production_image(self) -> str | None:
        return self.platform.production_image(self.app, self.spec)

    def production_commit(self) -> str | None:
        return self.platform.production_commit(self.app)

    def reconcile(self) -> dict[str, Any]:
        return self.platform.reconcile(self.app, self.spec)

    def restore_routes(self) -> None:
        self.platform.restore_routes(self.app, self.spec)

    def restarts(self, since: datetime) -> list[Restart]:
        """canary.ports.RestartLog: the restarts `restart_router` made, since `since`."""
        self.platform.rec.record("restarts", self.app)
        return [r for r in self.platform.restarts if r.at >= since]


class FakePlatform:
    """What tasks/platform.py calls on a platform block, recorded.

    `ignore_weights=True` makes the router accept weight changes without applying them
    (read_weights keeps answering the old split), like a router that silently failed.
    `specs` logs (method, app, spec) for every call that takes the release spec, apart
    from the ordered call log so that the tests of the order need not spell specs out.
    """

    def __init__(
        self,
        rec: Recorder,
        *,
        production: str | None = "registry.test/app:prod",
        ignore_weights: bool = False,
    ) -> None:
        self.rec = rec
        self.production = production
        self.ignore_weights = ignore_weights
        self.weights: dict[str, Weights] = {}
        #: commits in git order (oldest first) for the builder's ancestry answers
        self.history: list[str] = []
        #: the commit production runs (None: unknown, as on Kubernetes)
        self.production_commit_value: str | None = None
        #: the files of the built commit's .canary/ (None: it has none)
        self.config_files: dict[str, str] | None = None
        self.specs: list[tuple[str, str, Any]] = []
        #: what restart_router recorded (the RestartLog of every app)
        self.restarts: list[Restart] = []
        self._workloads = _Workloads(rec, self)
        self._router = _Router(self)

    def for_app(self, app: str, spec: Any) -> _App:
        return _App(self, app, spec)

    def restart_router(self, app: str, why: str = "pid 4711 was killed by SIGKILL") -> None:
        """The router restarts as the local supervisor restarts HAProxy: all traffic back to
        production until the release sets its split again, and the restart recorded."""
        self.weights[app] = Weights.all_primary()
        self.restarts.append(Restart("haproxy", datetime.now(UTC), why, "restarted as pid 4712"))

    def builder_for(self, app: str, spec: Any) -> _Builder:
        self.specs.append(("builder_for", app, spec))
        return _Builder(self, app)

    def workloads(self, app: str, spec: Any) -> _Workloads:
        self.specs.append(("workloads", app, spec))
        return self._workloads

    def router(self, app: str, spec: Any) -> _Router:
        self.specs.append(("router", app, spec))
        return self._router

    def reconcile(self, app: str, spec: Any) -> dict[str, Any]:
        self.specs.append(("reconcile", app, spec))
        self.rec.record("reconcile", app)
        return {"removed": []}

    def production_image(self, app: str, spec: Any) -> str | None:
        self.specs.append(("production_image", app, spec))
        self.rec.record("production_image", app)
        return self.production

    def production_commit(self, app: str) -> str | None:
        self.rec.record("production_commit", app)
        return self.production_commit_value

    def restore_routes(self, app: str, spec: Any) -> None:
        self.specs.append(("restore_routes", app, spec))
        self.rec.record("restore_routes", app)


def _values(metric: str, side: str, factor: float = 1.0) -> np.ndarray:
    mean, sd = HEALTHY[metric]
    rng = np.random.default_rng(zlib.crc32(f"{metric}/{side}".encode()))
    return np.clip(rng.normal(mean, sd, POINTS), 0, None) * factor


class FakeSource:
    """A MetricSource answering fetch_pair with made-up series.

    `bad` names the metrics whose canary side is `factor` times worse (default +50 %).
    Each call is logged as ("fetch_pair", metric, control scope, experiment scope, when).
    """

    def __init__(self, rec: Recorder, *, bad: tuple[str, ...] = (), factor: float = 1.5) -> None:
        self.rec = rec
        self.bad = set(bad)
        self.factor = factor

    def fetch_pair(
        self, metric: Any, templates: Any, control_scope: Any, experiment_scope: Any
    ) -> list[MetricPair]:
        self.rec.record(
            "fetch_pair", metric.name, control_scope, experiment_scope, datetime.now(UTC)
        )
        factor = self.factor if metric.name in self.bad else 1.0

        def series(scope: Any, values: np.ndarray) -> Series:
            return Series(
                tags={},
                values=values,
                start=scope.start,
                end=scope.end,
                step=scope.step,
                query=f"fake:{metric.name}",
            )

        return [
            MetricPair(
                name=metric.name,
                tags={},
                control=series(control_scope, _values(metric.name, "baseline")),
                experiment=series(experiment_scope, _values(metric.name, "canary", factor)),
            )
        ]


#: Requests per second each track gets in the fakes' counts, and the healthy error rate.
RATE, ERRORS = 1000.0, 0.005
#: Latency bounds (s) and the healthy share of requests at or below each (cumulative).
BOUNDS = (0.01, 0.02, 0.03, 0.05, 0.1, float("inf"))
SHARES = (0.05, 0.4, 0.7, 0.95, 0.995, 1.0)


class FakeCountsSource(FakeSource):
    """A FakeSource that also answers count metrics and request counters.

    Counts grow with the window: RATE requests per second per track, ERRORS of them 5xx,
    latencies spread over BOUNDS by SHARES. `bad` metrics get `factor` times the errors
    (ratio) or every request two buckets slower (histogram; one bucket is within the
    config's 10 % tolerance at these coarse bounds); `starve` scales the canary's
    requests (0.2: it serves a fifth of its share); `missing` names metrics whose canary
    side matches no series.
    """

    def __init__(self, rec: Recorder, *, bad: tuple[str, ...] = (), factor: float = 6.0,
                 starve: float = 1.0, missing: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(rec, bad=bad, factor=factor)
        self.starve = starve
        self.missing = set(missing)

    def _requests(self, scope: Any) -> float:
        seconds = (scope.end - scope.start).total_seconds()
        return float(round(RATE * seconds * (self.starve if scope.scope == "canary" else 1.0)))

    def counter_increase(self, selector: str, templates: Any, scope: Any, *, by: str | None = None,
                         name: str = "") -> dict[str, float]:  # fmt: skip
        self.rec.record("counter_increase", selector, scope)
        return {"": self._requests(scope)}

    def fetch_counts(self, metric: Any, templates: Any, scope: Any) -> SideCounts:
        """Production's counts (for the plan): healthy, RATE requests per second."""
        self.rec.record("fetch_counts", metric.name, scope)
        n = self._requests(scope)
        if metric.evidence == "ratio":
            return SideCounts(RatioCounts(events=float(round(n * ERRORS)), total=n), False)
        return SideCounts(HistogramCounts(BOUNDS, tuple(float(round(n * s)) for s in SHARES)), False)

    def fetch_counts_pair(self, metric: Any, templates: Any, control_scope: Any,
                          experiment_scope: Any) -> CountsPair:  # fmt: skip
        self.rec.record("fetch_counts_pair", metric.name, control_scope, experiment_scope,
                        datetime.now(UTC))  # fmt: skip
        worse = metric.name in self.bad

        def side(scope: Any, canary: bool) -> RatioCounts | HistogramCounts:
            n = self._requests(scope)
            if metric.evidence == "ratio":
                rate = ERRORS * (self.factor if canary and worse else 1.0)
                return RatioCounts(events=float(round(n * rate)), total=n)
            shares = ((0.0, 0.0, *SHARES[:-3], 1.0) if canary and worse else SHARES)
            return HistogramCounts(BOUNDS, tuple(float(round(n * s)) for s in shares))

        missing = ("experiment",) if metric.name in self.missing else ()
        return CountsPair(metric.name, side(control_scope, False), side(experiment_scope, True),
                          missing)  # fmt: skip


class FakeMetricsBlock:
    """Stands in for the PrometheusSource block: the flow calls `.source()` on it."""

    def __init__(self, source: FakeSource) -> None:
        self._source = source

    def source(self, **_: Any) -> FakeSource:
        return self._source
