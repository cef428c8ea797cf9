"""canary.analysis.planning and `python -m canary plan`: is the plan right, and does it read?

The plan's looks are checked by an independent simulation that calls the judge itself
(compare_counts / compare_histograms) look by look with a different seed, drawing
individual latencies instead of bucket probabilities.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import canary.__main__ as cli
from canary.analysis.planning import (
    LookSchedule,
    MetricPlan,
    describe,
    plan_config,
    plan_metric,
)
from canary.analysis.simulation import scaled_probs as _scaled_probs
from canary.config import AnalysisPlan, CanaryConfig
from canary.errors import ConfigError, MetricsError
from canary.judge.classify import Classification
from canary.judge.sequential import (
    compare_counts,
    compare_histograms,
    histogram_log_evidence,
    ratio_log_evidence,
)
from canary.values.counts import HistogramCounts, RatioCounts, SideCounts

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = LookSchedule((10, 20, 25), 15.0, 3, 45.0, 10.0)  # goldengoose's release spec
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
LATENCY = tuple(float(x) for x in np.cumsum([100, 2000, 3000, 3000, 1000, 500, 200, 100, 50, 20, 10, 0]))
FINE = tuple(float(f"{0.001 * 1.09**k:.4g}") for k in range(99)) + (math.inf,)  # goldengoose


def ratio(events: float, total: float) -> SimpleNamespace:
    return SimpleNamespace(events=events, total=total)


def histogram(bounds: tuple[float, ...] = BOUNDS, buckets: tuple[float, ...] = LATENCY) -> SimpleNamespace:
    return SimpleNamespace(upper_bounds=bounds, buckets=buckets, total=buckets[-1])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- the vectorised rule is the judge's ---------------------------------------------------


def _label(high: bool, safe: bool) -> str:
    return "regression" if high else "safe" if safe else "open"


def _judge_label(result: object) -> str:
    regression = result.classification in (Classification.HIGH, Classification.LOW)  # type: ignore[attr-defined]
    return _label(regression, result.decided)  # type: ignore[attr-defined]


@pytest.mark.parametrize("direction", ["increase", "decrease", "either"])
@pytest.mark.parametrize("tolerance", [0.0, 0.1, 0.3])
def test_batched_evidence_agrees_with_the_judge_s_verdicts(direction: str, tolerance: float) -> None:
    gen, threshold = rng(5), math.log(100)
    for _ in range(60):
        n_c, n_e = gen.integers(0, 3000, 2)
        p = gen.uniform(0.001, 0.05)
        ce, ee = gen.binomial(n_c, p), gen.binomial(n_e, p * gen.choice([0.3, 1, 2, 3]))
        result = compare_counts(ce, n_c, ee, n_e, direction=direction, tolerance=tolerance)
        reg, safe, _, _ = ratio_log_evidence(*(np.array([float(x)]) for x in (ce, n_c, ee, n_e)),
                                             direction=direction, tolerance=tolerance)  # fmt: skip
        assert _label(reg[0] >= threshold, safe[0] >= threshold) == _judge_label(result)
    for bounds in (np.array(BOUNDS), np.array(FINE)):
        for _ in range(25):
            base = gen.dirichlet(np.full(bounds.size, 0.7))
            if gen.random() < 0.5:  # empty tails: the grouped bounds of _slower
                base[: bounds.size // 3] = base[-bounds.size // 3 :] = 0
                base /= base.sum()
            shifted = _scaled_probs(bounds, np.cumsum(base), float(gen.choice([0.7, 1, 1.1, 1.3, 2])))
            n_c, n_e = gen.integers(0, 5000, 2)
            c = np.cumsum(gen.multinomial(n_c, base)).astype(float)
            e = np.cumsum(gen.multinomial(n_e, shifted)).astype(float)
            result = compare_histograms(c, e, bounds, direction=direction, tolerance=tolerance)
            reg, safe, _, _ = histogram_log_evidence(c[None], e[None], bounds[:-1],
                                                     direction=direction, tolerance=tolerance)  # fmt: skip
            assert _label(reg[0] >= threshold, safe[0] >= threshold) == _judge_label(result)
            if 0 < result.evidence < 1e300:
                assert reg[0] == pytest.approx(math.log(result.evidence), abs=1e-9)


# -- the plan is right: an independent simulation with the judge itself -------------------


def _sample_latencies(gen: np.random.Generator, bounds: np.ndarray, cumulative: np.ndarray, n: int) -> np.ndarray:
    """Requests drawn from production's histogram: a bucket, then uniform inside it."""
    probs = np.diff(np.concatenate([[0.0], cumulative])) / cumulative[-1]
    bucket = gen.choice(bounds.size, size=n, p=probs)
    lower = np.concatenate([[0.0], bounds[:-1]])[bucket]
    upper = np.where(np.isinf(bounds[bucket]), lower, bounds[bucket])
    return lower + gen.random(n) * (upper - lower)


def _detection_by_judge(plan: MetricPlan, counts: SimpleNamespace, looks: int, sims: int, seed: int) -> list[float]:
    """P(the judge has proven the regression by look k), k = 1..looks, calling it per look
    with the earlier looks' counts, as the flow does."""
    gen, s = rng(seed), plan.schedule
    bounds = np.array(getattr(counts, "upper_bounds", BOUNDS))
    first = np.full(sims, looks + 1)
    for i in range(sims):
        c = e = None
        history: list[tuple[np.ndarray, np.ndarray]] = []
        for look in range(1, looks + 1):
            lam = plan.request_rate * s.share(look) / 100 * s.interval
            n_c, n_e = gen.poisson(lam, 2)
            if plan.kind == "ratio":
                step = np.array([gen.binomial(n_c, plan.baseline), n_c, gen.binomial(n_e, plan.canary), n_e])
                c = step if c is None else c + step
                result = compare_counts(*c, direction=plan.direction, alpha=plan.alpha, tolerance=plan.tolerance)
            else:
                cum = np.array(counts.buckets)
                base = _sample_latencies(gen, bounds, cum, n_c)
                slow = _sample_latencies(gen, bounds, cum, n_e) * (1 + plan.min_effect)
                new_c = np.cumsum(np.bincount(np.searchsorted(bounds, base), minlength=bounds.size))
                new_e = np.cumsum(np.bincount(np.searchsorted(bounds, slow), minlength=bounds.size))
                c = new_c if c is None else c + new_c
                e = new_e if e is None else e + new_e
                result = compare_histograms(c, e, bounds, direction=plan.direction, alpha=plan.alpha,
                                            tolerance=plan.tolerance, unit=plan.unit, history=history,
                                            planned_looks=s.looks)  # fmt: skip
                history.append((c, e))
            if result.classification is Classification.HIGH:
                first[i] = look
                break
    return [float(np.mean(first <= k)) for k in range(1, looks + 1)]


@pytest.mark.parametrize(
    ("counts", "rate", "effect"),
    [(ratio(20, 1000), 100.0, 1.0), (histogram(), 50.0, 0.2)],
    ids=["error-rate", "latency"],
)
def test_named_look_reaches_power_and_the_one_before_does_not(counts: SimpleNamespace, rate: float, effect: float) -> None:
    plan = plan_metric("m", counts, request_rate=rate, schedule=SCHEDULE, rng=rng(1), min_effect=effect, unit="s")
    k = plan.looks_needed
    assert k is not None and k >= 3, plan
    sims = 400
    margin = 3 * math.sqrt(0.9 * 0.1 / sims)  # three standard errors of the check
    detection = _detection_by_judge(plan, counts, k, sims, seed=12345)
    assert detection[k - 1] >= plan.power - margin, (k, detection, plan.detection[:k])
    assert detection[k - 2] < plan.power + margin, (k, detection, plan.detection[:k])
    # and the whole curve agrees within Monte-Carlo error of both estimates
    assert np.allclose(detection, plan.detection[:k], atol=2 * margin)


def test_more_traffic_or_a_bigger_effect_needs_fewer_looks() -> None:
    def looks(counts: SimpleNamespace, rate: float, effect: float) -> int:
        plan = plan_metric("m", counts, request_rate=rate, schedule=SCHEDULE, rng=rng(3), min_effect=effect)
        assert plan.looks_needed is not None
        return plan.looks_needed

    for counts, effects in ((ratio(20, 1000), (1.0, 2.0, 4.0)), (histogram(), (0.2, 0.3, 0.5))):
        by_rate = [looks(counts, rate, effects[0]) for rate in (30.0, 60.0, 120.0)]
        by_effect = [looks(counts, 30.0, e) for e in effects]
        assert by_rate == sorted(by_rate, reverse=True) and by_rate[0] > by_rate[-1]
        assert by_effect == sorted(by_effect, reverse=True) and by_effect[0] > by_effect[-1]


def test_a_canary_no_worse_rarely_raises_a_false_alarm_and_tolerance_lets_it_promote() -> None:
    strict = plan_metric("m", histogram(), request_rate=200.0, schedule=SCHEDULE, rng=rng(4))
    loose = plan_metric("m", histogram(), request_rate=200.0, schedule=SCHEDULE, rng=rng(4),
                        tolerance=1.5, min_effect=2.0)  # fmt: skip
    assert strict.aa_false_alarm is not None and strict.aa_false_alarm <= 0.03
    assert len(loose.aa_safe) == SCHEDULE.looks
    assert loose.aa_safe[-1] > strict.aa_safe[-1]
    assert list(loose.aa_safe) == sorted(loose.aa_safe)


def test_plan_is_seeded_and_fixed_arrivals_work() -> None:
    one = plan_metric("m", ratio(20, 1000), request_rate=100.0, schedule=SCHEDULE, rng=rng(7))
    two = plan_metric("m", ratio(20, 1000), request_rate=100.0, schedule=SCHEDULE, rng=rng(7))
    assert one == two
    fixed = plan_metric("m", ratio(20, 1000), request_rate=100.0, schedule=SCHEDULE, rng=rng(7),
                        arrivals="fixed", direction="decrease", min_effect=0.9)  # fmt: skip
    assert fixed.canary == pytest.approx(0.002)
    assert fixed.requests[0] == pytest.approx(150.0)


# -- no plan, and why --------------------------------------------------------------------


def test_missing_metric_no_traffic_and_no_errors_give_no_plan_and_say_why() -> None:
    missing = plan_metric("error-rate", None, request_rate=0.0, schedule=SCHEDULE, rng=rng())
    idle = plan_metric("latency", histogram(buckets=(0.0,) * len(BOUNDS)), request_rate=0.0,
                       schedule=SCHEDULE, rng=rng())  # fmt: skip
    clean = plan_metric("error-rate", ratio(0, 5000), request_rate=8.3, schedule=SCHEDULE, rng=rng())
    assert (missing.status, idle.status, clean.status) == ("missing", "no-traffic", "no-events")
    assert describe(missing) == [
        "error-rate: no plan: production has no series for it: the query matches nothing "
        "(does the app export it, and does the scope label match?)"
    ]
    assert describe(idle)[0].startswith("latency: no plan: production served no requests in the window")
    assert "0 of 5000 requests" in describe(clean)[0] and "longer window" in describe(clean)[0]
    assert missing.lifetime_suffices is None and missing.to_dict()["planned"] is False


def test_bad_settings_are_config_errors_naming_the_input() -> None:
    with pytest.raises(ConfigError, match="min_effect 1 must be > 0"):
        plan_metric("m", ratio(1, 10), request_rate=1.0, schedule=SCHEDULE, rng=rng(),
                    direction="decrease", min_effect=1.0)  # fmt: skip
    with pytest.raises(ConfigError, match="alpha"):
        plan_metric("m", ratio(1, 10), request_rate=1.0, schedule=SCHEDULE, rng=rng(), alpha=2.0)
    with pytest.raises(ConfigError, match="rng must be a numpy Generator"):
        plan_metric("m", ratio(1, 10), request_rate=1.0, schedule=SCHEDULE, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="kind 'histogram' does not fit"):
        plan_metric("m", ratio(1, 10), request_rate=1.0, schedule=SCHEDULE, rng=rng(), kind="histogram")


# -- words -------------------------------------------------------------------------------


def test_describe_ratio_plan() -> None:
    plan = plan_metric("error-rate", ratio(97, 18600), request_rate=31.0, schedule=SCHEDULE, rng=rng())
    k = plan.looks_needed
    assert k is not None and k > SCHEDULE.looks
    first = describe(plan)[0]
    assert first.startswith("error-rate: production serves 31 req/s at 0.522% errors; to catch "
                            f"+100% (0.522% -> 1.04%) with 90% probability the canary needs {k} looks (")  # fmt: skip
    assert "at 10-25% share, ~" in first and "requests per track)" in first
    assert first.endswith(f"set lifetime to at least {cli_duration(k * 15)}")
    assert "the lifetime 45s (3 looks) gives " in first
    assert plan.lifetime_suffices is False and plan.seconds_needed == 10 + 15 * k


def cli_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def test_describe_histogram_plan_that_the_lifetime_covers() -> None:
    plan = plan_metric("latency", histogram(), request_rate=400.0, schedule=SCHEDULE, rng=rng(),
                       unit="s", tolerance=0.0, min_effect=0.5)  # fmt: skip
    lines = describe(plan)
    assert lines[0].startswith("latency: production serves 400 req/s, p50 24.5 ms, p90 94.1 ms, "
                               "p99 901 ms; to catch 50% slower (p90 94.1 ms -> 141 ms)")  # fmt: skip
    assert "the lifetime 45s (3 looks) suffices: " in lines[0]
    assert lines[1].startswith("  if the canary is no worse: decided within tolerance")
    assert "tolerance 0 asks to prove the canary no worse at all" in lines[1]
    assert plan.lifetime_suffices is True


def test_describe_not_within_the_horizon_and_warnings() -> None:
    plan = plan_metric("error-rate", ratio(5, 1000), request_rate=2.0, schedule=SCHEDULE, rng=rng(),
                       min_effect=0.2, tolerance=0.3, max_looks=20, min_requests=10)  # fmt: skip
    assert plan.looks_needed is None and len(plan.detection) == 20
    lines = describe(plan)
    assert "the canary needs more than 20 looks (5m10s at 10-25% share, ~" in lines[0]
    assert ", by which it reaches " in lines[0]
    warnings = [line for line in lines if line.startswith("  warning: ")]
    assert any("min_effect 0.2 is within the tolerance 0.3" in w for w in warnings)
    assert any("the traffic guard (guards.minRequests 10) would stop about" in w for w in warnings)


# -- a canary config ---------------------------------------------------------------------

COUNTS_CONFIG = {
    "name": "shop",
    "judge": {"name": "sequential-v1"},
    "metrics": [
        {"name": "error-rate",
         "query": {"type": "prometheus", "ratio": {"events": 'req_total{track="${scope}",code=~"5.."}',
                                                   "total": 'req_total{track="${scope}"}'}},
         "analysisConfigurations": {"canary": {"direction": "increase", "alpha": 0.005, "minEffect": 1.0}}},
        {"name": "latency",
         "query": {"type": "prometheus", "histogram": {"buckets": 'req_seconds_bucket{track="${scope}"}'}},
         "analysisConfigurations": {"canary": {"direction": "increase", "tolerance": 0.1, "minEffect": 0.3}}},
        {"name": "p99", "query": {"type": "prometheus", "customInlineTemplate": "PromQL:up"},
         "analysisConfigurations": {"canary": {"muted": True}}},
    ],
    "classifier": {"groupWeights": {}},
}  # fmt: skip
SERIES_CONFIG = {
    "name": "kayenta-style",
    "metrics": [{"name": "p99", "query": {"type": "prometheus", "customInlineTemplate": "PromQL:up"}}],
    "classifier": {"groupWeights": {}},
}


def test_plan_config_plans_count_metrics_and_notes_the_rest() -> None:
    config = CanaryConfig.from_yaml_data(COUNTS_CONFIG)
    production = {"error-rate": ratio(186, 18600), "latency": None}
    plan = plan_config(config, SCHEDULE, production, window=600.0, rng=rng(), effects={"error-rate": 2.0})
    rates, latency = plan.metrics
    assert (rates.status, latency.status) == ("planned", "missing")
    assert rates.request_rate == pytest.approx(31.0) and rates.min_effect == 2.0 and rates.alpha == 0.005
    assert plan.notes == ("not planned (series metrics, judged on range-query points): p99",)
    json.dumps(plan.to_dict(), allow_nan=False)
    with pytest.raises(ConfigError, match="effect for 'p99': canary config 'shop' has no count metric"):
        plan_config(config, SCHEDULE, production, window=600.0, rng=rng(), effects={"p99": 1.0})


def test_plan_config_without_count_metrics_says_planning_applies_to_them() -> None:
    plan = plan_config(CanaryConfig.from_yaml_data(SERIES_CONFIG), SCHEDULE, {}, window=600.0, rng=rng())
    assert plan.metrics == ()
    assert "planning applies to ratio and histogram metrics" in describe(plan)[-1]


def test_schedule_from_a_release_plan() -> None:
    plan = AnalysisPlan(lifetime="50s", interval="15s", begin_after="10s", thresholds={"pass": 95})
    schedule = LookSchedule.from_plan(plan, (10, 20))
    assert (schedule.looks, schedule.lifetime, schedule.share(5), schedule.at(3)) == (3, 50.0, 20.0, 55.0)


def test_three_metrics_plan_in_a_few_seconds() -> None:
    import time

    # CPU seconds of this process, not wall time: other tests share the machine's cores
    start = time.process_time()
    for counts, effect in ((ratio(20, 1000), 0.3), (histogram(FINE, _fine_latency()), 0.05), (ratio(5, 1000), 1.0)):
        plan_metric("m", counts, request_rate=30.0, schedule=SCHEDULE, rng=rng(), min_effect=effect)
    assert time.process_time() - start < 6.0


def _fine_latency() -> tuple[float, ...]:
    latencies = rng(1).lognormal(math.log(0.02), 0.5, 18000)
    return tuple(float(np.count_nonzero(latencies <= b)) for b in FINE)


# -- python -m canary plan ---------------------------------------------------------------


class FakeSource:
    """fetch_counts as PrometheusMetricSource answers it, from fixed production counts."""

    def __init__(self, counts: dict[str, object], error: Exception | None = None) -> None:
        self.counts, self.error, self.scopes, self.closed = counts, error, [], False

    def fetch_counts(self, metric: object, templates: object, scope: object) -> SideCounts:
        if self.error is not None:
            raise self.error
        self.scopes.append(scope)
        got = self.counts.get(metric.name)  # type: ignore[attr-defined]
        if got is None:
            return SideCounts(HistogramCounts((), ()), missing=True)
        return SideCounts(got, missing=False)  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    import yaml

    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(COUNTS_CONFIG))
    (tmp_path / "kayenta.yaml").write_text(yaml.safe_dump(SERIES_CONFIG))
    release = (ROOT / "deployments/releases/goldengoose.yaml").read_text()
    release = release.replace("../canary-configs/goldengoose.yaml", "shop.yaml")
    path = tmp_path / "release.yaml"
    path.write_text(release)
    return path


PRODUCTION = {
    "error-rate": RatioCounts(events=97.0, total=18600.0),
    "latency": HistogramCounts(BOUNDS, tuple(x * 18600 / LATENCY[-1] for x in LATENCY)),
}


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: FakeSource,
         *args: str) -> tuple[int, str, str]:  # fmt: skip
    monkeypatch.setattr(cli, "make_source", lambda url: source)
    code = cli.main(["plan", "--prometheus", "http://127.0.0.1:9090", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text(monkeypatch, capsys, spec: Path) -> None:
    source = FakeSource(PRODUCTION)
    code, out, err = _run(monkeypatch, capsys, source, "--spec", str(spec), "--effect", "latency=0.5")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("plan for 'shop' from production's last 10m00s: looks every 15s after a 10s warm-up")
    assert lines[1].startswith("error-rate: production serves 31 req/s at 0.522% errors; to catch +100%")
    assert any(line.startswith("latency: production serves 31 req/s, p50 24.5 ms") and "to catch 50% slower" in line
               for line in lines)  # fmt: skip
    assert lines[-1] == "not planned (series metrics, judged on range-query points): p99"
    scope = source.scopes[0]
    assert (scope.scope, scope.step, (scope.end - scope.start).total_seconds()) == ("primary", 1, 600.0)
    assert dict(scope.extended_scope_params) == {"rate_window": "5s"} and source.closed


def test_cli_json_and_missing_metric(monkeypatch, capsys, spec: Path) -> None:
    source = FakeSource({"error-rate": PRODUCTION["error-rate"]})
    code, out, _ = _run(monkeypatch, capsys, source, "--spec", str(spec), "--json", "--window", "1h", "--seed", "3")
    assert code == 0
    data = json.loads(out)
    assert (data["window"], data["seed"], data["config"]) == (3600.0, 3, "shop")
    rates, latency = data["metrics"]
    assert rates["planned"] and rates["request_rate"] == pytest.approx(18600 / 3600)
    assert len(rates["detection"]) == len(rates["requests"]) and rates["lifetime_suffices"] is False
    assert latency["status"] == "missing"
    assert any(line.startswith("latency: no plan: production has no series") for line in data["lines"])


def test_cli_series_only_config_needs_no_prometheus(monkeypatch, capsys, spec: Path) -> None:
    text = spec.read_text().replace("shop.yaml", "kayenta.yaml")
    spec.write_text(text)
    code, out, _ = _run(monkeypatch, capsys, FakeSource({}, error=AssertionError("not called")), "--spec", str(spec))
    assert code == 0 and "planning applies to ratio and histogram metrics" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--effect", "p99=0.5"], "--effect: effect for 'p99': canary config 'shop' has no count metric"),
        (["--effect", "latency"], "argument --effect: 'latency' is not METRIC=EFFECT"),
        (["--effect", "latency=-1"], "argument --effect: 'latency=-1' is not METRIC=EFFECT"),
        (["--window", "10x"], "argument --window: '10x' is not a duration"),
        (["--window", "0s"], "argument --window: '0s' is no time at all"),
        (["--power", "1.5"], "argument --power"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_the_argument(monkeypatch, capsys, spec: Path, args, message) -> None:
    try:
        code, _, err = _run(monkeypatch, capsys, FakeSource(PRODUCTION), "--spec", str(spec), *args)
    except SystemExit as exc:  # argparse's own checks
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    assert message in err


def test_cli_bad_spec_exits_2(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = _run(monkeypatch, capsys, FakeSource({}), "--spec", str(tmp_path / "none.yaml"))
    assert code == 2 and f"--spec {tmp_path / 'none.yaml'}: release spec" in err


def test_cli_prometheus_error_exits_1(monkeypatch, capsys, spec: Path) -> None:
    error = MetricsError("Prometheus at http://127.0.0.1:9090 answered HTTP 503 for metric 'error-rate'")
    code, out, err = _run(monkeypatch, capsys, FakeSource({}, error=error), "--spec", str(spec))
    assert (code, out) == (1, "")
    assert "cannot read production's counts (scope 'primary') from Prometheus: Prometheus at" in err
    assert "HTTP 503" in err


def test_cli_unreachable_prometheus_for_real(spec: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "canary", "plan", "--spec", str(spec), "--prometheus", "http://127.0.0.1:1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Prometheus at http://127.0.0.1:1 is unreachable" in done.stderr


def test_the_plan_task_gives_its_freed_arrays_back_to_the_system() -> None:
    """tasks.analysis.give_back_free_memory (called as plan-canary ends): the bench's plan
    (bench/plan_cost.py) run once to warm up, then once more in a thread, as the task runs
    beside the looks; glibc keeps its freed arrays resident until the trim gives them back.
    In a fresh interpreter, so nothing else in the process moves the figures."""
    import textwrap

    root = Path(__file__).resolve().parents[2]
    probe = textwrap.dedent("""
        import contextlib, io, os, sys, threading
        sys.path.insert(0, "bench")
        import plan_cost
        from tasks.analysis import give_back_free_memory
        def rss():
            return int(next(l for l in open(f"/proc/{os.getpid()}/status") if l.startswith("VmRSS")).split()[1])
        with contextlib.redirect_stdout(io.StringIO()):
            plan_cost.main(["--repeats", "1"])
            base = rss()
            thread = threading.Thread(target=lambda: plan_cost.main(["--repeats", "1"]))
            thread.start()
            thread.join()
        kept = (rss() - base) // 1024
        gave = give_back_free_memory()
        print(kept, (rss() - base) // 1024, int(gave))
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=180, check=True)  # fmt: skip
    before, after, gave = (int(x) for x in done.stdout.split())
    # measured: 24 MiB kept before the trim, none after
    assert before >= 10 and after <= 5 and gave == 1, done.stdout
