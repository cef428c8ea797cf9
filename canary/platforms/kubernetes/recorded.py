"""Putting a user's route object back as it was recorded, for every router.

A router records the user's object on itself in its first write (routes.with_record: the
record and the change land together) and, at the end of a release, puts it back here: one
update to the recorded labels, annotations and spec, then a read-back that must match the
record, or the record is kept for another try. Istio's VirtualService and the Gateway API's
HTTPRoute go through the same steps.
"""

from __future__ import annotations

from canary.errors import PlatformError

from . import routes
from .client import Kind, KubeClient


def restore(client: KubeClient, kind: Kind, name: str) -> None:
    """Put `name` back as recorded and verify it; a no-op when it is gone or has no record.

    Args:
        client: The release runner's client.
        kind: The route's kind (a VirtualService, an HTTPRoute).
        name: The object.

    Raises:
        PlatformError: It does not match the record after the update (the record stays).
    """
    current = client.get(kind, name)
    saved = routes.recorded(current) if current is not None else None
    if saved is None:
        return
    client.update(kind, name, routes.restored)
    back = client.get(kind, name)
    if back is None or not routes.matches_record(back, saved):
        raise PlatformError(f"{kind.kind} {name!r} does not match the recorded original after "
                            "restoring it; the record is kept for another try", transient=False)  # fmt: skip
