"""Whole release sequences against the stand-in, over real HTTP with the official client,
in the order the flow runs them (issue 4, "Tests")."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from canary.errors import ConfigError, PlatformError
from canary.platforms.kubernetes import (
    TRACK_LABEL,
    IstioRouter,
    KubernetesWorkloads,
    TektonBuilder,
    WaitTimeout,
)
from canary.values.weights import Weights
from tests.support.k8s_standin import StandIn

from .conftest import APP, COMMIT, IMAGE_REPO, PROD_IMAGE, REPO, finish, retrying, user_view

STEPS = (Weights(90, 5, 5), Weights(80, 10, 10), Weights(50, 25, 25))


def _start(standin: StandIn, router: IstioRouter, workloads: KubernetesWorkloads, image: str) -> None:
    """Pin traffic to production first, then bring up baseline (production's image) and canary."""
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", workloads.production_image(APP))
    workloads.deploy(APP, "canary", image)
    workloads.wait_ready(APP, "baseline", timeout=5)
    workloads.wait_ready(APP, "canary", timeout=5)


def _vs_split(standin: StandIn) -> set[tuple[tuple[str, int], ...]]:
    vs = standin.read("VirtualService", APP)
    assert vs is not None
    return {tuple((d["destination"].get("subset", "-"), d.get("weight", 100)) for d in r["route"])
            for r in vs["spec"]["http"] if r["name"] != "admin"}


def _nothing_left(standin: StandIn, rules: tuple[str, ...] = ()) -> None:
    standin.controller.settle()
    assert standin.names("Deployment") == [APP]
    assert standin.names("DestinationRule") == list(rules)
    assert standin.names("TaskRun") == []
    pods = [standin.read("Pod", name) for name in standin.names("Pod")]
    assert {p["metadata"]["labels"][TRACK_LABEL] for p in pods if p} == {"primary"}


def test_build_canary_steps_promote_cleanup_leaves_production_on_the_new_digest(
        standin: StandIn, production: dict[str, Any], tekton: TektonBuilder,
        router: IstioRouter, workloads: KubernetesWorkloads) -> None:
    image = tekton.build(REPO, COMMIT)
    assert image.startswith(f"{IMAGE_REPO}@sha256:") and len(image.split("@")[1]) == 71

    _start(standin, router, workloads, image)
    canary = standin.read("Deployment", f"{APP}-canary")
    baseline = standin.read("Deployment", f"{APP}-baseline")
    assert canary and baseline
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert baseline["spec"]["template"]["spec"]["containers"][0]["image"] == PROD_IMAGE
    assert canary["spec"]["selector"]["matchLabels"] == {"app": APP, TRACK_LABEL: "canary"}
    assert canary["spec"]["replicas"] == 1  # ceil(3 x 10 %), not production's 3
    assert canary["spec"]["template"]["spec"]["containers"][1]["name"] == "sidecar"  # template kept

    for weights in STEPS:
        router.set_weights(APP, weights)
        assert router.read_weights(APP) == weights
        assert _vs_split(standin) == {(("primary", weights.primary), ("baseline", weights.baseline),
                                       ("canary", weights.canary))}

    workloads.promote(APP, image)
    finish(router, workloads)

    _nothing_left(standin)
    prod = standin.read("Deployment", APP)
    assert prod is not None
    assert [c["image"] for c in prod["spec"]["template"]["spec"]["containers"]] == [
        image, "registry.example.com/tools/logship:2.1"]
    assert prod["status"]["observedGeneration"] == prod["metadata"]["generation"]
    assert prod["status"]["availableReplicas"] == 3
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])


def test_roll_back_leaves_production_untouched_and_the_virtual_service_byte_for_byte(
        standin: StandIn, production: dict[str, Any], tekton: TektonBuilder,
        router: IstioRouter, workloads: KubernetesWorkloads) -> None:
    image = tekton.build(REPO, COMMIT)
    _start(standin, router, workloads, image)
    for weights in STEPS[:2]:
        router.set_weights(APP, weights)
    mark = len(standin.requests)

    finish(router, workloads)  # the analysis failed: roll back

    assert standin.read("Deployment", APP) == production["deployment"]  # not even written
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])
    assert json.dumps(standin.read("VirtualService", APP)["spec"]) == json.dumps(production["vs"]["spec"])
    _nothing_left(standin)
    # 100 % primary was written, then read back, before the first delete (Argo Rollouts #1838)
    calls = [(r.call.verb, r.call.plural) for r in standin.requests[mark:] if r.call.verb != "watch"]
    first_delete = calls.index(("delete", "deployments"))
    writes = [i for i, c in enumerate(calls[:first_delete]) if c == ("update", "virtualservices")]
    assert writes and ("get", "virtualservices") in calls[writes[-1] + 1:first_delete]


def test_canary_that_never_becomes_ready_rolls_back_at_the_deadline(
        standin: StandIn, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    standin.controller.deployment(f"{APP}-canary", "never")
    image = f"{IMAGE_REPO}@sha256:{'b' * 64}"
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", workloads.production_image(APP))
    workloads.deploy(APP, "canary", image)
    workloads.wait_ready(APP, "baseline", timeout=5)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        workloads.wait_ready(APP, "canary", timeout=1.5)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4.0
    assert f"{APP}-canary" in str(caught.value) and "Unschedulable" in str(caught.value)
    assert not caught.value.transient

    finish(router, workloads)
    assert standin.read("Deployment", APP) == production["deployment"]
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(standin)


def test_crash_looping_canary_fails_fast_before_the_deadline(
        standin: StandIn, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    standin.controller.deployment(f"{APP}-canary", "crash")
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}@sha256:{'c' * 64}")
    started = time.monotonic()
    with pytest.raises(PlatformError, match="CrashLoopBackOff") as caught:
        workloads.wait_ready(APP, "canary", timeout=30)
    assert time.monotonic() - started < 5 and not caught.value.transient
    finish(router, workloads)
    _nothing_left(standin)


def test_injected_500_429_and_dropped_connections_are_retried_and_succeed(
        standin: StandIn, production: dict[str, Any], tekton: TektonBuilder,
        router: IstioRouter, workloads: KubernetesWorkloads) -> None:
    faults = [
        standin.faults.inject(verb="create", plural="taskruns", status=500, after=True),
        standin.faults.inject(verb="get", plural="taskruns", status=503, skip=1),
        standin.faults.inject(verb="update", plural="virtualservices", status=429, retry_after=0),
        standin.faults.inject(verb="create", plural="destinationrules", drop=True),
        standin.faults.inject(verb="create", plural="deployments", drop=True, after=True),
        standin.faults.inject(verb="get", plural="deployments", status=500, skip=3),
        standin.faults.inject(verb="patch", plural="deployments", status=502, after=True),
        standin.faults.inject(verb="delete", plural="deployments", drop=True, after=True),
        standin.faults.inject(verb="get", plural="virtualservices", status=504, skip=12),
    ]
    seen: list[BaseException] = []
    image = retrying(tekton.build, REPO, COMMIT, log=seen)
    retrying(router.set_weights, APP, Weights.all_primary(), log=seen)
    retrying(workloads.deploy, APP, "baseline", PROD_IMAGE, log=seen)
    retrying(workloads.deploy, APP, "canary", image, log=seen)
    retrying(workloads.wait_ready, APP, "canary", 5, log=seen)
    for weights in STEPS:
        retrying(router.set_weights, APP, weights, log=seen)
    retrying(workloads.promote, APP, image, log=seen)
    retrying(finish, router, workloads, log=seen)

    assert [f.hits for f in faults] == [1] * len(faults)
    assert seen and all(getattr(e, "transient", False) for e in seen)
    assert any("429" in str(e) for e in seen) and any("did not answer" in str(e) for e in seen)
    assert standin.names("Deployment") == [APP]
    prod = standin.read("Deployment", APP)
    assert prod and prod["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(standin)


def test_invalid_manifest_fails_at_once_with_the_servers_message_kind_and_name(
        standin: StandIn, production: dict[str, Any], kube: Any) -> None:
    bad = KubernetesWorkloads(kube, replicas=-1)
    seen: list[BaseException] = []
    with pytest.raises(PlatformError) as caught:
        retrying(bad.deploy, APP, "canary", PROD_IMAGE, log=seen)
    message = str(caught.value)
    assert len(seen) == 1 and not caught.value.transient  # not retried
    assert "Deployment" in message and f"'{APP}-canary'" in message
    assert "spec.replicas" in message and "greater than or equal to 0" in message
    assert caught.value.causes[0]["field"] == "spec.replicas"  # type: ignore[attr-defined]
    assert [r.call.verb for r in standin.requests].count("create") == 1
    assert standin.names("Deployment") == [APP]


def test_cleanup_after_an_exception_mid_way_removes_what_was_created(
        standin: StandIn, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    image = f"{IMAGE_REPO}@sha256:{'d' * 64}"
    with pytest.raises(RuntimeError, match="analysis crashed"):
        try:
            _start(standin, router, workloads, image)
            router.set_weights(APP, STEPS[0])
            raise RuntimeError("analysis crashed")
        finally:
            finish(router, workloads)
    assert standin.read("Deployment", APP) == production["deployment"]
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(standin)
    finish(router, workloads)  # idempotent: a second cleanup finds nothing to do
    _nothing_left(standin)


def test_a_new_process_cleans_up_after_a_crash_from_what_the_cluster_records(
        standin: StandIn, production: dict[str, Any], kube: Any) -> None:
    first = IstioRouter(kube), KubernetesWorkloads(kube, pod_check_interval=0.2)
    _start(standin, first[0], first[1], f"{IMAGE_REPO}@sha256:{'e' * 64}")
    first[0].set_weights(APP, STEPS[1])
    # the process dies here; a reconcile starts from scratch, knowing only the app's name
    router, workloads = IstioRouter(kube), KubernetesWorkloads(kube)
    router.set_weights(APP, STEPS[0])  # a retried step must not re-record the modified routes
    router.rollback(APP)
    for name in workloads.leftovers(APP):
        workloads.remove(APP, name.removeprefix(f"{APP}-"))  # type: ignore[arg-type]
    router.restore(APP)
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(standin)


def test_a_concurrent_writer_is_not_overwritten_on_409(
        standin: StandIn, production: dict[str, Any], router: IstioRouter) -> None:
    def other_writer() -> None:  # e.g. a person adding a label between our read and our write
        rt = standin.store.by_kind("VirtualService")
        standin.store.patch(rt, "v1", standin.namespace, APP, lambda vs: {
            **vs, "metadata": {**vs["metadata"], "labels": {**vs["metadata"]["labels"], "seen": "yes"}}})

    fault = standin.faults.inject(verb="update", plural="virtualservices", action=other_writer, status=None)
    router.set_weights(APP, STEPS[0])
    assert fault.hits == 1
    assert 409 in [r.status for r in standin.requests if r.call.plural == "virtualservices"]
    vs = standin.read("VirtualService", APP)
    assert vs and vs["metadata"]["labels"]["seen"] == "yes" and router.read_weights(APP) == STEPS[0]


@pytest.mark.parametrize("pods_labelled", [False, True])
def test_production_whose_selector_would_match_the_copies_is_refused_before_anything_is_written(
        standin: StandIn, router: IstioRouter, workloads: KubernetesWorkloads, pods_labelled: bool) -> None:
    """The usual app (selector == Service selector == {app}); with the track label on its pods
    only, as the old scheme asked, it is still refused: the selector is what HPA/PDB use."""
    from .conftest import production_deployment, user_virtual_service

    unlabelled = production_deployment()
    del unlabelled["spec"]["selector"]["matchLabels"][TRACK_LABEL]
    if not pods_labelled:
        del unlabelled["spec"]["template"]["metadata"]["labels"][TRACK_LABEL]
    standin.seed(unlabelled)
    standin.seed(user_virtual_service())
    for attempt in (lambda: router.set_weights(APP, Weights.all_primary()),
                    lambda: workloads.deploy(APP, "canary", PROD_IMAGE)):
        with pytest.raises(ConfigError) as caught:
            attempt()
        message = str(caught.value)
        assert f"production Deployment {APP!r} selects its pods by 'app={APP}'" in message
        assert f"'{TRACK_LABEL}: primary' to BOTH spec.selector.matchLabels and " \
               "spec.template.metadata.labels" in message
        assert "--cascade=orphan" in message and "Service" in message
    assert {r.call.verb for r in standin.requests} <= {"get", "list", "watch"}


def test_a_users_destination_rule_is_extended_then_restored_byte_for_byte(
        standin: StandIn, production: dict[str, Any], kube: Any,
        workloads: KubernetesWorkloads) -> None:
    from .conftest import users_destination_rule

    standin.seed(users_destination_rule())
    before = user_view(standin.read("DestinationRule", "goldengoose-traffic"))
    router = IstioRouter(kube, destination_rule="goldengoose-traffic")
    _start(standin, router, workloads, f"{IMAGE_REPO}@sha256:{'5' * 64}")
    router.set_weights(APP, STEPS[0])
    rule = standin.read("DestinationRule", "goldengoose-traffic")
    assert rule and [s["name"] for s in rule["spec"]["subsets"]] == ["legacy", "primary", "baseline", "canary"]
    assert rule["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}}
    assert standin.names("DestinationRule") == ["goldengoose-traffic"]  # no second rule for the host
    finish(router, workloads)
    assert user_view(standin.read("DestinationRule", "goldengoose-traffic")) == before
    assert user_view(standin.read("VirtualService", APP)) == user_view(production["vs"])


def test_an_object_that_keeps_changing_gives_a_transient_conflict(
        standin: StandIn, production: dict[str, Any], router: IstioRouter) -> None:
    counter = iter(range(100))

    def busy_writer() -> None:
        rt = standin.store.by_kind("VirtualService")
        standin.store.patch(rt, "v1", standin.namespace, APP, lambda vs: {
            **vs, "metadata": {**vs["metadata"], "labels": {"tick": str(next(counter))}}})

    standin.faults.inject(verb="update", plural="virtualservices", action=busy_writer, status=None, times=50)
    with pytest.raises(PlatformError, match="kept changing") as caught:
        router.set_weights(APP, STEPS[0])
    assert caught.value.transient


def test_the_adapters_satisfy_the_ports(kube: Any, tekton: TektonBuilder) -> None:
    from canary.platforms.kubernetes import KnativeBuilder
    from canary.ports import Builder, TrafficRouter, Workloads

    assert isinstance(KubernetesWorkloads(kube), Workloads)
    assert isinstance(IstioRouter(kube), TrafficRouter)
    assert isinstance(tekton, Builder) and isinstance(KnativeBuilder(kube, image=IMAGE_REPO), Builder)
