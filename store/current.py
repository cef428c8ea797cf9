"""The flow run the caller runs in: its id, its record, whether somebody asked it to stop,
its tags, its name and its page in the UI."""

from __future__ import annotations

import contextlib
import time
from typing import TypeVar, cast

from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.context import FlowRunContext, get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput, keyset_from_paused_state
from prefect.runtime import flow_run as runtime_flow_run
from prefect.settings import PREFECT_UI_URL
from prefect.states import Paused, Running
from prefect.utilities.engine import propose_state_sync

from canary.queue import Candidate
from store.client import client
from store.runs import candidate, record

__all__ = ["PauseInterrupted", "current_flow_run", "parameter", "pause_for_input", "rename_run",
           "run_id", "run_link", "running_again", "stop_requested", "tag_run", "this_run"]  # fmt: skip

Form = TypeVar("Form", bound=RunInput)


def current_flow_run() -> FlowRun:
    """The flow run the caller runs in (code of the flow itself, not of a task run).

    Returns:
        Prefect's flow run object.

    Raises:
        RuntimeError: In a task run's context, which has no flow run object, or when the
            flow context carries none.
    """
    ctx = get_run_context()
    if not isinstance(ctx, FlowRunContext) or ctx.flow_run is None:
        raise RuntimeError(f"no flow run in this context ({type(ctx).__name__})")
    return ctx.flow_run


def run_id() -> str:
    """The id of the flow run the caller runs in (see current_flow_run)."""
    return str(current_flow_run().id)


def parameter(name: str) -> object:
    """A parameter of the flow run being named (for ``flow_run_name`` callables).

    Args:
        name: The parameter's name.

    Returns:
        Its value, None when the run has no such parameter.
    """
    return runtime_flow_run.parameters.get(name)


def this_run() -> Candidate:
    """The calling flow run as the queue sees it (read again from the server)."""
    with client() as prefect:
        return candidate(record(prefect.read_flow_run(current_flow_run().id)))


def stop_requested() -> str | None:
    """Why this run was asked to stop (a Cancelling or Cancelled state in its history, e.g.
    a person cancelled it while it was still queued), or None."""
    with client() as prefect:
        states = prefect.read_flow_run_states(current_flow_run().id)
    for state in states:
        if state.type in (StateType.CANCELLING, StateType.CANCELLED):
            return state.message or f"a person cancelled the run ({state.name})"
    return None


def run_link() -> str | None:
    """This flow run's page in the Prefect UI, for events and notifications (None: unknown)."""
    ui = PREFECT_UI_URL.value()
    try:
        me = run_id()
    except RuntimeError:
        return None
    return f"{str(ui).rstrip('/')}/runs/flow-run/{me}" if ui else None


def tag_run(**labels: str | None) -> None:
    """Set ``name:value`` tags on this flow run, replacing a tag of the same name.

    The runs list can then be filtered by them (app, commit, version, outcome). Outside a
    flow run this does nothing.

    Args:
        **labels: Tag names and values (None: left as it is).
    """
    with contextlib.suppress(RuntimeError):
        me = current_flow_run().id
        with client() as prefect:
            tags = list(prefect.read_flow_run(me).tags or [])
            for name, value in labels.items():
                if value:
                    tags = [t for t in tags if not t.startswith(f"{name}:")] + [f"{name}:{value}"]
            prefect.update_flow_run(me, tags=tags)


def rename_run(name: str) -> None:
    """Give this flow run a name known only once it runs (a re-analysis's window).

    Args:
        name: The new name. Outside a flow run this does nothing.
    """
    with contextlib.suppress(RuntimeError):
        me = current_flow_run().id
        with client() as prefect:
            prefect.update_flow_run(me, name=name)


class PauseInterrupted(RuntimeError):
    """A paused run was cancelled while it waited for a person (it must not go on)."""


def pause_for_input(form: type[Form], *, key: str, timeout: int, poll: int = 2,
                    message: str | None = None) -> Form:  # fmt: skip
    """Pause this flow run until a person answers ``form`` (in the UI, or store.runs.resume).

    Prefect's ``pause_flow_run`` with two additions: the Paused state carries ``message``
    (the run's header shows it: why it waits), and a cancellation while paused ends the
    wait at once (PauseInterrupted) instead of at the timeout.

    Args:
        form: The input's model (a Prefect RunInput; ``with_initial_data(description=...)``
            shows the question above the form).
        key: The pause's key (the CLI finds the gate by it: RunRecord.pause_key).
        timeout: Seconds to wait.
        poll: Seconds between two looks for the answer.
        message: The Paused state's message.

    Returns:
        The person's answer.

    Raises:
        prefect.exceptions.FlowPauseTimeout: Nobody answered in time.
        PauseInterrupted: The run was cancelled while paused.
        RuntimeError: The server refused to pause the run.
    """
    me = current_flow_run().id
    proposed: State[None] = Paused(timeout_seconds=timeout, reschedule=False, pause_key=key,
                                   message=message)  # fmt: skip
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = {str(k): v for k, v in keyset.items()}
    deadline = time.monotonic() + timeout
    with client() as prefect:
        state = propose_state_sync(client=prefect, state=proposed, flow_run_id=me)
        if not state.is_paused():
            raise RuntimeError(f"the run could not be paused: the server answered {state.type.value}")
        form.save(keyset)
        while True:
            time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
            now = prefect.read_flow_run(me).state
            if now is not None and now.is_running():
                return cast(Form, form.load(keyset))  # sync here: the answer, not a coroutine
            if now is not None and now.type in (StateType.CANCELLING, StateType.CANCELLED):
                raise PauseInterrupted(now.message or "the run was cancelled while paused")
            if time.monotonic() >= deadline:
                raise FlowPauseTimeout("Flow run was paused and never resumed.")


def running_again() -> None:
    """Put this flow run back to Running (forced), e.g. after a pause nobody answered.

    Prefect leaves the run Paused past its timeout; the server then refuses the run's own
    final state and fails it ("The flow was rolledback and never resumed.").
    """
    with client() as prefect:
        prefect.set_flow_run_state(current_flow_run().id, Running(), force=True)
