"""GitHub webhook signatures: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

Only the SHA-256 header is accepted. The legacy SHA-1 ``X-Hub-Signature`` adds nothing GitHub
does not also send as SHA-256, so a request carrying only that is treated as unsigned.
The comparison is constant-time (``hmac.compare_digest``) so a forger learns nothing from
how long a wrong guess took to reject.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value GitHub would send for `body` signed with `secret`."""
    return PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the SHA-256 signature of exactly `body` under `secret`."""
    if not header:
        return False
    candidate = header.strip().lower()
    if not candidate.startswith(PREFIX):
        return False
    expected = sign(secret, body)
    # Bytes on both sides: compare_digest refuses non-ASCII str, and a header is attacker input.
    return hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8", "replace"))
