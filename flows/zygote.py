"""The warm worker's zygote: what it imports once, and the forked child that becomes a flow
run's `python -m prefect.engine` (flows/warm_worker.py starts both; docs/scaling.md).

The zygote is multiprocessing's forkserver with `PRELOAD` imported: single-threaded, it only
imports and forks. A child (`run_engine`) takes its run's environment and directory, shows
itself in /proc as the engine it is (`show_as_engine`), re-reads Prefect's settings, runs
Prefect's `prefect.engine` module as `__main__` and exits like an interpreter.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import multiprocessing.process
import os
import runpy
import sys
import threading
import time
from pathlib import Path

#: What the zygote imports once: Prefect's engine and client, the flows and what they
#: import (the library, the store, the tasks, the blocks). A module that fails to import
#: is skipped by the forkserver; the child then imports it itself, as a fresh run would.
PRELOAD = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.client.orchestration",
    "prefect.deployments.steps",
    "flows.build",
    "flows.canary_release",
    "flows.reanalysis",
    "flows.reconcile",
    "flows.restore_production",
    "blocks.local",
    # multiprocessing runs the worker's main module again in each child (as __mp_main__):
    # with its imports cached here that costs milliseconds
    "prefect.workers.process",
    "flows.zygote",  # the child's entry point, run_engine
)

#: What multiprocessing reports when the forkserver died before the child's exit status.
LOST_STATUS = 255

#: Room the zygote's environment keeps for a child's (see `show_as_engine`): a variable of
#: the zygote's own, never passed to a run.
ROOM = "CANARY_ZYGOTE_ENV_ROOM"
ROOM_BYTES = 32768


def forkserver() -> multiprocessing.context.ForkServerContext:
    """The zygote's context, its preload set (the server starts on first use).

    Returns:
        multiprocessing's forkserver context.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start_zygote() -> None:
    """Start the zygote now, so the first flow run does not wait for its imports; its
    environment keeps `ROOM_BYTES` of room for a child's (`show_as_engine`)."""
    forkserver()
    os.environ[ROOM] = "." * ROOM_BYTES
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        del os.environ[ROOM]


def show_as_engine(env: dict[str, str]) -> bool:
    """Let the child look like what it is, `python -m prefect.engine` with the run's
    environment, to `ps` and to everything that reads /proc/PID/cmdline and environ (the
    tests and benches find a run's process by its PREFECT__FLOW_RUN_ID there).

    Overwrites, in place, the areas the kernel shows (the zygote's argv and environment,
    which nothing references any more once `os.environ` was replaced), as setproctitle
    does. Best effort: False (and nothing written) when an area is too small.

    Args:
        env: The run's environment, written first come first served; the flow run id first.

    Returns:
        Whether both areas were written.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        arg_start, arg_end, env_start, env_end = (int(f) for f in fields[45:49])
    except (OSError, ValueError):
        return False
    argv = b"\0".join(a.encode() for a in (sys.executable, "-m", "prefect.engine")) + b"\0"
    first = {"PREFECT__FLOW_RUN_ID": env.get("PREFECT__FLOW_RUN_ID", "")}
    block = b""
    for key, value in {**first, **env}.items():
        item = f"{key}={value}".encode() + b"\0"
        if len(block) + len(item) < env_end - env_start and b"\0" not in item[:-1]:
            block += item
    if len(argv) > arg_end - arg_start or not block:
        return False
    ctypes.memmove(arg_start, argv.ljust(arg_end - arg_start, b"\0"), arg_end - arg_start)
    ctypes.memmove(env_start, block.ljust(env_end - env_start, b"\0"), env_end - env_start)
    return True


def run_engine(env: dict[str, str], cwd: str | None, stream_output: bool) -> None:
    """The child: become the run's `python -m prefect.engine` (its environment, its
    directory, Prefect's engine module as `__main__`), then finish like an interpreter.

    Args:
        env: The run's whole environment (the flow run id and control channel included).
        cwd: The run's working directory (None: stay).
        stream_output: False sends the child's stdout and stderr to /dev/null.
    """
    # The zygote's objects are the child's too: keep the collector off them, so it never
    # writes to (and so copies) the pages it shares with the zygote and its other children.
    gc.freeze()
    if not stream_output:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    os.environ.clear()
    os.environ.update(env)
    show_as_engine(env)
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = [sys.argv[0] if sys.argv else "python"]
    # Prefect's settings as a fresh interpreter reads them, from this run's environment (the
    # zygote read the worker's); no client is made here: the engine makes its own.
    from prefect.context import refresh_global_settings_context  # noqa: TID251
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging()
    try:
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    finally:
        # multiprocessing ends a child with os._exit: flush like an interpreter's exit
        # (threads' exit hooks drain the log and event queues first, then atexit).
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()


class ForkedProcess:
    """A forked flow-run process as Prefect's `ProcessHandle` reads it (pid, exitcode).

    Args:
        process: The multiprocessing process, started.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess):
        self._process = process
        self._lost = False

    @property
    def pid(self) -> int | None:
        """The child's PID."""
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The child's exit status; 0 when the zygote died first and only the run's own
        states tell how it ended (see `join`)."""
        return 0 if self._lost else self._process.exitcode

    def join(self) -> None:
        """Wait for the child's end.

        When the zygote dies, its children run on but their exit status is lost (reported
        as 255): wait for the PID itself to go, then leave the verdict to the run's own
        final state (and, for a child that dies silently, to its missing heartbeats).
        """
        self._process.join()
        pid = self._process.pid
        if self._process.exitcode != LOST_STATUS or pid is None or not _alive(pid):
            return
        self._lost = True
        while _alive(pid):
            time.sleep(1.0)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which nobody may reap in a container, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
