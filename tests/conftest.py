"""Session-wide test rules: tests that need data kept outside the repository skip without
it (and fail under CI), see tests/support/shared.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shared import in_ci, missing

#: modules that start the stand-in themselves (not through the `standin` fixture)
KUBERNETES_STANDIN_MODULES = {"test_standin.py", "test_standin_cli.py"}
#: suites that each start a whole chain (Prefect server, worker, relay, HAProxy, Prometheus):
#: two of them at once overload a 2-core machine, so `make test` runs them one at a time
LIVE_SUITES = {"e2e", "faults", "ui"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(tests_dir) and path.relative_to(tests_dir).parts[0] in LIVE_SUITES:
            item.add_marker(pytest.mark.live)
        kinds = [m.args[0] for m in item.iter_markers("needs")]
        # the Kubernetes API stand-in validates custom resources against the real CRDs
        if "standin" in getattr(item, "fixturenames", ()) or KUBERNETES_STANDIN_MODULES & {Path(str(item.path)).name}:
            kinds.append("crds")
        for kind in kinds:
            why = missing(kind)
            if why is None:
                continue
            if in_ci():  # CI must run these: fail at setup, naming what is missing
                item.add_marker(pytest.mark.usefixtures("_fail_without_shared"))
            else:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def _fail_without_shared() -> None:  # pragma: no cover - CI only
    pytest.fail("; ".join(filter(None, (missing(k) for k in ("kayenta", "crds")))))
