"""What a person sees in the Prefect UI, in a real browser (Debian's headless chromium).

A promoted and a rolled-back release (the flow for real, on the fake platform and counts)
on a real `prefect server start`; then Chromium opens the runs list, each run's page and
the rolled-back release's report: the outcome must show in the list and in the header,
and every picture of the report must have loaded. Screenshots go to $CANARY_SCREENSHOTS
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
