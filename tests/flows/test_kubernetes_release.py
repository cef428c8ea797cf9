"""The whole canary-release flow through the KubernetesCluster block, on a real control plane.

Nothing is faked between the flow and the wire: the flow loads the real `KubernetesCluster`
and `PrometheusSource` blocks from the test server (saved there as an operator would: the
API server's URL, its CA, and a TokenRequest token of the release runner's ServiceAccount,
so the real authorizer enforces deployments/kubernetes/rbac.yaml's Role), the adapters talk
to kube-apiserver (tests/support/kube.py: Deployments rolled out by the controller manager,
pods made Ready by kwok, VirtualServices and DestinationRules validated by Istio's CRDs),
and the metrics come over HTTP from a Prometheus stub serving Istio's sidecar metrics
(tests/support/istio_prometheus.py; no Istio data plane runs here), judged with
deployments/canary-configs/istio.yaml.

Endings: a promotion, a rollback, a release killed mid-way whose leftovers `reconcile`
repairs, a release whose traffic could not be moved off its tracks (they stay), and a
release steered by the commit's `.canary/release.yaml` (another VirtualService, replicas and
steps). Each is read back from the API server, not from what the flow says it did.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.states import Crashed
from pydantic import SecretStr

import flows.build as build_flow
import flows.canary_release as release_flow
import flows.reconcile as reconcile_flow
import store.locks
from blocks.kubernetes import KubernetesCluster
from blocks.prometheus import PrometheusSource
from canary.platforms.kubernetes.manifests import TRACK_LABEL as TRACK
from tests.flows import api
from tests.flows.conftest import COMMIT, REPO, fast_retries, released
from tests.platforms.kubernetes.conftest import (
    PROD_IMAGE,
    production_deployment,
    user_view,
    user_virtual_service,
)
from tests.support.istio_prometheus import IstioPrometheus, Workload
from tests.support.kube import RUNNER, Namespace
from tests.support.kube_builds import BuildController

ISTIO_CONFIG = REPO / "deployments" / "canary-configs" / "istio.yaml"
NEW_IMAGE = PROD_IMAGE.replace("a" * 64, "b" * 64)
IMAGE_REPOSITORY = "registry.example.com/shop"
GIT_REPO = "https://github.com/example/app.git"
#: healthy: 1000 requests per second per workload, 0.2 % of them 503
HEALTHY = Workload(rate=1000.0, errors=0.002)


def _renamed(obj: dict[str, Any], app: str) -> dict[str, Any]:
    """The platform conftest's production objects for `app` (each test has its own app:
    the test server's events, artifacts and locks are shared by the package)."""
    return json.loads(json.dumps(obj).replace("goldengoose", app))


def _shares(vs: dict[str, Any] | None, route: str = "default") -> tuple[int, int, int]:
    """(primary, baseline, canary) weights of one HTTP route of a VirtualService."""
    assert vs is not None
    destinations = next(r for r in vs["spec"]["http"] if r.get("name") == route)["route"]
    share = {"primary": 0, "baseline": 0, "canary": 0}
    for d in destinations:
        share[d["destination"].get("subset") or "primary"] += d.get("weight", 100 if len(destinations) == 1 else 0)
    return share["primary"], share["baseline"], share["canary"]


class Cluster:
    """One app's world: production seeded on the API server, blocks saved, a release spec."""

    def __init__(self, ns: Namespace, prometheus: IstioPrometheus, directory: Path, app: str,
                 *, lifetime: str = "3s") -> None:  # fmt: skip
        self.ns, self.prometheus, self.app = ns, prometheus, app
        ns.seed(_renamed(production_deployment(), app))
        ns.seed(_renamed(user_virtual_service(), app))
        ns.settle()
        self.vs_before = user_view(ns.read("VirtualService", app))
        self.prod_image = _renamed({"image": PROD_IMAGE}, app)["image"]
        for workload in (app, f"{app}-baseline", f"{app}-canary"):
            prometheus.set(workload, HEALTHY)
        name = f"real-{app}"
        endpoint = ns.cluster.endpoint
        KubernetesCluster(namespace=ns.name, host=endpoint.url, token=SecretStr(ns.token),
                          ca_cert_path=str(endpoint.ca), image_repository=IMAGE_REPOSITORY,
                          rollout_timeout_seconds=60).save(name, overwrite=True)  # fmt: skip
        PrometheusSource(url=prometheus.url).save(name, overwrite=True)
        self.platform = f"canary-kubernetes-cluster/{name}"
        self.metrics = f"prometheus-source/{name}"
        self.spec = directory / f"{app}.yaml"
        self.spec.write_text(yaml.safe_dump(self.release_spec(lifetime=lifetime, steps=[10, 20])))

    def release_spec(self, *, lifetime: str, steps: list[int], **extra: Any) -> dict[str, Any]:
        return {
            "app": self.app,
            "canary_config": str(ISTIO_CONFIG),
            "analysis": {"lifetime": lifetime, "interval": "1s", "begin_after": "0s",
                         "step": "1s", "thresholds": {"pass": 95, "marginal": 75}},
            "traffic": {"steps": steps},
            "scopes": {"control": f"{self.app}-baseline", "experiment": f"{self.app}-canary",
                       "production": self.app, "location": self.ns.name},
            "ready_timeout_seconds": 20,
            **extra,
        }  # fmt: skip

    def release_args(self, image: str = NEW_IMAGE) -> dict[str, str]:
        return {"app": self.app, "image": image, "commit": COMMIT, "config": str(self.spec),
                "platform": self.platform, "metrics": self.metrics}  # fmt: skip

    def production_image(self) -> str:
        deployment = self.ns.read("Deployment", self.app)
        assert deployment is not None
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def canary_share(self, vs: str | None = None, route: str = "default") -> int:
        """The canary's weight in a VirtualService's route, read from the API server."""
        return _shares(self.ns.read("VirtualService", vs or self.app), route)[2]

    def assert_production_alone(self) -> None:
        """Read back: 100 % to production with the user's routes as they were, and nothing
        of ours left (no baseline or canary Deployment, no DestinationRule, only primary
        pods once the garbage collector and kwok are done with the deleted ones)."""
        ns = self.ns
        ns.settle()
        assert user_view(ns.read("VirtualService", self.app)) == self.vs_before
        assert ns.names("Deployment") == [self.app]
        assert ns.names("DestinationRule") == []

        def tracks() -> set[str]:
            pods = [ns.read("Pod", name) for name in ns.names("Pod")]
            return {p["metadata"]["labels"][TRACK] for p in pods if p}

        ns.wait("only production's pods left", lambda: tracks() == {"primary"}, timeout=60)


@pytest.fixture
def cluster(namespace: Namespace, prometheus: IstioPrometheus, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., Cluster]:  # fmt: skip
    fast_retries(monkeypatch)
    return lambda app, **knobs: Cluster(namespace, prometheus, tmp_path, app, **knobs)


def _judged_from_the_stub(c: Cluster) -> None:
    """The judgement used the Istio series of both tracks, by workload and namespace."""
    for track in ("baseline", "canary"):
        assert any(f'destination_workload="{c.app}-{track}"' in q
                   and f'destination_workload_namespace="{c.ns.name}"' in q
                   for q in c.prometheus.queries), track  # fmt: skip


@contextlib.contextmanager
def _bare_routes_while_canary_ready(c: Cluster) -> Iterator[list[list[str | None]]]:
    """Samples (every 20 ms) of the app's default route while the canary has ready pods,
    kept when the route sends to the bare host: the app's Service selects every track's
    pods, so such a route reaches the canary with live traffic nobody judged."""
    found: list[list[str | None]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            canary = c.ns.read("Deployment", f"{c.app}-canary")
            if canary is not None and (canary.get("status") or {}).get("readyReplicas"):
                vs = c.ns.read("VirtualService", c.app)
                assert vs is not None
                route = next(r for r in vs["spec"]["http"] if r["name"] == "default")["route"]
                subsets = [d["destination"].get("subset") for d in route]
                if None in subsets:
                    found.append(subsets)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join(timeout=10)


def test_a_healthy_canary_is_promoted_on_the_cluster(cluster) -> None:
    c = cluster("gg-k8s-good")
    with _bare_routes_while_canary_ready(c) as unpinned:
        state = release_flow.canary_release(**c.release_args(), return_state=True)
    result = released(state)
    # pinned to production before the canary existed: it never got unjudged live traffic
    assert unpinned == [], unpinned[:3]
    assert state.name == "Promoted", result["reason"]
    assert c.production_image() == NEW_IMAGE  # the rolling update, read back
    production = c.ns.read("Deployment", c.app)
    assert production is not None and production["spec"]["template"]["spec"]["containers"][1]["image"] \
        == "registry.example.com/tools/logship:2.1"  # strategic merge: the sidecar kept
    c.assert_production_alone()
    _judged_from_the_stub(c)
    (event,) = api.events("canary.release.promoted", c.app)
    assert event.payload["previous_image"] == c.prod_image


def test_a_canary_answering_errors_is_rolled_back_on_the_cluster(cluster) -> None:
    c = cluster("gg-k8s-bad")
    c.prometheus.set(f"{c.app}-canary", Workload(rate=1000.0, errors=0.05))  # 25 times the 5xx
    state = release_flow.canary_release(**c.release_args(), return_state=True)
    result = released(state)
    assert state.name == "RolledBack"
    assert "error-rate" in result["reason"] or "error-rate" in result["headline"], result
    assert c.production_image() == c.prod_image  # production untouched
    c.assert_production_alone()
    (event,) = api.events("canary.release.rolled-back", c.app)
    assert [(f["metric"], f["result"]) for f in event.payload["failing"]] == [("error-rate", "High")]


def test_a_canary_that_never_becomes_ready_fails_closed_naming_it(cluster) -> None:
    """kwok keeps pods whose image says `crashloop` in CrashLoopBackOff: the release stops at
    the readiness wait long before ready_timeout_seconds, never shifts traffic to the canary,
    rolls back, and its reason names the Deployment and what its pods report."""
    c = cluster("gg-k8s-unready")  # not "crashloop": production's image is named after the app
    image = f"{IMAGE_REPOSITORY}/{c.app}:2.0-crashloop"
    started = time.monotonic()
    state = release_flow.canary_release(**c.release_args(image), return_state=True)
    assert state.is_failed() and time.monotonic() - started < 20  # the spec's ready timeout
    (event,) = api.events("canary.release.rolled-back", c.app)
    reason = event.payload["reason"]
    assert f"Deployment '{c.app}-canary'" in reason and "CrashLoopBackOff" in reason, reason
    assert event.payload["judgements"] == 0  # never judged, never given traffic
    assert c.production_image() == c.prod_image
    c.assert_production_alone()


def test_a_tekton_build_then_its_release_through_the_block(cluster, monkeypatch) -> None:
    """The build flow's half of the chain: a TaskRun (validated by Tekton's CRD on the API
    server) builds the commit, its digest pins the image, the TaskRun is deleted, and that
    image is what the release promotes."""
    import canary.platforms.kubernetes.builds as builds

    fetched: list[tuple[str, str]] = []  # no network here: the commit has no .canary/
    monkeypatch.setattr(builds, "fetch_directory",
                        lambda repo, commit, directory: fetched.append((repo, commit)))  # fmt: skip
    c = cluster("gg-k8s-built")
    since = time.time() - 1
    with BuildController(c.ns) as tekton:  # Tekton's part: no controller runs here
        tekton.succeed("sha256:" + "c" * 64)
        built = build_flow.build(repo=GIT_REPO, commit=COMMIT, app=c.app, platform=c.platform)
    image = built["image"]
    (run,) = tekton.seen
    assert run["spec"]["params"][0] == {"name": "repo-url", "value": GIT_REPO}
    assert fetched == [(GIT_REPO, COMMIT)] and built["app_config"] is None  # read, before building
    assert image == f"{IMAGE_REPOSITORY}/{c.app}@sha256:{'c' * 64}"
    created = [e for e in c.ns.cluster.audit(c.ns.runner, since)
               if e["verb"] == "create" and e["objectRef"]["resource"] == "taskruns"]  # fmt: skip
    assert [e["responseStatus"]["code"] for e in created] == [201]
    assert c.ns.names("TaskRun") == []  # deleted once the digest was read
    state = release_flow.canary_release(**c.release_args(image), return_state=True)
    assert released(state)["outcome"] == "promoted"
    assert c.production_image() == image
    c.assert_production_alone()


#: The release in a process of its own, so that it can be killed (SIGKILL: no `finally`,
#: no on_crashed hook) as a flow-run pod dies with its node.
CHILD = textwrap.dedent("""
    import json, sys
    import flows.canary_release as release_flow
    release_flow.canary_release(**json.loads(sys.argv[1]))
""")


def _reconcile_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead holder's lock lease lapses after 60 s (tests/flows/test_release_lock.py covers
    that wait); here it is reset at once so the test does not sit through it."""
    monkeypatch.setattr(reconcile_flow, "free_leaked_lock",
                        functools.partial(store.locks.free_leaked_lock, grace=0, poll=0.1))


def test_a_release_killed_mid_way_is_reconciled_to_production(cluster, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    c = cluster("gg-k8s-crash", lifetime="120s")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)}  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(c.release_args())], cwd=REPO,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        split = api.poll(c.canary_share, lambda share: share > 0, deadline=90.0)
        assert split > 0, child.stderr.read().decode()[-3000:] if child.poll() is not None else split
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    # What the crash left: canary traffic, baseline and canary Deployments, our DestinationRule.
    assert c.canary_share() > 0
    assert set(c.ns.names("Deployment")) == {c.app, f"{c.app}-baseline", f"{c.app}-canary"}
    assert c.ns.names("DestinationRule") == [f"{c.app}-canary"]

    # The kubernetes worker reports a flow run whose pod died as Crashed; the automation on
    # Crashed (prefect.kubernetes.yaml) then starts reconcile with these parameters.
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_=f"canary-release-{c.app}-")))  # fmt: skip
        client.set_flow_run_state(run.id, Crashed(message="the pod was killed"), force=True)
    _reconcile_now(monkeypatch)
    started = time.monotonic()
    result = reconcile_flow.reconcile(app=c.app, platform=c.platform,
                                      run_id=f"prefect.flow-run.{run.id}")  # fmt: skip
    assert time.monotonic() - started < 60
    assert result.found["weights"] == "100% primary (verified)"
    assert sorted(result.found["removed"]) == [f"{c.app}-baseline", f"{c.app}-canary"]
    recovered = result.recovered
    assert recovered.outcome == "rolled-back" and recovered.production == c.prod_image
    assert c.canary_share() == 0
    assert c.production_image() == c.prod_image
    c.assert_production_alone()
    (event,) = api.events("canary.release.rolled-back", c.app)
    assert event.payload["recovered_run"] == str(run.id)


# -- a track whose traffic could not be moved off is never removed -------------------------
def _may_update_virtual_services(ns: Namespace) -> bool:
    """What the authorizer answers for the runner's `update virtualservices` (a
    SubjectAccessReview, so nothing is written to find out)."""
    review = k8s.AuthorizationV1Api(ns.admin.api_client).create_subject_access_review({
        "spec": {"user": ns.runner,
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns.name}",
                            "system:authenticated"],
                 "resourceAttributes": {"namespace": ns.name, "verb": "update",
                                        "group": "networking.istio.io", "resource": "virtualservices"}},
    })  # fmt: skip
    return bool(review.status.allowed)


def _set_virtual_service_verbs(ns: Namespace, verbs: list[str]) -> None:
    """Change the runner's Role as a cluster admin would, and wait for the authorizer to
    answer accordingly."""
    rbac = k8s.RbacAuthorizationV1Api(ns.admin.api_client)
    role = rbac.read_namespaced_role(RUNNER, ns.name)
    for rule in role.rules:
        if "virtualservices" in (rule.resources or []):
            rule.verbs = verbs
    rbac.replace_namespaced_role(RUNNER, ns.name, role)
    ns.wait("the authorizer sees the Role change",
            lambda: _may_update_virtual_services(ns) == ("update" in verbs), timeout=10)


def test_tracks_whose_traffic_could_not_be_moved_off_are_kept(cluster, monkeypatch) -> None:
    """Mid-release the runner loses `update` on VirtualServices (a cluster admin tightening
    the Role; an admission webhook or a GitOps lock looks the same to us): the traffic can no
    longer be moved back to production, so baseline and canary, which still get requests,
    must not be deleted. The run fails saying so; once the Role is back, reconcile finishes
    the cleanup."""
    c = cluster("gg-k8s-stuck", lifetime="20s")
    at_revocation: list[tuple[int, int, int]] = []
    since: list[float] = []

    def revoke_in_the_first_look(query: str) -> None:
        if at_revocation or f"{c.app}-canary" not in query:
            return
        at_revocation.append(_shares(c.ns.read("VirtualService", c.app)))
        since.append(time.time())
        _set_virtual_service_verbs(c.ns, ["get"])

    c.prometheus.on_query = revoke_in_the_first_look
    state = release_flow.canary_release(**c.release_args(), return_state=True)
    assert state.is_failed() and state.name != "RolledBack", (state.name, state.message)
    assert at_revocation and at_revocation[0][2] > 0, at_revocation  # a look was under way
    assert "403 Forbidden" in (state.message or ""), state.message

    # Read back: the tracks still exist and the route still sends them their share.
    assert set(c.ns.names("Deployment")) == {c.app, f"{c.app}-baseline", f"{c.app}-canary"}
    assert c.canary_share() > 0
    assert c.ns.names("DestinationRule") == [f"{c.app}-canary"]  # their subsets stay too
    deletes = [e for e in c.ns.cluster.audit(c.ns.runner, since[0]) if e["verb"] == "delete"]
    assert deletes == [], [(e["objectRef"], e["responseStatus"]["code"]) for e in deletes]
    refused = {(e["verb"], e["objectRef"]["resource"], e["responseStatus"]["code"])
               for e in c.ns.cluster.audit(c.ns.runner, since[0]) if e["responseStatus"]["code"] >= 400}
    assert refused == {("update", "virtualservices", 403)}  # what was tried, and refused
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_=f"canary-release-{c.app}-")))  # fmt: skip
    (event,) = api.events("canary.release.rolled-back", c.app)
    assert "403 Forbidden" in event.payload["reason"], event.payload["reason"]
    (report,) = api.artifacts_of(run.id, "markdown")  # what the release says it did
    for skipped in ("baseline removed", "canary removed"):
        assert f"SKIPPED: {skipped}: the traffic could not be moved off it" in report.data

    _set_virtual_service_verbs(c.ns, ["get", "update"])
    _reconcile_now(monkeypatch)
    result = reconcile_flow.reconcile(app=c.app, platform=c.platform,
                                      run_id=f"prefect.flow-run.{run.id}")  # fmt: skip
    assert sorted(result.found["removed"]) == [f"{c.app}-baseline", f"{c.app}-canary"]
    assert c.production_image() == c.prod_image
    c.assert_production_alone()


# -- the commit's .canary/release.yaml on the cluster ---------------------------------------
def _edge_virtual_service(app: str) -> dict[str, Any]:
    """Another VirtualService of the app's (its public hostname through a gateway): the one
    the commit's spec names, unlike the default (the VirtualService named like the app)."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": f"{app}-edge", "labels": {"team": "shop"}},
        "spec": {
            "hosts": [f"{app}.shop.example.com"],
            "gateways": ["shop-gateway"],
            "http": [
                {"name": "static", "match": [{"uri": {"prefix": "/static"}}],
                 "route": [{"destination": {"host": "cdn-origin", "port": {"number": 80}}}]},
                {"name": "web",
                 "route": [{"destination": {"host": app, "port": {"number": 8080}}}]},
            ],
        },
    }  # fmt: skip


def test_the_commits_release_yaml_steers_the_cluster(cluster) -> None:
    """A commit carrying `.canary/release.yaml` (as the build passes it on: app_config) with a
    `kubernetes:` section naming another VirtualService and route, other replicas, and its
    own traffic steps: the cluster gets those, not the config file's (10 and 20 % on the
    VirtualService named like the app, default replicas)."""
    c = cluster("gg-k8s-commit")
    edge = f"{c.app}-edge"
    c.ns.seed(_edge_virtual_service(c.app))
    edge_before = user_view(c.ns.read("VirtualService", edge))
    own = c.ns.read("VirtualService", c.app)
    assert own is not None
    own_version = own["metadata"]["resourceVersion"]
    release = c.release_spec(lifetime="3s", steps=[5, 15], kubernetes={
        "virtual_service": edge, "routes": ["web"], "replicas": 2, "container": "app"})
    release["canary_config"] = "canary.yaml"  # as the commit has it, next to release.yaml
    app_config = {"release": yaml.safe_dump(release), "canary_config": ISTIO_CONFIG.read_text(),
                  "canary_config_name": "canary.yaml"}  # fmt: skip

    looks: list[dict[str, Any]] = []

    def read_the_cluster(query: str) -> None:
        """In each look (the stub is asked for the tracks' series), what the API server holds."""
        if f"{c.app}-canary" not in query:
            return
        replicas = {track: (c.ns.read("Deployment", f"{c.app}-{track}") or {}).get("spec", {}).get("replicas")
                    for track in ("baseline", "canary")}  # fmt: skip
        own_now = c.ns.read("VirtualService", c.app)
        looks.append({"edge": _shares(c.ns.read("VirtualService", edge), "web"), "replicas": replicas,
                      "own": own_now and own_now["metadata"]["resourceVersion"]})  # fmt: skip

    c.prometheus.on_query = read_the_cluster
    state = release_flow.canary_release(**c.release_args(), app_config=app_config, return_state=True)
    result = released(state)
    assert state.name == "Promoted", result["reason"]

    assert looks, "the stub was never asked for the canary's series"
    canary_shares = [look["edge"][2] for look in looks]
    assert set(canary_shares) <= {5, 15} and canary_shares[0] == 5, canary_shares
    (event,) = api.events("canary.release.promoted", c.app)
    assert event.payload["judgements"] >= 2 and 15 in canary_shares, (event.payload, canary_shares)
    assert all(look["edge"] == (100 - 2 * look["edge"][2], look["edge"][2], look["edge"][2])
               for look in looks), looks
    assert {(look["replicas"]["baseline"], look["replicas"]["canary"]) for look in looks} == {(2, 2)}
    assert {look["own"] for look in looks} == {own_version}  # never written to

    # Restored: the other VirtualService as it was, the app's own never touched, ours gone.
    assert user_view(c.ns.read("VirtualService", edge)) == edge_before
    own_after = c.ns.read("VirtualService", c.app)
    assert own_after is not None and own_after["metadata"]["resourceVersion"] == own_version
    assert c.production_image() == NEW_IMAGE
    c.assert_production_alone()

