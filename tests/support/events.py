"""Our events as the flows emit them, for tests that feed consumers (telemetry, the relay)."""

from __future__ import annotations

from datetime import UTC, datetime

from canary.values.events import ReleaseStarted

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def release_started(app: str, commit: str, lifetime_seconds: float | None = None,
                    at: datetime = T0) -> ReleaseStarted:  # fmt: skip
    """A release's start event (the fields its consumers do not read filled plausibly)."""
    return ReleaseStarted(app=app, commit=commit, image=f"registry.test/{app}:{commit[:7]}",
                          run=f"run-{commit[:7]}", started_at=at, lifetime_seconds=lifetime_seconds)
