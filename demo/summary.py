"""The demo's summary: one row per pushed release, its outcome, and the exit code.

Outcomes are ``canary.values.outcome.Outcome``: a row's outcome is the one both the
release run's final state and its ``canary.release.<outcome>`` event name, or None (shown
as ``failed``) when they disagree, one is missing, or the release did not run to a
promotion or a rollback (a crash, a skip, an abort).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from canary.values.events import BuildSucceeded, ReleaseEnded
from canary.values.outcome import Outcome
from demo.chain import ChainConfig
from demo.config import APP, INTERVAL_KEY
from demo.progress import clock
from store.records import FlowRun

#: The outcomes a release of the demo can have: it ran, and was promoted or rolled back.
RELEASED = (Outcome.PROMOTED, Outcome.ROLLED_BACK)
#: How a row without an outcome reads.
FAILED = "failed"


def words(outcome: Outcome | None) -> str:
    """An outcome as the summary writes it (``rolled back``; ``failed`` for None)."""
    return FAILED if outcome is None else outcome.value.replace("-", " ")


@dataclass
class ReleaseRow:
    """One pushed release of the demo, filled in as it is followed."""

    label: str  # v2, v3
    version: str
    commit: str
    expected: Outcome
    outcome: Outcome | None = None  # None: failed (no outcome, see the module docstring)
    score: float | None = None
    url: str = ""
    reason: str = ""
    seconds: float | None = None
    #: analysis time until the decision, and the number of looks it took
    decided: float | None = None
    looks: int | None = None
    #: the analysis time the release spec planned (its lifetime)
    lifetime: float | None = None

    @property
    def outcome_words(self) -> str:
        """The outcome as the summary writes it (``rolled back``, ``failed``)."""
        return words(self.outcome)

    @property
    def decision(self) -> str:
        """Analysis time until the decision and the looks it took (``0:45 (3 looks)``)."""
        if self.decided is None or self.looks is None:
            return "-"
        return f"{clock(self.decided)} ({self.looks} look{'s' if self.looks != 1 else ''})"

    @property
    def saved(self) -> str:
        """Analysis time the early decision saved (of the planned lifetime)."""
        if self.decided is None or self.lifetime is None:
            return "-"
        return clock(max(0.0, self.lifetime - self.decided))

    def record(self, ended: ReleaseEnded) -> None:
        """Take the score, decision time, looks and lifetime from the release's end event."""
        self.score, self.decided = ended.score, ended.decision_seconds
        self.looks, self.lifetime = ended.judgements, ended.lifetime_seconds


def short_reason(ended: ReleaseEnded | None) -> str:
    """The release's own reason, shortened for the summary: what decided it and when."""
    if ended is None:
        return ""
    reason = ended.reason
    return reason if len(reason) <= 400 else reason[:399] + "…"


def render_summary(rows: Sequence[ReleaseRow]) -> str:
    """The summary table (plain text, fixed-width columns) plus one line per reason."""
    header = ("release", "commit", "version", "outcome", "expected", "score", "decided after",
              "saved", "time", "flow run")  # fmt: skip
    body = [
        (r.label, r.commit[:7], r.version, words(r.outcome), words(r.expected),
         "-" if r.score is None else f"{r.score:g}", r.decision, r.saved,
         "-" if r.seconds is None else clock(r.seconds), r.url or "-")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*line).rstrip() for line in body]
    lines += [f"{r.label}: {r.reason}" for r in rows if r.reason]
    return "\n".join(lines)


def release_outcome(run: FlowRun, ended: ReleaseEnded | None) -> tuple[Outcome | None, str]:
    """The outcome of a final canary-release run and its release-end event, and why.

    Promoted or rolled back only when the run's final state and the event agree; else None
    (failed), saying what the run ended as (a crash, a skip, an abort, a missing or
    contradicting event).

    Args:
        run: The final canary-release run.
        ended: Its ``canary.release.<outcome>`` event, if found.

    Returns:
        (outcome or None, why in words).
    """
    state, message = run.state_name, run.message
    by_run = run.outcome
    if by_run not in RELEASED:
        return None, f"canary-release ended {state}" + (f": {message}" if message else "")
    if ended is None:
        return None, f"the release ended {state} but no {ReleaseEnded.name} event was found"
    if ended.outcome is not by_run:
        return None, f"the release ended {state} but its event says {ended.outcome.value}"
    return by_run, f"{words(by_run)}: {ended.reason or message}"


def verdict(rows: Sequence[ReleaseRow]) -> tuple[int, str]:
    """The exit code and why: 0 only when v2 was promoted AND v3 rolled back."""
    outcomes = {r.label: words(r.outcome) for r in rows}
    wrong = []
    for label, want in (("v2", Outcome.PROMOTED), ("v3", Outcome.ROLLED_BACK)):
        got = outcomes.get(label)
        if got != words(want):
            wrong.append(f"{label} should be {words(want)} but " +
                         (f"was {got}" if got else "was not released"))  # fmt: skip
    if wrong:
        return 1, "; ".join(wrong)
    return 0, "v2 (good) was promoted and v3 (latency regression) rolled back, as expected"


def ui_guide(config: ChainConfig) -> str:
    """Where to look in the Prefect UI, Prometheus and production, one line each."""
    ui = config.ui_url
    events = (f"github.push → {BuildSucceeded.name} → "
              f"{Outcome.PROMOTED.event}/{Outcome.ROLLED_BACK.value}")  # fmt: skip
    rows = [
        ("flow runs", f"{ui}/runs", "build and canary-release runs: logs, task runs, results"),
        ("deployments", f"{ui}/deployments", "build, canary-release (their triggers)"),
        ("automations", f"{ui}/automations",
         "build-on-github-push, canary-release-on-build-succeeded"),
        ("event feed", f"{ui}/events", events),
        ("artifacts", f"{ui}/artifacts",
         f"{INTERVAL_KEY} (one table per judgement), canary-report-{APP}"),
        ("Prometheus", f"http://127.0.0.1:{config.prometheus_port}/graph", "scraped metrics"),
        ("production", f"http://127.0.0.1:{config.app_port}/", f"{APP} through HAProxy"),
    ]  # fmt: skip
    width = max(len(r[1]) for r in rows)
    return "\n".join(f"  {name:<12} {url:<{width}}  {what}" for name, url, what in rows)


#: The release counters the demo shows, as PromQL (the relay's /metrics, scraped by the demo's
#: Prometheus), and the value each must have after a fresh demo.
RELEASE_QUERIES = {
    f'canary_releases_total{{app="{APP}",outcome="{o.label}"}}': 1.0 for o in RELEASED
}


def release_metrics(query: Callable[[str], float | None], *, timeout: float = 30.0,
                    every: float = 1.0) -> dict[str, float | None]:  # fmt: skip
    """The demo's release counters as Prometheus answers them: polled until each has its
    value or `timeout` passes (the last end event reaches Prometheus a scrape later).

    Args:
        query: PromQL → the value of its one sample (None: no sample, or no answer).
        timeout: Seconds to wait at most.
        every: Seconds between polls.

    Returns:
        Each query's last value.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = {promql: query(promql) for promql in RELEASE_QUERIES}
        if got == RELEASE_QUERIES or time.monotonic() > deadline:
            return got
        time.sleep(every)


def render_release_metrics(values: dict[str, float | None], prometheus_url: str) -> str:
    """The release counters in Prometheus, one line each (``-``: no sample)."""
    width = max(len(promql) for promql in values)
    lines = [f"Release metrics in Prometheus ({prometheus_url}; counted since the relay started):"]
    lines += [f"  {promql:<{width}}  {'-' if v is None else f'{v:g}'}" for promql, v in values.items()]
    return "\n".join(lines)
