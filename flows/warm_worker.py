"""The local chain's process worker: each flow run forked from a pre-imported parent.

    python -m flows.warm_worker --pool canary-local --name canary-local-worker

Prefect's `ProcessWorker` starts every flow run as a fresh `python -m prefect.engine`: about
1.5 CPU-seconds of imports (Prefect, pydantic, numpy, the flows) before the run's first line.
`WarmProcessWorker` is that worker with one change, how the process comes to be: the run's
`python -m prefect.engine` is executed in a child forked from a *zygote*, multiprocessing's
forkserver, which imported Prefect and the flows once when the worker started (`PRELOAD`).
The zygote is single-threaded (it only imports; it never talks to the API), so forking it is
safe, unlike forking the threaded worker.

Everything else is Prefect's own: the executor (`FlowRunExecutorContext`) proposes the
states, watches for Cancelling (the child is killed by its PID, after the control channel's
intent, and the flow's `on_cancellation` hooks run), turns a non-zero exit (a child killed
-9) into Crashed and runs `on_crashed`, and reports the child's PID as the run's
infrastructure_pid. The child runs Prefect's own engine module, so the flow run loads,
logs, heartbeats and ends exactly as in a fresh interpreter. The work pool stays of type
`process`.

Only an exact equivalent is forked: a job whose `command` is this interpreter's
`-m prefect.engine` (what prefect.yaml configures). Any other command, or
CANARY_WORKER_FORK=0 in the worker's environment, runs as Prefect's ProcessWorker would.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import ctypes
import gc
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import runpy
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import anyio
import anyio.abc
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import (
    PREFECT_WORKER_HEARTBEAT_SECONDS,
    PREFECT_WORKER_PREFETCH_SECONDS,
    get_current_settings,
)
from prefect.utilities.processutils import command_from_string, sanitize_subprocess_env
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun  # noqa: TID251 (a type only)
    from prefect.runner._control_channel import ControlChannel

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
)

#: The worker's environment switch: "0" turns forking off (every run a fresh interpreter).
FORK_SWITCH = "CANARY_WORKER_FORK"

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


def run_environment(flow_run_id: str, job_env: dict[str, str | None],
                    control: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """The run's environment, built as Prefect's EngineCommandStarter builds it.

    Args:
        flow_run_id: The flow run.
        job_env: The job configuration's environment (the worker's plus the job's).
        control: The control channel's port and token (empty when it is off).

    Returns:
        The environment, without unset values.
    """
    env: dict[str, str | None] = {**os.environ, **job_env}
    env.update(get_current_settings().to_environment_variables(exclude_unset=True))
    env.update({"PREFECT__FLOW_RUN_ID": flow_run_id,
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false", **control,
                "PREFECT__DEPLOYMENT_NAME": job_env.get("PREFECT__DEPLOYMENT_NAME")})  # fmt: skip
    return {k: v for k, v in sanitize_subprocess_env(env).items() if v is not None and k != ROOM}


class ForkedEngineStarter:
    """Prefect's `ProcessStarter` contract (signal the handle, block until the exit) for a
    run forked from the zygote.

    Args:
        cwd: The run's working directory.
        env: The job configuration's environment.
        stream_output: Whether the child writes to the worker's stdout and stderr.
        control_channel: The executor context's control channel (cancellation intents).
    """

    def __init__(self, *, cwd: Path, env: dict[str, str | None], stream_output: bool,
                 control_channel: ControlChannel | None) -> None:  # fmt: skip
        self._cwd = cwd
        self._env = env
        self._stream_output = stream_output
        self._control_channel = control_channel

    async def start(self, flow_run: FlowRun,
                    task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
                    ) -> None:  # fmt: skip
        """Fork the run's process, hand its handle over, wait for its exit.

        Args:
            flow_run: The flow run.
            task_status: Receives the process handle once the child runs.
        """
        control: dict[str, str] = {}
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                control = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
            except RuntimeError:  # no loopback listener: kill-only cancellation, as Prefect
                pass
        env = run_environment(str(flow_run.id), self._env, control)
        process = forkserver().Process(target=run_engine, name=f"flow-run-{flow_run.id}",
                                       args=(env, str(self._cwd), self._stream_output))  # fmt: skip
        handed_off = False
        try:
            await anyio.to_thread.run_sync(process.start)  # waits for the zygote's socket
            forked = ForkedProcess(process)
            task_status.started(ProcessHandle(cast(multiprocessing.context.SpawnProcess, forked)))
            handed_off = True
            await anyio.to_thread.run_sync(forked.join, abandon_on_cancel=True)
        except BaseException:
            if control and not handed_off and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise


# Prefect registers every worker class by its type; this one is "process" on purpose (the
# pool's type), which Prefect warns about each time the module is executed.
warnings.filterwarnings("ignore", message="Type 'WarmProcessWorker'", category=UserWarning)


class WarmProcessWorker(ProcessWorker):
    """Prefect's process worker whose flow runs fork from the pre-imported zygote."""

    def forks(self, configuration: ProcessJobConfiguration) -> bool:
        """Whether this job's process may be forked: its command is exactly this
        interpreter's `-m prefect.engine`, and forking is not switched off.

        Args:
            configuration: The job's configuration, prepared for the flow run.

        Returns:
            True to fork, False to start the command as Prefect does.
        """
        if os.environ.get(FORK_SWITCH, "1") == "0" or not configuration.command:
            return False
        argv = command_from_string(configuration.command)
        if argv[1:] != ["-m", "prefect.engine"]:
            return False
        ours = Path(sys.executable)
        theirs = Path(argv[0])
        return theirs.parent.resolve() == ours.parent.resolve() and theirs.name == ours.name

    async def run(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                  task_status: anyio.abc.TaskStatus[int] | None = None,
                  ) -> ProcessWorkerResult:  # fmt: skip
        """Run one flow run: forked when `forks` says so, else as Prefect's ProcessWorker.

        Args:
            flow_run: The flow run.
            configuration: The job's configuration.
            task_status: Receives the child's PID (the run's infrastructure_pid).

        Returns:
            The child's exit status and PID.

        Raises:
            RuntimeError: The process did not start.
        """
        if not self.forks(configuration):
            return await super().run(flow_run, configuration, task_status)
        status = task_status if task_status is not None else anyio.TASK_STATUS_IGNORED
        with tempfile.TemporaryDirectory(suffix="prefect") as scratch:
            cwd = Path(configuration.working_dir or scratch).resolve()
            execution = await self._execute(flow_run, configuration, cwd, status)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code,
                                   identifier=str(execution.handle.pid))  # fmt: skip

    async def _execute(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                       cwd: Path, task_status: anyio.abc.TaskStatus[int],
                       ) -> FlowRunExecutionResult | None:  # fmt: skip
        """Prefect's executor around the forked starter (ProcessWorker.run's own steps)."""
        execution: FlowRunExecutionResult | None = None
        async with FlowRunExecutorContext() as ctx:
            starter = ForkedEngineStarter(cwd=cwd, env=configuration.env,
                                          stream_output=configuration.stream_output,
                                          control_channel=ctx.control_channel)  # fmt: skip
            executor = ctx.create_executor(flow_run, starter, resolve_flow=load_flow_from_flow_run,
                                           propose_submitting=False)  # fmt: skip

            async def execute(*, task_status: anyio.abc.TaskStatus[ProcessHandle]
                              = anyio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            async with anyio.create_task_group() as group:
                handle: ProcessHandle = await group.start(execute)
                if handle.pid is None:
                    raise RuntimeError("Flow run process has no PID")
                task_status.started(handle.pid)
        return execution


async def serve(pool: str, name: str | None) -> None:
    """Run the worker until it is stopped (as `prefect worker start --pool POOL` does).

    Args:
        pool: The work pool (of type process).
        name: The worker's name (None: Prefect's default).
    """
    worker = WarmProcessWorker(
        name=name, work_pool_name=pool, prefetch_seconds=PREFECT_WORKER_PREFETCH_SECONDS.value(),
        heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
    )  # fmt: skip
    try:
        await worker.start(printer=print)
    except asyncio.CancelledError:
        print(f"Worker {worker.name!r} stopped!")


def main(argv: list[str] | None = None) -> int:
    """The command line: start the zygote, then the worker.

    Args:
        argv: The arguments (None: sys.argv).

    Returns:
        The exit code.
    """
    from prefect.utilities.processutils import setup_signal_handlers_worker

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="the work pool (type process)")
    parser.add_argument("--name", default=None, help="the worker's name")
    args = parser.parse_args(argv)
    if os.environ.get(FORK_SWITCH, "1") != "0":
        start_zygote()
    setup_signal_handlers_worker(os.getpid(), "the warm process worker", print)
    try:
        asyncio.run(serve(args.pool, args.name))
    except KeyboardInterrupt:  # SIGTERM becomes SIGINT (Prefect's worker signal handling)
        print("Worker stopped!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
