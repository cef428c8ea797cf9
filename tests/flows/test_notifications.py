"""Notifications end to end: releases on the fake platform, the real Prefect test server's
automations, a generic webhook block, and a real HTTP receiver on 127.0.0.1.

Each end sends exactly one line (promoted, rolled back, aborted, stuck, build failed,
production restored by hand), and a receiver that is slow or down never delays or fails a
release: the server's Actions service sends, not the release.

The server loads a new automation into its triggers' cache a moment after it is created: an
event that comes first is never matched. So the module first sends probe events until every
reactive automation has answered once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client

import flows.canary_release as release_flow
import flows.restore_production as restore_flow
import store.notify as notify
from canary.errors import BuildError
from canary.values.events import BuildFailed, OperatorCommand, ProductionRestored, ReleaseEnded
from canary.values.outcome import Outcome
from flows.build import build
from scripts.register_blocks import main as register_blocks
from store import commands
from store.events import emit
from tests.flows.conftest import COMMIT, PRODUCTION, Env, fast_retries, install
from tests.flows.fakes import LATENCY
from tests.support.receiver import Receiver

#: no end this long after a release's start: stuck (the fast releases here end in ~10 s)
STUCK_AFTER = 30.0
VERSION = "1.2.3"
SHORT = COMMIT[:7]
PROBE = "nt-probe"


def _probe_events() -> dict[str, Any]:
    return {
        "promoted": ReleaseEnded(app=PROBE, outcome=Outcome.PROMOTED, message=f"{PROBE} promoted"),
        "rolled back": ReleaseEnded(app=PROBE, outcome=Outcome.ROLLED_BACK,
                                    message=f"{PROBE} rolled back"),
        "aborted": ReleaseEnded(app=PROBE, outcome=Outcome.ABORTED, message=f"{PROBE} aborted"),
        "build failed": BuildFailed(app=PROBE, commit=COMMIT, repo="r", reason="x",
                                    message=f"{PROBE} build failed"),
        "restored": ProductionRestored(app=PROBE, image="i", message=f"{PROBE} restored"),
    }  # fmt: skip


def _wait_until_the_automations_listen(receiver: Receiver, deadline: float = 120) -> None:
    events = _probe_events()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        heard = set(receiver.texts(lambda t: t.startswith(f"{PROBE} ")))
        missing = [e for kind, e in events.items() if f"{PROBE} {kind}" not in heard]
        if not missing:
            return
        for event in missing:
            emit(event)
        time.sleep(2)
    raise AssertionError(f"the notification automations never answered: {receiver.texts()}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    listening = Receiver()
    names = notify.configure("webhook", listening.url, stuck_after=timedelta(seconds=STUCK_AFTER))
    assert names == sorted(f"canary-notify-{k}" for k in (
        "promoted", "rolled-back", "aborted", "build-failed", "production-restored", "held", "stuck"))
    _wait_until_the_automations_listen(listening)
    yield listening
    listening.stop()
    evidence = os.environ.get("CANARY_NOTIFY_EVIDENCE")  # a file for the received payloads
    if evidence:
        Path(evidence).write_text("".join(
            json.dumps({"path": r.path, "body": r.body}) + "\n" for r in listening.got
            if not r.body.get("text", "").startswith(PROBE)))  # fmt: skip


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    fast_retries(monkeypatch)
    return lambda app, **knobs: install(monkeypatch, tmp_path, app, **knobs)


def _release(e: Env) -> tuple[Any, float]:
    start = time.monotonic()
    state = release_flow.canary_release(**e.release_args(), version=VERSION, return_state=True)
    return state, time.monotonic() - start


def _of(app: str) -> Any:
    return lambda text: text.startswith(f"{app} ")


def _one_line(receiver: Receiver, app: str, deadline: float = 60) -> str:
    (line,) = receiver.wait(_of(app), deadline=deadline)
    return line


def _common(line: str, app: str, what: str) -> None:
    """Who, what, a clock-like duration and a link, in that order; nothing non-finite."""
    assert line.startswith(f"{app} {VERSION} ({SHORT}) {what}: "), line
    parts = line.split(" · ")
    assert len(parts) == 3 and parts[1].count(":") == 1 and parts[1].replace(":", "").isdigit()
    assert parts[2].startswith(("report http", "run http")), line
    assert "nan" not in line.lower() and "inf " not in line.lower()


def test_a_promoted_release_sends_one_line_with_its_reason(receiver: Receiver, env: Any) -> None:
    e = env("nt-promoted")
    state, _ = _release(e)
    assert state.name == "Promoted"
    line = _one_line(receiver, e.app)
    _common(line, e.app, "promoted")
    assert line.split(" · ")[0].endswith(state.message), (line, state.message)
    assert "/artifacts/artifact/" in line  # the report's page, not the run's


def test_a_rolled_back_release_names_the_metric(receiver: Receiver, env: Any) -> None:
    e = env("nt-rolled", bad=LATENCY)
    state, _ = _release(e)
    assert state.name == "RolledBack"
    line = _one_line(receiver, e.app)
    _common(line, e.app, "rolled back")
    assert "latency-p" in line and state.message in line


def test_a_held_release_is_told_with_its_failing_metric_then_its_end(receiver: Receiver, env: Any) -> None:
    """`on_failure: hold`: the hold's line names the failing metric and what to do; nobody
    answers, so the hold's timeout rolls back, and that end is told too."""
    e = env("nt-held", bad=LATENCY)
    spec = yaml.safe_load(e.spec.read_text())
    spec.update({"on_failure": "hold", "hold_timeout_seconds": 3})
    e.spec.write_text(yaml.safe_dump(spec))
    state, _ = _release(e)
    assert state.name == "RolledBack", state.message
    held, ended = receiver.wait(_of(e.app), count=2)
    assert held.startswith(f"{e.app} {VERSION} ({SHORT}) held: latency-p"), held
    assert f"canary approve {e.app}" in held and f"canary reject {e.app}" in held
    _common(ended, e.app, "rolled back")
    assert receiver.wait(_of(e.app), count=3, deadline=3) == [held, ended]  # one line each


def test_a_failed_build_sends_its_reason(receiver: Receiver, env: Any) -> None:
    e = env("nt-build")
    e.rec.fail("build", lambda: BuildError("step compile: exit code 2"), times=None)
    state = build(**e.build_args(), return_state=True)
    assert state.is_failed()
    line = _one_line(receiver, e.app)
    assert line.startswith(f"nt-build ({SHORT}) build failed: step compile: exit code 2 · 0:0")
    assert line.split(" · ")[-1].startswith("run http")


def test_a_manual_production_restore_says_so(receiver: Receiver, env: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    e = env("nt-restore")
    monkeypatch.setattr(restore_flow, "load_block", lambda name: e.platform)
    assert restore_flow.restore_production(app=e.app, image="registry.test/old:1",
                                           platform="fake-platform/test") == "registry.test/old:1"
    line = _one_line(receiver, e.app)
    assert line.startswith(f"nt-restore rolled back to registry.test/old:1: production runs "
                           f"registry.test/old:1 (read back), was {PRODUCTION} · run http"), line


def _long(e: Env) -> Env:
    spec = yaml.safe_load(e.spec.read_text())
    spec["analysis"].update({"lifetime": "180s", "interval": "2s"})
    e.spec.write_text(yaml.safe_dump(spec))
    return e


def _running_id(app: str, deadline: float = 60) -> str:
    end = time.monotonic() + deadline
    with get_client(sync_client=True) as client:
        while time.monotonic() < end:
            runs = [r for r in client.read_flow_runs() if r.parameters.get("app") == app
                    and r.state is not None and r.state.is_running()]  # fmt: skip
            if runs:
                return str(runs[0].id)
            time.sleep(0.25)
    raise AssertionError(f"no running release of {app}")


def test_a_stuck_release_is_told_then_its_abort(receiver: Receiver, env: Any) -> None:
    """No end within STUCK_AFTER of its start: one "stuck" line; the operator's abort: one
    "aborted" line after it."""
    e = _long(env("nt-stuck", sequential=True))
    started = time.monotonic()
    ended: list[Any] = []
    running = threading.Thread(target=lambda: ended.append(_release(e)[0]), daemon=True)
    running.start()
    run_id = _running_id(e.app)
    (stuck,) = receiver.wait(lambda t: t.startswith("nt-stuck ") and " stuck: " in t,
                             deadline=STUCK_AFTER + 60)  # fmt: skip
    waited = time.monotonic() - started
    assert STUCK_AFTER <= waited < STUCK_AFTER + 40, waited
    assert stuck.startswith(f"nt-stuck {VERSION} ({SHORT}) stuck: no end since it started at ")
    assert "(lifetime 3:00)" in stuck and stuck.split(" · ")[-1].startswith("run http")
    commands.send(OperatorCommand(app=e.app, action="abort", run=run_id, by="the test"))
    running.join(120)
    assert [s.name for s in ended] == ["Aborted"]
    (aborted,) = receiver.wait(lambda t: t.startswith(f"nt-stuck {VERSION} ({SHORT}) aborted: "))
    _common(aborted, e.app, "aborted")
    assert receiver.texts(_of(e.app)) == [stuck, aborted]


def test_a_slow_or_down_receiver_never_delays_or_fails_a_release(receiver: Receiver,
                                                                 env: Any) -> None:  # fmt: skip
    """The same good release with the receiver answering at once, answering only after
    longer than the release takes, and not listening at all.

    The server's webhook call gives up after 10 s and Prefect's broker retries a delivery
    that raised (up to 3 times): the slow receiver may get its line more than once, each
    copy with the same event id to drop the repeat by, and the down one may get it once it
    listens again. Neither is the release's business."""
    base_state, base = _release(env("nt-base"))
    receiver.delay = 25.0
    slow_state, slow = _release(env("nt-slow"))
    (slow_line,) = receiver.wait(_of("nt-slow"))  # it was sent (the answer is what is slow)
    receiver.stop()
    try:
        down_state, down = _release(env("nt-down"))
    finally:
        receiver.delay = 0.0
        receiver.start()
    print(json.dumps({"release seconds": {"receiver ok": round(base, 2),
                      "receiver answers after 25 s": round(slow, 2),
                      "receiver down": round(down, 2)}}))  # fmt: skip
    assert [s.name for s in (base_state, slow_state, down_state)] == ["Promoted"] * 3
    assert slow < base + 10 and down < base + 10, (base, slow, down)
    assert slow_line.startswith(f"nt-slow {VERSION} ({SHORT}) promoted: ")
    for app in ("nt-slow", "nt-down"):  # repeats (if any) are one event's, and say so
        assert len({b["event_id"] for b in receiver.bodies(_of(app))}) <= 1


def test_each_end_was_sent_exactly_once_and_no_fast_release_was_stuck(receiver: Receiver) -> None:
    counts = {app: len(receiver.texts(_of(app))) for app in (
        "nt-promoted", "nt-rolled", "nt-build", "nt-restore", "nt-base")}
    assert counts == dict.fromkeys(counts, 1)
    ids = [b["event_id"] for b in receiver.bodies(lambda t: not t.startswith(PROBE))]
    assert all(len(i) == 36 for i in ids)  # the event's UUID: a receiver's key against repeats
    assert [t for t in receiver.texts(lambda t: " stuck: " in t)
            if not t.startswith("nt-stuck ")] == []


def test_register_blocks_replaces_and_removes_the_automations_and_never_shows_the_url(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Last: it replaces the automations the module's releases used."""
    secret = "https://hooks.slack.com/services/T00000000/B00000000/verysecretXXXXXXXXXXXXXX"
    base = ["--state-dir", str(tmp_path), "--stuck-after", "600"]
    monkeypatch.setenv("CANARY_NOTIFY_URL", receiver.url)
    for _ in range(2):
        assert register_blocks([*base, "--notify", "webhook"]) == 0
    (tmp_path / "url").write_text(secret + "\n")
    assert register_blocks([*base, "--notify", "slack", "--notify-url-file",
                            str(tmp_path / "url")]) == 0  # fmt: skip
    with get_client(sync_client=True) as client:
        automations = [a for a in client.read_automations() if a.name.startswith("canary-notify-")]
        slack = client.read_block_document_by_name("canary-notify", "slack-webhook",
                                                   include_secrets=False)  # fmt: skip
        webhooks = client.read_block_documents_by_type("custom-webhook", include_secrets=False)
    names = [a.name for a in automations]
    assert len(names) == len(set(names)) == len(notify.ENDS) + 1  # and the stuck alarm
    stuck = next(a for a in automations if a.name == "canary-notify-stuck")
    assert stuck.trigger.within == timedelta(seconds=600)  # type: ignore[union-attr]
    assert all(a.actions[0].block_document_id == slack.id for a in automations)  # type: ignore[union-attr]
    assert [w.name for w in webhooks if w.name == "canary-notify"] == []  # the old kind is gone
    stored = json.dumps([a.model_dump(mode="json") for a in automations]) + slack.model_dump_json()
    out = capsys.readouterr()
    for text in (out.out, out.err, stored):
        assert secret not in text and receiver.url not in text and "very-secret" not in text
    assert json.loads(out.out.splitlines()[-1])["notifications"]["notify"] == "slack"
    assert register_blocks([*base, "--notify", "none"]) == 0
    assert notify.configured() == []
    monkeypatch.delenv("CANARY_NOTIFY_URL")
    with pytest.raises(SystemExit):
        register_blocks([*base, "--notify", "webhook"])
    assert "CANARY_NOTIFY_URL" in capsys.readouterr().err
