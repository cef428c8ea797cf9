"""Moved to store.turn.

Compatibility only: flows/canary_release.py and flows/reanalysis.py still import these names
from here. Delete this module once they import from their homes (see the import map in
the i21-store report).
"""

from __future__ import annotations

from store.turn import take_lock, wait_for_turn

__all__ = ["take_lock", "wait_for_turn"]
