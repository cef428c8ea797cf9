"""The one retry rule for every task: retry what the adapter marked transient, nothing else.

Transient means the same call may succeed later (429, 5xx, connection reset, timeouts).
A validation error, a failed build or a failed judgement is never retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypedDict, TypeVar

from prefect import State
from prefect.tasks import exponential_backoff

from canary.errors import is_transient

T = TypeVar("T")

#: 2, 4, 8 s with jitter: long enough for a restarting Prometheus or a 429 to clear.
RETRIES = 3
RETRY_DELAYS = exponential_backoff(backoff_factor=2)
RETRY_JITTER = 0.2


def only_transient(task: object, task_run: object, state: State) -> bool:
    """Prefect retry_condition_fn: True only when the failure was a transient CanaryError.

    Args:
        task: The task (unused).
        task_run: The task run (unused).
        state: The failed run's state; its result re-raises the task's exception.

    Returns:
        Whether to retry.
    """
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by result()
        return is_transient(exc)
    return False


class RetryOptions(TypedDict):
    """The retry keywords of ``@task``, typed so ``**RETRYING`` type-checks against it."""

    retries: int
    retry_delay_seconds: Callable[[int], list[float]]
    retry_jitter_factor: float
    retry_condition_fn: Callable[[object, object, State], bool]


RETRYING: RetryOptions = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_jitter_factor": RETRY_JITTER,
    "retry_condition_fn": only_transient,
}


def retrying(call: Callable[[], T]) -> T:
    """`call()` under the same rule, for a read made in a flow's own run instead of a task
    run (tasks.platform.check_serving): up to RETRIES more tries after RETRY_DELAYS (with
    RETRY_JITTER), only while it raises a transient error.

    Args:
        call: The read.

    Returns:
        What `call` returned.

    Raises:
        Exception: Its last error: the first one that is not transient, or the last try's.
    """
    delays = RETRY_DELAYS(RETRIES)
    for attempt in range(RETRIES):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
        time.sleep(delays[attempt] * (1 + RETRY_JITTER * random.uniform(-1, 1)))
    return call()
