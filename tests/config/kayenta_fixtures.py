"""Where the real Kayenta fixtures live ($KAYENTA_FIXTURES; see tests/support/shared.py).

Modules that read them carry `pytestmark = pytest.mark.needs("kayenta")`: without the
fixtures their tests skip with one line (and fail under CI). Parametrised lists are empty
then, so under CI the import itself fails: CI must never pass without them.
"""

from __future__ import annotations

from tests.support.shared import in_ci, location, missing

KAYENTA_FIXTURES = location("kayenta")
CONFIGS = KAYENTA_FIXTURES / "configs"
REQUESTS = KAYENTA_FIXTURES / "requests"
DUPLICATED = "kayenta-web-duplicated-metric-name.json"

if in_ci() and (why := missing("kayenta")):
    raise RuntimeError(why)
