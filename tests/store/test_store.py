"""The store's plain parts, without a server: records, typed emits, recovery, reports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import store.recovery
from canary.values.events import ProductionRestored, ReanalysisRegressed, ReleaseEnded
from canary.values.outcome import FINAL_STATE_NAMES, Outcome, describe_end
from canary.values.repair import ReconcileReport, Recovery
from store import events
from store.runs import RunRecord, candidate, candidate_for

REPO = Path(__file__).resolve().parents[2]


def test_a_run_record_is_what_the_queue_and_the_cli_read() -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord(id="r1", name="canary-release-shop-1.0-abcdef0", flow="f", state_name="Running",
                    state_type="RUNNING", message=None, created=started, started=started,
                    parameters={"app": "shop", "commit": "ABCDEF", "version": "1.0",
                                "pushed_at": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert (run.app, run.commit, run.version, run.live) == ("shop", "ABCDEF", "1.0", True)
    queued = candidate(run)
    assert queued.commit == "abcdef" and queued.live and queued.started and not queued.completed
    assert queued.pushed_at == started
    ended = RunRecord(id="r2", name="n", flow="f", state_name="RolledBack", state_type="FAILED",
                      message="why", parameters={})  # fmt: skip
    assert not ended.live and candidate(ended).completed and ended.seconds is None
    assert candidate_for("ABC").run_id == "commit:ABC" and not candidate_for("ABC").live


def test_emit_sends_the_models_name_resource_and_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "emit_event", lambda **kw: sent.append(kw))
    events.emit(ReleaseEnded(app="shop", outcome=Outcome.ABORTED, image="img", reason="stop"))
    events.emit(ProductionRestored(app="shop", image="img:0", previous_image="img:1"))
    assert [s["event"] for s in sent] == ["canary.release.aborted", "canary.production.restored"]
    assert sent[0]["resource"] == {"prefect.resource.id": "canary.app.shop", "app": "shop",
                                   "prefect.resource.name": "shop: aborted: stop"}
    assert sent[1]["payload"] == {"image": "img:0", "previous_image": "img:1", "commit": None,
                                  "manual": False, "by": None, "run": None, "message": (
        "shop production restored by hand (manual, no analysis): now img:0, was img:1 · no report")}
    assert sent[0]["payload"]["message"] == "shop aborted: stop · no report"


def test_a_regressed_reanalysis_is_emitted_typed_from_its_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(events, "emit_event", lambda **kw: sent.append(kw))
    summary = {"app": "shop", "mode": "post-promotion", "verdict": "Fail", "outcome": "regressed",
               "score": 40.0, "image": "img:1", "previous_image": "img:0",
               "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:05:00+00:00",
               "control_offset_seconds": 60.0,
               "reason": "last score 40 is at or below the marginal threshold 75"}  # fmt: skip
    events.emit(ReanalysisRegressed.model_validate(summary))
    (one,) = sent
    assert one["event"] == "canary.reanalysis.regressed"
    assert one["payload"] == {**summary, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:05:00Z"}


class _Platform:
    """Adapters that record what recovery does; production runs `now`."""

    def __init__(self, now: str | None) -> None:
        self.now, self.calls = now, []  # type: list[str]

    def for_app(self, app: str, spec: object) -> _Platform:
        return self

    def router(self) -> Any:
        return SimpleNamespace(rollback=lambda a: self.calls.append("rollback"))

    def workloads(self) -> Any:
        return SimpleNamespace(remove=lambda a, track: self.calls.append(f"remove {track}"))

    def restore_routes(self) -> None:
        self.calls.append("routes")

    def production_image(self) -> str | None:
        return self.now


@pytest.mark.parametrize(("now", "outcome"), [("img:new", Outcome.PROMOTED), ("img:old", Outcome.ROLLED_BACK)])
def test_recovery_reports_once_through_the_release_report(monkeypatch: pytest.MonkeyPatch, now: str,
                                                          outcome: Outcome) -> None:  # fmt: skip
    reports: list[tuple[str, str]] = []
    sent: list[object] = []
    monkeypatch.setattr(store.recovery, "reported", lambda run_id, app: bool(reports))
    monkeypatch.setattr(store.recovery, "publish_report",
                        lambda app, markdown, description, run_id: reports.append((markdown, description)))
    monkeypatch.setattr(store.recovery, "emit", sent.append)
    platform = _Platform(now)
    done = store.recovery.recover_release(platform, "shop", None, run_id="run-1", image="img:new",  # type: ignore[arg-type]
                                          commit="c" * 40, why=describe_end("Crashed", "killed"))
    assert platform.calls == ["rollback", "remove baseline", "remove canary", "routes"]
    assert done.outcome is outcome and done.published and done.production == now
    ((markdown, description),) = reports
    assert markdown.startswith(f"# Canary release of `shop`: **{outcome.value}**")
    assert "the release's process crashed or was killed: killed" in markdown
    assert description.startswith(f"shop cccccccccccc: {outcome.value}")
    (event,) = sent
    assert isinstance(event, ReleaseEnded) and event.recovered_run == "run-1"
    assert event.outcome is outcome and event.run == "run-1"
    word = {Outcome.PROMOTED: "promoted", Outcome.ROLLED_BACK: "rolled back"}[outcome]
    # the notification's line: recovery's reason leads; no report id here, so the run's page
    assert event.message.startswith(f"shop (ccccccc) {word}: the release's process crashed")
    assert event.message.endswith(" · no report") or " · run http" in event.message
    again = store.recovery.recover_release(platform, "shop", None, run_id="run-1", image="img:new",  # type: ignore[arg-type]
                                           commit=None, why="again")
    assert not again.published and len(reports) == 1 and len(sent) == 1


def test_a_reconcile_report_says_what_it_found_and_did() -> None:
    recovered = Recovery(app="shop", run="r1", outcome=Outcome.ROLLED_BACK, reason="crashed",
                         production="img:0")  # fmt: skip
    report = ReconcileReport(app="shop", found={"removed": ["shop-canary"], "primary": "shop"},
                             spec="repaired with the options of x", freed_lock="freed the lock",
                             recovered=recovered)  # fmt: skip
    assert report.outcome is Outcome.ROLLED_BACK
    assert report.in_words() == [
        "repaired with the options of x",
        "stopped 1 leftover process(es) or object(s) of earlier releases: shop-canary",
        "production is shop; all traffic goes to it (read back)",
        "freed the lock", "release run r1: rolled-back: crashed"]
    assert report.markdown().startswith("# Reconcile of `shop`\n\n- repaired")
    assert ReconcileReport(app="x").in_words() == ["found nothing left over from earlier releases"]


@pytest.mark.parametrize("file", ["prefect.yaml", "prefect.kubernetes.yaml"])
def test_every_named_final_state_ends_the_heartbeat_expectation(file: str) -> None:
    deployments = yaml.safe_load((REPO / file).read_text())["deployments"]
    (reconcile,) = [d for d in deployments if d["name"] == "reconcile"]
    (silent,) = [t for t in reconcile["triggers"] if t["name"] == "reconcile-after-a-release-went-silent"]
    expected = set(silent["expect"])
    assert {f"prefect.flow-run.{name}" for name in FINAL_STATE_NAMES} <= expected
    (crash,) = [t for t in reconcile["triggers"] if t["name"] == "reconcile-after-a-release-ended-badly"]
    assert set(crash["expect"]) == {f"prefect.flow-run.{n}" for n in ("Crashed", "Cancelled", "Failed")}
