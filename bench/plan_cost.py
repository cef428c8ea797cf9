"""The plan's CPU, at the bench's release shape: what `plan-canary` spends before deploying.

    PYTHONPATH=$PWD .venv/bin/python bench/plan_cost.py [--repeats 3] [--rate 10] [--errors 0.01]

Plans the goldengoose canary config (deployments/canary-configs/goldengoose.yaml) for the
release shape of bench/concurrent_releases.py (begin after 10 s, 30 s of looks 10 s apart,
steps 20/25/25 %) from synthetic production counts over the flow's 600 s window: `--rate`
requests/s, `--errors` of them 5xx (0 = the bench's apps, whose error metric then has no
plan), latencies spread over 0.5-2.5 ms in goldengoose's 9 %-apart buckets. Each repeat is
the call `tasks.analysis.plan_canary` makes (`plan_config`, 200 simulated releases, seed 0),
timed in process CPU seconds (time.process_time: this process alone, whatever else runs).
Prints one line per figure (`plan_cpu_s=...`, best and median of the repeats), and the
plan's lines once, so a change that alters the plan's answer shows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

import numpy as np  # noqa: E402

from canary.analysis.planning import LookSchedule, describe, plan_config  # noqa: E402
from canary.config import CanaryConfig  # noqa: E402
from canary.config.release import ReleaseSpec  # noqa: E402
from canary.values.counts import HistogramCounts, RatioCounts  # noqa: E402
from examples.goldengoose.server import LATENCY_BUCKETS  # noqa: E402

WINDOW_S = 600.0  # tasks.analysis.plan_canary's default window
SPEC = {
    "app": "gg01", "canary_config": "canary.yaml",
    "analysis": {"lifetime": "30s", "interval": "10s", "begin_after": "10s", "min_analysis": "40s",
                 "lookback": "0s", "step": "1s", "thresholds": {"pass": 95, "marginal": 75}},
    "traffic": {"steps": [20, 25, 25]},
    "scopes": {"control": "baseline", "experiment": "canary",
               "extended_scope_params": {"rate_window": "5s"}},
    "ready_timeout_seconds": 60, "manual_judgement": False,
}  # fmt: skip


def production(rate: float, errors: float) -> dict[str, RatioCounts | HistogramCounts]:
    """Production's counts over the window, as production_counts reads them."""
    total = rate * WINDOW_S
    latencies = np.random.default_rng(1).uniform(0.0005, 0.0025, int(total))
    bounds = (*LATENCY_BUCKETS, float("inf"))
    buckets = tuple(float(np.count_nonzero(latencies <= b)) for b in bounds)
    return {"error-rate": RatioCounts(events=round(total * errors), total=total),
            "latency": HistogramCounts(bounds, buckets)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Time the plan; print `plan_cpu_s=` lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0, help="production req/s [10]")
    parser.add_argument("--errors", type=float, default=0.0, help="production 5xx ratio [0]")
    args = parser.parse_args(argv)
    config = CanaryConfig.load(ROOT / "deployments" / "canary-configs" / "goldengoose.yaml")
    spec = ReleaseSpec.from_data(SPEC, ROOT / "canary.yaml")
    schedule = LookSchedule.from_plan(spec.analysis, spec.traffic.steps)
    counts = production(args.rate, args.errors)
    times, lines = [], []
    for _ in range(args.repeats):
        t0 = time.process_time()
        plan = plan_config(config, schedule, counts, window=WINDOW_S, rng=np.random.default_rng(0),
                           simulations=200)  # fmt: skip
        times.append(time.process_time() - t0)
        lines = describe(plan)
    for line in lines:
        print(f"# {line}")
    print(f"plan_cpu_s_best={min(times):.3f}")
    print(f"plan_cpu_s_median={statistics.median(times):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
