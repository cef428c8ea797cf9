"""ReleasePolicies on the cluster: read an app's policy (and its ConfigMap), write its status.

The release runner reads the policy named after the app in the app's namespace and, after a
release, writes the status subresource: the spec is never written here (the runner's Role,
deployments/kubernetes/rbac.yaml, grants no more). The policy's contents are
validated by canary.config.policy, the one path from a policy to models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from canary.config import CanaryConfig
from canary.config.policy import GROUP, KIND, PLURAL, VERSION, ConfigMapReader, Policy, read_policy
from canary.config.release import ReleaseSpec
from canary.values.outcome import Outcome

from .client import Kind, KubeClient
from .objects import JSON, field

RELEASE_POLICY = Kind(KIND, GROUP, VERSION, PLURAL)
CONFIG_MAP = Kind("ConfigMap", "", "v1", "configmaps", "CoreV1Api", "config_map")


@dataclass(frozen=True)
class PolicyStatus:
    """What a release writes back to the policy that configured it.

    Attributes:
        outcome: How the release ended.
        commit: The commit released.
        reason: Why, in words (the decision's reason).
        report: A link to the release's report ("" when there is none).
        ended: When the release ended (default: now).
        judge: The judge of the canary config the release used ("" when unknown).
    """

    outcome: Outcome
    commit: str
    reason: str
    report: str = ""
    ended: datetime | None = None
    judge: str = ""

    def to_json(self) -> JSON:
        """The status object as the CRD's schema has it.

        Returns:
            lastRelease, commit, outcome, reason; report and judge when known.
        """
        ended = (self.ended or datetime.now(UTC)).astimezone(UTC)
        status: JSON = {"lastRelease": ended.strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": self.commit,
                        "outcome": self.outcome.value, "reason": self.reason}  # fmt: skip
        if self.report:
            status["report"] = self.report
        if self.judge:
            status["judge"] = self.judge
        return status


def config_maps(kube: KubeClient) -> ConfigMapReader:
    """Reads a ConfigMap's key in the client's namespace (None when either is missing).

    Args:
        kube: The release runner's client.

    Returns:
        The reader a Policy's canary_config takes.
    """

    def read(name: str, key: str) -> str | None:
        found = field(kube.get(CONFIG_MAP, name), "data").get(key)
        return found if isinstance(found, str) else None

    return read


def read(kube: KubeClient, app: str) -> Policy | None:
    """The app's ReleasePolicy (named after the app, in the client's namespace), validated.

    Args:
        kube: The release runner's client.
        app: The app.

    Returns:
        The policy, or None when the app has none.

    Raises:
        ConfigError: The policy is invalid (what the API server could not refuse).
    """
    found = kube.get(RELEASE_POLICY, app)
    return None if found is None else read_policy(found)


def release_config(kube: KubeClient, app: str) -> tuple[ReleaseSpec, CanaryConfig] | None:
    """The release spec and canary config of the app's policy, ConfigMap read if referenced.

    Args:
        kube: The release runner's client.
        app: The app.

    Returns:
        (spec, canary config), or None when the app has no policy.

    Raises:
        ConfigError: The policy or its canary config is invalid or incomplete.
    """
    policy = read(kube, app)
    if policy is None:
        return None
    return policy.spec, policy.canary_config(config_maps(kube))


def write_status(kube: KubeClient, name: str, status: PolicyStatus) -> JSON:
    """Write a policy's status (the status subresource only: its spec is not touched).

    Args:
        kube: The release runner's client.
        name: The policy (the app's name).
        status: What the release ended with.

    Returns:
        The policy as stored afterwards.
    """
    return kube.patch_status(RELEASE_POLICY, name, {"status": status.to_json()})

