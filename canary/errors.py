"""One error hierarchy for the whole project.

Every third-party exception is translated into one of these at the edge that called the
third party, so callers (and Prefect retry conditions) decide on *our* types only.
`transient` says whether repeating the same call may succeed (429, 5xx, connection reset,
timeouts); validation errors are never transient.
"""

from __future__ import annotations


class CanaryError(Exception):
    """Base class. Messages say what was wrong, name the offending input and what to do.

    Attributes:
        transient: Repeating the same call may succeed (Prefect tasks retry only these).
    """

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class ConfigError(CanaryError, ValueError):
    """A configuration, parameter or query was rejected. Never retried."""


class PlatformError(CanaryError):
    """A platform call (Kubernetes, local processes, HAProxy) failed."""

    #: Seconds the server asked to wait before retrying (HTTP Retry-After), when it said.
    retry_after: float | None = None


class MetricsError(CanaryError):
    """A metric store could not answer (timeouts and connection errors are transient)."""


class NoDataError(MetricsError):
    """A metric store answered, but without the data the analysis needs."""


class BuildError(PlatformError):
    """A build ran and failed; the message names the failing step and reason."""


class AnalysisError(CanaryError):
    """The analysis itself could not be completed; fails closed (never promotes)."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call that raised `exc` may succeed.

    Args:
        exc: The exception a call raised.

    Returns:
        True for a `CanaryError` marked transient; False for anything else.
    """
    return isinstance(exc, CanaryError) and exc.transient


def in_words(exc: BaseException) -> str:
    """An exception in words for a report or a log line: its type and message.

    Args:
        exc: Any exception (some carry no message at all).

    Returns:
        ``<Type>: <message>``, or just ``<Type>``.
    """
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
