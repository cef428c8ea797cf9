"""The local chain's process worker: each flow run forked from a pre-imported parent.

    python -m flows.warm_worker --pool canary-local --name canary-local-worker

Prefect's `ProcessWorker` starts every flow run as a fresh `python -m prefect.engine`: about
1.5 CPU-seconds of imports (Prefect, pydantic, numpy, the flows) before the run's first line.
`WarmProcessWorker` is that worker with one change, how the process comes to be: the run's
`python -m prefect.engine` is executed in a child forked from a *zygote*, multiprocessing's
forkserver, which imported Prefect and the flows once when the worker started (flows/zygote.py).
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

The worker also wakes on its pool's `prefect.flow-run.Scheduled` events (flows/wake.py), so
its poll (`PREFECT_WORKER_QUERY_SECONDS`) can be slow without slowing a push's pick-up;
CANARY_WORKER_WAKE=0 turns that off (then only the poll finds runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing.context
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast
from uuid import UUID

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

from flows.wake import Waker
from flows.zygote import ROOM, ForkedProcess, forkserver, run_engine, start_zygote

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun  # noqa: TID251 (a type only)
    from prefect.runner._control_channel import ControlChannel

#: The worker's environment switch: "0" turns forking off (every run a fresh interpreter).
FORK_SWITCH = "CANARY_WORKER_FORK"
#: The worker's environment switch: "0" turns waking on Scheduled events off (poll only).
WAKE_SWITCH = "CANARY_WORKER_WAKE"

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
    """Prefect's process worker whose flow runs fork from the pre-imported zygote, woken by
    its pool's Scheduled events (flows/wake.py)."""

    _waker: Waker | None = None

    async def sync_with_backend(self) -> None:
        """Prefect's sync (work pool, heartbeat); once the pool is known, start the waker."""
        await super().sync_with_backend()
        if self._waker is None and self._work_pool is not None and os.environ.get(WAKE_SWITCH, "1") != "0":
            self._waker = Waker(self._work_pool.id, self._ask)
            waking = asyncio.create_task(self._waker.run())

            async def stop() -> None:
                waking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waking
                self._waker = None

            self._exit_stack.push_async_callback(stop)  # before the runs' task group closes

    async def _ask(self) -> list[UUID]:
        """What the poll does, for the waker: submit the due runs; their ids."""
        return [run.id for run in await self.get_and_submit_flow_runs()]

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
    # Started in the background of a non-interactive shell, a process inherits an ignored
    # SIGINT, and Prefect's handlers (SIGTERM -> SIGINT to itself) then never stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    setup_signal_handlers_worker(os.getpid(), "the warm process worker", print)
    try:
        asyncio.run(serve(args.pool, args.name))
    except KeyboardInterrupt:  # SIGTERM becomes SIGINT (Prefect's worker signal handling)
        print("Worker stopped!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
