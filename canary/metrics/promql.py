"""Kayenta-compatible PromQL building (spec kayenta-prometheus.md, section 2). Pure.

The output is the string Kayenta's ``PrometheusMetricsService.buildQuery`` produces for the
same config and scope, byte for byte, with one deliberate difference: scope-supplied values
(scope, location, project, resource type, extendedScopeParams) that contain a quote, a
backslash or a line break are rejected, because Kayenta pastes them into PromQL unescaped
and such a value could rewrite the query. Kayenta's habit of appending the GCE/AWS matchers
to the config's own ``labelBindings`` list (so a retry repeats them) is not reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeGuard

from canary.config import PrometheusQuery
from canary.errors import ConfigError

if TYPE_CHECKING:
    from canary.config import MetricConfig
    from canary.values.scope import MetricScope

PROMQL_PREFIX = "PromQL:"
_FORBIDDEN = {
    '"': "a double quote",
    "'": "a single quote",
    "\\": "a backslash",
    "\n": "a line break",
    "\r": "a line break",
}
# Java's Character.isWhitespace differs from str.isspace on these (Spring's hasText).
_NOT_JAVA_WHITESPACE = frozenset("\u00a0\u2007\u202f\u0085")


def _empty(value: str | None) -> bool:
    """Spring's ``StringUtils.isEmpty``: None or ''."""
    return value is None or value == ""


def _present(value: str | None) -> TypeGuard[str]:
    """``not _empty(value)``, telling the type checker that the value is then a str."""
    return not _empty(value)


def _has_text(value: str | None) -> bool:
    """Spring's ``StringUtils.hasText``: some character that is not Java whitespace."""
    return value is not None and any(not ch.isspace() or ch in _NOT_JAVA_WHITESPACE for ch in value)


def build_query(
    query: PrometheusQuery,
    templates: Mapping[str, str] | None,
    scope: MetricScope,
    *,
    scope_label: str = "instance",
) -> str:
    """The PromQL text Kayenta would send for ``query`` over ``scope``.

    Raises ConfigError with Kayenta's message for every case Kayenta rejects, and for
    scope values that would break out of a PromQL string (our one deviation).
    """
    _reject_injection(scope)
    resource_type = query.resource_type if _has_text(query.resource_type) else scope.resource_type
    custom_filter = expand_custom_filter(query, templates, scope)

    if _present(custom_filter) and custom_filter.startswith(PROMQL_PREFIX):
        return custom_filter[len(PROMQL_PREFIX) :]
    metric_name = query.metric_name
    if not _present(metric_name):
        raise ConfigError("Metric Name is required when query type is Default.")

    matchers = list(query.label_bindings or ())
    if _present(custom_filter):
        matchers = java_split_commas(custom_filter) + matchers
    else:
        matchers += _resource_matchers(resource_type, scope, scope_label)

    text = metric_name
    if matchers:
        text += "{" + ",".join(matchers) + "}"
    text = f"avg({text})"
    if query.group_by_fields:
        text += " by (" + ",".join(query.group_by_fields) + ")"
    return text


def metric_query(
    metric: MetricConfig,
    templates: Mapping[str, str] | None,
    scope: MetricScope,
    *,
    scope_label: str = "instance",
) -> str:
    """The PromQL text of a series metric over ``scope`` (Kayenta's dry run).

    Raises:
        ConfigError: The metric's query is not a Prometheus query, or Kayenta rejects it.
    """
    query = metric.query
    if not isinstance(query, PrometheusQuery):  # OtherQuery refuses type "prometheus"
        kind = getattr(query, "type", None)
        raise ConfigError(
            f"metric {metric.name!r} has query type {kind!r}; a Prometheus source can only "
            "run queries of type 'prometheus'"
        )
    return build_query(query, templates, scope, scope_label=scope_label)


def counter_selector(
    template: str,
    templates: Mapping[str, str] | None,
    scope: MetricScope,
    *,
    name: str = "<selector>",
    resource_type: str | None = None,
) -> str:
    """A counter selector for ``scope``: the bindings (and injection checks) of a Kayenta
    customInlineTemplate, so ``${scope}``, ``${location}`` and extendedScopeParams work
    alike. (`templates` is passed on as for customInlineTemplate, which ignores it.)

    Raises:
        ConfigError: A binding is unknown or unsafe, or the selector comes out empty.
    """
    try:
        _reject_injection(scope)
        inline = PrometheusQuery(custom_inline_template=template, resource_type=resource_type)
        text = expand_custom_filter(inline, templates, scope)
    except ConfigError as exc:
        raise ConfigError(f"metric {name!r}: {exc}") from None
    if not text or not text.strip():
        raise ConfigError(f"metric {name!r}: the counter selector is empty")
    return text


def graph_expr(
    metric: MetricConfig,
    templates: Mapping[str, str] | None,
    scope: MetricScope,
    *,
    scope_label: str = "instance",
) -> str:
    """What Prometheus's graph page shows for ``metric`` over ``scope``: a ratio metric's
    1-minute rate, a histogram's p99, a series metric's own query."""
    if (ratio := metric.ratio_counters) is not None:
        events, total = (counter_selector(t, templates, scope, name=metric.name)
                         for t in (ratio.events, ratio.total))  # fmt: skip
        return f"sum(rate({events}[1m])) / sum(rate({total}[1m]))"
    if (histogram := metric.histogram_counters) is not None:
        buckets = counter_selector(histogram.buckets, templates, scope, name=metric.name)
        return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[1m])))"
    return metric_query(metric, templates, scope, scope_label=scope_label)


def expand_custom_filter(
    query: PrometheusQuery, templates: Mapping[str, str] | None, scope: MetricScope
) -> str | None:
    """Kayenta's ``QueryConfigUtils.expandCustomFilter`` for the Prometheus attribute names."""
    if query.custom_filter is not None:
        raise ConfigError(
            "CanaryMetricSetQueryConfig.customFilter is deprecated, use "
            "CanaryMetricSetQueryConfig.customInlineTemplate instead."
        )
    inline, name = query.custom_inline_template, query.custom_filter_template
    if _present(inline):
        text = unescape_template(inline)
    elif _present(name):
        if not templates:
            raise ConfigError(
                f"Custom filter template '{name}' was referenced, but no templates were defined."
            )
        if name not in templates:
            raise ConfigError(f"Custom filter template '{name}' was not found.")
        text = unescape_template(templates[name])
    else:
        return None

    bindings: dict[str, str] = {}
    for attribute, value in (
        ("project", scope.project),
        ("resourceType", scope.resource_type),
        ("scope", scope.scope),
        ("location", scope.location),
    ):
        if _present(value):
            bindings[attribute] = value
    if _present(query.resource_type):
        bindings["resourceType"] = query.resource_type
    bindings.update(scope.extended_scope_params)

    try:
        return substitute(text, bindings)
    except _SubstitutionError:
        raise ConfigError(f"Problem evaluating custom filter template: {text}") from None


def unescape_template(text: str) -> str:
    """Undo Kayenta's pipeline-context escaping: every ``$\\{`` becomes ``${``."""
    return text.replace("$\\{", "${")


def java_split_commas(text: str) -> list[str]:
    """Java's ``text.split(",")``: trailing empty pieces dropped, nothing trimmed."""
    pieces = text.split(",")
    while pieces and pieces[-1] == "":
        pieces.pop()
    return pieces


def _resource_matchers(
    resource_type: str | None, scope: MetricScope, scope_label: str
) -> list[str]:
    if resource_type == "gce_instance":
        if _empty(scope.location):
            raise ConfigError(
                "Location (i.e. region) is required when resourceType is 'gce_instance'."
            )
        matchers = []
        if not _empty(scope.scope):
            matchers.append(f'{scope_label}=~"{scope.scope}-.{{4}}"')
        project = "" if _empty(scope.project) else f"projects/{scope.project}/"
        matchers.append(f'zone=~".+/{project}zones/{scope.location}-.{{1}}"')
        return matchers
    if resource_type == "aws_ec2_instance":
        if _empty(scope.location):
            raise ConfigError(
                "Location (i.e. region) is required when resourceType is 'aws_ec2_instance'."
            )
        matchers = []
        if not _empty(scope.scope):
            matchers.append(f'asg_groupName="{scope.scope}"')
        matchers.append(f'zone=~"{scope.location}.{{1}}"')
        return matchers
    if not _empty(resource_type):
        raise ConfigError(
            f"There is no explicit support for resourceType '{resource_type}'. You may build "
            "whatever query makes sense for your environment via label bindings and custom "
            "filter templates."
        )
    raise ConfigError("Either a resource type or a custom filter is required.")


def _reject_injection(scope: MetricScope) -> None:
    values = [
        ("scope", scope.scope),
        ("location", scope.location),
        ("project", scope.project),
        ("resourceType", scope.resource_type),
    ] + [(f"extendedScopeParams[{k!r}]", v) for k, v in scope.extended_scope_params.items()]
    for parameter, value in values:
        if not value:
            continue
        for ch, what in _FORBIDDEN.items():
            if ch in value:
                raise ConfigError(
                    f"scope parameter {parameter} = {value!r} contains {what}; scope values are "
                    "pasted into PromQL unescaped, so quotes, backslashes and line breaks are "
                    "refused. Use a plain value (regex metacharacters are fine)."
                )


# --- Apache commons-text StringSubstitutor (1.11) with undefined variables as errors ------


class _SubstitutionError(Exception):
    pass


def substitute(text: str, bindings: Mapping[str, str]) -> str:
    """Expand ``${name}`` like commons-text ``StringSubstitutor`` (defaults, strict mode).

    ``${name:-default}`` falls back to ``default``; ``$${x}`` yields a literal ``${x}`` (the
    text inside the braces is still scanned, and an escape with no closing brace is kept);
    substituted values are expanded again (cycles are errors); an unterminated ``${`` stays
    literal; the first ``}`` ends a variable (no nesting). Raises _SubstitutionError for an
    undefined variable or a cycle.
    """
    buf = list(text)
    _substitute(buf, 0, len(buf), bindings, None)
    return "".join(buf)


def _substitute(
    buf: list[str], offset: int, length: int, bindings: Mapping[str, str], prior: list[str] | None
) -> int:
    """Expand inside buf[offset:offset+length] in place; returns the change in length."""
    end = offset + length
    pos = offset
    total_change = 0
    while pos < end:
        if not (buf[pos] == "$" and pos + 1 < end and buf[pos + 1] == "{"):
            pos += 1
            continue
        # "$${": the escape is dropped only if the variable turns out to be complete.
        escape = pos - 1 if pos > offset and buf[pos - 1] == "$" else -1
        start = pos
        pos += 2
        while pos < end:
            if buf[pos] != "}":
                pos += 1
                continue
            if escape >= 0:  # keep "${" literally, then keep scanning inside the braces
                del buf[escape]
                total_change -= 1
                end -= 1
                pos = start + 1
                break
            expr = "".join(buf[start + 2 : pos])
            pos += 1
            var_end = pos
            name, default = expr, None
            for i in range(len(expr)):
                if expr.startswith("${", i):
                    break
                if expr.startswith(":-", i):
                    name, default = expr[:i], expr[i + 2 :]
                    break
            if prior is None:
                prior = ["".join(buf[offset : offset + length])]
            if name in prior:
                raise _SubstitutionError(f"cyclic variable {name!r}")
            prior.append(name)
            value = bindings.get(name)
            if value is None:
                value = default
            if value is None:
                raise _SubstitutionError(f"cannot resolve variable {name!r}")
            buf[start:var_end] = list(value)
            change = _substitute(buf, start, len(value), bindings, prior)
            change += len(value) - (var_end - start)
            pos += change
            end += change
            total_change += change
            prior.pop()
            break
    return total_change
