"""On-cluster builds: Tekton TaskRun and Knative Build, against the stand-in."""

from __future__ import annotations

import pytest

from canary.errors import BuildError, ConfigError
from canary.platforms.kubernetes import KnativeBuilder, TektonBuilder
from tests.support.k8s_standin import StandIn

from .conftest import COMMIT, IMAGE_REPO, REPO

DIGEST = "sha256:" + "f" * 64


def test_tekton_build_returns_the_image_pinned_by_the_digest_from_the_task_results(
        standin: StandIn, tekton: TektonBuilder) -> None:
    standin.controller.build("*", "succeed", digest=DIGEST)
    assert tekton.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    created = next(r.body for r in standin.requests if r.call.verb == "create")
    assert created["apiVersion"] == "tekton.dev/v1"
    assert created["spec"]["params"][:2] == [{"name": "repo-url", "value": REPO},
                                             {"name": "revision", "value": COMMIT}]
    steps = created["spec"]["taskSpec"]["steps"]
    assert [s["name"] for s in steps] == ["clone", "build-and-push"]
    assert "$(params.repo-url)" not in steps[0]["script"]  # reaches the shell via env only
    assert "--destination=$(params.image)" in steps[1]["args"]
    assert standin.names("TaskRun") == []  # deleted once the digest was read


def test_tekton_failure_names_the_step_the_reason_and_where_the_logs_are(
        standin: StandIn, tekton: TektonBuilder) -> None:
    standin.controller.build("*", "fail", step="build-and-push", message="Dockerfile not found")
    with pytest.raises(BuildError) as caught:
        tekton.build(REPO, COMMIT)
    message = str(caught.value)
    assert "step 'build-and-push'" in message and "Failed" in message
    assert "Dockerfile not found" in message and "kubectl logs" in message
    assert not caught.value.transient
    assert standin.names("TaskRun") == [f"goldengoose-{COMMIT[:12]}"]  # kept to inspect

    standin.controller.build("*", "succeed", digest=DIGEST)  # fixed: the next try builds afresh
    assert tekton.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    assert [r.call.verb for r in standin.requests].count("create") == 2


def test_a_build_that_outlives_its_deadline_is_cancelled(standin: StandIn, kube: object) -> None:
    standin.controller.build("*", "never")
    builder = TektonBuilder(kube, image=IMAGE_REPO, timeout=1.0, window=1.0, keep_runs=True)  # type: ignore[arg-type]
    with pytest.raises(BuildError, match="did not finish within 1s"):
        builder.build(REPO, COMMIT)
    standin.controller.settle()
    run = standin.read("TaskRun", f"goldengoose-{COMMIT[:12]}")
    assert run and run["spec"]["status"] == "TaskRunCancelled"
    assert run["status"]["conditions"][0]["reason"] == "TaskRunCancelled"


def test_the_same_commit_is_built_once(standin: StandIn, kube: object) -> None:
    builder = TektonBuilder(kube, image=f"{IMAGE_REPO}:latest", keep_runs=True, timeout=5)  # type: ignore[arg-type]
    first = builder.build(REPO, COMMIT)
    assert builder.build(REPO, COMMIT) == first
    assert [r.call.verb for r in standin.requests].count("create") == 1


def test_knative_build_reads_the_digest_from_the_kaniko_step_termination_message(
        standin: StandIn, knative: KnativeBuilder) -> None:
    standin.controller.build("*", "succeed", digest=DIGEST)
    assert knative.build(REPO, COMMIT) == f"{IMAGE_REPO}@{DIGEST}"
    created = next(r.body for r in standin.requests if r.call.verb == "create")
    assert created["apiVersion"] == "build.knative.dev/v1alpha1"
    assert created["spec"]["source"] == {"git": {"url": REPO, "revision": COMMIT}}
    assert standin.names("Build") == []


def test_knative_failure_names_the_step(standin: StandIn, knative: KnativeBuilder) -> None:
    standin.controller.build("*", "fail", message="UNAUTHORIZED: registry refused the push")
    with pytest.raises(BuildError, match=r"step 'build-and-push'.*UNAUTHORIZED"):
        knative.build(REPO, COMMIT)


@pytest.mark.parametrize(("repo", "commit"), [
    (REPO, "main"), (REPO, "ABCDEF1"), ("file:///etc", COMMIT), ("https://x/y.git; rm -rf /", COMMIT),
])
def test_bad_sources_are_refused_before_anything_is_created(
        standin: StandIn, tekton: TektonBuilder, repo: str, commit: str) -> None:
    with pytest.raises(ConfigError):
        tekton.build(repo, commit)
    assert standin.requests == []


def test_an_image_pinned_by_digest_is_not_a_push_target(kube: object) -> None:
    with pytest.raises(ConfigError, match="digest"):
        TektonBuilder(kube, image=f"{IMAGE_REPO}@{DIGEST}")  # type: ignore[arg-type]
