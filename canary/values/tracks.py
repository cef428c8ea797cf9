"""The tracks of a release."""

from __future__ import annotations

from typing import Literal

__all__ = ["ROUTED", "TRACKS", "Track"]

#: The two short-lived deployments of a release; "primary" is production itself.
Track = Literal["baseline", "canary"]

#: the release's own tracks, in the order they are deployed and removed
TRACKS: tuple[Track, ...] = ("baseline", "canary")

#: every track the router splits traffic between
ROUTED: tuple[str, ...] = ("primary", "baseline", "canary")
