"""Our YAML form: Kayenta's keys, validated strictly, errors naming file, metric and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from canary.config import CanaryConfig
from canary.errors import ConfigError
from tests.config.kayenta_fixtures import CONFIGS, DUPLICATED

# Fixtures whose JSON carries keys that current Kayenta silently drops; strict YAML refuses them.
OBSOLETE = {
    "history-pr559-kayenta-opentsdb-sample-config.json": "'services'",
    "kayenta-atlas-sample-config.json": "'services'",
    "kayenta-graphite-sample-config.json": "'services'",
    "scratch-prometheus_canary_config.json": "metric 'cpu' (metrics[0]): query: unknown keys",
    "kayenta-judge-test-config.json": "name: required key is missing",  # no name at all
    DUPLICATED: "metric name 'mem' is duplicated.",
}
CLEAN = sorted(p.name for p in CONFIGS.glob("*.json") if p.name not in OBSOLETE)

GOOD = {
    "name": "goldengoose",
    "metrics": [
        {"name": "errors", "query": {"type": "prometheus", "metricName": "errors_total"}},
        {"name": "latency", "query": {"type": "prometheus", "metricName": "latency"}},
        {
            "name": "p99",
            "query": {"type": "prometheus", "metricName": "p99", "groupByFields": ["pod"]},
            "groups": ["latency"],
            "analysisConfigurations": {"canary": {"direction": "increase", "critical": True}},
            "scopeName": "default",
        },
    ],
    "classifier": {"groupWeights": {"latency": 100}},
}


def write(tmp_path: Path, data: object, name: str = "goldengoose.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def p99(**canary: object) -> dict:
    data = json.loads(json.dumps(GOOD))
    data["metrics"][2]["analysisConfigurations"]["canary"].update(canary)
    return data


@pytest.mark.needs("kayenta")
def test_clean_fixture_list_is_not_empty() -> None:
    assert len(CLEAN) == 18


@pytest.mark.parametrize("name", CLEAN)
@pytest.mark.needs("kayenta")
def test_kayenta_json_converted_to_yaml_loads_equal(tmp_path: Path, name: str) -> None:
    data = json.loads((CONFIGS / name).read_text())
    assert CanaryConfig.load(write(tmp_path, data, "c.yml")) == CanaryConfig.load(CONFIGS / name)


@pytest.mark.parametrize(("name", "expected"), sorted(OBSOLETE.items()))
@pytest.mark.needs("kayenta")
def test_obsolete_or_broken_fixtures_are_refused_in_yaml(
    tmp_path: Path, name: str, expected: str
) -> None:
    path = write(tmp_path, json.loads((CONFIGS / name).read_text()))
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_good_yaml_loads(tmp_path: Path) -> None:
    config = CanaryConfig.load(write(tmp_path, GOOD))
    assert config.metric("p99").canary.critical is True
    assert config.metric("p99").query.group_by_fields == ("pod",)
    assert config.metric("errors").canary.direction == "either"
    assert config.classifier.score_thresholds is None


def test_bad_direction_names_file_metric_field_and_choices(tmp_path: Path) -> None:
    path = write(tmp_path, p99(direction="up"))
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(path)
    assert str(err.value) == (
        f"{path}: metric 'p99' (metrics[2]): analysisConfigurations.canary.direction: "
        "'up' is not one of increase, decrease, either"
    )


def test_bad_nan_strategy(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"canary\.nanStrategy: 'drop' is not one of remove, replace"
    ):
        CanaryConfig.load(write(tmp_path, p99(nanStrategy="drop")))


def test_quoted_boolean_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, p99(critical="true"))
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(path)
    assert str(err.value) == (
        f"{path}: metric 'p99' (metrics[2]): analysisConfigurations.canary.critical: "
        "'true' is not a boolean; write true or false, without quotes"
    )


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, p99(criticl=True))
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: metric 'p99' (metrics[2]): analysisConfigurations.canary: ")
    assert "unknown key 'criticl'; remove it or fix the spelling" in message
    assert "allowed here: direction, nanStrategy, critical, mustHaveData" in message
    assert "(did you mean 'critical'?)" in message


def test_a_canary_config_hint_keeps_kayentas_camel_case(tmp_path: Path) -> None:
    """Kayenta's canary configs spell keys in camelCase; the hint lists them so."""
    path = write(tmp_path, p99(nanStrateg="remove"))
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(path)
    message = str(err.value)
    assert "(did you mean 'nanStrategy'?)" in message and "mustHaveData" in message
    assert "nan_strategy" not in message and "must_have_data" not in message


def test_a_release_spec_hint_lists_the_snake_case_keys_the_file_uses(tmp_path: Path) -> None:
    """Release specs spell the plan in snake_case (`begin_after`); a typo there is answered
    in that spelling, never with the camelCase aliases (`beginAfter`), which still load."""
    from canary.config.release import ReleaseSpec

    def spec(**analysis: object) -> dict[str, object]:
        return {"app": "hint", "canary_config": "c.yaml",
                "analysis": {"lifetime": "1m", "thresholds": {"pass": 90}, **analysis}}  # fmt: skip

    with pytest.raises(ConfigError) as err:
        ReleaseSpec.from_data(spec(begin_afer="10s"), tmp_path / "release.yaml")
    message = str(err.value)
    assert "analysis: unknown key 'begin_afer'" in message and "(did you mean 'begin_after'?)" in message
    allowed = message.split("allowed here: ", 1)[1]
    for key in ("begin_after", "control_offset", "min_analysis", "end_time", "lifetime"):
        assert key in allowed, allowed
    for camel in ("beginAfter", "controlOffset", "minAnalysis", "endTime", "wholeMinutes"):
        assert camel not in message, message
    with pytest.raises(ConfigError) as err:
        ReleaseSpec.from_data(spec(thresholds={"pas": 90}), tmp_path / "release.yaml")
    assert "allowed here: pass, marginal)" in str(err.value)  # `pass`, not the field's `pass_`
    loaded = ReleaseSpec.from_data(spec(beginAfter="10s", min_analysis="20s"), tmp_path / "r.yaml")
    assert loaded.analysis.begin_after.total_seconds() == 10  # both spellings still load


def test_unknown_query_key_and_top_level_key(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["metrics"][0]["query"]["metricname"] = "x"
    data["clasifier"] = {}
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(write(tmp_path, data))
    assert "unknown key 'clasifier'" in str(err.value)
    data.pop("clasifier")
    with pytest.raises(
        ConfigError, match=r"metric 'errors' \(metrics\[0\]\): query: unknown key 'metricname'"
    ):
        CanaryConfig.load(write(tmp_path, data))


def test_query_type_typo_is_refused_in_yaml_but_kept_from_json(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["metrics"][0]["query"]["type"] = "promethus"
    with pytest.raises(
        ConfigError, match=r"query.type: 'promethus' is not one of prometheus, atlas"
    ):
        CanaryConfig.load(write(tmp_path, data))
    assert CanaryConfig.from_kayenta(data).metrics[0].query.type == "promethus"


def test_other_analysis_configuration_is_refused(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["metrics"][1]["analysisConfigurations"] = {"canary": {}, "other": {}}
    with pytest.raises(ConfigError, match=r"metric 'latency' \(metrics\[1\]\).*'other'"):
        CanaryConfig.load(write(tmp_path, data))
    assert CanaryConfig.from_kayenta(data).metric("latency").canary.direction == "either"


def test_a_number_where_a_float_is_expected_but_not_a_string(tmp_path: Path) -> None:
    ok = CanaryConfig.load(write(tmp_path, p99(effectSize={"allowedIncrease": 2})))
    assert ok.metric("p99").canary.effect_size.allowed_increase == 2.0
    with pytest.raises(
        ConfigError, match=r"canary\.effectSize\.allowedIncrease: '2' is not a number"
    ):
        CanaryConfig.load(write(tmp_path, p99(effectSize={"allowedIncrease": "2"})))


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(write(tmp_path, p99(direction="up", muted="no")))
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{tmp_path / 'goldengoose.yaml'}: metric 'p99'") for line in lines)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmetrics:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^{path}: line \d+, column \d+: invalid YAML"):
        CanaryConfig.load(path)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nname: y\n")
    with pytest.raises(ConfigError, match=rf"^{path}: line 2, column 1: .*'name' is given twice"):
        CanaryConfig.load(path)


def test_json_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "metrics": [,]\n}\n')
    with pytest.raises(ConfigError, match=rf"^{path}: line 3, column \d+: invalid JSON"):
        CanaryConfig.load(path)


def test_not_a_mapping_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        CanaryConfig.load(path)
    with pytest.raises(ConfigError, match=r"\.json, \.yaml or \.yml"):
        CanaryConfig.load(write(tmp_path, GOOD, "c.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        CanaryConfig.load(tmp_path / "absent.yaml")


def test_duplicated_metric_in_yaml(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["metrics"][1]["name"] = "errors"
    with pytest.raises(ConfigError) as err:
        CanaryConfig.load(write(tmp_path, data))
    assert str(err.value).endswith(
        "Canary config 'goldengoose': metric name 'errors' is duplicated."
    )
