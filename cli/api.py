"""The CLI's view of one Prefect server: the store bound to its URL (store.view.Store).

No REST reading of its own. An unreachable server raises store.client.ApiUnreachable,
which says where it looked and what to do.
"""

from __future__ import annotations

from store.client import ApiUnreachable
from store.runs import RunRecord
from store.view import Store

__all__ = ["Api", "ApiUnreachable", "Release"]

#: The server the CLI talks to (``--api``, else PREFECT_API_URL).
Api = Store
#: One canary-release run, as an operator sees it.
Release = RunRecord
