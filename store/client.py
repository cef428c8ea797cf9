"""The connection to a Prefect server: one client per call, an explicit API URL or the
settings' one, and one error that says where it looked when the server does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

__all__ = ["ApiUnreachable", "api_url_of", "check", "client", "run_url", "ui_url_of"]

_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout)


class ApiUnreachable(RuntimeError):
    """The Prefect server did not answer (or no server is configured)."""


def api_url_of(api_url: str | None = None) -> str:
    """The API URL a call goes to: the given one, else PREFECT_API_URL.

    Args:
        api_url: An explicit API URL (``http://127.0.0.1:4200/api``), or None.

    Returns:
        The URL without a trailing slash.

    Raises:
        ApiUnreachable: Neither is set.
    """
    url = (api_url or PREFECT_API_URL.value() or "").rstrip("/")
    if not url:
        raise ApiUnreachable("PREFECT_API_URL is not set: export it (e.g. "
                             "http://127.0.0.1:4200/api for `make demo`)")  # fmt: skip
    return url


def ui_url_of(api_url: str | None = None) -> str | None:
    """The Prefect UI's base URL: PREFECT_UI_URL, else the API URL without ``/api``.

    Args:
        api_url: An explicit API URL, or None for the settings' one.

    Returns:
        The UI's URL, or None when neither is known.
    """
    ui = PREFECT_UI_URL.value()
    if ui:
        return str(ui).rstrip("/")
    url = api_url or PREFECT_API_URL.value()
    return str(url).rstrip("/").removesuffix("/api") if url else None


def run_url(run_id: str, api_url: str | None = None) -> str | None:
    """A flow run's page in the Prefect UI (None: no UI URL known).

    Args:
        run_id: The flow run's id.
        api_url: An explicit API URL, or None.

    Returns:
        The page's URL.
    """
    ui = ui_url_of(api_url)
    return f"{ui}/runs/flow-run/{run_id}" if ui else None


def _unreachable(url: str, exc: Exception) -> ApiUnreachable:
    return ApiUnreachable(f"the Prefect server at {url} did not answer ({type(exc).__name__}); "
                          "is it running? (`make demo` starts one; check PREFECT_API_URL)")  # fmt: skip


@contextmanager
def client(api_url: str | None = None) -> Iterator[SyncPrefectClient]:
    """A synchronous Prefect client for one call.

    Args:
        api_url: An explicit API URL; None uses the current settings (inside a flow run:
            the run's own server and client) and lets Prefect's errors through.

    Yields:
        The client.

    Raises:
        ApiUnreachable: The server at an explicit ``api_url`` did not answer.
    """
    if api_url is None:  # inside a run: Prefect's own errors, as every task has always seen them
        with get_client(sync_client=True) as plain:
            yield plain
        return
    url = api_url.rstrip("/")
    try:
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as given:
            yield given
    except _UNREACHABLE as exc:
        raise _unreachable(url, exc) from None


def check(api_url: str | None = None) -> str:
    """Ask the server whether it is healthy.

    Args:
        api_url: An explicit API URL, or None for PREFECT_API_URL.

    Returns:
        The API URL that answered.

    Raises:
        ApiUnreachable: It did not answer.
    """
    url = api_url_of(api_url)
    with client(url) as prefect:
        prefect.api_healthcheck()
    try:
        httpx.get(f"{url}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from None
    return url
