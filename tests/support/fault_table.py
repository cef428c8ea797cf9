"""The fault-injection table (tests/faults): one row per fault, printed at the end of the run.

A fault test fills its `Row` on whichever process runs it: an xdist worker under `make
test`, where the terminal summary is the controller's. So each row travels with its test's
report (`user_properties`, which xdist sends to the controller), and the root conftest, the
one conftest every process loads, gathers them (`gather`) and prints the table (`lines`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: the user_properties key a row travels under
KEY = "fault_row"


@dataclass
class Row:
    """One fault: how long until production was clean and its end explained, and why."""

    fault: str
    clean_s: float | None = None
    explained_s: float | None = None
    outcome: str = ""
    failures: str = ""
    held: str = "no"
    note: str = ""


def attach(properties: list[tuple[str, object]], rows: Iterable[Row]) -> None:
    """Add `rows` to a test's `user_properties` (called at its teardown, rows final)."""
    properties.extend((KEY, asdict(row)) for row in rows)


def gather(properties: Iterable[tuple[str, object]]) -> list[Row]:
    """The rows a report carries."""
    return [Row(**value) for key, value in properties if key == KEY and isinstance(value, dict)]


def lines(rows: list[Row]) -> list[str]:
    """The table in markdown, then each row's note (the closing note pastes it)."""
    out = ["| fault | clean after (s) | explained after (s) | outcome | failed requests | "
           "invariants held |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        clean = f"{r.clean_s:.1f}" if r.clean_s is not None else "-"
        told = f"{r.explained_s:.1f}" if r.explained_s is not None else "-"
        out.append(f"| {r.fault} | {clean} | {told} | {r.outcome} | {r.failures or '-'} | "
                   f"{r.held} |")  # fmt: skip
    out += [f"- {r.fault}: {r.note}" for r in rows if r.note]
    return out


def summary(terminalreporter: Any, rows: list[Row]) -> None:
    """Print the table as a section of the terminal summary (nothing when no fault ran)."""
    if rows:
        terminalreporter.section("fault injection: time until production was clean")
        for line in lines(rows):
            terminalreporter.write_line(line)
