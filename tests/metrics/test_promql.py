"""Kayenta-compatible query building (spec kayenta-prometheus.md, section 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from canary.config import CanaryConfig, PrometheusQuery
from canary.errors import ConfigError
from canary.metrics.promql import build_query, java_split_commas, substitute
from canary.values.scope import MetricScope

START = datetime(2020, 7, 27, 19, 17, 36, tzinfo=UTC)
from tests.config.kayenta_fixtures import CONFIGS as FIXTURES  # noqa: E402

SPEC_TEMPLATES = {
    "someTemplate": "some-label=${scope}",
    "anotherTemplate": "my-server-group=${scope}",
}


def scope(**kw: object) -> MetricScope:
    kw.setdefault("start", START)
    kw.setdefault("end", START + timedelta(minutes=10))
    return MetricScope(**kw)  # type: ignore[arg-type]


def query(**kw: object) -> PrometheusQuery:
    """A query from Kayenta-style keys; None means the key is absent."""
    fields = {k: v for k, v in kw.items() if v is not None}
    return PrometheusQuery.model_validate({"type": "prometheus", **fields})


# -- the 14 cases of Kayenta's PrometheusMetricsServiceSpec, rebuilt from the spec ------------

HIST = 'prometheus_http_response_size_bytes_bucket{instance="localhost:9090",handler="'
SPEC_CASES = [
    # labelBindings, customFilterTemplate, customInlineTemplate, resourceType, scope, ext, expected
    (["a=b"], None, None, "gce_instance", "some-server-group", None,
     'avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",zone=~".+/zones/us-central1-.{1}"})'),
    (["a=b"], None, "", "gce_instance", "some-server-group", None,
     'avg(some-metric-name{a=b,instance=~"some-server-group-.{4}",zone=~".+/zones/us-central1-.{1}"})'),
    (["a=b"], None, None, "aws_ec2_instance", "some-server-group", None,
     'avg(some-metric-name{a=b,asg_groupName="some-server-group",zone=~"us-central1.{1}"})'),
    (["a=b"], None, "", "aws_ec2_instance", "some-server-group", None,
     'avg(some-metric-name{a=b,asg_groupName="some-server-group",zone=~"us-central1.{1}"})'),
    (["a=b"], "someTemplate", None, "gce_instance", "some-app-canary", None,
     "avg(some-metric-name{some-label=some-app-canary,a=b})"),
    (["a=b"], "someTemplate", "customFilter=something,andSomething=else", "gce_instance", None, None,
     "avg(some-metric-name{customFilter=something,andSomething=else,a=b})"),
    (["a=b"], None, "customFilter=something,andSomething=else", "gce_instance", None, None,
     "avg(some-metric-name{customFilter=something,andSomething=else,a=b})"),
    (["a=b"], None, "customFilter=something,andSomething=else", "aws_ec2_instance", None, None,
     "avg(some-metric-name{customFilter=something,andSomething=else,a=b})"),
    (["a=b"], None, "customFilter=something,andSomething=else", "anything_else", None, None,
     "avg(some-metric-name{customFilter=something,andSomething=else,a=b})"),
    (["a=b"], "anotherTemplate", None, None, "some-baseline", None,
     "avg(some-metric-name{my-server-group=some-baseline,a=b})"),
    (["a=b"], "anotherTemplate", None, "", "some-canary", None,
     "avg(some-metric-name{my-server-group=some-canary,a=b})"),
    (None, None, "PromQL:histogram_quantile(0.5, " + HIST + '/graph"})', None, None, None,
     "histogram_quantile(0.5, " + HIST + '/graph"})'),
    (None, None, "PromQL:histogram_quantile(0.5, " + HIST + '${scope}"})', None, "/graph", None,
     "histogram_quantile(0.5, " + HIST + '/graph"})'),
    (None, None, "PromQL:histogram_quantile(${quantile}, " + HIST + '${scope}"})', None, "/graph",
     {"quantile": "0.99"}, "histogram_quantile(0.99, " + HIST + '/graph"})'),
]  # fmt: skip


@pytest.mark.parametrize("bindings,named,inline,rtype,scope_value,ext,expected", SPEC_CASES)
def test_kayenta_spec_cases(bindings, named, inline, rtype, scope_value, ext, expected):
    q = query(
        metricName="some-metric-name", labelBindings=bindings, customFilterTemplate=named,
        customInlineTemplate=inline, resourceType=rtype,
    )  # fmt: skip
    s = scope(scope=scope_value, location="us-central1", extended_scope_params=ext or {})
    assert build_query(q, SPEC_TEMPLATES, s) == expected


def test_spec_example_p99_from_prompt():
    text = "PromQL:histogram_quantile(0.99, " + HIST + '/graph"})'
    assert build_query(query(customInlineTemplate=text), {}, scope()) == text[len("PromQL:") :]


# -- resource types ---------------------------------------------------------------------------


def test_gce_with_project_and_scope_label():
    q = query(metricName="m", resourceType="gce_instance")
    s = scope(scope="sg-v001", location="europe-west1", project="my-proj")
    assert build_query(q, {}, s, scope_label="pod") == (
        'avg(m{pod=~"sg-v001-.{4}",zone=~".+/projects/my-proj/zones/europe-west1-.{1}"})'
    )


def test_gce_without_scope_only_zone():
    q = query(metricName="m", resourceType="gce_instance", labelBindings=["a=b"])
    assert build_query(q, {}, scope(location="us-central1")) == (
        'avg(m{a=b,zone=~".+/zones/us-central1-.{1}"})'
    )


def test_aws_ignores_project_and_scope_label():
    q = query(metricName="m", resourceType="aws_ec2_instance")
    s = scope(scope="asg-v002", location="us-east-1", project="ignored")
    assert build_query(q, {}, s, scope_label="pod") == (
        'avg(m{asg_groupName="asg-v002",zone=~"us-east-1.{1}"})'
    )
    assert build_query(q, {}, scope(location="us-east-1")) == 'avg(m{zone=~"us-east-1.{1}"})'


@pytest.mark.parametrize("rtype", ["gce_instance", "aws_ec2_instance"])
@pytest.mark.parametrize("location", [None, ""])
def test_location_required(rtype, location):
    with pytest.raises(ConfigError) as err:
        build_query(
            query(metricName="m", resourceType=rtype), {}, scope(scope="x", location=location)
        )
    assert str(err.value) == f"Location (i.e. region) is required when resourceType is '{rtype}'."


def test_unsupported_resource_type():
    with pytest.raises(ConfigError) as err:
        build_query(query(metricName="m", resourceType="k8s_pod"), {}, scope(location="l"))
    assert str(err.value) == (
        "There is no explicit support for resourceType 'k8s_pod'. You may build whatever query "
        "makes sense for your environment via label bindings and custom filter templates."
    )


def test_label_bindings_only_needs_resource_type():
    q = query(metricName="node_cpu", labelBindings=['mode=~"user|system"'])
    with pytest.raises(
        ConfigError, match=r"^Either a resource type or a custom filter is required\.$"
    ):
        build_query(q, {}, scope(scope="sg", location="us-central1"))


def test_query_resource_type_beats_scope_and_blank_falls_back():
    s = scope(scope="sg", location="us-central1", resource_type="gce_instance")
    aws = build_query(query(metricName="m", resourceType="aws_ec2_instance"), {}, s)
    assert aws == 'avg(m{asg_groupName="sg",zone=~"us-central1.{1}"})'
    blank = build_query(query(metricName="m", resourceType="  "), {}, s)  # no text: scope's wins
    assert blank == 'avg(m{instance=~"sg-.{4}",zone=~".+/zones/us-central1-.{1}"})'


def test_scope_resource_type_from_extended_params():
    s = MetricScope.from_kayenta({
        "scope": "sg", "location": "us-central1", "start": "2020-07-27T19:17:36Z",
        "end": "2020-07-27T19:27:36Z", "step": 60,
        "extendedScopeParams": {"resourceType": "gce_instance", "project": "p1"},
    })  # fmt: skip
    assert build_query(query(metricName="m"), {}, s) == (
        'avg(m{instance=~"sg-.{4}",zone=~".+/projects/p1/zones/us-central1-.{1}"})'
    )


# -- metric name, grouping, matcher list ------------------------------------------------------


def test_metric_name_required_unless_promql():
    with pytest.raises(
        ConfigError, match=r"^Metric Name is required when query type is Default\.$"
    ):
        build_query(query(resourceType="gce_instance"), {}, scope(location="l"))
    with pytest.raises(ConfigError, match="Metric Name is required"):
        build_query(query(metricName="", customInlineTemplate="a=b"), {}, scope())
    assert build_query(query(customInlineTemplate="PromQL:up"), {}, scope()) == "up"


def test_group_by_after_avg():
    q = query(metricName="m", customInlineTemplate='app="x"', groupByFields=["code", "track"])
    assert build_query(q, {}, scope()) == 'avg(m{app="x"}) by (code,track)'


def test_promql_ignores_everything_else():
    q = query(metricName="m", labelBindings=["a=b"], groupByFields=["g"], resourceType="nope",
              customInlineTemplate="PromQL:sum(rate(x[1m]))")  # fmt: skip
    assert build_query(q, {}, scope()) == "sum(rate(x[1m]))"


def test_promql_prefix_is_exact():
    assert build_query(query(metricName="m", customInlineTemplate="promql:up"), {}, scope()) == (
        "avg(m{promql:up})"
    )
    assert build_query(query(metricName="m", customInlineTemplate=" PromQL:up"), {}, scope()) == (
        "avg(m{ PromQL:up})"
    )


def test_promql_from_named_template_with_variables():
    templates = {"p99": 'PromQL:histogram_quantile(0.99, rate(h_bucket{track="${scope}"}[1m]))'}
    q = query(customFilterTemplate="p99")
    assert build_query(q, templates, scope(scope="canary")) == (
        'histogram_quantile(0.99, rate(h_bucket{track="canary"}[1m]))'
    )


@pytest.mark.parametrize(
    "custom,expected",
    [
        ("a=b,,c=d,,", "avg(m{a=b,,c=d,x=y})"),  # trailing empty pieces dropped
        (",a=b", "avg(m{,a=b,x=y})"),  # a leading empty piece is kept
        (' a = "b" ,c=~"d,e"', 'avg(m{ a = "b" ,c=~"d,e",x=y})'),  # no trim; commas survive
        (",,,", "avg(m{x=y})"),
    ],
)
def test_custom_filter_split_like_java(custom, expected):
    q = query(metricName="m", customInlineTemplate=custom, labelBindings=["x=y"])
    assert build_query(q, {}, scope()) == expected


def test_no_matchers_no_braces():
    q = query(metricName="m", customInlineTemplate=",,")
    assert build_query(q, {}, scope()) == "avg(m)"


def test_java_split_commas():
    assert java_split_commas("a,b") == ["a", "b"]
    assert java_split_commas(",") == []
    assert java_split_commas(",a,,") == ["", "a"]
    assert java_split_commas("a") == ["a"]


# -- templates --------------------------------------------------------------------------------


def test_deprecated_custom_filter_even_empty():
    for value in ("x=y", ""):
        with pytest.raises(ConfigError) as err:
            build_query(query(metricName="m", customFilter=value), {}, scope())
        assert str(err.value) == (
            "CanaryMetricSetQueryConfig.customFilter is deprecated, use "
            "CanaryMetricSetQueryConfig.customInlineTemplate instead."
        )


def test_template_lookup_errors():
    q = query(metricName="m", customFilterTemplate="t")
    for templates in (None, {}):
        with pytest.raises(ConfigError) as err:
            build_query(q, templates, scope())
        assert (
            str(err.value)
            == "Custom filter template 't' was referenced, but no templates were defined."
        )
    with pytest.raises(ConfigError) as err:
        build_query(q, {"other": "x"}, scope())
    assert str(err.value) == "Custom filter template 't' was not found."


def test_inline_wins_and_dangling_name_is_harmless():
    q = query(metricName="m", customFilterTemplate="missing", customInlineTemplate="a=b")
    assert build_query(q, {}, scope()) == "avg(m{a=b})"


def test_empty_named_template_means_no_custom_filter():
    q = query(metricName="m", customFilterTemplate="t")
    with pytest.raises(ConfigError, match="Either a resource type"):
        build_query(q, {"t": ""}, scope())


def test_escaped_templates_expand():
    q = query(metricName="m", customInlineTemplate="a=$\\{scope},b=${location}")
    assert build_query(q, {}, scope(scope="s1", location="l1")) == "avg(m{a=s1,b=l1})"


def test_undefined_variable_message_shows_unescaped_template():
    q = query(metricName="m", customInlineTemplate="a=$\\{nope},b=${scope}")
    with pytest.raises(ConfigError) as err:
        build_query(q, {}, scope(scope="s"))
    assert str(err.value) == "Problem evaluating custom filter template: a=${nope},b=${scope}"


def test_start_end_step_are_not_bindings():
    for name in ("start", "end", "step"):
        with pytest.raises(ConfigError, match="Problem evaluating custom filter template"):
            build_query(query(metricName="m", customInlineTemplate=f"x=${{{name}}}"), {}, scope())


def test_binding_precedence():
    s = scope(
        scope="real", location="loc", project="proj", resource_type="scope_rt",
        extended_scope_params={"scope": "override", "resourceType": "ext_rt", "empty": ""},
    )  # fmt: skip
    q = query(customInlineTemplate="PromQL:${scope}|${resourceType}|${location}|${project}|${empty:-d}",
              resourceType="gce_instance")  # fmt: skip
    assert build_query(q, {}, s) == "override|ext_rt|loc|proj|"
    q2 = query(customInlineTemplate="PromQL:${resourceType}", resourceType="query_rt")
    assert build_query(q2, {}, scope(resource_type="scope_rt")) == "query_rt"
    q3 = query(customInlineTemplate="PromQL:${resourceType}")
    assert build_query(q3, {}, scope(resource_type="scope_rt")) == "scope_rt"


def test_empty_scope_attributes_are_unbound():
    q = query(customInlineTemplate="PromQL:${location:-none}")
    assert build_query(q, {}, scope(location="")) == "none"
    with pytest.raises(ConfigError, match="Problem evaluating"):
        build_query(query(customInlineTemplate="PromQL:${location}"), {}, scope(location=""))


# commons-text StringSubstitutor semantics. Every expectation below was checked against the
# real commons-text 1.12 (Kayenta uses 1.11, which has the same substitution code).
@pytest.mark.parametrize(
    "text,bindings,expected",
    [
        ("$${x}", {}, "${x}"),
        ("$${x", {}, "$${x"),  # an escape without a closing brace stays
        ("${a:-fallback}", {}, "fallback"),
        ("${a:-fallback}", {"a": ""}, ""),
        ("${a:-${b}}", {}, "${b}"),  # the first } ends the variable; no nesting
        ("${a}", {"a": "${b}", "b": "B"}, "B"),  # values are expanded again
        ("$${${a}}", {"a": "A"}, "${A}"),  # text inside an escaped variable is still scanned
        ("${a}${a}b$${b", {"a": "$"}, "${a}b$${b"),  # a substituted $ escapes what follows
        ("${a", {}, "${a"),
        ("$$${a}", {"a": "A"}, "$${a}"),
        ("${a}-$${a}-${a:-d}", {"a": "A"}, "A-${a}-A"),
        ("x${a}y", {"a": "$${b}"}, "x${b}y"),
        ("no variables", {}, "no variables"),
    ],
)
def test_string_substitutor_semantics(text, bindings, expected):
    assert substitute(text, bindings) == expected


@pytest.mark.parametrize(
    "text,bindings",
    [("${a}", {"a": "${a}"}), ("${}", {}), ("${a}", {"a": "${b}", "b": "${a}"}), ("${x}", {})],
)
def test_string_substitutor_errors_become_config_errors(text, bindings):
    q = query(customInlineTemplate="PromQL:" + text)
    with pytest.raises(ConfigError) as err:
        build_query(q, {}, scope(extended_scope_params=bindings))
    assert str(err.value) == f"Problem evaluating custom filter template: PromQL:{text}"


# -- our deviation: scope values that would break out of PromQL -------------------------------


@pytest.mark.parametrize("bad", ['a"b', "a'b", "a\\b", "a\nb", "a\rb"])
@pytest.mark.parametrize("field", ["scope", "location", "project", "resource_type", "ext"])
def test_injection_rejected(field, bad):
    kw = {"location": "l"}
    kw.update({"extended_scope_params": {"ns": bad}} if field == "ext" else {field: bad})
    q = query(metricName="m", resourceType="gce_instance")
    with pytest.raises(ConfigError) as err:
        build_query(q, {}, scope(**kw))
    message = str(err.value)
    assert repr(bad) in message
    assert (
        "extendedScopeParams['ns']"
        if field == "ext"
        else {"resource_type": "resourceType"}.get(field, field)
    ) in message


def test_legitimate_regex_values_pass_unchanged():
    s = scope(scope="app-v1|app-v2", location="us-central1", extended_scope_params={"ns": "a.*"})
    q = query(metricName="m", customInlineTemplate='track=~"${scope}",ns=~"${ns}"')
    assert build_query(q, {}, s) == 'avg(m{track=~"app-v1|app-v2",ns=~"a.*"})'


# -- Kayenta's own Prometheus configs (fixtures) ---------------------------------------------

NS = {"namespace": "prod-namespace-1"}
FIXTURE_CASES = [
    ("kayenta-integration-tests-prometheus-integration-test-cpu.json", "CPU usage for service",
     dict(scope="myapp-prod-control-1", extended_scope_params=NS),
     "avg(integration_test_cpu{namespace='prod-namespace-1', scope='myapp-prod-control-1'})"),
    ("kayenta-integration-tests-prometheus-muted-metric.json", "Failing metric",
     dict(scope="myapp-prod-experiment-1", extended_scope_params=NS),
     "avg(integration_failing_metric{namespace='prod-namespace-1', scope='myapp-prod-experiment-1'})"),
    ("kayenta-integration-tests-prometheus-muted-metric.json", "Successful metric",
     dict(scope="myapp-prod-experiment-1", extended_scope_params=NS),
     "avg(integration_successful_metric{namespace='prod-namespace-1', scope='myapp-prod-experiment-1'})"),
    ("history-kayenta-integration-tests-preview-canary-config-prometheus-cpu-only.json",
     "CPU usage for service", dict(scope="myapp-canary-abc12", extended_scope_params=NS),
     "avg(integration_test_cpu{namespace='prod-namespace-1', pod_name='myapp-canary-abc12'})"),
    ("json-formats-md-3-prometheus-MySamplePrometheusCanaryConfig.json", "cpu",
     dict(scope="myapp-v010", location="us-central1", resource_type="gce_instance"),
     'avg(node_cpu{mode=~"user|system",instance=~"myapp-v010-.{4}",zone=~".+/zones/us-central1-.{1}"})'),
    ("json-formats-md-4-prometheus-MySampleK8SPrometheusCanaryConfigWithCustomFilterTemplate.json",
     "cpu_usage_seconds", dict(scope="myapp-canary", extended_scope_params={"container_name": "myapp"}),
     "avg(container_cpu_usage_seconds_total{container_name='myapp'})"),
    ("scratch-prometheus_canary_config.json", "cpu",  # sumByFields is dropped, so no "by"
     dict(scope="myapp-v010", location="us-east-1", resource_type="aws_ec2_instance"),
     'avg(node_cpu{mode=~"user|system",job="node",asg_groupName="myapp-v010",zone=~"us-east-1.{1}"})'),
]  # fmt: skip


@pytest.mark.needs("kayenta")
@pytest.mark.parametrize("file,metric_name,scope_kw,expected", FIXTURE_CASES)
def test_fixture_configs(file, metric_name, scope_kw, expected):
    config = CanaryConfig.load(FIXTURES / file)
    metric = next(m for m in config.metrics if m.name == metric_name)
    assert build_query(metric.query, config.templates, scope(**scope_kw)) == expected


@pytest.mark.needs("kayenta")
def test_every_prometheus_fixture_metric_is_covered():
    covered = {(f, m) for f, m, _, _ in FIXTURE_CASES}
    found = set()
    for path in sorted(FIXTURES.glob("*.json")):
        for metric in json.loads(path.read_text()).get("metrics", []):
            if (metric.get("query") or {}).get("type") == "prometheus":
                found.add((path.name, metric["name"]))
    assert found == covered


@pytest.mark.needs("kayenta")
def test_md3_fixture_without_resource_type_fails_like_kayenta():
    config = CanaryConfig.load(
        FIXTURES / "json-formats-md-3-prometheus-MySamplePrometheusCanaryConfig.json"
    )
    with pytest.raises(ConfigError, match="Either a resource type or a custom filter is required."):
        build_query(config.metrics[0].query, config.templates, scope(scope="x", location="l"))


def test_query_config_is_not_mutated():
    q = query(metricName="m", resourceType="gce_instance", labelBindings=["a=b"])
    s = scope(scope="sg", location="l")
    first = build_query(q, {}, s)
    assert build_query(q, {}, s) == first  # no repeated matchers on a retry
    assert q.label_bindings == ("a=b",)
