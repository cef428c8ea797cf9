"""Early decisions on real releases: how soon good releases are promoted, and that every
regression is still caught, on `make demo`'s stack with the shipped release spec.

    .venv/bin/python bench/early_decisions.py [--good 4] [--json] [--keep]

Starts its own chain (demo.chain, on free ports in a temporary home, never the demo's),
puts goldengoose v1 into production under steady load (60 requests/s through HAProxy, as
the demo), then pushes one commit at a time and waits for its release to end. Every
version answers like the demo's (20 ms plus exponential jitter of mean 10 ms, in its
faults.json), plus the commit's fault:

* `--good` good versions (the same latency and errors as production);
* the regressions: latency +50 % (15 ms added to a 30 ms mean), +60 ms (the demo's v3),
  errors 0 % → 2 % and 0 % → 1 %.

For each: push → decision (the signed push's POST to the end of the release's last look,
from the release event's window end), push → release run end, the looks made, the
outcome and the reason in words. The spec is deployments/releases/goldengoose.yaml
(2-minute lifetime, looks every 15 s, 20 % then 40 % of traffic per track), judged with
deployments/canary-configs/goldengoose.yaml. Every wait has a deadline; the chain is
stopped by its own stop() unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench._common import APP, Bench, missing_binary, private_session, say, start_load, wait_for  # noqa: E402
from canary.config.release import ReleaseSpec  # noqa: E402
from canary.values.outcome import Outcome  # noqa: E402
from demo.config import PRODUCTION_LIKE  # noqa: E402

#: (name, faults.json of the commit, the outcome it must have)
REGRESSIONS: tuple[tuple[str, Mapping[str, object], Outcome], ...] = (
    ("latency +50%", {"added_latency_ms": 15}, Outcome.ROLLED_BACK),
    ("latency +60 ms", {"added_latency_ms": 60}, Outcome.ROLLED_BACK),
    ("errors 0% -> 2%", {"error_ratio": 0.02}, Outcome.ROLLED_BACK),
    ("errors 0% -> 1%", {"error_ratio": 0.01}, Outcome.ROLLED_BACK),
)


def release(bench: Bench, spec: ReleaseSpec, version: str, faults: Mapping[str, object]) -> dict[str, Any]:
    """Push one commit and wait for its release's end: times, looks, outcome, reason."""
    sha = bench.commit(version, {**PRODUCTION_LIKE, **faults})
    sent, _ = bench.push(sha)
    budget = (spec.analysis.begin_after + spec.analysis.lifetime).total_seconds()
    run = bench.final_run("canary-release", sha, timeout=budget + 2 * spec.ready_timeout_seconds + 300)
    found = wait_for(f"the release event of {sha[:12]}",  # persisted in batches: up to ~5 s late
                     lambda: bench.reader.release_end(APP, sha), 60, every=0.5)  # fmt: skip
    ended = found.model
    decided_at = ended.window_end.timestamp() if ended.window_end else None
    return {
        "version": version, "faults": dict(faults), "commit": sha, "outcome": ended.outcome.value,
        "push_to_decision_s": (decided_at - sent) if decided_at else None,
        "push_to_end_s": (run.end - sent) if run.end else None,
        "looks": ended.judgements, "analysis_s": ended.decision_seconds,
        "lifetime_s": ended.lifetime_seconds, "reason": ended.reason,
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every planned release on a private chain, stopped at the end unless --keep."""
    if (binary := missing_binary()) is not None:
        raise SystemExit(f"{binary} is missing: run `make setup`")
    spec = ReleaseSpec.load(ROOT / "deployments" / "releases" / f"{APP}.yaml")
    with private_session("early-decisions-", {}, keep=args.keep,
                         kept=lambda home: f"chain left up (--keep) in {home}") as session:  # fmt: skip
        session.start()
        bench = session.bench
        bench.bootstrap(PRODUCTION_LIKE)
        plan: list[tuple[str, str, Mapping[str, object], Outcome]]
        plan = [(f"good #{i + 1}", f"2.0.{i}", {}, Outcome.PROMOTED) for i in range(args.good)]
        plan += [(name, f"3.0.{i}", faults, want) for i, (name, faults, want) in enumerate(REGRESSIONS)]
        session.load = start_load(session.config, len(plan) * 240 + 300,
                                  session.home / "logs" / "load.log")  # fmt: skip
        say(f"production v1 up under steady load; {len(plan)} releases to go")
        rows = []
        for name, version, faults, want in plan:
            row = release(bench, spec, version, faults)
            row.update(name=name, expected=want.value)
            rows.append(row)
            say(f"{name}: {row['outcome']} (expected {want.value}), push → decision "
                f"{row['push_to_decision_s']:.0f} s, {row['looks']} look(s); {row['reason'][:160]}")
        return {"rows": rows, "loadavg_1min_at_end": os.getloadavg()[0]}


def print_report(result: dict[str, Any]) -> None:
    """The table of every release, and whether each ended as expected."""
    rows = result["rows"]
    print(f"\n{'release':<18}{'outcome':<13}{'expected':<13}{'push→decision':>14}{'push→end':>10}"
          f"{'looks':>7}  reason")  # fmt: skip
    for r in rows:
        print(f"{r['name']:<18}{r['outcome']:<13}{r['expected']:<13}{r['push_to_decision_s']:>13.0f}s"
              f"{r['push_to_end_s']:>9.0f}s{r['looks']:>7}  {r['reason'][:150]}")  # fmt: skip
    good = [r["push_to_decision_s"] for r in rows if r["expected"] == Outcome.PROMOTED.value]
    wrong = [r["name"] for r in rows if r["outcome"] != r["expected"]]
    if good:
        lifetime = rows[0]["lifetime_s"] or 0.0
        print(f"\ngood releases: push → decision median {statistics.median(good):.0f} s "
              f"(min {min(good):.0f}, max {max(good):.0f}); lifetime {lifetime:.0f} s; "
              f"target median <= 110 s: {'ok' if statistics.median(good) <= 110 else 'MISSED'}")
    print("every release as expected" if not wrong else f"NOT as expected: {', '.join(wrong)}")


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit code (0 only when every release ended as expected)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=4, help="good releases (default 4)")
    parser.add_argument("--keep", action="store_true", help="leave the chain up at the end")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if all(r["outcome"] == r["expected"] for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
