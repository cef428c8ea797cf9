"""The Tekton and Knative Build controllers' part, played by the test (none runs here).

The TaskRuns and Builds the builders create are real objects, checked by the real CRDs
(Tekton's schema, ours for Knative Build); only their status is written by the test, through
the status subresource with the admin's client, as the controller would write it. The
status shapes are the ones the controllers write (Tekton v1 ``TaskRunStatus``; Knative Build
v1alpha1 ``BuildStatus``), so the CRDs check them too.

    with BuildController(namespace) as controller:
        controller.succeed(DIGEST)          # every new run succeeds (or .fail(...), .never())
        builder.build(REPO, COMMIT)
    controller.seen                          # each run as first created (what the server stored)
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.support.kube import Namespace

CANCELLED = {"TaskRun": "TaskRunCancelled", "Build": "BuildCancelled"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Succeeded", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": _now()}


def _final(run: dict[str, Any]) -> bool:
    return any(c.get("type") == "Succeeded" and c.get("status") in ("True", "False")
               for c in (run.get("status") or {}).get("conditions") or [])


def run_status(run: dict[str, Any], outcome: str, *, digest: str = "", step: str | None = None,
               message: str = "") -> dict[str, Any]:
    """The status a controller writes for ``run`` ending in ``outcome`` (succeed, fail,
    running, cancelled); ``step`` fails (default: the last one)."""
    kind, name = run["kind"], run["metadata"]["name"]
    steps = [s["name"] for s in ((run["spec"].get("taskSpec") or {}).get("steps")
                                 if kind == "TaskRun" else run["spec"].get("steps")) or []]
    failing = step or (steps[-1] if steps else None)
    exits = {s: (1 if outcome == "fail" and s == failing else 0) for s in steps}
    if outcome == "succeed":
        condition = _condition("True", "Succeeded", "All Steps have completed executing")
    elif outcome == "fail":
        condition = _condition("False", "Failed", f'"step-{failing}" exited with code 1')
    elif outcome == "cancelled":
        condition = _condition("False", CANCELLED[kind], f"{kind} {name!r} was cancelled")
    else:
        condition = _condition("Unknown", "Running", "Not all Steps in the Task have finished executing")
    pod = f"{name}-pod"
    if kind == "TaskRun":
        status: dict[str, Any] = {"podName": pod, "startTime": _now(), "conditions": [condition]}
        if outcome in ("succeed", "fail"):
            status["completionTime"] = _now()
            status["steps"] = [{"name": s, "container": f"step-{s}", "terminated": {
                "exitCode": exits[s], "reason": "Error" if exits[s] else "Completed",
                **({"message": message} if exits[s] and message else {})}} for s in steps]
        if outcome == "succeed":
            status["results"] = [{"name": "IMAGE_DIGEST", "type": "string", "value": digest}]
        return status
    status = {"cluster": {"namespace": run["metadata"]["namespace"], "podName": pod},
              "startTime": _now(), "conditions": [condition]}
    if outcome in ("succeed", "fail"):
        status["completionTime"] = _now()
        status["stepStates"] = [{"terminated": {
            "exitCode": exits[s], "reason": "Error" if exits[s] else "Completed",
            **({"message": digest} if outcome == "succeed" and s == steps[-1] else {}),
            **({"message": message} if exits[s] and message else {})}} for s in steps]
    return status


class BuildController:
    """A thread that answers every new TaskRun and Build in ``namespace`` as told."""

    def __init__(self, namespace: Namespace, interval: float = 0.05) -> None:
        self.namespace = namespace
        self.interval = interval
        self.behaviour: dict[str, Any] = {"outcome": "never"}
        self.seen: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._answered: set[str] = set()  # uids whose status was written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="build-controller", daemon=True)

    def succeed(self, digest: str) -> None:
        self.behaviour = {"outcome": "succeed", "digest": digest}

    def fail(self, *, step: str | None = None, message: str = "") -> None:
        self.behaviour = {"outcome": "fail", "step": step, "message": message}

    def never(self) -> None:
        """Runs stay Running until cancelled (``spec.status``), then end cancelled."""
        self.behaviour = {"outcome": "never"}

    def __enter__(self) -> BuildController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.errors and exc[0] is None:
            raise AssertionError(f"the build controller failed: {self.errors!r}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            for kind in ("TaskRun", "Build"):
                try:
                    self._pass(kind)
                except ApiException as error:
                    if error.status not in (404, 409):  # deleted or changed meanwhile: next pass
                        self.errors.append(error)
                except Exception as error:  # noqa: BLE001 - reported at exit
                    self.errors.append(error)
            self._stop.wait(self.interval)

    def _pass(self, kind: str) -> None:
        for name in self.namespace.names(kind):
            run = self.namespace.read(kind, name)
            if run is None or _final(run):
                continue
            uid = run["metadata"]["uid"]
            cancelled = (run.get("spec") or {}).get("status") == CANCELLED[kind]
            if cancelled:
                self._write(kind, name, run_status(run, "cancelled"))
                continue
            if uid in self._answered:
                continue
            self.seen.append(run)
            behaviour = dict(self.behaviour)
            outcome = behaviour.pop("outcome")
            self._write(kind, name, run_status(run, "running" if outcome == "never" else outcome,
                                               **behaviour))
            self._answered.add(uid)

    def _write(self, kind: str, name: str, status: dict[str, Any]) -> None:
        stored = self.namespace.set_status(kind, name, status).get("status")
        if stored != status:  # a field the CRD's schema does not know was pruned: a wrong shape
            raise AssertionError(f"the {kind} CRD changed the status written: {status} -> {stored}")
