"""Proof on the stand-in: the whole canary-release flow through the KubernetesCluster block.

Nothing is faked between the flow and the wire: the flow loads the real `KubernetesCluster`
and `PrometheusSource` blocks from the test server (saved there as an operator would), the
adapters talk over HTTP to the Kubernetes API stand-in with the official client (every
object checked against the official schemas and the real Istio CRDs, every request checked
against deployments/kubernetes/rbac.yaml's Role), and the metrics come over HTTP from a
Prometheus stub serving Istio's sidecar metrics (tests/support/istio_prometheus.py), judged
with deployments/canary-configs/istio.yaml. Three endings: a promotion, a rollback, and a
release killed mid-way whose leftovers `reconcile` repairs. Each is read back from the
stand-in, not from what the flow says it did.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.states import Crashed
from pydantic import SecretStr

import flows.build as build_flow
import flows.canary_release as release_flow
import flows.reconcile as reconcile_flow
import tasks.recovery
from blocks.kubernetes import KubernetesCluster
from blocks.prometheus import PrometheusSource
from canary.platforms.kubernetes.manifests import TRACK_LABEL as TRACK
from tests.flows import api
from tests.flows.conftest import COMMIT, REPO, fast_retries, released
from tests.platforms.kubernetes.conftest import (
    NS,
    PROD_IMAGE,
    TOKEN,
    production_deployment,
    user_view,
    user_virtual_service,
)
from tests.platforms.kubernetes.conftest import standin as _standin_fixture
from tests.support.istio_prometheus import IstioPrometheus, Workload
from tests.support.k8s_standin import StandIn

#: the stand-in fixture of tests/platforms/kubernetes (a fresh stand-in enforcing the Role)
standin = _standin_fixture

ISTIO_CONFIG = REPO / "deployments" / "canary-configs" / "istio.yaml"
NEW_IMAGE = PROD_IMAGE.replace("a" * 64, "b" * 64)
IMAGE_REPOSITORY = "registry.example.com/shop"
GIT_REPO = "https://github.com/example/app.git"
#: healthy: 1000 requests per second per workload, 0.2 % of them 503
HEALTHY = Workload(rate=1000.0, errors=0.002)


def _renamed(obj: dict[str, Any], app: str) -> dict[str, Any]:
    """The stand-in conftest's production objects for `app` (each test has its own app:
    the test server's events, artifacts and locks are shared by the package)."""
    return json.loads(json.dumps(obj).replace("goldengoose", app))


@pytest.fixture
def prometheus() -> Iterator[IstioPrometheus]:
    with IstioPrometheus(namespace=NS) as stub:
        yield stub


class Cluster:
    """One app's world: production seeded on the stand-in, blocks saved, a release spec."""

    def __init__(self, standin: StandIn, prometheus: IstioPrometheus, directory: Path, app: str,
                 *, lifetime: str = "3s") -> None:  # fmt: skip
        self.standin, self.prometheus, self.app = standin, prometheus, app
        standin.seed(_renamed(production_deployment(), app))
        standin.seed(_renamed(user_virtual_service(), app))
        standin.controller.settle()
        self.vs_before = user_view(standin.read("VirtualService", app))
        self.prod_image = _renamed({"image": PROD_IMAGE}, app)["image"]
        for workload in (app, f"{app}-baseline", f"{app}-canary"):
            prometheus.set(workload, HEALTHY)
        name = f"standin-{app}"
        KubernetesCluster(namespace=NS, host=standin.url, token=SecretStr(TOKEN),
                          image_repository=IMAGE_REPOSITORY).save(name, overwrite=True)  # fmt: skip
        PrometheusSource(url=prometheus.url).save(name, overwrite=True)
        self.platform = f"canary-kubernetes-cluster/{name}"
        self.metrics = f"prometheus-source/{name}"
        self.spec = directory / f"{app}.yaml"
        self.spec.write_text(yaml.safe_dump({
            "app": app,
            "canary_config": str(ISTIO_CONFIG),
            "analysis": {"lifetime": lifetime, "interval": "1s", "begin_after": "0s",
                         "step": "1s", "thresholds": {"pass": 95, "marginal": 75}},
            "traffic": {"steps": [10, 20]},
            "scopes": {"control": f"{app}-baseline", "experiment": f"{app}-canary",
                       "production": app, "location": NS},
            "ready_timeout_seconds": 20,
        }))  # fmt: skip

    def release_args(self, image: str = NEW_IMAGE) -> dict[str, str]:
        return {"app": self.app, "image": image, "commit": COMMIT, "config": str(self.spec),
                "platform": self.platform, "metrics": self.metrics}  # fmt: skip

    def production_image(self) -> str:
        deployment = self.standin.read("Deployment", self.app)
        assert deployment is not None
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    def canary_share(self) -> int:
        """The canary's weight in the VirtualService's default route, read from the stand-in."""
        vs = self.standin.read("VirtualService", self.app)
        assert vs is not None
        route = next(r for r in vs["spec"]["http"] if r["name"] == "default")["route"]
        return sum(d.get("weight", 0) for d in route if d["destination"].get("subset") == "canary")

    def assert_production_alone(self) -> None:
        """Read back: 100 % to production with the user's routes as they were, and nothing
        of ours left (no baseline or canary Deployment, no DestinationRule, only primary pods)."""
        self.standin.controller.settle()
        assert user_view(self.standin.read("VirtualService", self.app)) == self.vs_before
        assert self.standin.names("Deployment") == [self.app]
        assert self.standin.names("DestinationRule") == []
        pods = [self.standin.read("Pod", name) for name in self.standin.names("Pod")]
        assert {p["metadata"]["labels"][TRACK] for p in pods if p} == {"primary"}


@pytest.fixture
def cluster(standin: StandIn, prometheus: IstioPrometheus, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    fast_retries(monkeypatch)
    return lambda app, **knobs: Cluster(standin, prometheus, tmp_path, app, **knobs)


def _judged_from_the_stub(prometheus: IstioPrometheus, app: str) -> None:
    """The judgement used the Istio series of both tracks, by workload and namespace."""
    for track in ("baseline", "canary"):
        assert any(f'destination_workload="{app}-{track}"' in q
                   and f'destination_workload_namespace="{NS}"' in q
                   for q in prometheus.queries), track  # fmt: skip


def test_a_healthy_canary_is_promoted_on_the_cluster(cluster) -> None:
    c = cluster("gg-k8s-good")
    state = release_flow.canary_release(**c.release_args(), return_state=True)
    result = released(state)
    assert state.name == "Promoted", result["reason"]
    assert c.production_image() == NEW_IMAGE  # the rolling update, read back
    c.assert_production_alone()
    _judged_from_the_stub(c.prometheus, c.app)
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


def test_a_tekton_build_then_its_release_through_the_block(cluster, monkeypatch) -> None:
    """The build flow's half of the chain: a TaskRun (checked against Tekton's CRD schema)
    builds the commit, its digest pins the image, the TaskRun is deleted, and that image is
    what the release promotes."""
    import canary.platforms.kubernetes.builds as builds

    fetched: list[tuple[str, str]] = []  # no network here: the commit has no .canary/
    monkeypatch.setattr(builds, "fetch_directory",
                        lambda repo, commit, directory: fetched.append((repo, commit)))  # fmt: skip
    c = cluster("gg-k8s-built")
    built = build_flow.build(repo=GIT_REPO, commit=COMMIT, app=c.app, platform=c.platform)
    image = built["image"]
    assert fetched == [(GIT_REPO, COMMIT)] and built["app_config"] is None  # read, before building
    assert image.startswith(f"{IMAGE_REPOSITORY}/{c.app}@sha256:")
    created = [r for r in c.standin.requests if r.call.verb == "create" and r.call.plural == "taskruns"]
    assert len(created) == 1 and created[0].status == 201
    assert c.standin.names("TaskRun") == []  # deleted once the digest was read
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
    assert set(c.standin.names("Deployment")) == {c.app, f"{c.app}-baseline", f"{c.app}-canary"}
    assert c.standin.names("DestinationRule")

    # The kubernetes worker reports a flow run whose pod died as Crashed; the automation on
    # Crashed (prefect.kubernetes.yaml) then starts reconcile with these parameters.
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_=f"canary-release-{c.app}-")))  # fmt: skip
        client.set_flow_run_state(run.id, Crashed(message="the pod was killed"), force=True)
    # The dead holder's lock lease lapses after 60 s (tests/flows/test_release_lock.py covers
    # that wait); here it is reset at once so the test does not sit through it.
    monkeypatch.setattr(reconcile_flow, "free_leaked_lock",
                        functools.partial(tasks.recovery.free_leaked_lock, grace=0, poll=0.1))
    started = time.monotonic()
    result = reconcile_flow.reconcile(app=c.app, platform=c.platform,
                                      run_id=f"prefect.flow-run.{run.id}")  # fmt: skip
    assert time.monotonic() - started < 60
    assert result["found"]["weights"] == "100% primary (verified)"
    assert sorted(result["found"]["removed"]) == [f"{c.app}-baseline", f"{c.app}-canary"]
    recovered = result["recovered"]
    assert recovered["outcome"] == "rolled-back" and recovered["production"] == c.prod_image
    assert c.canary_share() == 0
    assert c.production_image() == c.prod_image
    c.assert_production_alone()
    (event,) = api.events("canary.release.rolled-back", c.app)
    assert event.payload["recovered_run"] == str(run.id)
