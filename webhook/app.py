"""The relay's ASGI app: a signed GitHub delivery in, at most one Prefect event out; and
the release metrics at ``GET /metrics``, fed by Prefect's event stream (webhook.telemetry).

Why a relay at all: Prefect OSS has no webhooks, but its server takes events at
``POST /api/events``. Posting there (instead of ``emit_event`` through a background
websocket) tells us synchronously whether Prefect took the event, so a 202 to GitHub means
"Prefect has it", and anything else is a 503 that GitHub may redeliver. Redeliveries carry
the same ``X-GitHub-Delivery``, hence the same event id, and Prefect drops the duplicate.

Logs carry the delivery id, the event type and the outcome; never the body or the secret.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from store.event_stream import EventStream
from webhook import github, signing
from webhook.settings import Settings
from webhook.telemetry import Exporter, following

log = logging.getLogger("webhook")

_LOGGABLE = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    note: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class Reject(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.outcome = Outcome(status, {"error": error}, note=error)


class _Relay:
    """The relay's handlers over one settings object (and, in tests, an HTTP transport)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None,
                 stream: EventStream | None) -> None:  # fmt: skip
        self.settings, self.transport, self.stream = settings, transport, stream
        self.exporter = Exporter()

    def new_client(self) -> httpx.AsyncClient:
        """A client to Prefect's API with the relay's headers and timeouts."""
        settings = self.settings
        headers = {"User-Agent": "prefect-canary-webhook-relay"}
        if settings.prefect_auth_header:
            headers["Authorization"] = settings.prefect_auth_header
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(
                settings.prefect_timeout_s, connect=min(3.0, settings.prefect_timeout_s)
            ),
            transport=self.transport,
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """One client for the app's lifetime; the release metrics follow Prefect's events."""
        settings = self.settings
        async with self.new_client() as client, following(self.exporter, self.stream):
            app.state.prefect = client
            log.info(
                "relay ready: events to %s, branches %s, body limit %d bytes",
                settings.loggable_api_url,
                ",".join(settings.branches) or "<repository default branch>",
                settings.max_body_bytes,
            )
            yield
        app.state.prefect = None

    async def post_event(self, request: Request, event: dict[str, Any]) -> str | None:
        """POST the event; None when Prefect accepted it, else why not (no body, no secret)."""
        settings = self.settings
        client: httpx.AsyncClient | None = getattr(request.app.state, "prefect", None)
        try:
            if client is None:  # served without lifespan (some test clients): one-off client
                async with self.new_client() as one_off:
                    response = await one_off.post(settings.events_url, json=[event])
            else:
                response = await client.post(settings.events_url, json=[event])
        except httpx.HTTPError as exc:
            return f"Prefect unreachable ({type(exc).__name__})"
        if not response.is_success:
            return f"Prefect answered {response.status_code}"
        return None

    async def handle(self, request: Request, delivery: str, kind: str) -> Outcome:
        """One delivery: verified, parsed, filtered, then posted as a github.push event."""
        settings = self.settings
        body = await read_capped(request, settings.max_body_bytes)
        if not signing.verify(settings.secret, body, request.headers.get(signing.HEADER)):
            raise Reject(401, f"missing or invalid {signing.HEADER}")
        if not kind:
            raise Reject(400, "missing X-GitHub-Event header")
        payload = decode_payload(body, request.headers.get("content-type", ""))
        if kind == "ping":
            return Outcome(200, {"status": "pong"}, note="ping")
        if kind != "push":
            return ignored(f"event type {loggable(kind)!r} is not relayed")
        if not delivery:
            raise Reject(400, "missing X-GitHub-Delivery header (needed to deduplicate)")
        try:
            push = github.parse_push(payload)
        except github.BadPayload as exc:
            raise Reject(400, str(exc)) from None
        skip = _not_relayed(push, settings)
        if skip is not None:
            return ignored(skip)
        event = github.build_event(push, delivery)
        failure = await self.post_event(request, event)
        if failure is not None:
            return Outcome(
                503,
                {
                    "error": f"{failure}; the event was not recorded, redeliver later",
                    "event_id": event["id"],
                },
                note=failure,
                headers={"Retry-After": "30"},
            )
        return Outcome(
            202,
            {"status": "accepted", "event": event["event"], "event_id": event["id"],
             # accepted is not built: the build runs later and may fail (a .canary/ typo)
             "next": f"a build of {push.after[:12]} starts; follow it with `canary status "
                     f"{push.name}`, and `canary history {push.name}` lists it if it fails"},
            note=f"event {event['id']} sha {push.after[:12]}",
        )

    async def github_hook(self, request: Request) -> JSONResponse:
        """POST /github: handle a delivery and log its outcome in one line."""
        started = time.perf_counter()
        delivery = request.headers.get("x-github-delivery", "")
        kind = request.headers.get("x-github-event", "")
        try:
            outcome = await self.handle(request, delivery, kind)
        except Reject as rejection:
            outcome = rejection.outcome
        elapsed_ms = (time.perf_counter() - started) * 1000
        level = logging.WARNING if outcome.status in (401, 503) else logging.INFO
        log.log(
            level,
            "delivery=%s event=%s -> %d %s (%.1f ms)",
            loggable(delivery) or "-",
            loggable(kind) or "-",
            outcome.status,
            outcome.note,
            elapsed_ms,
        )
        return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)


def _not_relayed(push: github.Push, settings: Settings) -> str | None:
    """Why a valid push is not relayed (not a branch, a deletion, an untracked branch)."""
    if push.branch is None:
        return "not a branch push"
    if push.deleted:
        return "branch deletion"
    if not settings.tracks(push.branch, push.default_branch):
        return "branch is not tracked"
    return None


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    follow_events: bool = True,
) -> Starlette:
    """The relay app. `transport` lets tests swap the HTTP layer to Prefect (httpx's seam);
    `follow_events` False serves /metrics without following Prefect's event stream."""
    stream = EventStream(settings.prefect_api_url) if follow_events else None
    relay = _Relay(settings, transport, stream)
    app = Starlette(
        routes=[
            Route("/github", relay.github_hook, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET", "HEAD"]),
            Route("/metrics", relay.exporter.metrics_endpoint, methods=["GET"]),
        ],
        lifespan=relay.lifespan,
    )
    app.state.settings = settings
    return app


def ignored(reason: str) -> Outcome:
    return Outcome(202, {"status": "ignored", "reason": reason}, note=f"ignored: {reason}")


async def read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Reject(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise Reject(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Reject(413, f"body larger than {limit} bytes")
    return bytes(body)


def decode_payload(body: bytes, content_type: str) -> Any:
    """JSON body, or GitHub's form encoding (``payload=<json>``); 400 when neither parses."""
    try:
        text = body.decode("utf-8")
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(text, max_num_fields=10)
            if "payload" not in fields:
                raise Reject(400, "form-encoded delivery without a 'payload' field")
            text = fields["payload"][0]
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Reject(400, "the body is not valid JSON") from None


def loggable(header_value: str) -> str:
    """A header value made safe for one log line (attacker-controlled input)."""
    return _LOGGABLE.sub("?", header_value[:80])
