"""Weight steps checked by who actually answered, under the goldengoose load driver.

HAProxy weights are relative: 10 % canary is primary 90 / canary 10. The backend draws a
server per request at random by weight, so the tolerance is the looser of 3 requests and 4
binomial standard deviations (4 sigma: a false failure about once in 15 000 checks).
"""

from __future__ import annotations

import math

import pytest

from canary.values.weights import Weights
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, Platform

RATE, DURATION = 250, 1.0  # 250 requests per step


def tolerance(n: int, p: float) -> float:
    return max(3.0, 4.0 * math.sqrt(n * p * (1.0 - p)))


@pytest.mark.slow
def test_weight_steps_match_the_share_of_requests(platform: Platform) -> None:
    wl, router = platform.workloads, platform.router
    wl.deploy(APP, "baseline", platform.images.v1)
    wl.deploy(APP, "canary", platform.images.v2)
    wl.wait_ready(APP, "baseline", 15)
    wl.wait_ready(APP, "canary", 15)

    measured = {}
    steps = [
        Weights(100),
        Weights(90, 0, 10),
        Weights(50, 0, 50),
        Weights(0, 0, 100),
        Weights(80, 10, 10),
    ]
    for weights in steps:
        router.set_weights(APP, weights)
        assert router.read_weights(APP) == weights  # read back from HAProxy itself
        result = drive(platform.url, rate=RATE, duration=DURATION)
        assert result.ok == result.planned, result.summary()
        n = result.ok
        for track in ("primary", "baseline", "canary"):
            want = getattr(weights, track) / 100
            got = result.tracks.get(track, 0)
            measured[(weights, track)] = got
            assert abs(got - want * n) <= tolerance(n, want), (weights, result.tracks)
        # The versions agree with the tracks: v2 only ever answers from the canary.
        assert result.versions.get("2.0.0", 0) == result.tracks.get("canary", 0)
    print(
        {
            f"{w.primary}/{w.baseline}/{w.canary}": {
                t: c for (ww, t), c in measured.items() if ww == w
            }
            for w in steps
        }
    )


@pytest.mark.slow
def test_weights_survive_an_haproxy_reload(platform: Platform) -> None:
    router, stack = platform.router, platform.stack
    router.set_weights(APP, Weights(70, 0, 30))
    worker = stack.worker_pid()
    stack.add_app("other-app")  # a config change: HAProxy reloads with the saved server state
    assert stack.worker_pid() != worker
    assert router.read_weights(APP) == Weights(70, 0, 30)
    assert router.servers(APP)["primary"].port == platform.workloads.get(APP, "primary").port
    assert stack.start()["haproxy"] == "running"  # nothing changed: no second reload
