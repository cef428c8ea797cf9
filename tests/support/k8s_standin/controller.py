"""A controller hook that plays the cluster: Deployments roll out, builds run, on command.

It reacts to store events on its own thread, like the real controllers, so an adapter that
reads a Deployment right after changing it sees the old status first (``observedGeneration``
behind ``generation``) and must wait properly. What happens is chosen per object name:

    standin.controller.deployment("app-canary", "crash")     # ready | never | crash | deadline | stuck
    standin.controller.build("app-*", "fail", step="build-and-push", message="no Dockerfile")

It creates Pods for Deployments (owned by them, so deleting a Deployment collects them) with
statuses that explain a stuck rollout: Unschedulable, CrashLoopBackOff.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

from .store import ApiError, Event, Store, now

_TIME_KEYS = {"lastTransitionTime", "lastUpdateTime", "startTime", "completionTime", "startedAt",
              "finishedAt", "lastProbeTime"}
DEPLOYMENT_BEHAVIOURS = ("ready", "never", "crash", "deadline", "stuck")


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in _TIME_KEYS}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now()}


@dataclass(frozen=True)
class BuildPlan:
    outcome: str = "succeed"  # succeed | fail | never
    digest: str | None = None
    step: str | None = None  # the step that fails (default: the last one)
    message: str = "error building image"


class Controller:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.errors: list[BaseException] = []
        self._deployments: dict[str, str] = {}
        self._builds: list[tuple[str, BuildPlan]] = []
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._markers: dict[str, threading.Event] = {}
        self._thread = threading.Thread(target=self._run, name="k8s-standin-controller", daemon=True)
        store.listeners.append(self._on_event)

    # -- the test's commands --------------------------------------------------------------
    def deployment(self, pattern: str, behaviour: str) -> None:
        if behaviour not in DEPLOYMENT_BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {DEPLOYMENT_BEHAVIOURS}")
        self._deployments.pop(pattern, None)  # the latest command wins
        self._deployments[pattern] = behaviour
        self._requeue("Deployment")

    def build(self, pattern: str = "*", outcome: str = "succeed", *, digest: str | None = None,
              step: str | None = None, message: str = "error building image") -> None:
        self._builds.insert(0, (pattern, BuildPlan(outcome, digest, step, message)))
        self._requeue("TaskRun")
        self._requeue("Build")

    def settle(self, timeout: float = 5.0) -> None:
        """Block until every queued event has been handled (for assertions on final state)."""
        done = threading.Event()
        self._queue.put(("__marker__", "", str(id(done))))
        self._markers[str(id(done))] = done
        if not done.wait(timeout):
            raise TimeoutError("the stand-in controller did not settle")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    # -- machinery ------------------------------------------------------------------------
    def _behaviour(self, name: str) -> str:
        rules = list(self._deployments.items())  # a snapshot: the test thread may add rules
        return next((b for p, b in reversed(rules) if fnmatch.fnmatch(name, p)), "ready")

    def _plan(self, name: str) -> BuildPlan:
        return next((plan for p, plan in list(self._builds) if fnmatch.fnmatch(name, p)), BuildPlan())

    def _requeue(self, kind: str) -> None:
        rt = self.store.by_kind(kind)
        items, _ = self.store.list(rt, rt.versions[-1], None)
        for item in items:
            self._queue.put((kind, item["metadata"].get("namespace", ""), item["metadata"]["name"]))

    def _on_event(self, event: Event) -> None:
        if event.type != "DELETED" and event.rt.kind in ("Deployment", "TaskRun", "Build"):
            self._queue.put((event.rt.kind, event.namespace, event.obj["metadata"]["name"]))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, ns, name = item
            if kind == "__marker__":
                self._markers.pop(name).set()
                continue
            try:
                {"Deployment": self._deployment, "TaskRun": self._taskrun, "Build": self._knative}[kind](ns, name)
            except ApiError as error:
                if error.code == 409:  # raced a writer: handle the newer event instead
                    continue
                if error.code != 404:
                    self.errors.append(error)
            except Exception as error:  # surfaced by the fixture: a stand-in bug fails the test
                self.errors.append(error)

    def _write_status(self, kind: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if _timeless(obj.get("status") or {}) == _timeless(status):
            return
        rt = self.store.by_kind(kind)
        version = obj["apiVersion"].rsplit("/", 1)[-1]
        self.store.replace(rt, version, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                           {**obj, "status": status}, subresource="status")

    # -- Deployments ----------------------------------------------------------------------
    def _deployment(self, ns: str, name: str) -> None:
        rt = self.store.by_kind("Deployment")
        obj = self.store.get(rt, "v1", ns, name)
        behaviour = self._behaviour(name)
        if behaviour == "stuck":
            return
        spec, meta = obj["spec"], obj["metadata"]
        replicas = spec.get("replicas", 1)
        digest = hashlib.sha256(json.dumps(spec["template"], sort_keys=True).encode()).hexdigest()[:10]
        self._sync_pods(obj, f"{name}-{digest}", replicas, behaviour)
        ok = behaviour == "ready"
        status: dict[str, Any] = {"observedGeneration": meta["generation"], "replicas": replicas,
                                  "updatedReplicas": replicas}
        if ok:
            status.update(readyReplicas=replicas, availableReplicas=replicas, conditions=[
                _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                _condition("Progressing", "True", "NewReplicaSetAvailable",
                           f'ReplicaSet "{name}-{digest}" has successfully progressed.')])
        else:
            progressing = (
                _condition("Progressing", "False", "ProgressDeadlineExceeded",
                           f'ReplicaSet "{name}-{digest}" has timed out progressing.')
                if behaviour == "deadline" else
                _condition("Progressing", "True", "ReplicaSetUpdated",
                           f'ReplicaSet "{name}-{digest}" is progressing.'))
            status.update(unavailableReplicas=replicas, conditions=[
                _condition("Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability."), progressing])
        self._write_status("Deployment", obj, {k: v for k, v in status.items() if v != 0})

    def _sync_pods(self, deploy: dict[str, Any], prefix: str, replicas: int, behaviour: str) -> None:
        rt = self.store.by_kind("Pod")
        ns, uid = deploy["metadata"]["namespace"], deploy["metadata"]["uid"]
        wanted = {f"{prefix}-{i}" for i in range(replicas)}
        pods, _ = self.store.list(rt, "v1", ns)
        for pod in pods:
            owners = pod["metadata"].get("ownerReferences") or []
            if any(o["uid"] == uid for o in owners) and pod["metadata"]["name"] not in wanted:
                self.store.delete(rt, ns, pod["metadata"]["name"])
        template = deploy["spec"]["template"]
        for name in sorted(wanted):
            try:
                pod = self.store.get(rt, "v1", ns, name)
            except ApiError:
                labels = {**template["metadata"].get("labels", {}), "pod-template-hash": prefix.rsplit("-", 1)[1]}
                pod = self.store.create(rt, "v1", ns, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": labels, "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": deploy["metadata"]["name"],
                        "uid": uid, "controller": True, "blockOwnerDeletion": True}]},
                    "spec": template["spec"]})
            self._write_status("Pod", pod, self._pod_status(template, behaviour))

    @staticmethod
    def _pod_status(template: dict[str, Any], behaviour: str) -> dict[str, Any]:
        containers = template["spec"]["containers"]
        if behaviour in ("never", "deadline"):
            return {"phase": "Pending", "conditions": [_condition(
                "PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.")]}
        crash = behaviour == "crash"
        statuses = [{
            "name": c["name"], "image": c["image"], "imageID": "", "ready": not crash,
            "restartCount": 4 if crash else 0, "started": not crash,
            "state": ({"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off 1m20s restarting failed container={c['name']}"}}
                      if crash else {"running": {"startedAt": now()}}),
            **({"lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now(),
                                             "finishedAt": now()}}} if crash else {}),
        } for c in containers]
        ready = "False" if crash else "True"
        return {"phase": "Running", "containerStatuses": statuses, "conditions": [
            _condition("PodScheduled", "True", "", ""), _condition("Ready", ready, "", "")]}

    # -- builds ---------------------------------------------------------------------------
    def _build_digest(self, obj: dict[str, Any], plan: BuildPlan) -> str:
        return plan.digest or "sha256:" + hashlib.sha256(
            json.dumps(obj["spec"], sort_keys=True).encode()).hexdigest()

    def _taskrun(self, ns: str, name: str) -> None:
        rt = self.store.by_kind("TaskRun")
        obj = self.store.get(rt, "v1", ns, name)
        status = obj.get("status") or {}
        succeeded = next((c for c in status.get("conditions", []) if c["type"] == "Succeeded"), None)
        if succeeded and succeeded["status"] != "Unknown":
            return
        plan, spec = self._plan(name), obj["spec"]
        steps = [s.get("name", f"unnamed-{i}") for i, s in enumerate((spec.get("taskSpec") or {}).get("steps", []))]
        base = {"podName": f"{name}-pod", "startTime": status.get("startTime", now())}
        if spec.get("status") == "TaskRunCancelled":
            final = _condition("Succeeded", "False", "TaskRunCancelled", f'TaskRun "{name}" was cancelled')
            self._write_status("TaskRun", obj, {**base, "completionTime": now(), "conditions": [final]})
        elif not succeeded or plan.outcome == "never":
            self._write_status("TaskRun", obj, {**base, "conditions": [
                _condition("Succeeded", "Unknown", "Running", "Not all Steps in the Task have finished executing")]})
        elif plan.outcome == "succeed":
            declared = {r["name"] for r in (spec.get("taskSpec") or {}).get("results", [])}
            results = ([{"name": "IMAGE_DIGEST", "type": "string", "value": self._build_digest(obj, plan)}]
                       if "IMAGE_DIGEST" in declared else [])
            self._write_status("TaskRun", obj, {
                **base, "completionTime": now(), "results": results,
                "conditions": [_condition("Succeeded", "True", "Succeeded", "All Steps have completed executing")],
                "steps": [{"name": s, "container": f"step-{s}", "terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": now(), "finishedAt": now()}} for s in steps]})
        else:
            failed = plan.step or steps[-1]
            done = steps[: steps.index(failed)] if failed in steps else []
            self._write_status("TaskRun", obj, {
                **base, "completionTime": now(),
                "conditions": [_condition("Succeeded", "False", "Failed", f'"step-{failed}" exited with code 1')],
                "steps": [{"name": s, "container": f"step-{s}", "terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": now(), "finishedAt": now()}} for s in done]
                + [{"name": failed, "container": f"step-{failed}", "terminated": {
                    "exitCode": 1, "reason": "Error", "message": plan.message, "startedAt": now(),
                    "finishedAt": now()}}]})

    def _knative(self, ns: str, name: str) -> None:
        rt = self.store.by_kind("Build")
        obj = self.store.get(rt, "v1alpha1", ns, name)
        status = obj.get("status") or {}
        succeeded = next((c for c in status.get("conditions", []) if c["type"] == "Succeeded"), None)
        if succeeded and succeeded["status"] != "Unknown":
            return
        plan, spec = self._plan(name), obj["spec"]
        steps = spec.get("steps", [])
        names = [s.get("name", f"unnamed-{i}") for i, s in enumerate(steps)]
        base = {"startTime": status.get("startTime", now()), "cluster": {"namespace": ns, "podName": f"{name}-pod"}}
        if spec.get("status") == "BuildCancelled":
            final = _condition("Succeeded", "False", "BuildCancelled", f'Build "{name}" was cancelled')
            self._write_status("Build", obj, {**base, "completionTime": now(), "conditions": [final]})
        elif not succeeded or plan.outcome == "never":
            self._write_status("Build", obj, {**base, "conditions": [
                _condition("Succeeded", "Unknown", "Building", "")]})
        elif plan.outcome == "succeed":
            digest = self._build_digest(obj, plan)
            states = [{"terminated": {"exitCode": 0, "reason": "Completed", **(
                {"message": digest} if "--digest-file=/dev/termination-log" in s.get("args", []) else {})}}
                for s in steps]
            self._write_status("Build", obj, {
                **base, "completionTime": now(), "stepStates": states, "stepsCompleted": names,
                "conditions": [_condition("Succeeded", "True", "", "")]})
        else:
            failed = plan.step or names[-1]
            index = names.index(failed) if failed in names else len(names) - 1
            states = [{"terminated": {"exitCode": 0, "reason": "Completed"}} for _ in names[:index]]
            states.append({"terminated": {"exitCode": 1, "reason": "Error", "message": plan.message}})
            self._write_status("Build", obj, {
                **base, "completionTime": now(), "stepStates": states, "stepsCompleted": names[:index],
                "conditions": [_condition("Succeeded", "False", "BuildFailed",
                                          f'build step "{failed}" exited with code 1 (image: '
                                          f'"{steps[index].get("image", "")}")')]})
