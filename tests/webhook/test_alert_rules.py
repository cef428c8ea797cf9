"""The example alert rules of deployments/prometheus/ are valid and fire when they should:
`promtool check rules` and `promtool test rules` (canary-alerts.test.yaml beside this file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.shared import in_ci

HERE = Path(__file__).parent
RULES = HERE.parents[1] / "deployments" / "prometheus" / "canary-alerts.yaml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None and not in_ci(),
                                reason="promtool (Debian's prometheus package) is not installed")  # fmt: skip


def promtool(*args: str, cwd: Path = HERE) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is missing: `make setup` installs prometheus"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout


def test_stuck_rollback_and_blind_alerts_fire_when_they_should() -> None:
    done = promtool("test", "rules", "canary-alerts.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The unit test can fail: expecting no rollback alert right after a rollback does."""
    text = (HERE / "canary-alerts.test.yaml").read_text()
    text = text.replace("../../deployments/prometheus/canary-alerts.yaml", str(RULES))
    broken = text.replace("      - eval_time: 10m\n        alertname: CanaryReleaseRolledBack\n",
                          "      - eval_time: 10m\n        alertname: CanaryReleaseRolledBack\n"
                          "        exp_alerts: []\n      - eval_time: 10m\n"
                          "        alertname: CanaryReleaseStuck\n", 1)  # fmt: skip
    assert broken != text
    (tmp_path / "broken.yaml").write_text(broken)
    done = promtool("test", "rules", "broken.yaml", cwd=tmp_path)
    assert done.returncode != 0
