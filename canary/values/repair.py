"""What a repair found and did, as values and in words: a recovered release's end and a
reconcile's report (the ``reconcile`` flow returns one; its log and artifact say it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from canary.values.outcome import Outcome

__all__ = ["ReconcileReport", "Recovery", "found_in_words"]


@dataclass(frozen=True)
class Recovery:
    """What a recovery found and did for one release run that ended badly.

    Attributes:
        app: The app.
        run: The release run's id.
        outcome: How the release ended, from what production runs (read back).
        reason: Why, in words (the run's end, production, a failed cleanup).
        production: The image production runs (None: it could not be read).
        cleanup: The cleanup steps, in words (failures and skips named).
        published: False when the release (or an earlier recovery) had already reported.
    """

    app: str
    run: str
    outcome: Outcome
    reason: str
    production: str | None
    cleanup: tuple[str, ...] = ()
    published: bool = False

    def in_words(self) -> str:
        """One sentence: the run, its outcome and why."""
        return f"release run {self.run}: {self.outcome.value}: {self.reason}"


def found_in_words(found: Mapping[str, object]) -> list[str]:
    """A platform's reconcile report as sentences: what was stopped or forgotten, and what
    production is now.

    Args:
        found: What ``Platform.reconcile`` returned (``stopped``/``removed``, ``dropped``,
            ``primary``...).

    Returns:
        The sentences.
    """
    lines = []
    stopped = _names(found.get("stopped")) or _names(found.get("removed"))
    if stopped:
        lines.append(f"stopped {len(stopped)} leftover process(es) or object(s) of earlier "
                     f"releases: {', '.join(stopped)}")  # fmt: skip
    dropped = _names(found.get("dropped"))
    if dropped:  # e.g. tracks that died with a killed release's process
        lines.append(f"forgot {len(dropped)} recorded process(es) of earlier releases that had "
                     f"already exited: {', '.join(dropped)}")  # fmt: skip
    if not stopped and not dropped:
        lines.append("found nothing left over from earlier releases")
    primary = found.get("primary")
    if primary is not None:
        what = f"process {primary}" if isinstance(primary, int) else str(primary)
        lines.append(f"production is {what}; all traffic goes to it (read back)")
    return lines


def _names(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple | set) and value else []


@dataclass(frozen=True)
class ReconcileReport:
    """What one app's reconcile found and repaired.

    Attributes:
        app: The app.
        found: The platform's own report (``Platform.reconcile``).
        spec: Which release spec the adapters were made with, in words (None: no release
            run named, the platform's fallback).
        freed_lock: How a lock left by a dead holder was freed, in words (None: none was).
        recovered: The end of the release run it was started for, if any.
    """

    app: str
    found: Mapping[str, object] = field(default_factory=dict)
    spec: str | None = None
    freed_lock: str | None = None
    recovered: Recovery | None = None

    @property
    def outcome(self) -> Outcome | None:
        """The recovered release's outcome (None: no release run was recovered)."""
        return None if self.recovered is None else self.recovered.outcome

    def in_words(self) -> list[str]:
        """What reconcile found and did, as sentences."""
        lines = ([self.spec] if self.spec else []) + found_in_words(self.found)
        if self.freed_lock:
            lines.append(self.freed_lock)
        if self.recovered is not None:
            lines.append(self.recovered.in_words())
        return lines

    def markdown(self) -> str:
        """The report artifact: a title and one bullet per sentence."""
        return "\n".join([f"# Reconcile of `{self.app}`", "",
                          *[f"- {w}" for w in self.in_words()], ""])  # fmt: skip
