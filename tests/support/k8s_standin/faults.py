"""Fault injection on chosen calls: error answers, dropped connections, concurrent writers.

A fault matches calls by verb, resource, name and subresource; ``skip`` lets the first
matching calls through, ``times`` bounds how often it fires. ``after=True`` lets the call take
effect before failing its answer, which is the case that tests idempotency: the client saw
an error, but the server did the work. ``action`` runs before the call (to play another
writer racing the adapter) and, with ``status=None``, lets the call proceed normally.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    """One API request, as the fault matcher and the request log see it."""

    method: str
    verb: str  # get, list, watch, create, update, patch, delete
    group: str
    plural: str
    namespace: str
    name: str
    subresource: str
    content_type: str


@dataclass
class Fault:
    verb: str | None = None
    plural: str | None = None
    name: str | None = None
    subresource: str | None = None
    status: int | None = 500
    drop: bool = False
    after: bool = False
    retry_after: int | None = None
    action: Callable[[], None] | None = None
    skip: int = 0
    times: int = 1
    hits: int = 0
    seen: int = field(default=0, repr=False)

    def _matches(self, call: Call) -> bool:
        return all(want is None or want == got for want, got in (
            (self.verb, call.verb), (self.plural, call.plural), (self.name, call.name),
            (self.subresource, call.subresource),
        ))

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, **spec: object) -> Fault:
        """Add a fault (see Fault's fields); returns it so tests can assert ``hits``."""
        fault = Fault(**spec)  # type: ignore[arg-type]
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, call: Call) -> Fault | None:
        """The first live fault matching ``call``, counted as fired."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault._matches(call):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
