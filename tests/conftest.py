"""Session-wide test rules: tests that need data kept outside the repository skip without
it (and fail under CI), see tests/support/shared.py; tests on the real Kubernetes control
plane (fixtures `control_plane`, `namespace`: tests/support/kube.py) are marked `kubernetes`,
and skip without its binaries (fail under CI: `make setup` builds them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canary.platforms.local import procs
from tests.support import fault_table
from tests.support.kube import (
    Cluster,
    Namespace,
    delete_namespace,
    make_namespace,
    not_built,
    shared_control_plane,
)
from tests.support.shared import in_ci, missing

#: fixtures that need the real Kubernetes control plane
KUBERNETES_FIXTURES = {"control_plane", "namespace"}
#: suites that each start a whole chain (Prefect server, worker, relay, HAProxy, Prometheus),
#: or a server and a browser (ui). Each has a home and free ports of its own (`pytest_configure`
#: keeps the ports of xdist workers apart), so `make test` runs them side by side, one file
#: per worker (`scope`).
LIVE_SUITES = {"e2e", "faults", "ui"}


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker picks its free ports in a band of its own: the pass's $CANARY_PORT_RANGE
    (make test gives each pass one) cut into as many bands as there are workers. Two chains
    that choose a port each and bind it seconds later then never choose the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not worker.startswith("gw") or count < 2:
        return
    low, high = procs.port_range()
    width = (high - low) // count
    index = int(worker[2:])
    os.environ[procs.PORT_RANGE_ENV] = f"{low + index * width}-{low + (index + 1) * width}"


def scope(nodeid: str) -> str:
    """What one xdist worker runs in a row (`--dist loadfile`): a test's file, except that
    tests/e2e's files share one package-scoped chain, so they go together."""
    path = nodeid.split("::", 1)[0]
    return "tests/e2e" if path.startswith("tests/e2e/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, grouped by `scope` (xdist's own loadgroup cannot be used: it renames
    a test's node id, which pytest 9 no longer reads)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return FileScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(tests_dir) and path.relative_to(tests_dir).parts[0] in LIVE_SUITES:
            item.add_marker(pytest.mark.live)
        if KUBERNETES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kubernetes)
            why = not_built()
            if why is not None:
                if in_ci():
                    item.add_marker(pytest.mark.usefixtures("_fail_without_control_plane"))
                else:
                    item.add_marker(pytest.mark.skip(reason=f"the Kubernetes control plane: {why}"))
        kinds = [m.args[0] for m in item.iter_markers("needs")]
        for kind in kinds:
            why = missing(kind)
            if why is None:
                continue
            if in_ci():  # CI must run these: fail at setup, naming what is missing
                item.add_marker(pytest.mark.usefixtures("_fail_without_shared"))
            else:
                item.add_marker(pytest.mark.skip(reason=why))


#: rows of the fault table (tests/faults) reported so far, in this (controller) process
FAULT_ROWS: list[fault_table.Row] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FAULT_ROWS.extend(fault_table.gather(report.user_properties))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault table (for the closing note): time until production was clean, etc."""
    fault_table.summary(terminalreporter, FAULT_ROWS)


@pytest.fixture
def _fail_without_shared() -> None:  # pragma: no cover - CI only
    pytest.fail("; ".join(filter(None, (missing(k) for k in ("kayenta",)))))


@pytest.fixture
def _fail_without_control_plane() -> None:  # pragma: no cover - CI only
    pytest.fail(f"the Kubernetes control plane is not built: {not_built()}")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    """The real control plane (etcd, kube-apiserver, controller manager, scheduler, kwok),
    shared by every test of the run (tests/support/kube.py)."""
    with shared_control_plane() as cluster:
        yield cluster


@pytest.fixture
def namespace(control_plane: Cluster, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A fresh namespace with the release runner's ServiceAccount, Role and token."""
    prefix = request.node.name.lower().replace("_", "-")
    prefix = "".join(c for c in prefix if c.isalnum() or c == "-").strip("-")[:30] or "t"
    ns = make_namespace(control_plane, prefix)
    yield ns
    delete_namespace(ns)
