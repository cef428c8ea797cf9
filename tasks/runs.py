"""Moved to store.runs and store.current.

Compatibility only: flows/canary_release.py and flows/reanalysis.py still import these names
from here. Delete this module once they import from their homes (see the import map in
the i21-store report).
"""

from __future__ import annotations

from store.current import current_flow_run, stop_requested, this_run
from store.runs import candidate_for, sibling_runs

__all__ = ["candidate_for", "current_flow_run", "sibling_runs", "stop_requested", "this_run"]
