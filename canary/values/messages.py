"""The one line a notification says, answer first: who, what happened, why, how long, where.

    goldengoose 3.0.0 (4b2b528) rolled back: latency-p50 ... critical · 0:46 · report <link>

Pure text from plain values: the producers of our events (the release, the build, recovery,
a production restore) put the finished line into the event's ``message`` (the stuck alarm's
into the start event's ``stuck``), and the notification automations only send
``{{ event.payload.message }}``. So the text is tested here, without a server, and a chat,
a webhook and the event feed all read the same line.

Nothing here prints "nan" or "inf": an unknown duration is left out, a non-finite word in
a reason is replaced, and one line never runs past ``LIMIT`` characters.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["LIMIT", "SEPARATOR", "build_failed", "clean", "duration_text", "ended", "link_text",
           "outcome_words", "restored", "seconds_between", "stuck", "subject", "who"]  # fmt: skip

#: Between the parts of a line.
SEPARATOR = " · "
#: The longest line sent (a reason can be a whole error message).
LIMIT = 600
_REASON_LIMIT = 300
_NON_FINITE = re.compile(r"(?<![\w.])[+-]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)


def clean(text: str, limit: int = LIMIT) -> str:
    """One line of plain words: whitespace collapsed, non-finite numbers in words, capped.

    Args:
        text: Any text (a reason, a headline, an error message).
        limit: The longest result; longer text ends in "…".

    Returns:
        The line.
    """
    line = " ".join(text.split())
    line = _NON_FINITE.sub(lambda m: "not a number" if m.group(1).lower() == "nan"
                           else "unbounded", line)  # fmt: skip
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def duration_text(seconds: float | None) -> str | None:
    """A duration as a clock reads it: ``0:46``, ``12:05``, ``1:02:03``.

    Args:
        seconds: The duration (None, negative or not finite: unknown).

    Returns:
        The text, None when the duration is unknown.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seconds_between(start: datetime | str | None, end: datetime) -> float | None:
    """Seconds from `start` (a time or an ISO 8601 text, e.g. a push's) to `end`.

    Args:
        start: When it began (naive times are UTC; None or unreadable: unknown).
        end: When it ended.

    Returns:
        The seconds, None when the start is unknown.
    """
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            return None
    if start is None:
        return None
    aware = start if start.tzinfo else start.replace(tzinfo=UTC)
    return (end - aware).total_seconds()


def link_text(report: str | None, run: str | None) -> str:
    """Where to read more: the report, else the run, else "no report".

    Args:
        report: The report's page ("" or None: none).
        run: The run's page ("" or None: none).

    Returns:
        ``report <url>``, ``run <url>`` or ``no report``.
    """
    if report:
        return f"report {report}"
    return f"run {run}" if run else "no report"


def who(app: str, version: str | None, commit: str | None) -> str:
    """The release named as a person knows it: ``goldengoose 3.0.0 (4b2b528)``.

    Args:
        app: The app.
        version: Its version (None or empty: left out).
        commit: Its commit (shown short; None or empty: left out).

    Returns:
        The name.
    """
    parts = [app, *([version] if version else []), *([f"({commit[:7]})"] if commit else [])]
    return clean(" ".join(parts), 120)


def outcome_words(outcome: str) -> str:
    """A release's end as the headline words it (``rolled-back`` -> ``rolled back``).

    Args:
        outcome: The outcome's value.

    Returns:
        The words.
    """
    return {"rolled-back": "rolled back", "skipped": "not released"}.get(outcome, outcome)


def _line(*parts: str | None) -> str:
    return clean(SEPARATOR.join(p for p in parts if p))


def ended(*, app: str, version: str | None, commit: str | None, headline: str,
          seconds: float | None, report: str | None, run: str | None) -> str:  # fmt: skip
    """A release's end: ``<app> <version> (<commit>) <headline> · <duration> · report <link>``.

    Args:
        app: The app.
        version: The release's version, if known.
        commit: Its commit.
        headline: The report's first line (``rolled back: latency ...``).
        seconds: From the push (or the run's start) to the end; None: left out.
        report: The report's page ("" or None: the run's, else "no report").
        run: The run's page.

    Returns:
        The line.
    """
    return _line(f"{who(app, version, commit)} {clean(headline, _REASON_LIMIT)}",
                 duration_text(seconds), link_text(report, run))  # fmt: skip


def build_failed(*, app: str, commit: str | None, reason: str, seconds: float | None,
                 run: str | None) -> str:  # fmt: skip
    """A failed build: ``<app> (<commit>) build failed: <reason> · <duration> · run <link>``.

    Args:
        app: The app.
        commit: The commit pushed.
        reason: Why the build failed (its first part is kept).
        seconds: From the push (or the build's start) to the failure; None: left out.
        run: The build run's page.

    Returns:
        The line.
    """
    return _line(f"{who(app, None, commit)} build failed: {clean(reason, _REASON_LIMIT)}",
                 duration_text(seconds), link_text(None, run))  # fmt: skip


def restored(*, app: str, image: str | None, previous: str | None, by: str,
             run: str | None) -> str:  # fmt: skip
    """A production restore (manual, no analysis): who did it, to what, from what.

    Args:
        app: The app.
        image: The image production runs now (read back).
        previous: The image it ran before.
        by: Who or what restored it (``by hand``, ``by canary rollback``).
        run: The restore run's page.

    Returns:
        ``<app> production restored <by> (manual, no analysis): now <image>, was <previous> · run <link>``.
    """
    was = f", was {previous}" if previous else ""
    return _line(f"{app} production restored {by} (manual, no analysis): now "
                 f"{image or 'an unknown image'}{was}", link_text(None, run))  # fmt: skip


def stuck(*, app: str, version: str | None, commit: str | None, started: datetime,
          lifetime_seconds: float | None, run: str | None) -> str:  # fmt: skip
    """The alarm of a release with no end in time (sent by the stuck automation).

    Args:
        app: The app.
        version: The release's version.
        commit: Its commit.
        started: When it started (took the app's lock).
        lifetime_seconds: The analysis time its spec planned (None: left out).
        run: The run's page.

    Returns:
        ``<app> <version> (<commit>) stuck: no end since it started at <time> UTC (lifetime
        <duration>) · run <link>``.
    """
    lifetime = duration_text(lifetime_seconds)
    planned = f" (lifetime {lifetime})" if lifetime else ""
    at = started.astimezone(UTC).strftime("%H:%M:%S")
    return _line(f"{who(app, version, commit)} stuck: no end since it started at {at} UTC"
                 f"{planned}", link_text(None, run))  # fmt: skip


def subject(end: str) -> str:
    """A notification's subject (its title where the receiver shows one).

    Args:
        end: The end in words (``rolled back``, ``build failed``, ``stuck`` ...).

    Returns:
        ``canary release: <end>``.
    """
    return f"canary release: {end}"
