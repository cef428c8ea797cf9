"""A real Prometheus server for tests: own config, own storage, own port, own process.

No pytest in here, so benchmarks and demo scripts can use it too::

    with PrometheusServer(targets={"app": ["127.0.0.1:8001"]}) as prom:
        prom.wait_for("up", lambda r: len(r) >= 2, timeout=15)

It scrapes itself plus file_sd target groups that ``set_targets`` rewrites (Prometheus
re-reads the file; after the first few seconds changes are applied within ~5 s). Startup
and scraping are awaited by polling, never by sleeping a guessed time. ``stop`` ends only
the process this object started (terminate, wait, kill).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_BINARY = "/usr/bin/prometheus"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    """One throw-away Prometheus on 127.0.0.1.

    ``targets`` maps a job name to host:port targets (scraped at ``/metrics``); ``labels``
    optionally maps a target to extra target labels (e.g. ``{"track": "canary"}``);
    ``rules`` is the text of a rule file (recording rules), loaded at start.
    """

    def __init__(
        self,
        *,
        binary: str = DEFAULT_BINARY,
        scrape_interval: str = "1s",
        targets: Mapping[str, Sequence[str]] | None = None,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        rules: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.binary = binary
        self.scrape_interval = scrape_interval
        self.port = 0
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="prometheus-test-"))
        self.config_file = self.dir / "prometheus.yml"
        self.targets_file = self.dir / "targets.json"
        self.log_file = self.dir / "prometheus.log"
        self.rules_file = self.dir / "rules.yml"
        self.rules = rules
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self.set_targets(targets or {}, labels)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        if self._process is not None:
            raise PrometheusError("already started")
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise FileNotFoundError(f"no Prometheus binary at {self.binary}")
        self.port = free_port()
        self._write_config()
        self._log_handle = open(self.log_file, "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise PrometheusError(f"Prometheus exited with {code}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"Prometheus not ready after {timeout}s: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process this object started (no-op if none); keeps nothing running."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def cleanup(self) -> None:
        """Stop, then delete the working directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- configuration -------------------------------------------------------------------

    def set_targets(
        self,
        targets: Mapping[str, Sequence[str]],
        labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Replace the file_sd target groups (atomically: write, then rename)."""
        labels = labels or {}
        groups = [
            {"targets": [target], "labels": {"job": job, **labels.get(target, {})}}
            for job, job_targets in targets.items()
            for target in job_targets
        ]
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets_file)

    def _write_config(self) -> None:
        interval = self.scrape_interval
        rule_files = ""
        if self.rules:
            self.rules_file.write_text(self.rules)
            rule_files = f"rule_files: ['{self.rules_file}']\n"
        self.config_file.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  evaluation_interval: {interval}\n" + rule_files + "scrape_configs:\n"
            "  - job_name: prometheus\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{self.port}']\n"
            "  - job_name: file\n"
            "    file_sd_configs:\n"
            f"      - files: ['{self.targets_file}']\n"
            "        refresh_interval: 1s\n"
        )

    # -- queries -------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path> and return ``data`` (raises PrometheusError on an error answer)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{path} failed: HTTP {exc.code} {exc.read()[:300]!r}") from None
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query result (a vector)."""
        return self.api("query", query=promql)["result"]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll an instant query until ``predicate(result)`` holds; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while True:
            try:
                last = self.query(promql)
                if predicate(last):
                    return last
            except (PrometheusError, urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{promql!r} did not satisfy the condition in {timeout}s: {last}"
                )
            time.sleep(interval)

    def wait_for_scrape_after(
        self, selector: str, moment: float, *, series: int, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll until at least ``series`` series of ``selector`` each have a sample newer than
        ``moment`` (Unix seconds): all a target did before ``moment`` is then stored."""
        return self.wait_for(
            f"timestamp({selector})",
            lambda r: len(r) >= series and min(float(x["value"][1]) for x in r) > moment,
            timeout=timeout,
        )
