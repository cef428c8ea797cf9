"""What concurrent_releases.py measures besides the releases: memory and CPU from /proc
(``Sampler``), and the Prefect API's latency (``Probe``)."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from bench._bookkeeping import pss_mib
from bench._common import percentile
from canary.platforms.local import procs

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Stat:
    ppid: int
    self_ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: reaped children
    start: int
    rss: int  # bytes


def read_stats() -> dict[int, Stat]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = Stat(int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]),
                                    int(f[19]), int(f[21]) * PAGE)  # fmt: skip
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def tree(stats: dict[int, Stat], root: int | None) -> list[int]:
    """`root` and its live descendants."""
    if root is None or root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(st.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_ticks(stats: dict[int, Stat], root: int | None) -> int:
    """CPU ticks of a process tree: every live member's own and reaped children's."""
    return sum(stats[p].self_ticks + stats[p].child_ticks for p in tree(stats, root))


def flow_run_id(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


@dataclass
class FlowProc:
    run_id: str
    pid: int
    start: int
    argv: tuple[str, ...]
    peak_rss: int = 0
    ticks: int = 0  # last sampled utime + stime (a lower bound: up to one interval missed)
    peak_pss: float = 0.0  # MiB, /proc/PID/smaps_rollup (shared pages by their share)
    first_seen: float = 0.0
    last_seen: float = 0.0


class Sampler:
    """Every `every` s: RSS of each flow-run process, the worker, the server's and
    PostgreSQL's trees; the sum of all flow-run RSS at once."""

    def __init__(self, worker: int, server: int, postgres: Callable[[], int | None],
                 every: float = 1.0) -> None:  # fmt: skip
        self.worker, self.server, self.postgres = worker, server, postgres
        self.every = every
        self.flows: dict[tuple[int, int], FlowProc] = {}
        self._env: dict[tuple[int, int], str | None] = {}
        self.samples: list[dict[str, float]] = []  # t, worker, server, postgres, flows (bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 (a vanished pid mid-read; counted, not fatal)
                self.errors += 1
            self._stop.wait(self.every)

    def sample(self) -> None:
        now = time.time()
        stats = read_stats()
        flows_rss = 0
        worker_tree = tree(stats, self.worker)
        for pid in worker_tree[1:]:
            st = stats[pid]
            key = (pid, st.start)
            if key not in self._env:
                self._env[key] = flow_run_id(pid)
            run = self._env[key]
            parent = stats.get(st.ppid)
            if run is None or (parent and self._env.get((st.ppid, parent.start)) == run):
                continue  # not a flow run, or a helper (git, a shell) under its flow run
            proc = self.flows.get(key)
            if proc is None:
                argv = procs._cmdline(pid) or ()  # noqa: SLF001 (the one /proc reader)
                proc = self.flows[key] = FlowProc(run, pid, st.start, argv, first_seen=now)
            proc.peak_rss = max(proc.peak_rss, st.rss)
            proc.peak_pss = max(proc.peak_pss, pss_mib(pid) or 0.0)
            proc.ticks, proc.last_seen = st.self_ticks, now
            flows_rss += st.rss
        pg = self.postgres()
        busy, total = machine_ticks()
        self.samples.append({
            "t": now, "flows": flows_rss, "busy": busy, "total": total,
            "worker": stats[self.worker].rss if self.worker in stats else 0,
            "server": sum(stats[p].rss for p in tree(stats, self.server)),
            "postgres": sum(stats[p].rss for p in tree(stats, pg)) if pg else 0,
        })  # fmt: skip

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: server tree, worker itself, flow runs the worker reaped,
        PostgreSQL's tree (its postmaster reaps the backends)."""
        stats = read_stats()
        worker = stats.get(self.worker)
        # the warm worker's zygote (a live child with no flow run) reaps the runs it forked:
        # their CPU is in its cutime (its own, the preload and the forks, in its utime)
        zygotes = [st for pid, st in stats.items() if st.ppid == self.worker
                   and self._env.get((pid, st.start), flow_run_id(pid)) is None]  # fmt: skip
        reaped = (worker.child_ticks if worker else 0) + sum(
            z.self_ticks + z.child_ticks for z in zygotes)
        return {"t": time.time(), "server": tree_ticks(stats, self.server) / CLK_TCK,
                "worker": (worker.self_ticks if worker else 0) / CLK_TCK,
                "flow_runs": reaped / CLK_TCK,
                "postgres": tree_ticks(stats, self.postgres()) / CLK_TCK}  # fmt: skip

    def peaks(self, t0: float, t1: float) -> dict[str, float]:
        inside = [s for s in self.samples if t0 <= s["t"] <= t1] or [{"flows": 0, "worker": 0,
                                                                       "server": 0, "postgres": 0}]  # fmt: skip
        return {k: max(s[k] for s in inside) / MIB for k in ("flows", "worker", "server", "postgres")}

    def machine_busy(self, t0: float, t1: float) -> float | None:
        """The share of all cores busy between the first sample after t0 and the last
        before t1 (other sessions' processes included)."""
        inside = [s for s in self.samples if t0 <= s["t"] <= t1]
        if len(inside) < 2 or inside[-1]["total"] == inside[0]["total"]:
            return None
        return (inside[-1]["busy"] - inside[0]["busy"]) / (inside[-1]["total"] - inside[0]["total"])

    def wait_reaped(self, ids: Collection[str], timeout: float = 30.0) -> None:
        """Until the flow-run processes of the runs `ids` are reaped by the worker or its
        zygote (only then is their CPU time in its cutime), or `timeout`."""
        pids = [p.pid for p in self.flows.values() if p.run_id in ids]
        deadline = time.monotonic() + timeout
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)

    def leftovers(self) -> list[procs.ProcessRecord]:
        """Flow-run processes of our worker that still run (to stop on the way out)."""
        return [rec for p in self.flows.values()
                if procs.is_ours(rec := procs.ProcessRecord(p.pid, p.start, p.argv))]  # fmt: skip


class Probe:
    """POST /api/flow_runs/filter {"limit": 1} every `every` s on a kept-alive connection;
    (start epoch, seconds or None on an error/timeout) per call."""

    def __init__(self, api_url: str, every: float = 0.5, timeout: float = 10.0) -> None:
        host_port = api_url.split("//", 1)[1].split("/", 1)[0]
        self.host, _, port = host_port.partition(":")
        self.port, self.every, self.timeout = int(port), every, timeout
        self.calls: list[tuple[float, float | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5)

    def _loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        body = json.dumps({"limit": 1}).encode()
        while not self._stop.is_set():
            began, t0 = time.time(), time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("POST", "/api/flow_runs/filter", body=body,
                             headers={"content-type": "application/json"})  # fmt: skip
                answer = conn.getresponse()
                answer.read()
                ok = 200 <= answer.status < 300
                self.calls.append((began, time.perf_counter() - t0 if ok else None))
            except (OSError, http.client.HTTPException):
                self.calls.append((began, None))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.every - (time.perf_counter() - t0)))
        if conn is not None:
            conn.close()

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        inside = [s for t, s in self.calls if t0 <= t <= t1]
        good = [s for s in inside if s is not None]
        return {"n": len(inside), "errors": len(inside) - len(good),
                "p50_ms": percentile(good, 50) * 1e3, "p95_ms": percentile(good, 95) * 1e3,
                "max_ms": max(good) * 1e3 if good else float("nan")}  # fmt: skip
