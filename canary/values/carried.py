"""What the platform really carried at a look: the split read back, and the restarts.

Restarts change what a look measured: a router that came back at 100 % production carried
no canary traffic until the next step set the split again. At every look the release reads
the router's split back and the platform's restarts (canary.ports.RestartLog), keeps them
with the look (`LookTraffic`), warns in the run's log, and the report shows planned against
carried shares and lists the restarts with their times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from canary.values.weights import Weights

__all__ = ["LookTraffic", "Restart", "split"]


@dataclass(frozen=True)
class Restart:
    """One restart of a part the release depends on.

    Attributes:
        part: What restarted, e.g. ``haproxy``, ``production/goldengoose``, a pod's container.
        at: When (aware).
        why: Why, in words ("pid 4711 was killed by SIGKILL"); "" when unknown.
        result: What came of it ("restarted as pid 4712", "restart failed: ..."); "" when unknown.
    """

    part: str
    at: datetime
    why: str = ""
    result: str = ""

    def words(self) -> str:
        """The restart in one line, without its time: the part, why, and what came of it."""
        tail = "; ".join(t for t in (self.why, self.result) if t)
        return f"{self.part} restarted" + (f" ({tail})" if tail else "")


def split(weights: Weights) -> str:
    """A split as people read it: ``primary/baseline/canary`` in percent ("50/25/25")."""
    return f"{weights.primary}/{weights.baseline}/{weights.canary}"


@dataclass(frozen=True)
class LookTraffic:
    """The traffic at one look: what was planned, what the router carried, what restarted.

    Attributes:
        planned: The split the release set for the look's window.
        carried: The split read back from the router at the look; None when it could not
            be read (``error`` says why).
        restarts: The platform's restarts since the look before (the first look: since the
            analysis began), oldest first.
        error: Why the split or the restarts could not be read ("" when they were).
    """

    planned: Weights
    carried: Weights | None
    restarts: tuple[Restart, ...] = ()
    error: str = ""

    @property
    def differs(self) -> bool:
        """True when the router carried another split than the planned one."""
        return self.carried is not None and self.carried != self.planned

    def warnings(self) -> list[str]:
        """What a person must know about the look's traffic, one line each ([] when it
        went as planned): a different split, a split that could not be read, restarts."""
        lines = []
        if self.carried is None:
            lines.append(f"the split could not be read back ({self.error or 'no answer'}); "
                         f"planned {split(self.planned)} (primary/baseline/canary)")  # fmt: skip
        elif self.differs:
            lines.append(f"the router carried {split(self.carried)}, not the planned "
                         f"{split(self.planned)} (primary/baseline/canary %): the look "
                         "judged traffic the plan did not send")  # fmt: skip
        elif self.error:
            lines.append(f"restarts could not be read: {self.error}")
        lines += [f"{r.words()} at {r.at:%H:%M:%S} {r.at.tzname() or 'UTC'}" for r in self.restarts]
        return lines
