"""The KubernetesCluster block makes an app's adapters with the release spec it is given
(issue 19): the caller's spec, else `<release_specs>/<app>.yaml`, else every default. Read
off the adapter objects; no API call is made (the client is built, never used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from blocks.kubernetes import KubernetesCluster
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from canary.platforms.kubernetes import IstioRouter, KubernetesWorkloads, TektonBuilder

ROOT = Path(__file__).resolve().parents[1]
APP = "shop"
GIVEN = {"virtual_service": "storefront", "routes": ["beta"], "host": "shop.web.svc.cluster.local",
         "destination_rule": "shop-mtls", "traffic": "mirror", "replicas": 4, "container": "app",
         "dockerfile": "build/Dockerfile", "context": "services/api"}  # fmt: skip


def spec_file(folder: Path, *, app: str = APP, steps: tuple[int, ...] = (5, 25),
              **kubernetes: Any) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    body = {"app": app, "canary_config": "unused.yaml", "traffic": {"steps": list(steps)},
            "analysis": {"lifetime": "1m", "interval": "30s",
                         "thresholds": {"pass": 95, "marginal": 75}},
            **({"kubernetes": kubernetes} if kubernetes else {})}  # fmt: skip
    path = folder / f"{app}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def cluster(folder: Path) -> KubernetesCluster:
    return KubernetesCluster(host="https://k8s.test", token="t", release_specs=str(folder),
                             image_repository="registry.test/shop")  # fmt: skip


@pytest.fixture
def given(tmp_path: Path) -> ReleaseSpec:
    """The spec the flow judges with (e.g. a commit's .canary/release.yaml)."""
    return ReleaseSpec.load(spec_file(tmp_path / "commit", **GIVEN))


def test_the_adapters_get_the_options_of_the_spec_given(tmp_path: Path, given: ReleaseSpec) -> None:
    spec_file(tmp_path / "folder", virtual_service="folder", replicas=9, container="other")
    block = cluster(tmp_path / "folder")  # a spec in its folder too: the given one wins
    router = block.router(APP, given)
    assert isinstance(router, IstioRouter)
    assert (router.virtual_service, router.routes, router.host, router.destination_rule,
            router.mirror) == ("storefront", ("beta",), "shop.web.svc.cluster.local", "shop-mtls", True)  # fmt: skip
    workloads = block.workloads(APP, given)
    assert isinstance(workloads, KubernetesWorkloads)
    assert (workloads.replicas, workloads.max_share, workloads.container) == (4, 25, "app")
    builder = block.builder_for(APP, given)
    assert isinstance(builder, TektonBuilder)
    assert (builder.dockerfile, builder.context) == ("build/Dockerfile", "services/api")


def test_the_largest_traffic_step_of_the_spec_given_sizes_the_canary(tmp_path: Path) -> None:
    spec = ReleaseSpec.load(spec_file(tmp_path / "commit", steps=(10, 40, 20)))
    assert cluster(tmp_path / "none").workloads(APP, spec).max_share == 40


def test_without_a_spec_the_release_specs_folder_then_the_defaults(tmp_path: Path) -> None:
    spec_file(tmp_path / "folder", virtual_service="folder", replicas=2, steps=(30,))
    folder = cluster(tmp_path / "folder")
    assert folder.router(APP, None).virtual_service == "folder"
    assert (folder.workloads(APP, None).replicas, folder.workloads(APP, None).max_share) == (2, 30)
    bare = cluster(tmp_path / "none")
    router, workloads = bare.router(APP, None), bare.workloads(APP, None)
    assert (router.virtual_service, router.mirror) == (None, False)
    assert (workloads.replicas, workloads.max_share, workloads.container) == (None, 10, None)
    assert (bare.builder_for(APP, None).dockerfile, bare.builder_for(APP, None).context) == ("Dockerfile", ".")


def test_a_spec_of_another_app_is_refused(tmp_path: Path) -> None:
    other = ReleaseSpec.load(spec_file(tmp_path / "commit", app="storefront"))
    with pytest.raises(ConfigError, match="is for app 'storefront', not 'shop'"):
        cluster(tmp_path / "none").router(APP, other)


def test_reconcile_restore_and_production_read_make_their_adapters_with_the_spec_given(
        tmp_path: Path, given: ReleaseSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cleanup after a release must find what that release changed: the VirtualService
    its spec named, the container it replaced."""
    from blocks.kubernetes import KubernetesApp

    made: list[tuple[str, ReleaseSpec | None]] = []

    class Adapter:  # what reconcile calls on the router and the workloads, without a cluster
        def rollback(self, app: str) -> None: ...
        def restore(self, app: str) -> None: ...
        def remove(self, app: str, track: str) -> None: ...
        def leftovers(self, app: str) -> list[str]:
            return []
        def production_image(self, app: str) -> str:
            return "image"

    def recording(kind: str) -> Any:
        def make(self: KubernetesApp) -> Adapter:
            made.append((kind, self.spec))
            return Adapter()
        return make

    monkeypatch.setattr(KubernetesApp, "router", recording("router"))
    monkeypatch.setattr(KubernetesApp, "workloads", recording("workloads"))
    block = cluster(tmp_path / "none")
    block.reconcile(APP, given)
    block.restore_routes(APP, given)
    block.production_image(APP, given)
    bound = block.for_app(APP, given)
    bound.reconcile()
    bound.restore_routes()
    bound.production_image()
    assert {kind for kind, _ in made} == {"router", "workloads"}
    assert all(spec is given for _, spec in made)


def test_the_app_is_bound_once_and_its_options_read_once(tmp_path: Path, given: ReleaseSpec) -> None:
    bound = cluster(tmp_path / "none").for_app(APP, given)
    assert bound.options is given.kubernetes and bound.max_share == 25
    assert bound.production_commit() is None
    assert (bound.router().virtual_service, bound.workloads().replicas, bound.builder().dockerfile) == (
        "storefront", 4, "build/Dockerfile")
    with pytest.raises(ConfigError, match="is for app 'storefront', not 'shop'"):
        other = ReleaseSpec.load(spec_file(tmp_path / "other", app="storefront"))
        cluster(tmp_path / "none").for_app(APP, other).router()


def test_no_block_reads_the_flow_runs_parameters() -> None:
    """The spec is passed, never guessed from the run (a run's `config` is not the spec it
    judges with when its commit carries .canary/)."""
    for path in (ROOT / "blocks").glob("*.py"):
        assert "prefect.runtime" not in path.read_text(), path
