"""Releases configured only by a ReleasePolicy on the real control plane: the flow gets no
`config` parameter and the app has no release spec file, so its spec and canary config can
only come from the policy the runner reads (with rbac.yaml's Role); afterwards the policy's
status, written by the release through the status subresource, is read back, and
`kubectl get releasepolicies` lists it. A commit's `.canary/` still wins over the policy,
and then the policy's status is left alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import flows.canary_release as release_flow
from canary.config.policy import API_VERSION, KIND
from canary.platforms.kubernetes.policies import RELEASE_POLICY
from tests.flows.conftest import COMMIT, fast_retries, released
from tests.flows.test_kubernetes_release import ISTIO_CONFIG, NEW_IMAGE, Cluster, _shares
from tests.support.istio_prometheus import IstioPrometheus, Workload
from tests.support.kube import Namespace, install_release_policies

#: canary shares no file in this repository uses: seen on the VirtualService, they prove
#: that the policy's spec drove the release
STEPS = [7, 14]


class PolicyCluster(Cluster):
    """Cluster's app, with its release config only in a ReleasePolicy named after it."""

    def __init__(self, ns: Namespace, prometheus: IstioPrometheus, directory: Path, app: str) -> None:
        super().__init__(ns, prometheus, directory, app)
        install_release_policies(ns.cluster)
        release = self.release_spec(lifetime="3s", steps=STEPS)
        del release["canary_config"]
        self.policy = {"apiVersion": API_VERSION, "kind": KIND,
                       "metadata": {"name": app, "namespace": ns.name},
                       "spec": {"release": release,
                                "canaryConfig": yaml.safe_load(ISTIO_CONFIG.read_text())}}  # fmt: skip
        ns.admin.create(RELEASE_POLICY, self.policy)
        self.spec.unlink()  # no file to fall back on

    def policy_args(self) -> dict[str, str]:
        """The release's parameters without `config`: the policy is its only config."""
        return {k: v for k, v in self.release_args().items() if k != "config"}

    def status(self) -> dict[str, Any]:
        found = self.ns.admin.get(RELEASE_POLICY, self.app)
        assert found is not None
        return dict(found.get("status") or {})

    def listing(self) -> list[str]:
        """`kubectl get releasepolicies`: the header and the app's row, split in columns."""
        text = self.ns.cluster.kubectl("get", "releasepolicies", "-n", self.ns.name)
        header, *rows = text.splitlines()
        (row,) = [r for r in rows if r.split()[0] == self.app]
        return [header, row]


@pytest.fixture
def policy_cluster(namespace: Namespace, prometheus: IstioPrometheus, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Callable[[str], PolicyCluster]:  # fmt: skip
    fast_retries(monkeypatch)
    return lambda app: PolicyCluster(namespace, prometheus, tmp_path, app)


def _canary_shares(c: PolicyCluster) -> Callable[[], set[int]]:
    """Records the canary's share on the VirtualService each time the stub is scraped (the
    release reads metrics once per look, while its split is in force)."""
    seen: set[int] = set()

    def read(query: str) -> None:
        if f"{c.app}-canary" in query:
            seen.add(_shares(c.ns.read("VirtualService", c.app))[2])

    c.prometheus.on_query = read
    return lambda: seen


def test_a_release_configured_only_by_its_policy_is_promoted_and_writes_the_status(policy_cluster) -> None:
    c = policy_cluster("gg-rp-good")
    shares = _canary_shares(c)
    state = release_flow.canary_release(**c.policy_args(), return_state=True)
    result = released(state)
    assert state.name == "Promoted", result["reason"]
    assert c.production_image() == NEW_IMAGE
    assert shares() & set(STEPS), shares()  # the policy's traffic steps were in force
    c.assert_production_alone()
    status = c.status()
    assert status["outcome"] == "promoted" and status["commit"] == COMMIT
    assert status["reason"] == result["reason"]
    assert status["judge"] == "sequential-v1"
    assert "/artifacts/artifact/" in status["report"], status
    assert status["lastRelease"].endswith("Z")
    header, row = c.listing()
    print(f"kubectl get releasepolicies -n {c.ns.name}\n{header}\n{row}\nstatus: {status}")  # shown with -s
    assert header.split() == ["NAME", "APP", "JUDGE", "LIFETIME", "OUTCOME", "AGE"]
    assert row.split()[:5] == [c.app, c.app, "sequential-v1", "3s", "promoted"]


def test_a_rolled_back_release_writes_its_reason_into_the_policy(policy_cluster) -> None:
    c = policy_cluster("gg-rp-bad")
    c.prometheus.set(f"{c.app}-canary", Workload(rate=1000.0, errors=0.05))
    state = release_flow.canary_release(**c.policy_args(), return_state=True)
    result = released(state)
    assert state.name == "RolledBack"
    assert c.production_image() == c.prod_image
    c.assert_production_alone()
    status = c.status()
    assert status["outcome"] == "rolled-back" and "error-rate" in status["reason"], status
    assert c.listing()[1].split()[4] == "rolled-back"
    assert result["reason"] == status["reason"]


def test_without_its_policy_the_release_fails_closed_naming_the_missing_spec(policy_cluster) -> None:
    c = policy_cluster("gg-rp-gone")
    c.ns.admin.delete(RELEASE_POLICY, c.app)
    state = release_flow.canary_release(**c.policy_args(), return_state=True)
    assert state.is_failed()
    assert f"deployments/releases/{c.app}.yaml" in str(state.message), state.message
    assert c.production_image() == c.prod_image


def test_the_commits_canary_directory_wins_over_the_policy(policy_cluster) -> None:
    """A commit carrying `.canary/` (app_config, as the build passes it on) is released with
    its own steps, not the policy's, and the policy's status is left alone: the policy did not
    configure that release."""
    c = policy_cluster("gg-rp-commit")
    release = c.release_spec(lifetime="3s", steps=[5, 15])
    release["canary_config"] = "canary.yaml"
    app_config = {"release": yaml.safe_dump(release), "canary_config": ISTIO_CONFIG.read_text(),
                  "canary_config_name": "canary.yaml"}  # fmt: skip
    shares = _canary_shares(c)
    state = release_flow.canary_release(**c.policy_args(), app_config=app_config, return_state=True)
    assert state.name == "Promoted", released(state)["reason"]
    assert shares() and shares() <= {5, 15}, shares()
    assert c.status() == {}
