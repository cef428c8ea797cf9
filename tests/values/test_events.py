"""The outcome vocabulary and the typed events: one shape each, round-tripped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from canary.values.events import (
    HISTORY_EVENTS,
    RUN_LABEL,
    BuildFailed,
    BuildSucceeded,
    OperatorCommand,
    ProductionRestored,
    ReleaseEnded,
    ReleaseStarted,
    parse_event,
)
from canary.values.outcome import FINAL_STATE_NAMES, Outcome, outcome_from_production


def test_each_outcome_has_one_event_one_state_and_one_label() -> None:
    assert [o.event for o in Outcome] == [
        "canary.release.promoted", "canary.release.rolled-back",
        "canary.release.aborted", "canary.release.skipped",
    ]
    assert [o.state.name for o in Outcome] == ["Promoted", "RolledBack", "Aborted", "Skipped"]
    assert Outcome.PROMOTED.state.type == "COMPLETED"
    assert Outcome.ROLLED_BACK.state.type == "FAILED"
    assert Outcome.ROLLED_BACK.label == "rolled_back"
    assert set(FINAL_STATE_NAMES) == {"Promoted", "RolledBack", "Aborted", "Skipped"}
    for outcome in Outcome:
        assert Outcome.from_event(outcome.event) is outcome
        assert Outcome.from_state_name(outcome.state.name) is outcome
    assert Outcome.from_event("canary.build.succeeded") is None
    assert Outcome.from_event("canary.release.sideways") is None
    assert Outcome.from_state_name("Failed") is None
    assert Outcome.from_state_name(None) is None


@pytest.mark.parametrize(("now", "before", "want"), [
    ("img:new", "img:old", Outcome.PROMOTED),
    ("img:old", "img:old", Outcome.ROLLED_BACK),
    ("img:new", "img:new", Outcome.ROLLED_BACK),  # it ran already: this release changed nothing
    (None, "img:old", Outcome.ROLLED_BACK),  # could not be read back: never "promoted"
    ("img:other", "img:old", Outcome.ROLLED_BACK),
    ("img:new", None, Outcome.PROMOTED),  # recovery may not know what ran before
])
def test_the_outcome_is_what_production_runs_read_back(now: str | None, before: str | None,
                                                        want: Outcome) -> None:
    assert outcome_from_production(now=now, image="img:new", before=before) is want


def test_every_event_round_trips_through_its_payload() -> None:
    events = [
        BuildSucceeded(app="shop", image="img:1", commit="a" * 40, repo="/r", version="1.0",
                       app_config={"release.yaml": "x"}),
        BuildFailed(app="shop", commit="a" * 40, repo="/r", reason="compile error"),
        ReleaseEnded(app="shop", outcome=Outcome.ROLLED_BACK, image="img:1", commit="a" * 40,
                     reason="latency +60%", score=12.5, failing=({"metric": "latency",
                     "result": "High", "critical": True, "effect": "+60%"},),  # type: ignore[arg-type]
                     judgements=2, lifetime_seconds=120.0),
        ProductionRestored(app="shop", image="img:0", previous_image="img:1"),
        OperatorCommand(app="shop", action="abort", run="r-1", by="ana"),
    ]
    for event in events:
        name = event.event_name if isinstance(event, ReleaseEnded) else event.name
        payload = event.payload()
        back = parse_event(name, "canary.app.shop", payload)
        # the notification's line is filled from the fields when the producer gave none
        lines = {k: payload[k] for k in ("message", "stuck") if k in payload}
        assert back == event.model_copy(update=lines)
        assert all(isinstance(line, str) and line.startswith("shop ") for line in lines.values())
        named = ({"prefect.resource.name": "shop aaaaaaa: rolled-back: latency +60%"}
                 if isinstance(event, ReleaseEnded) else {})  # fmt: skip
        assert event.resource() == {"prefect.resource.id": "canary.app.shop", "app": "shop", **named}
        assert "app" not in payload


def test_a_release_start_and_its_end_name_the_run_for_the_stuck_alarm() -> None:
    started = ReleaseStarted(app="shop", commit="a" * 40, image="img:1", run="r-1", version="2.0",
                             started_at=datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC),
                             lifetime_seconds=120.0)  # fmt: skip
    assert started.name == "canary.release.started" and Outcome.from_event(started.name) is None
    assert started.resource() == {"prefect.resource.id": "canary.app.shop", "app": "shop",
                                  RUN_LABEL: "r-1"}  # fmt: skip
    assert started.payload()["stuck"] == ("shop 2.0 (aaaaaaa) stuck: no end since it started at "
                                          "12:00:05 UTC (lifetime 2:00) · no report")
    back = parse_event(started.name, "canary.app.shop", started.payload())
    assert isinstance(back, ReleaseStarted) and back.run == "r-1" and back.version == "2.0"
    ended = ReleaseEnded(app="shop", outcome=Outcome.PROMOTED, run="r-1")
    assert ended.resource()[RUN_LABEL] == "r-1"


def test_a_release_end_names_its_resource_with_the_headline() -> None:
    """The event feed shows a resource's name on each event's card: there, the headline."""
    ended = ReleaseEnded(app="shop", outcome=Outcome.ROLLED_BACK, commit="4b2b528" + "0" * 33,
                         reason="r", headline="rolled back: latency +215% p50, critical")
    assert ended.resource() == {
        "prefect.resource.id": "canary.app.shop", "app": "shop",
        "prefect.resource.name": "shop 4b2b528: rolled back: latency +215% p50, critical"}  # fmt: skip
    skipped = ReleaseEnded(app="shop", outcome=Outcome.SKIPPED, reason="a newer commit came")
    assert skipped.resource()["prefect.resource.name"] == "shop: skipped: a newer commit came"


def test_a_release_end_is_named_by_its_outcome_and_older_payloads_still_read() -> None:
    ended = ReleaseEnded(app="shop", outcome=Outcome.PROMOTED, image="img:1")
    assert ended.event_name == "canary.release.promoted"
    # emitted before the payload carried the outcome: the name says it
    old = parse_event("canary.release.rolled-back", "canary.app.shop",
                      {"image": "img:1", "score": None, "reason": "r", "surprise": 1})
    assert isinstance(old, ReleaseEnded) and old.outcome is Outcome.ROLLED_BACK


def test_foreign_events_are_not_ours_and_bad_payloads_say_which_event() -> None:
    assert parse_event("canary.release.promoted", "github.repo.x", {}) is None
    assert parse_event("prefect.flow-run.Completed", "canary.app.shop", {}) is None
    with pytest.raises(ValueError, match="canary.build.failed event for shop"):
        parse_event("canary.build.failed", "canary.app.shop", {"commit": "a"})
    assert set(HISTORY_EVENTS) == {o.event for o in Outcome} | {"canary.production.restored"}


def test_events_are_frozen() -> None:
    event = BuildFailed(app="shop", commit="c", repo="/r", reason="x")
    with pytest.raises(ValueError):
        event.reason = "changed"  # type: ignore[misc]
