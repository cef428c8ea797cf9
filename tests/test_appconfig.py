"""A release config carried by the app's commit: checked strictly, carried as text, loaded
again through the same loaders (canary.appconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from canary import appconfig
from canary.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CANARY = (ROOT / "deployments/canary-configs/goldengoose.yaml").read_text()
WHERE = "https://git.test/shop.git at 0123456789ab"


def release(**change: object) -> str:
    spec = yaml.safe_load((ROOT / "deployments/releases/goldengoose.yaml").read_text())
    spec.pop("app")
    spec["canary_config"] = "configs/canary.yaml"
    spec.update(change)
    return yaml.safe_dump(spec)


def files(text: str | None = None, **more: str) -> dict[str, str]:
    return {"release.yaml": text or release(), "configs/canary.yaml": CANARY, **more}


def test_the_app_is_the_repository_name_unless_the_spec_names_one() -> None:
    carried, app = appconfig.check_files(files(), "shop", WHERE)
    assert app == "shop"
    assert carried == {"release": release(), "canary_config": CANARY,
                       "canary_config_name": "configs/canary.yaml"}  # fmt: skip
    _, app = appconfig.check_files(files(release(app="storefront")), "shop", WHERE)
    assert app == "storefront"


def test_a_carried_config_loads_back_to_the_same_models() -> None:
    carried, _ = appconfig.check_files(files(), "shop", WHERE)
    spec, config = appconfig.load(carried, "shop", "app_config")
    assert spec.app == "shop" and spec.canary_config == "configs/canary.yaml"
    assert config.name == "goldengoose" and spec.analysis.interval.total_seconds() == 15


@pytest.mark.parametrize(("given", "message"), [
    (files(release(bogus=1)), r"\.canary/release\.yaml: unknown key 'bogus'"),
    (files(release(analysis={"lifetime": "45s", "interval": "-3"})),
     r"\.canary/release\.yaml: analysis\.interval: '-3' is not a duration"),
    (files(release(app="Not_An_App")), r"\.canary/release\.yaml: app"),
    (files(release(canary_config="../../etc/passwd")),
     r"canary_config '\.\./\.\./etc/passwd' must be a relative path inside \.canary/"),
    (files(release(canary_config="missing.yaml")), r"\.canary/missing\.yaml: cannot read"),
    ({"release.yaml": release(), "configs/canary.yaml": "metrics: []\nshout: 1\n"},
     r"\.canary/configs/canary\.yaml: unknown key"),
    ({"canary.yaml": CANARY}, r"\.canary/ has no release\.yaml .*deployments/releases/shop\.yaml"),
])  # fmt: skip
def test_a_bad_config_is_an_error_naming_the_commit_the_file_and_the_key(given, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        appconfig.check_files(given, "shop", WHERE)
    assert str(err.value).startswith(WHERE) and "/tmp" not in str(err.value)


def test_a_config_too_big_for_an_event_is_refused() -> None:
    big = files(release() + "#" * appconfig.MAX_BYTES)
    with pytest.raises(ConfigError, match="more than the 64 KiB an event may carry"):
        appconfig.check_files(big, "shop", WHERE)


@pytest.mark.parametrize("carried", [
    "release: x", {"release": "x"}, {"release": 1, "canary_config": "", "canary_config_name": "c"},
])  # fmt: skip
def test_a_malformed_app_config_parameter_is_refused(carried: object) -> None:
    with pytest.raises(ConfigError, match="app_config must be a mapping of the strings"):
        appconfig.load(carried, "shop", "app_config")


def test_a_carried_canary_config_name_may_not_leave_the_directory() -> None:
    carried, _ = appconfig.check_files(files(), "shop", WHERE)
    with pytest.raises(ConfigError, match="not a relative path inside"):
        appconfig.load({**carried, "canary_config_name": "../x.yaml"}, "shop", "app_config")
