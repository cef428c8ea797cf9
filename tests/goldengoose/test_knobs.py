"""Knob validation (as a real process exiting non-zero) and resolution/sampling (in process)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from examples.goldengoose.server import KnobError, Settings, load_settings

from .conftest import SERVER_PY, clean_env

BAD_FLAGS = [
    (["--error-ratio", "1.5"], "--error-ratio"),
    (["--error-ratio", "nan"], "--error-ratio"),
    (["--added-latency-ms", "-5"], "--added-latency-ms"),
    (["--jitter-ms", "lots"], "--jitter-ms"),
    (["--jitter-dist", "gaussian"], "--jitter-dist"),
    (["--track", "blue"], "--track"),
    (["--base-latency-ms", "10", "--spread-ms", "20"], "--spread-ms"),
    (["--seed", "1.5"], "--seed"),
    (["--port", "70000"], "--port"),
    (["--version", "1.0\r\nX-Evil: 1"], "--version"),
]


def run_server(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SERVER_PY), "--port", "0", *args],
        env=clean_env(env), capture_output=True, text=True, timeout=10,
    )  # fmt: skip


@pytest.mark.parametrize(("args", "knob"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_exits_nonzero_naming_the_knob(args: list[str], knob: str) -> None:
    done = run_server(args)
    assert done.returncode == 2, done.stderr
    assert knob in done.stderr
    assert "listening" not in done.stdout


def test_bad_env_value_names_the_variable() -> None:
    done = run_server([], env={"GOLDENGOOSE_ADDED_LATENCY_MS": "fast"})
    assert done.returncode == 2
    assert "GOLDENGOOSE_ADDED_LATENCY_MS='fast': must be a number" in done.stderr


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (json.dumps({"error_ratio": "lots"}), "'error_ratio'"),
        (json.dumps({"latency": 5}), "'latency'"),
        (json.dumps({"track": "canary"}), "'track'"),  # not a fault: comes from the deployment
        ("{not json", "faults file"),
        (json.dumps([1, 2]), "faults file"),
    ],
)
def test_bad_faults_file_exits_nonzero(tmp_path: Path, content: str, named: str) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(content)
    done = run_server(["--faults-file", str(faults)])
    assert done.returncode == 2
    assert named in done.stderr


def test_resolution_order_flag_env_faults_file_version_file(tmp_path: Path) -> None:
    (tmp_path / "VERSION").write_text("3.1.0\n")
    (tmp_path / "faults.json").write_text(
        json.dumps({"added_latency_ms": 50, "error_ratio": 0.1, "jitter_ms": 4})
    )
    s = load_settings([], environ={}, base_dir=tmp_path)
    assert (s.version, s.added_latency_ms, s.error_ratio, s.jitter_ms) == ("3.1.0", 50, 0.1, 4)
    env = {
        "GOLDENGOOSE_ERROR_RATIO": "0.2",
        "GOLDENGOOSE_VERSION": "3.2.0",
        "GOLDENGOOSE_JITTER_MS": "",
    }
    s = load_settings(["--error-ratio", "0.3"], environ=env, base_dir=tmp_path)
    assert (s.version, s.error_ratio, s.added_latency_ms, s.jitter_ms) == ("3.2.0", 0.3, 50, 4)
    bare = tmp_path / "bare"
    bare.mkdir()
    assert load_settings([], environ={}, base_dir=bare) == Settings()


def test_explicit_missing_faults_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KnobError, match="does not exist"):
        load_settings([], environ={"GOLDENGOOSE_FAULTS_FILE": str(tmp_path / "x.json")})


def test_latency_draws() -> None:
    n = 20_000
    rng = random.Random(1)
    uniform = [Settings(base_latency_ms=10, jitter_ms=5).latency_ms(rng) for _ in range(n)]
    assert min(uniform) >= 10 and max(uniform) <= 15
    expo = [Settings(jitter_ms=5, jitter_dist="exponential").latency_ms(rng) for _ in range(n)]
    # mean 5 ms; the standard error of the mean is 5/sqrt(n) = 0.035 ms: 0.2 ms is > 5 sigma
    assert abs(statistics.fmean(expo) - 5) < 0.2
    spread = [Settings(base_latency_ms=40, spread_ms=30).latency_ms(rng) for _ in range(n)]
    assert min(spread) >= 10 and max(spread) <= 70
    assert abs(statistics.median(spread) - 40) < 1.5  # sd of the median ~0.4 ms
    fixed = Settings(base_latency_ms=5, added_latency_ms=50)
    assert fixed.latency_ms(rng) == 55

    def replay() -> list[float]:
        r = random.Random(42)
        return [Settings(jitter_ms=10).latency_ms(r) for _ in range(5)]

    assert replay() == replay()
