"""Where the real Kayenta fixtures live (../shared/fixtures/kayenta, see its README)."""

from __future__ import annotations

import os
from pathlib import Path

KAYENTA_FIXTURES = Path(
    os.environ.get(
        "KAYENTA_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "kayenta"
    )
)
CONFIGS = KAYENTA_FIXTURES / "configs"
REQUESTS = KAYENTA_FIXTURES / "requests"
DUPLICATED = "kayenta-web-duplicated-metric-name.json"
