"""Prometheus for the local platform: its config, the file_sd targets, and a tiny query helper.

Workloads come and go during a release, so they are not in prometheus.yml: every app has a
``targets/<app>.json`` (file_sd) that the workloads rewrite atomically whenever a process
starts or stops; Prometheus notices the rename by itself (no reload). Each target carries
``app``, ``track`` and ``version`` labels; ``honor_labels`` keeps the app's own identical
``track``/``version`` labels instead of renaming them ``exported_*``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from canary.errors import MetricsError
from canary.platforms.local import procs


def render_config(
    targets_dir: Path,
    *,
    scrape_interval: float = 1.0,
    haproxy_stats_port: int | None = None,
    release_metrics: str | None = None,
) -> str:
    """prometheus.yml: the apps' file_sd targets in `targets_dir`, HAProxy's stats, and the
    release metrics the webhook relay serves at `release_metrics` (host:port, /metrics)."""
    interval = f"{int(scrape_interval * 1000)}ms"
    timeout = f"{max(int(scrape_interval * 1000) - 10, 10)}ms"
    lines = [
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {timeout}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        "  - job_name: apps",
        "    honor_labels: true",
        "    file_sd_configs:",
        f"      - files: ['{targets_dir}/*.json']",
        "        refresh_interval: 30s",
    ]
    if haproxy_stats_port:
        lines += [
            "  - job_name: haproxy",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{haproxy_stats_port}']",
        ]
    if release_metrics:
        lines += [
            "  - job_name: canary-releases",
            "    static_configs:",
            f"      - targets: ['{release_metrics}']",
        ]
    return "\n".join(lines) + "\n"


def target(
    port: int,
    *,
    app: str,
    track: str,
    version: str,
    metrics_path: str = "/metrics",
    image: str = "",
) -> procs.JSON:
    """One file_sd entry: a process of `app` on `port`, labelled with its track and version."""
    labels = {"app": app, "track": track, "version": version, "__metrics_path__": metrics_path}
    if image:
        labels["image"] = image
    return {"targets": [f"127.0.0.1:{port}"], "labels": labels}


def write_targets(targets_dir: Path, app: str, targets: Iterable[Mapping[str, object]]) -> Path:
    """Replace the app's file_sd file atomically (Prometheus never reads half a file)."""
    path = Path(targets_dir) / f"{app}.json"
    procs.write_json(path, list(targets))
    return path


def read_targets(targets_dir: Path, app: str) -> list[procs.JSON]:
    """The app's file_sd entries as written by write_targets ([] when there are none)."""
    targets = procs.read_json(Path(targets_dir) / f"{app}.json", default=[])
    return [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []


def query(base_url: str, promql: str, timeout: float = 5.0) -> list[procs.JSON]:
    """Instant query; the `result` list. (The analysis uses canary.metrics, not this.)"""
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            doc = procs.as_mapping(json.loads(resp.read()))
    except (OSError, ValueError) as exc:
        raise MetricsError(
            f"Prometheus {base_url} query {promql!r} failed: {exc}", transient=True
        ) from None
    if doc.get("status") != "success":
        raise MetricsError(f"Prometheus rejected {promql!r}: {doc.get('error')}")
    result = procs.as_mapping(doc.get("data")).get("result")
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []


def ready(base_url: str, timeout: float = 1.0) -> bool:
    """True when Prometheus at `base_url` says it is ready."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/-/ready", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False
