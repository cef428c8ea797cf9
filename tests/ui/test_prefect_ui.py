"""What a person sees in the Prefect UI, in a real browser (Debian's headless chromium).

A promoted and a rolled-back release (the flow for real, on the fake platform and counts)
on a real `prefect server start`; then Chromium opens the runs list, each run's page and
the rolled-back release's report: the outcome must show in the list and in the header
(with its reason, the `why:` tag), the report must be the first artifact of the run's
Artifacts tab, the event feed must show the headline, a look's table must fit the page, and
every picture of the report must have loaded. Screenshots go to $CANARY_SCREENSHOTS
(default: a temporary directory), named after what they show.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: run `make setup`")
    from tests.support.prefect_server import PrefectServer

    with PrefectServer() as running:
        yield running


@pytest.fixture(scope="module")
def releases(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One promoted and one rolled-back release, run against the real server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import flows.canary_release as release_flow
    from tests.flows.conftest import fast_retries, install

    states = {}
    with temporary_settings({PREFECT_API_URL: server.api_url}), pytest.MonkeyPatch.context() as mp:
        fast_retries(mp)
        for app, bad in (("ui-good", ()), ("ui-bad", ("latency",))):
            env = install(mp, tmp_path_factory.mktemp(app), app, sequential=True, bad=bad)
            states[app] = release_flow.canary_release(**env.release_args(), return_state=True)
    return states


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _shots() -> Path:
    out = Path(os.environ.get("CANARY_SCREENSHOTS") or "/tmp/canary-screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _open(browser: Any, url: str, shot: str, *, wait_for: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url, wait_until="networkidle")
    page.get_by_text(wait_for, exact=False).first.wait_for(timeout=30_000)
    time.sleep(0.5)  # let images decode before the screenshot (they are checked below)
    page.screenshot(path=str(_shots() / shot), full_page=True)
    return page


def test_the_outcome_shows_in_the_runs_list(server: Any, releases: dict[str, Any], browser: Any) -> None:
    assert releases["ui-good"].name == "Promoted" and releases["ui-bad"].name == "RolledBack"
    ui = server.api_url.removesuffix("/api")
    page = _open(browser, f"{ui}/runs", "runs-list.png", wait_for="RolledBack")
    text = page.inner_text("body")
    assert "Promoted" in text and "RolledBack" in text
    assert "canary-release-ui-good-" in text and "canary-release-ui-bad-" in text


@pytest.mark.parametrize(("app", "label"), [("ui-good", "Promoted"), ("ui-bad", "RolledBack")])
def test_the_outcome_and_its_reason_show_in_the_run_header(server: Any, releases: dict[str, Any],
                                                           browser: Any, app: str, label: str) -> None:  # fmt: skip
    state = releases[app]
    ui = server.api_url.removesuffix("/api")
    page = _open(browser, f"{ui}/runs/flow-run/{state.state_details.flow_run_id}",
                 f"run-{label}.png", wait_for=label)  # fmt: skip
    assert label in page.inner_text("body")  # the state badge in the header
    page.get_by_text("Details", exact=True).first.click()  # the state message: the headline
    page.get_by_text("State Message").first.wait_for(timeout=10_000)
    details = page.inner_text("body")
    page.screenshot(path=str(_shots() / f"run-{label}-details.png"), full_page=True)
    assert state.message[:70] in details, (state.message, details[-2000:])  # long ones fold
    assert state.message.startswith("rolled back: latency" if app == "ui-bad" else "promoted:")


def test_the_report_shows_its_pictures(server: Any, releases: dict[str, Any], browser: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run_id = releases["ui-bad"].state_details.flow_run_id
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
        found = c.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))  # fmt: skip
    report = next(a for a in found if a.key == "canary-report-ui-bad")
    ui = server.api_url.removesuffix("/api")
    page = _open(browser, f"{ui}/artifacts/artifact/{report.id}", "report-rolled-back.png",
                 wait_for="rolled back: latency")  # fmt: skip
    images = page.eval_on_selector_all(
        "img[src^='data:image/png']", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    assert len(images) >= 2, images  # error-rate and latency
    assert all(done and width >= 600 for _, done, width in images), images
    assert any(alt == "latency (failing)" for alt, _, _ in images), images


def _run_page(server: Any, browser: Any, state: Any, shot: str, label: str) -> Any:
    ui = server.api_url.removesuffix("/api")
    return _open(browser, f"{ui}/runs/flow-run/{state.state_details.flow_run_id}", shot, wait_for=label)


def _top(page: Any, text: str) -> float:
    """How far down the page the first element showing `text` starts (px)."""
    box = page.get_by_text(text, exact=False).first.bounding_box()
    assert box is not None, text
    return float(box["y"])


def test_the_reason_shows_at_the_top_of_the_run_page(server: Any, releases: dict[str, Any], browser: Any) -> None:
    """Without a click: the why: tag sits in the header, next to the state badge."""
    from canary.report import reason_tag

    state = releases["ui-bad"]
    page = _run_page(server, browser, state, "run-RolledBack-header.png", "RolledBack")
    time.sleep(0.5)
    why = reason_tag(state.message)
    assert why.startswith("latency"), why
    assert _top(page, f"why:{why[:30]}") < 150 and _top(page, "RolledBack") < 150


def test_the_report_is_the_first_artifact_of_the_run(server: Any, releases: dict[str, Any], browser: Any) -> None:
    """The run page lists the flow run's own artifacts above its task runs': the report is
    the only one there (Prefect orders a run's artifacts by their random ids otherwise)."""
    state = releases["ui-bad"]
    page = _run_page(server, browser, state, "run-RolledBack.png", "RolledBack")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("canary-report-ui-bad").first.wait_for(timeout=10_000)
    time.sleep(0.5)
    page.screenshot(path=str(_shots() / "run-RolledBack-artifacts.png"), full_page=True)
    text = page.inner_text("body")
    flow_run = text.split("Artifacts", 1)[1].split("Flow run", 1)[1].split("Task runs", 1)[0]
    assert "canary-report-ui-bad" in flow_run, flow_run
    for other in ("canary-interval-ui-bad", "canary-progress-ui-bad", "canary-graph-ui-bad"):
        assert other not in flow_run, flow_run


def test_the_event_shows_the_headline(server: Any, releases: dict[str, Any], browser: Any) -> None:
    """The event's resource is named with the headline, which Prefect's default UI (v2, where
    the UI's root leads) shows on the event's card; the older UI (v1) shows the resource's id
    for resources it does not know."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def read() -> list[Any]:
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
            return c.read_events(filter=EventFilter(
                event=EventNameFilter(name=["canary.release.rolled-back"])), limit=50).events  # fmt: skip

    deadline, found = time.monotonic() + 30, read()
    while not found and time.monotonic() < deadline:  # the server persists events in batches
        time.sleep(0.5)
        found = read()
    (event,) = found
    wanted = f"ui-bad 0123456: {releases['ui-bad'].message[:50]}"
    assert event.resource["prefect.resource.name"].startswith(wanted)
    ui = server.api_url.removesuffix("/api")
    page = _open(browser, f"{ui}/v2/events/event/{event.occurred:%Y-%m-%d}/{event.id}",
                 "event-rolled-back.png", wait_for="canary.release.rolled-back")  # fmt: skip
    assert wanted in page.inner_text("body"), page.inner_text("body")[:3000]


def test_a_look_s_table_shows_the_answer_without_scrolling(server: Any, releases: dict[str, Any],
                                                           browser: Any) -> None:  # fmt: skip
    """Prefect shows a table artifact unwrapped in a frame that scrolls sideways: the
    columns that answer (metric, result, effect, canary, baseline) fit in the frame."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run_id = releases["ui-bad"].state_details.flow_run_id
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
        found = c.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))  # fmt: skip
    table = next(a for a in found if a.type == "table")
    ui = server.api_url.removesuffix("/api")
    page = _open(browser, f"{ui}/artifacts/artifact/{table.id}", "look-table.png", wait_for="latency")
    headers, frame = page.evaluate("""() => {
        const t = document.querySelector('table');
        const r = t.parentElement.getBoundingClientRect();
        return [[...t.querySelectorAll('th')].map(h => [h.innerText.trim(), h.getBoundingClientRect().right]),
                r.right];
    }""")  # fmt: skip
    right = dict(headers)
    assert [h for h, _ in headers][:5] == ["metric", "result", "effect", "canary", "baseline"], headers
    assert right["baseline"] <= frame, (headers, frame)
