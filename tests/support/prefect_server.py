"""A real ``prefect server start`` in a subprocess, for tests and scripts (no pytest inside).

    with PrefectServer() as server:          # fresh PREFECT_HOME and SQLite DB in a temp dir
        env = {**os.environ, **server.client_env()}
        ...                                   # clients talk to server.api_url

Start-up of a fresh DB takes 15-25 s on a 2-core machine (migrations, block registration),
so the default deadline is a generous 120 s. The server's output goes to a log file (never a
pipe, which could fill and stall it); when start-up fails its tail is in the exception.
stop() signals only the PID it started: SIGTERM, then SIGKILL after `stop_timeout`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual bind-to-0 trick; a race is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class PrefectServerError(RuntimeError):
    """The server did not come up (or died); the message carries its log tail."""


class PrefectServer:
    def __init__(
        self,
        *,
        home: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 15.0,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(extra_env or {})
        self.extra_args = list(extra_args or [])
        self._own_home = home is None
        self.home = (
            Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="prefect-home-"))
        )
        self.log_path = self.home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def client_env(self) -> dict[str, str]:
        """Environment for a client process (flow, worker, relay) using this server."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_API_URL=self.api_url,
        )
        env.update(self.extra_env)
        return env

    def start(self) -> PrefectServer:
        if self.process is not None:
            raise PrefectServerError("this PrefectServer was already started")
        self.home.mkdir(parents=True, exist_ok=True)
        prefect = Path(sys.executable).with_name("prefect")
        cmd = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
        cmd += ["server", "start", "--host", self.host, "--port", str(self.port), *self.extra_args]
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.server_env(),
                cwd=self.home,
                start_new_session=True,  # no terminal signal reaches it; we stop it by PID
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_healthy(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise PrefectServerError(
                    f"prefect server exited with {code} during start-up:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise PrefectServerError(
                    f"prefect server not healthy after {self.startup_timeout:.0f} s at "
                    f"{self.api_url}/health:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """Stop the server process (idempotent); returns its exit code."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            code = process.returncode
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)
        return code

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
