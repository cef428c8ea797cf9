"""The one app-name rule (an RFC 1123 label) and the mapping of repository names onto it."""

from __future__ import annotations

import pytest

from canary.errors import ConfigError
from canary.values.release import app_name_for_repository, check_app_name


@pytest.mark.parametrize(("repository", "app"), [
    ("goldengoose", "goldengoose"), ("MyService", "myservice"), ("acme/web_api.v2", "web-api-v2"),
    ("--Edge--", "edge"), ("a" * 70, "a" * 63), ("x" * 62 + "_y", "x" * 62),
])  # fmt: skip
def test_repository_names_map_to_valid_app_names(repository: str, app: str) -> None:
    assert app_name_for_repository(repository) == app
    assert check_app_name(app) == app


@pytest.mark.parametrize("repository", ["", "___", "owner/..."])
def test_a_name_with_nothing_left_says_how_to_name_the_app(repository: str) -> None:
    with pytest.raises(ConfigError, match=r"\.canary/release\.yaml"):
        app_name_for_repository(repository)


@pytest.mark.parametrize("bad", ["MyService", "a_b", "-a", "a-", "a" * 64, ""])
def test_the_rule_rejects_what_kubernetes_and_haproxy_cannot_name(bad: str) -> None:
    with pytest.raises(ConfigError, match="RFC 1123"):
        check_app_name(bad)


def test_the_local_platform_block_uses_the_same_rule() -> None:
    from blocks.local import LocalPlatform

    with pytest.raises(ValueError, match="RFC 1123"):
        LocalPlatform(app="My_App")


def test_one_release_model_validates_app_image_and_commit() -> None:
    from canary.errors import ConfigError
    from canary.values.release import Release

    sha = "A" * 40
    release = Release("shop", "registry.example.com/shop:1", sha)
    assert (release.app, release.commit, release.short_commit) == ("shop", "a" * 40, "aaaaaaa")
    for bad, words in [(("MyService", "img", sha), "is not a valid name"),
                       (("shop", "img", "main"), "not a full 40-hex git commit id"),
                       (("shop", " ", sha), "image ' ' is empty")]:  # fmt: skip
        try:
            Release(*bad)
        except ConfigError as exc:
            assert words in str(exc), exc
        else:
            raise AssertionError(f"{bad} was accepted")
