"""Translate the official client's exceptions into canary.errors, at the edge.

Callers (and Prefect retry conditions) decide on our types only: 429, 5xx and connection
failures are transient (but not a server certificate that fails verification: that needs the
right CA); 409 is transient too (re-reading and re-applying resolves it, which
KubeClient.update already does a few times); every other 4xx is final and says what the
server said, about which object. Messages never carry request headers, so never a token.
"""

from __future__ import annotations

import json
import ssl

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from canary.errors import CanaryError, ConfigError, PlatformError

from .objects import JSON, entries, text


class InvalidObjectError(PlatformError):
    """The API server rejected an object (400/415/422): fix the manifest, do not retry."""

    def __init__(self, message: str, *, kind: str, name: str, causes: list[JSON]) -> None:
        super().__init__(message, transient=False)
        self.kind, self.name, self.causes = kind, name, causes


class NotFoundError(PlatformError):
    """The object does not exist (any more)."""


class ConflictError(PlatformError):
    """409: the object exists already, or changed under us more often than we re-tried."""

    transient = True

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, transient=True)
        self.reason = reason  # "AlreadyExists" or "Conflict"


class WaitTimeout(PlatformError):
    """An object did not reach the wanted state before its deadline (not retried)."""


def _status_body(exc: ApiException) -> JSON:
    try:
        body: object = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def translate(exc: BaseException, *, action: str, kind: str, name: str = "") -> CanaryError:
    """A canary error for ``exc`` raised while doing ``action`` to ``kind`` ``name``."""
    what = f"{action} {kind}" + (f" {name!r}" if name else "")
    if isinstance(exc, CanaryError):
        return exc
    if isinstance(exc, ApiException):
        body = _status_body(exc)
        message = text(body, "message") or exc.reason or "no message"
        reason = text(body, "reason")
        code = exc.status or 0
        if code == 0:  # TLS and request-building problems: configuration, not luck
            return PlatformError(f"could not {what}: {exc.reason}", transient=False)
        if code == 401:
            return PlatformError(f"could not {what}: 401 Unauthorized, the credentials were "
                                 "rejected (check the token or kubeconfig of the cluster block)",
                                 transient=False)
        if code == 403:
            return PlatformError(f"could not {what}: 403 Forbidden: {message}. Grant the verb in "
                                 "deployments/kubernetes/rbac.yaml", transient=False)
        if code == 404:
            return NotFoundError(f"could not {what}: {message}", transient=False)
        if code == 409:
            return ConflictError(f"could not {what}: {message}", reason=reason or "Conflict")
        if code == 429 or code >= 500:
            error = PlatformError(f"could not {what}: {code} {reason or exc.reason}: {message} "
                                  "(transient, retry)", transient=True)
            error.retry_after = _retry_after(exc)
            return error
        causes = entries(body, "details", "causes")
        return InvalidObjectError(f"the API server rejected {kind} {name!r} ({code} {reason}): "
                                  f"{message}", kind=kind, name=name, causes=causes)
    if isinstance(exc, ConfigException):
        return ConfigError(f"Kubernetes client configuration: {exc}")
    if _certificate_refused(exc):
        return PlatformError(
            f"could not {what}: the API server's TLS certificate was not accepted ({_innermost(exc)}); "
            "give the CA that signed it (the cluster block's ca_cert_path, or the kubeconfig's "
            "certificate-authority): retrying cannot help", transient=False)
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
        return PlatformError(f"could not {what}: the Kubernetes API did not answer "
                             f"({type(exc).__name__}: {exc}); transient, retry", transient=True)
    return PlatformError(f"could not {what}: {type(exc).__name__}: {exc}", transient=False)


def _innermost(exc: BaseException) -> BaseException:
    """The error under urllib3's wrappers (MaxRetryError -> SSLError -> ssl's own)."""
    seen = exc
    for _ in range(5):
        inner = getattr(seen, "reason", None) if isinstance(seen, urllib3.exceptions.MaxRetryError) \
            else next((a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)), None)
        if inner is None:
            return seen
        seen = inner
    return seen


def _certificate_refused(exc: BaseException) -> bool:
    """A certificate that failed verification (wrong or missing CA, wrong host name): unlike a
    TLS connection cut mid-handshake, the same thing happens on every try."""
    return isinstance(_innermost(exc), ssl.SSLCertVerificationError)
