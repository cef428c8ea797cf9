"""Moved to canary.waiting.

Compatibility only: flows/canary_release.py and flows/reanalysis.py still import these names
from here. Delete this module once they import from their homes (see the import map in
the i21-store report).
"""

from __future__ import annotations

from canary.waiting import wait_until

__all__ = ["wait_until"]
