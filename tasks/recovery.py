"""Moved to store.recovery (recover_release), store.locks (the lock's holders),
tasks.setup.spec_of_run, canary.values.outcome.describe_end and
canary.values.repair.found_in_words.

Compatibility only: flows/canary_release.py still imports these names from here. Delete
this module once it imports from their homes (see the i21-store report's import map).
"""

from __future__ import annotations

from canary.values.outcome import describe_end as _describe_end
from canary.values.repair import found_in_words
from store.locks import free_leaked_lock, held_by_the_dead, other_lock_takers
from store.recovery import recover_release
from tasks.setup import spec_of_run

__all__ = ["describe_end", "found_in_words", "free_leaked_lock", "held_by_the_dead",
           "other_lock_takers", "recover_release", "spec_of_run"]  # fmt: skip


def describe_end(state: object) -> str:
    """A run's end in words, from its Prefect state (canary.values.outcome.describe_end).

    Args:
        state: The run's state (its ``name`` and ``message`` are read).

    Returns:
        The end in words.
    """
    name, message = getattr(state, "name", None), getattr(state, "message", None)
    return _describe_end(name if isinstance(name, str) else None,
                         message if isinstance(message, str) else None)  # fmt: skip
