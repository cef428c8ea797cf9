"""HAProxy as the local traffic router, driven through its admin socket.

One backend per app with four servers: ``primary``, ``baseline``, ``canary`` and ``handoff``
(the spare slot a promotion uses to move production to a new process without dropping a
request). Weights are HAProxy's relative weights (0-256), balanced per request by a weighted
random draw (``balance random(1)``, ``option http-server-close``), so a 90/10 split means
10 % of requests, not connections. Not round-robin: after a promotion's handoff (server
address and weight changes) HAProxy 2.6's round-robin tree was measured sending 100 % of
requests to the canary at 50/50 weights, which a random draw cannot do.
Every change is read back from ``show servers state`` and verified; a mismatch raises.
Runtime weights and addresses survive reloads through ``server-state-file``: `save_state`
writes ``show servers state`` there before the stack signals a reload. The initial weights
in the config never change (primary 100, others 0): HAProxy ignores a saved weight when the
configured one differs.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from canary.errors import ConfigError, PlatformError
from canary.values.weights import Weights

TRACKS = ("primary", "baseline", "canary")
SERVERS = (*TRACKS, "handoff")
PLACEHOLDER_PORT = 1  # nothing listens there; health checks mark the empty slot DOWN


@dataclass(frozen=True)
class ServerState:
    """One server slot of an app's backend, as `show servers state` reports it."""

    name: str
    addr: str
    port: int
    weight: int
    op_state: int  # 0 stopped (DOWN), 1 starting, 2 running, 3 soft-stopping
    admin_state: int  # bit flags; 0 = ready, 1/2/4 = maintenance variants, 8 = drain

    @property
    def up(self) -> bool:
        """True when the slot is operational and not administratively down."""
        return self.op_state == 2 and self.admin_state & 0x07 == 0


def render_config(
    apps: Mapping[str, int],
    *,
    admin_socket: Path,
    state_file: Path,
    stats_port: int,
    servers: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """The whole haproxy.cfg: one frontend on `apps[app]` and one backend per app."""
    lines = [
        "global",
        f"    stats socket {admin_socket} mode 600 level admin expose-fd listeners",
        f"    server-state-file {state_file}",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-keep-alive 10s",
        # Health checks must not flap on a busy 2-core machine: a server marked DOWN gets
        # no traffic, and the split under judgement would silently change.
        "    timeout check 3s",
        "    retries 3",
        "    option redispatch 1",
        "    load-server-state-from-file global",
        "",
        "frontend stats",
        f"    bind 127.0.0.1:{stats_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
    ]
    for app, port in sorted(apps.items()):
        ports = (servers or {}).get(app, {})
        lines += [
            "",
            f"frontend fe_{app}",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend {app}",
        ]
        lines += [
            "",
            f"backend {app}",
            "    balance random(1)",
            "    option http-server-close",
            "    retry-on conn-failure empty-response response-timeout",
        ]
        for name in SERVERS:
            weight = 100 if name == "primary" else 0
            p = ports.get(name, PLACEHOLDER_PORT)
            lines.append(
                f"    server {name} 127.0.0.1:{p} weight {weight} check inter 1s fall 3 rise 1"
            )
    return "\n".join(lines) + "\n"


class AdminSocket:
    """HAProxy's runtime API over its unix socket: one command per call."""

    def __init__(self, path: str | Path, timeout: float = 5.0) -> None:
        self.path, self.timeout = str(path), timeout

    def __call__(self, command: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise PlatformError(
                f"HAProxy admin socket {self.path} did not answer {command.split()[0]!r}: {exc}; "
                "is the local stack running (python -m canary.platforms.local start)?",
                transient=True,
            ) from None
        return b"".join(chunks).decode(errors="replace")


def _check_reply(reply: str, command: str) -> None:
    text = reply.strip()
    bad = ("No such", "Unknown", "Require", "invalid", "Invalid", "not found", "cannot", "Can't")
    if any(b in text for b in bad):
        raise PlatformError(f"HAProxy refused {command!r}: {text}")


class HAProxyRouter:
    """`canary.ports.TrafficRouter` over the admin socket; every change verified by read-back."""

    def __init__(
        self,
        admin_socket: str | Path,
        *,
        state_file: str | Path | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        self.cli = AdminSocket(admin_socket)
        self.state_file = Path(state_file) if state_file else None
        self.drain_timeout = drain_timeout

    # -- TrafficRouter ------------------------------------------------------------------
    def set_weights(self, app: str, weights: Weights) -> None:
        """Apply the split (percentages are HAProxy weights, relative), then verify it."""
        want = {"primary": weights.primary, "baseline": weights.baseline, "canary": weights.canary}
        # Raise before lowering, so the backend never has every weight at 0 (that is a 503).
        for track in sorted(TRACKS, key=lambda t: want[t], reverse=True):
            self._do(f"set weight {app}/{track} {want[track]}")
        self.verify(app, want)

    def read_weights(self, app: str) -> Weights:
        """The split in force, read from HAProxy (the handoff slot counts as primary)."""
        got = self.raw_weights(app)
        try:  # during a promotion handoff, production's share sits on the handoff slot
            return Weights(got["primary"] + got.get("handoff", 0), got["baseline"], got["canary"])
        except ConfigError:
            raise PlatformError(
                f"HAProxy {app}: weights {got} are not a percentage split; roll back to reset them"
            ) from None

    def rollback(self, app: str) -> None:
        """100 % to primary, verified by reading back (idempotent)."""
        self.set_weights(app, Weights.all_primary())

    def restore(self, app: str) -> None:
        """The backend is ours, not the user's: nothing to put back but all traffic to
        production (read back)."""
        self.rollback(app)

    # -- read ---------------------------------------------------------------------------

    def servers(self, app: str) -> dict[str, ServerState]:
        """The app's server slots by name."""
        reply = self.cli(f"show servers state {app}")
        if "Can't find backend" in reply:
            raise PlatformError(f"HAProxy has no backend {app!r}; register the app with the stack")
        lines = reply.splitlines()
        header = next((ln[2:].split() for ln in lines if ln.startswith("# be_id")), None)
        if header is None:
            raise PlatformError(f"unexpected 'show servers state' reply: {reply[:200]!r}")
        out = {}
        for line in lines:
            parts = line.split()
            if len(parts) != len(header) or line.startswith("#"):
                continue
            row = dict(zip(header, parts, strict=True))
            out[row["srv_name"]] = ServerState(
                row["srv_name"],
                row["srv_addr"],
                int(row["srv_port"]),
                int(row["srv_uweight"]),
                int(row["srv_op_state"]),
                int(row["srv_admin_state"]),
            )
        return out

    def raw_weights(self, app: str) -> dict[str, int]:
        """HAProxy's weights of every slot, handoff included."""
        return {n: s.weight for n, s in self.servers(app).items() if n in SERVERS}

    def sessions(self, app: str) -> dict[str, int]:
        """Requests in flight (and queued) per server; one request = one session here."""
        lines = self.cli("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise PlatformError(f"unexpected 'show stat' reply: {lines[:1]!r}")
        header = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == app and row.get("svname") in SERVERS:
                out[row["svname"]] = int(row.get("scur") or 0) + int(row.get("qcur") or 0)
        return out

    def verify(self, app: str, want: Mapping[str, int]) -> None:
        """PlatformError unless HAProxy reads back the weights ``want`` names."""
        got = self.raw_weights(app)
        if any(got.get(t) != w for t, w in want.items()):
            raise PlatformError(f"HAProxy {app}: weights read back {got}, expected {dict(want)}")

    # -- slots --------------------------------------------------------------------------
    def _do(self, command: str) -> None:
        _check_reply(self.cli(command), command)

    def attach(self, app: str, server: str, port: int) -> None:
        """Point a slot at a ready process on 127.0.0.1:port (its weight is not touched)."""
        self._do(f"set server {app}/{server} addr 127.0.0.1 port {int(port)}")
        self._do(f"set server {app}/{server} state ready")
        self._do(f"set server {app}/{server} health up")
        state = self.servers(app)[server]
        if state.port != int(port) or state.admin_state & 0x07:
            raise PlatformError(f"HAProxy {app}/{server}: read back {state}, wanted port {port}")

    def detach(self, app: str, server: str) -> None:
        """Weight 0, then wait until nothing is in flight to it (idempotent)."""
        self._do(f"set weight {app}/{server} 0")
        self.wait_idle(app, server)

    def retire(self, app: str, server: str) -> None:
        """Give the slot's share to primary (the split stays a percentage), then drain it."""
        weights = self.read_weights(app)
        share = getattr(weights, server)
        if share:
            others = {t: getattr(weights, t) for t in TRACKS if t not in ("primary", server)}
            self.set_weights(app, Weights(weights.primary + share, **{server: 0}, **others))
        self.detach(app, server)

    def wait_idle(self, app: str, server: str) -> None:
        """Wait until ``server`` has no sessions (twice in a row), up to drain_timeout."""
        deadline = time.monotonic() + self.drain_timeout
        quiet = 0
        while quiet < 2:  # two zero readings in a row: nothing was being dispatched either
            quiet = quiet + 1 if self.sessions(app).get(server, 0) == 0 else 0
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"HAProxy {app}/{server} still busy after {self.drain_timeout:g}s of draining",
                    transient=True,
                )
            time.sleep(0.05)

    def handoff(self, app: str, port: int) -> None:
        """Move the primary slot to the process on `port` without dropping a request.

        The handoff slot takes primary's weight first, primary drains, then primary itself
        points at the new process and the handoff slot drains: at every instant a slot with
        production's weight serves, and the old process ends with nothing in flight.
        """
        weight = self.servers(app)["primary"].weight
        self.attach(app, "handoff", port)
        self._do(f"set weight {app}/handoff {weight}")
        self.detach(app, "primary")
        self.attach(app, "primary", port)
        self._do(f"set weight {app}/primary {weight}")
        self.detach(app, "handoff")
        self._do(f"set server {app}/handoff state maint")
        state = self.servers(app)["primary"]
        if state.port != port or state.weight != weight:
            raise PlatformError(f"HAProxy {app}: primary read back {state} after handoff")

    def restore_primary(self, app: str, port: int, weight: int) -> None:
        """Undo a failed handoff: primary back on `port` with `weight`, handoff slot emptied."""
        self.attach(app, "primary", port)
        self._do(f"set weight {app}/primary {weight}")
        self.detach(app, "handoff")
        self._do(f"set server {app}/handoff state maint")

    def save_state(self) -> None:
        """Write `show servers state` to the server-state-file (call before a reload)."""
        if self.state_file is None:
            raise ConfigError("HAProxyRouter has no state_file to save to")
        text = self.cli("show servers state")
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(self.state_file)
