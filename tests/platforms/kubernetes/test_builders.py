"""On-cluster builds: Tekton TaskRun and Knative Build objects created (and checked by their
CRDs) on the real API server as the release runner; the test plays the controllers, writing
each run's status as Tekton or Knative would (tests/support/kube_builds.py)."""

from __future__ import annotations

import time

import pytest

from canary.errors import BuildError, ConfigError
from canary.platforms.kubernetes import KnativeBuilder, KubeClient, TektonBuilder
from tests.support.kube import Namespace
from tests.support.kube_builds import BuildController

from .conftest import COMMIT, IMAGE_REPO, REPO, runner_requests

DIGEST = "sha256:" + "f" * 64
RUN = f"goldengoose-{COMMIT[:12]}"


def _creates(namespace: Namespace, since: float, resource: str) -> int:
    return sum(1 for r in runner_requests(namespace, since) if (r.verb, r.resource) == ("create", resource))


def test_tekton_build_returns_the_image_pinned_by_the_digest_from_the_task_results(
        namespace: Namespace, builds: BuildController, tekton: TektonBuilder) -> None:
    builds.succeed(DIGEST)
    assert tekton.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    created = builds.seen[0]  # as the server stored it, after Tekton's CRD accepted it
    assert created["apiVersion"] == "tekton.dev/v1" and created["metadata"]["name"] == RUN
    assert created["spec"]["params"][:2] == [{"name": "repo-url", "value": REPO},
                                             {"name": "revision", "value": COMMIT}]
    steps = created["spec"]["taskSpec"]["steps"]
    assert [s["name"] for s in steps] == ["clone", "build-and-push"]
    assert "$(params.repo-url)" not in steps[0]["script"]  # reaches the shell via env only
    assert "--destination=$(params.image)" in steps[1]["args"]
    assert namespace.names("TaskRun") == []  # deleted once the digest was read


def test_tekton_failure_names_the_step_the_reason_and_where_the_logs_are(
        namespace: Namespace, builds: BuildController, tekton: TektonBuilder) -> None:
    since = time.time()
    builds.fail(step="build-and-push", message="Dockerfile not found")
    with pytest.raises(BuildError) as caught:
        tekton.build(REPO, COMMIT)
    message = str(caught.value)
    assert "step 'build-and-push'" in message and "Failed" in message
    assert "Dockerfile not found" in message
    assert f"kubectl logs -n {namespace.name} {RUN}-pod -c step-build-and-push" in message
    assert not caught.value.transient
    assert namespace.names("TaskRun") == [RUN]  # kept to inspect

    builds.succeed(DIGEST)  # fixed: the next try builds afresh
    assert tekton.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    assert _creates(namespace, since, "taskruns") == 2
    assert [r["metadata"]["uid"] for r in builds.seen][0] != builds.seen[1]["metadata"]["uid"]


@pytest.mark.parametrize("system", [TektonBuilder, KnativeBuilder], ids=["tekton", "knative"])
def test_a_build_that_outlives_its_deadline_is_cancelled(
        namespace: Namespace, builds: BuildController, kube: KubeClient,
        system: type[TektonBuilder] | type[KnativeBuilder]) -> None:
    """The cancel is best effort in the builder (the run's own timeout stops it too), so check
    here that the real server took it: the CRD knows spec.status and the Role grants patch."""
    builds.never()
    builder = system(kube, image=IMAGE_REPO, timeout=1.0, window=1.0, keep_runs=True)
    with pytest.raises(BuildError, match="did not finish within 1s"):
        builder.build(REPO, COMMIT)
    kind, cancelled = builder.kind.kind, builder.cancel_patch()["spec"]["status"]
    run = namespace.read(kind, RUN)
    assert run and run["spec"]["status"] == cancelled  # what Tekton / Knative act on
    namespace.wait("the controller's answer to the cancel", lambda: (namespace.read(kind, RUN) or {}).get(
        "status", {}).get("conditions", [{}])[0].get("reason") == cancelled, timeout=10)


def test_the_same_commit_is_built_once(
        namespace: Namespace, builds: BuildController, kube: KubeClient) -> None:
    since = time.time()
    builds.succeed(DIGEST)
    builder = TektonBuilder(kube, image=f"{IMAGE_REPO}:latest", keep_runs=True, timeout=5)
    first = builder.build(REPO, COMMIT)
    assert builder.build(REPO, COMMIT) == first == f"{IMAGE_REPO}@{DIGEST}"
    assert _creates(namespace, since, "taskruns") == 1


def test_knative_build_reads_the_digest_from_the_kaniko_step_termination_message(
        namespace: Namespace, builds: BuildController, knative: KnativeBuilder) -> None:
    builds.succeed(DIGEST)
    assert knative.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    created = builds.seen[0]
    assert created["apiVersion"] == "build.knative.dev/v1alpha1"
    assert created["spec"]["source"] == {"git": {"url": REPO, "revision": COMMIT}}
    assert namespace.names("Build") == []


def test_knative_failure_names_the_step(namespace: Namespace, builds: BuildController,
                                        knative: KnativeBuilder) -> None:
    builds.fail(message="UNAUTHORIZED: registry refused the push")
    with pytest.raises(BuildError, match=r"step 'build-and-push'.*UNAUTHORIZED"):
        knative.build(REPO, COMMIT)


@pytest.mark.parametrize(("repo", "commit"), [
    (REPO, "main"), (REPO, "ABCDEF1"), ("file:///etc", COMMIT), ("https://x/y.git; rm -rf /", COMMIT),
])
def test_bad_sources_are_refused_before_anything_is_created(
        namespace: Namespace, tekton: TektonBuilder, repo: str, commit: str) -> None:
    since = time.time()
    with pytest.raises(ConfigError):
        tekton.build(repo, commit)
    namespace.kube.get(tekton.kind, "after-the-refusal")  # a last request, to know the log is current
    assert [r.name for r in runner_requests(namespace, since)] == ["after-the-refusal"]


def test_an_image_pinned_by_digest_is_not_a_push_target() -> None:
    import kubernetes.client

    with pytest.raises(ConfigError, match="digest"):
        TektonBuilder(KubeClient(kubernetes.client.ApiClient(), "any"), image=f"{IMAGE_REPO}@{DIGEST}")
