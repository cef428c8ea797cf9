"""Whole release sequences on the real control plane, in the order the flow runs them, as the
release runner (rbac.yaml's Role, a TokenRequest token): the Deployment controller, the
scheduler and kwok roll the pods out; the Istio CRDs check every route we write."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from canary.errors import ConfigError, PlatformError
from canary.platforms.kubernetes import (
    DEPLOYMENT,
    TRACK_LABEL,
    ConflictError,
    IstioRouter,
    KubeClient,
    KubernetesWorkloads,
    TektonBuilder,
    WaitTimeout,
)
from canary.platforms.kubernetes.istio import virtual_service_kind
from canary.values.weights import Weights
from tests.support.kube import KINDS, Namespace
from tests.support.kube_builds import BuildController
from tests.support.kube_proxy import FaultProxy

from .conftest import (
    APP,
    COMMIT,
    IMAGE_REPO,
    PROD_IMAGE,
    REPO,
    finish,
    production_deployment,
    retrying,
    runner_requests,
    user_view,
    user_virtual_service,
    users_destination_rule,
)

STEPS = (Weights(90, 5, 5), Weights(80, 10, 10), Weights(50, 25, 25))
DIGEST = "sha256:" + "7" * 64
WRITES = {"create", "update", "patch", "delete"}


def _start(router: IstioRouter, workloads: KubernetesWorkloads, image: str) -> None:
    """Pin traffic to production first, then bring up baseline (production's image) and canary."""
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", workloads.production_image(APP))
    workloads.deploy(APP, "canary", image)
    workloads.wait_ready(APP, "baseline", timeout=15)
    workloads.wait_ready(APP, "canary", timeout=15)


def _vs_split(namespace: Namespace) -> set[tuple[tuple[str, int], ...]]:
    vs = namespace.read("VirtualService", APP)
    assert vs is not None
    return {tuple((d["destination"].get("subset", "-"), d.get("weight", 100)) for d in r["route"])
            for r in vs["spec"]["http"] if r["name"] != "admin"}


def _nothing_left(namespace: Namespace, rules: tuple[str, ...] = ()) -> None:
    namespace.settle()
    assert namespace.names("Deployment") == [APP]
    assert namespace.names("DestinationRule") == list(rules)
    assert namespace.names("TaskRun") == []
    pods = [namespace.read("Pod", name) for name in namespace.names("Pod")]
    assert {p["metadata"]["labels"][TRACK_LABEL] for p in pods if p} == {"primary"}


def _untouched(namespace: Namespace, production: dict[str, Any], since: float) -> None:
    """Production's Deployment was never written by the runner, and is as it was."""
    writes = [r for r in runner_requests(namespace, since)
              if r.resource == "deployments" and r.name == APP and r.verb in WRITES]
    assert writes == []
    now = namespace.read("Deployment", APP)
    assert now is not None
    assert now["spec"] == production["deployment"]["spec"]
    assert now["metadata"]["generation"] == production["deployment"]["metadata"]["generation"]


def test_build_canary_steps_promote_cleanup_leaves_production_on_the_new_digest(
        namespace: Namespace, production: dict[str, Any], builds: BuildController,
        tekton: TektonBuilder, router: IstioRouter, workloads: KubernetesWorkloads) -> None:
    builds.succeed(DIGEST)
    image = tekton.build(REPO, COMMIT)
    assert image == f"{IMAGE_REPO}@{DIGEST}"

    _start(router, workloads, image)
    canary = namespace.read("Deployment", f"{APP}-canary")
    baseline = namespace.read("Deployment", f"{APP}-baseline")
    assert canary and baseline
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert baseline["spec"]["template"]["spec"]["containers"][0]["image"] == PROD_IMAGE
    assert canary["spec"]["selector"]["matchLabels"] == {"app": APP, TRACK_LABEL: "canary"}
    assert canary["spec"]["replicas"] == 1  # ceil(3 x 10 %), not production's 3
    assert canary["spec"]["template"]["spec"]["containers"][1]["name"] == "sidecar"  # template kept
    assert canary["status"]["availableReplicas"] == 1  # kwok's pod, Ready

    for weights in STEPS:
        router.set_weights(APP, weights)
        assert router.read_weights(APP) == weights
        assert _vs_split(namespace) == {(("primary", weights.primary), ("baseline", weights.baseline),
                                         ("canary", weights.canary))}

    workloads.promote(APP, image)
    finish(router, workloads)

    _nothing_left(namespace)
    prod = namespace.read("Deployment", APP)
    assert prod is not None
    # the strategic merge patch replaced one container's image and kept the other container
    assert [(c["name"], c["image"]) for c in prod["spec"]["template"]["spec"]["containers"]] == [
        ("app", image), ("sidecar", "registry.example.com/tools/logship:2.1")]
    assert prod["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "prod"}]
    assert prod["status"]["observedGeneration"] == prod["metadata"]["generation"] == 2
    assert prod["status"]["availableReplicas"] == prod["status"]["updatedReplicas"] == 3
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])


def test_roll_back_leaves_production_untouched_and_the_virtual_service_byte_for_byte(
        namespace: Namespace, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    since = time.time()
    _start(router, workloads, f"{IMAGE_REPO}@sha256:{'1' * 64}")
    for weights in STEPS[:2]:
        router.set_weights(APP, weights)
    mark = len(runner_requests(namespace, since))

    finish(router, workloads)  # the analysis failed: roll back

    _untouched(namespace, production, since)
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    assert json.dumps((namespace.read("VirtualService", APP) or {})["spec"]) == json.dumps(
        production["vs"]["spec"])
    _nothing_left(namespace)
    # 100 % primary was written, then read back, before the first delete (Argo Rollouts #1838)
    calls = [(r.verb, r.resource) for r in runner_requests(namespace, since)[mark:] if r.verb != "watch"]
    first_delete = calls.index(("delete", "deployments"))
    writes = [i for i, c in enumerate(calls[:first_delete]) if c == ("update", "virtualservices")]
    assert writes and ("get", "virtualservices") in calls[writes[-1] + 1:first_delete]


def test_canary_that_can_never_be_scheduled_times_out_naming_its_condition_and_the_reason(
        namespace: Namespace, router: IstioRouter, workloads: KubernetesWorkloads) -> None:
    """No node has the pool production's pods ask for, so the canary (its copy) stays
    Pending: the wait ends at its own timeout, not at the Deployment's progress deadline
    (600 s by default, the Argo Rollouts trap), and says why."""
    unplaceable = production_deployment()
    unplaceable["spec"]["template"]["spec"]["nodeSelector"] = {"prefect-canary.dev/pool": "nowhere"}
    namespace.seed(unplaceable)
    namespace.seed(user_virtual_service())
    before = namespace.read("VirtualService", APP)
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}@sha256:{'b' * 64}")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        workloads.wait_ready(APP, "canary", timeout=2.5)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert 2.5 <= elapsed < 5.0, elapsed
    assert f"Deployment '{APP}-canary' not ready after 2.5s" in message
    assert "Available=False MinimumReplicasUnavailable" in message
    assert "Unschedulable: 0/1 nodes are available" in message and "node affinity/selector" in message
    assert not caught.value.transient

    finish(router, workloads)
    namespace.wait("canary gone", lambda: namespace.names("Deployment") == [APP])
    assert user_view(namespace.read("VirtualService", APP)) == user_view(before)


def test_crash_looping_canary_fails_fast_naming_the_container_exit_code_and_condition(
        namespace: Namespace, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    """kwok keeps a pod whose image says `crashloop` in CrashLoopBackOff (restarts, exit 1),
    as a kubelet does with a container that dies at start: waiting cannot help."""
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.0-crashloop")
    started = time.monotonic()
    with pytest.raises(PlatformError) as caught:
        workloads.wait_ready(APP, "canary", timeout=60)
    message = str(caught.value)
    # fast: it failed on the pods' state, not on the clock (how soon kwok restarts the
    # container three times depends on the machine's load, hence a bound of half the wait)
    assert time.monotonic() - started < 30 and not caught.value.transient
    assert not isinstance(caught.value, WaitTimeout)
    assert f"Deployment '{APP}-canary' cannot become ready" in message
    assert "container app CrashLoopBackOff (3 restarts, last exit code 1)" in message
    assert "Available=False MinimumReplicasUnavailable" in message
    assert workloads.serving(APP, "canary") is not None
    finish(router, workloads)
    _nothing_left(namespace)


def test_a_crash_looping_canary_replaced_by_a_fixed_image_becomes_ready(
        namespace: Namespace, router: IstioRouter, kube: KubeClient) -> None:
    """While the Deployment controller rolls the fixed image out, the old ReplicaSet's
    crash-looping pod is still listed (crash-looping, then terminating until its kubelet is
    done: here a finalizer holds it, and minReadySeconds keeps the rollout going a moment):
    the pod being replaced is not the new rollout's problem and must not fail its wait."""
    slow = production_deployment()
    slow["spec"]["minReadySeconds"] = 2
    namespace.seed(slow)
    namespace.seed(user_virtual_service())
    workloads = KubernetesWorkloads(kube, container="app", pod_check_interval=0)  # look at every turn
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.0-crashloop")
    with pytest.raises(PlatformError, match="CrashLoopBackOff"):
        workloads.wait_ready(APP, "canary", timeout=15)
    crashing = [p for p in namespace.names("Pod") if p.startswith(f"{APP}-canary-")]
    pods = KINDS["Pod"]
    for pod in crashing:
        namespace.admin.patch(pods, pod, {"metadata": {"finalizers": ["prefect-canary.dev/test-hold"]}})
    try:
        workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.1")  # the fix
        assert workloads.serving(APP, "canary") is not None  # rolling out
        workloads.wait_ready(APP, "canary", timeout=15)
        assert workloads.serving(APP, "canary") is None
        held = [namespace.read("Pod", pod) for pod in crashing]
        assert all(p and p["metadata"].get("deletionTimestamp") for p in held)  # still listed
    finally:
        for pod in crashing:
            namespace.admin.patch(pods, pod, {"metadata": {"finalizers": None}})
    workloads.remove(APP, "canary")


def test_injected_500_429_and_dropped_connections_are_retried_and_succeed(
        namespace: Namespace, production: dict[str, Any], builds: BuildController,
        proxy: FaultProxy, proxied: KubeClient) -> None:
    """Faults the real server does not make on demand, injected in front of it: some before
    it saw the request, some AFTER it did the work (the retry then finds it done)."""
    builds.succeed(DIGEST)
    tekton = TektonBuilder(proxied, image=IMAGE_REPO, timeout=10.0, window=1.0)
    router = IstioRouter(proxied)
    workloads = KubernetesWorkloads(proxied, container="app", rollout_timeout=30.0, pod_check_interval=0.2)
    faults = [
        proxy.inject("create", "taskruns", status=500, after=True),
        proxy.inject("get", "taskruns", status=503, skip=1),
        proxy.inject("update", "virtualservices", status=429, retry_after=0),
        proxy.inject("create", "destinationrules", drop=True),
        proxy.inject("create", "deployments", drop=True, after=True),
        proxy.inject("get", "deployments", status=500, skip=3),
        proxy.inject("patch", "deployments", status=502, after=True),
        proxy.inject("delete", "deployments", drop=True, after=True),
        proxy.inject("get", "virtualservices", status=504, skip=12),
    ]
    seen: list[BaseException] = []
    image = retrying(tekton.build, REPO, COMMIT, log=seen)
    retrying(router.set_weights, APP, Weights.all_primary(), log=seen)
    retrying(workloads.deploy, APP, "baseline", PROD_IMAGE, log=seen)
    retrying(workloads.deploy, APP, "canary", image, log=seen)
    retrying(workloads.wait_ready, APP, "canary", 15, log=seen)
    for weights in STEPS:
        retrying(router.set_weights, APP, weights, log=seen)
    retrying(workloads.promote, APP, image, log=seen)
    retrying(finish, router, workloads, log=seen)

    assert [f.hits for f in faults] == [1] * len(faults)
    assert seen and all(getattr(e, "transient", False) for e in seen)
    assert any("429" in str(e) for e in seen) and any("did not answer" in str(e) for e in seen)
    assert len([c for c in builds.seen if c["kind"] == "TaskRun"]) == 1  # built once
    prod = namespace.read("Deployment", APP)
    assert prod and prod["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(namespace)


def test_a_watch_that_ends_in_410_gone_is_resumed_from_a_fresh_read(
        namespace: Namespace, production: dict[str, Any], proxy: FaultProxy,
        proxied: KubeClient) -> None:
    """The API server ends a watch with an ERROR event 410 (Expired) when the revision it
    started from was compacted (the real server here is too young to have compacted: the
    event is injected); the wait reads the object again and watches on."""
    from tests.support.kube_proxy import watch_error

    gone = proxy.inject("watch", "deployments", status=200, body=watch_error(410))
    later = threading.Timer(0.5, lambda: namespace.admin.patch(
        DEPLOYMENT, APP, {"metadata": {"labels": {"checked": "yes"}}}))
    later.start()
    try:
        found = proxied.wait_for(DEPLOYMENT, APP, lambda obj: "checked" in (obj or {}).get(
            "metadata", {}).get("labels", {}), timeout=10, window=5)
    finally:
        later.cancel()
    assert found is not None and gone.hits == 1


def test_invalid_manifest_fails_at_once_with_the_servers_message_kind_and_name(
        namespace: Namespace, production: dict[str, Any], kube: KubeClient) -> None:
    since = time.time()
    bad = KubernetesWorkloads(kube, replicas=-1)
    seen: list[BaseException] = []
    with pytest.raises(PlatformError) as caught:
        retrying(bad.deploy, APP, "canary", PROD_IMAGE, log=seen)
    message = str(caught.value)
    assert len(seen) == 1 and not caught.value.transient  # not retried
    assert "Deployment" in message and f"'{APP}-canary'" in message
    assert "spec.replicas" in message and "greater than or equal to 0" in message
    assert caught.value.causes[0]["field"] == "spec.replicas"  # type: ignore[attr-defined]
    creates = [r for r in runner_requests(namespace, since) if r.verb == "create"]
    assert [(r.resource, r.code) for r in creates] == [("deployments", 422)]
    assert namespace.names("Deployment") == [APP]


def test_cleanup_after_an_exception_mid_way_removes_what_was_created(
        namespace: Namespace, production: dict[str, Any], router: IstioRouter,
        workloads: KubernetesWorkloads) -> None:
    since = time.time()
    with pytest.raises(RuntimeError, match="analysis crashed"):
        try:
            _start(router, workloads, f"{IMAGE_REPO}@sha256:{'d' * 64}")
            router.set_weights(APP, STEPS[0])
            raise RuntimeError("analysis crashed")
        finally:
            finish(router, workloads)
    _untouched(namespace, production, since)
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(namespace)
    finish(router, workloads)  # idempotent: a second cleanup finds nothing to do
    _nothing_left(namespace)


def test_a_new_process_cleans_up_after_a_crash_from_what_the_cluster_records(
        namespace: Namespace, production: dict[str, Any], kube: KubeClient) -> None:
    first = IstioRouter(kube), KubernetesWorkloads(kube, pod_check_interval=0.2)
    _start(first[0], first[1], f"{IMAGE_REPO}@sha256:{'e' * 64}")
    first[0].set_weights(APP, STEPS[1])
    # the process dies here; a reconcile starts from scratch, knowing only the app's name
    router, workloads = IstioRouter(kube), KubernetesWorkloads(kube)
    router.set_weights(APP, STEPS[0])  # a retried step must not re-record the modified routes
    router.rollback(APP)
    for name in workloads.leftovers(APP):
        workloads.remove(APP, name.removeprefix(f"{APP}-"))  # type: ignore[arg-type]
    router.restore(APP)
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(namespace)


def test_a_concurrent_writer_is_not_overwritten_on_409(
        namespace: Namespace, production: dict[str, Any], proxy: FaultProxy, proxied: KubeClient) -> None:
    """Another writer (a person adding a label) changes the VirtualService between our read
    and our write: the real server answers 409, and the update reads again and re-applies."""
    vs_kind = virtual_service_kind()

    def other_writer() -> None:
        namespace.admin.patch(vs_kind, APP, {"metadata": {"labels": {"seen": "yes"}}})

    since = time.time()
    fault = proxy.inject("update", "virtualservices", action=other_writer, status=None)
    router = IstioRouter(proxied)
    router.set_weights(APP, STEPS[0])
    assert fault.hits == 1
    updates = [r.code for r in runner_requests(namespace, since) if r.verb == "update"
               and r.resource == "virtualservices"]
    assert updates[:2] == [409, 200]
    vs = namespace.read("VirtualService", APP)
    assert vs and vs["metadata"]["labels"] == {"team": "shop", "seen": "yes"}
    assert router.read_weights(APP) == STEPS[0]


def test_an_object_that_keeps_changing_gives_a_transient_conflict(
        namespace: Namespace, production: dict[str, Any], proxy: FaultProxy, proxied: KubeClient) -> None:
    counter = iter(range(100))
    vs_kind = virtual_service_kind()

    def busy_writer() -> None:
        namespace.admin.patch(vs_kind, APP, {"metadata": {"labels": {"tick": str(next(counter))}}})

    since = time.time()
    proxy.inject("update", "virtualservices", action=busy_writer, status=None, times=50)
    with pytest.raises(ConflictError, match="kept changing under us \\(5 conflicts in a row\\); retry") as caught:
        IstioRouter(proxied).set_weights(APP, STEPS[0])
    assert caught.value.transient and f"VirtualService '{APP}'" in str(caught.value)
    codes = [r.code for r in runner_requests(namespace, since) if r.verb == "update"]
    assert codes == [409] * 5  # every try reached the real server, none overwrote the other writer
    assert (namespace.read("VirtualService", APP) or {})["spec"] == production["vs"]["spec"]


@pytest.mark.parametrize("pods_labelled", [False, True])
def test_production_whose_selector_would_match_the_copies_is_refused_before_anything_is_written(
        namespace: Namespace, router: IstioRouter, workloads: KubernetesWorkloads, pods_labelled: bool) -> None:
    """The usual app (selector == Service selector == {app}); with the track label on its pods
    only, as the old scheme asked, it is still refused: the selector is what HPA/PDB use."""
    unlabelled = production_deployment()
    del unlabelled["spec"]["selector"]["matchLabels"][TRACK_LABEL]
    if not pods_labelled:
        del unlabelled["spec"]["template"]["metadata"]["labels"][TRACK_LABEL]
    namespace.seed(unlabelled)
    namespace.seed(user_virtual_service())
    since = time.time()
    for attempt in (lambda: router.set_weights(APP, Weights.all_primary()),
                    lambda: workloads.deploy(APP, "canary", PROD_IMAGE)):
        with pytest.raises(ConfigError) as caught:
            attempt()
        message = str(caught.value)
        assert f"production Deployment {APP!r} selects its pods by 'app={APP}'" in message
        assert f"'{TRACK_LABEL}: primary' to BOTH spec.selector.matchLabels and " \
               "spec.template.metadata.labels" in message
        assert "--cascade=orphan" in message and "Service" in message
    verbs = {r.verb for r in runner_requests(namespace, since)}
    assert verbs and verbs <= {"get", "list", "watch"}


def test_a_users_destination_rule_is_extended_then_restored_byte_for_byte(
        namespace: Namespace, production: dict[str, Any], kube: KubeClient,
        workloads: KubernetesWorkloads) -> None:
    namespace.seed(users_destination_rule())
    before = user_view(namespace.read("DestinationRule", "goldengoose-traffic"))
    router = IstioRouter(kube, destination_rule="goldengoose-traffic")
    _start(router, workloads, f"{IMAGE_REPO}@sha256:{'5' * 64}")
    router.set_weights(APP, STEPS[0])
    rule = namespace.read("DestinationRule", "goldengoose-traffic")
    assert rule and [s["name"] for s in rule["spec"]["subsets"]] == ["legacy", "primary", "baseline", "canary"]
    assert rule["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}}
    assert namespace.names("DestinationRule") == ["goldengoose-traffic"]  # no second rule for the host
    finish(router, workloads)
    assert user_view(namespace.read("DestinationRule", "goldengoose-traffic")) == before
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    _nothing_left(namespace, ("goldengoose-traffic",))


def test_a_copy_running_a_tag_is_pulled_as_the_server_would_default_that_tag(
        namespace: Namespace, production: dict[str, Any], workloads: KubernetesWorkloads) -> None:
    """Production, pinned by digest, comes back from the server with imagePullPolicy
    IfNotPresent filled in; a canary of `:latest` copied with it would run whatever `latest`
    a node has cached. The copy gets what the server gives a new `:latest` container: Always.
    A policy the user chose (not the default for production's image) is kept."""
    def policy(name: str) -> str:
        deployment = namespace.read("Deployment", name)
        assert deployment is not None
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"])

    assert policy(APP) == "IfNotPresent"  # the server's default for a digest
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:latest")
    workloads.deploy(APP, "baseline", PROD_IMAGE)
    assert (policy(f"{APP}-canary"), policy(f"{APP}-baseline")) == ("Always", "IfNotPresent")
    since = time.time()
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:latest")  # a retried deploy writes nothing
    assert [r.verb for r in runner_requests(namespace, since) if r.verb in WRITES] == []
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.0")
    assert policy(f"{APP}-canary") == "IfNotPresent"

    namespace.admin.patch(DEPLOYMENT, APP, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "imagePullPolicy": "Always"}]}}}})  # the user's own choice
    workloads.deploy(APP, "baseline", PROD_IMAGE)
    assert policy(f"{APP}-baseline") == "Always"
    for track in ("baseline", "canary"):
        workloads.remove(APP, track)  # type: ignore[arg-type]


def test_a_copy_made_before_productions_selector_changed_is_made_anew(
        namespace: Namespace, production: dict[str, Any], workloads: KubernetesWorkloads) -> None:
    """A Deployment's selector is immutable (the real server answers 422): a copy left from
    before the user re-created production with another selector is replaced, not updated."""
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.0")
    old = namespace.read("Deployment", f"{APP}-canary")
    assert old is not None
    namespace.admin.delete(DEPLOYMENT, APP)  # the user re-creates production, one label more
    tiered = production_deployment()
    tiered["spec"]["selector"]["matchLabels"]["tier"] = "web"
    tiered["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    namespace.seed(tiered)
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.1")
    new = namespace.read("Deployment", f"{APP}-canary")
    assert new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["spec"]["selector"]["matchLabels"] == {"app": APP, "tier": "web", TRACK_LABEL: "canary"}
    workloads.wait_ready(APP, "canary", timeout=15)
    workloads.remove(APP, "canary")


def test_the_adapters_satisfy_the_ports() -> None:
    import kubernetes.client

    from canary.platforms.kubernetes import KnativeBuilder
    from canary.ports import Builder, TrafficRouter, Workloads

    kube = KubeClient(kubernetes.client.ApiClient(), "any")
    assert isinstance(KubernetesWorkloads(kube), Workloads)
    assert isinstance(IstioRouter(kube), TrafficRouter)
    assert isinstance(TektonBuilder(kube, image=IMAGE_REPO), Builder)
    assert isinstance(KnativeBuilder(kube, image=IMAGE_REPO), Builder)
