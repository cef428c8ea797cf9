"""A metric's `query` object: Prometheus in full, every other metric store kept verbatim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from canary.config._base import FrozenMap, Model, choice, freeze, is_kayenta, thaw

#: Metric stores Kayenta (and the unmerged OpenTSDB pull request) know. Strict YAML accepts
#: only these, so a typo such as "promethus" fails instead of becoming an unqueryable metric.
KNOWN_STORES = (
    "prometheus",
    "atlas",
    "datadog",
    "graphite",
    "influxdb",
    "newrelic",
    "opentsdb",
    "signalfx",
    "stackdriver",
    "wavefront",
)

#: What a metric is judged on: "series" (the points of a range query, Kayenta's way),
#: "ratio" or "histogram" (request counts read from counters; the sequential judge).
Evidence = Literal["series", "ratio", "histogram"]


def evidence_of(ratio: RatioCounters | None, histogram: HistogramCounters | None) -> Evidence:
    """The evidence kind that a query's counters make (the one definition of the kinds).

    Args:
        ratio: The query's ratio counters, if any.
        histogram: The query's histogram counters, if any.

    Returns:
        "ratio" or "histogram" for count metrics, "series" for a query without counters.
    """
    if ratio is not None:
        return "ratio"
    if histogram is not None:
        return "histogram"
    return "series"


class RatioCounters(Model):
    """A ratio metric (our extension): two counters, events and the requests they are of.

    Each is a PromQL *selector* (no functions) with the same ``${scope}`` bindings as a
    customInlineTemplate, e.g. ``app_requests_total{track="${scope}",code=~"5.."}``. Their
    increases over the analysis, summed over the matching series, are the counts judged.
    """

    events: str = Field(min_length=1)
    total: str = Field(min_length=1)


class HistogramCounters(Model):
    """A histogram metric (our extension): a Prometheus histogram's cumulative `le` buckets.

    ``buckets`` selects the ``_bucket`` series, e.g.
    ``app_request_duration_seconds_bucket{track="${scope}"}``; ``unit`` is the unit of the
    `le` bounds (``s`` or ``ms`` are shown in milliseconds in reports).
    """

    buckets: str = Field(min_length=1)
    unit: str = "s"


class PrometheusQuery(Model):
    """Kayenta's PrometheusCanaryMetricSetQueryConfig (prometheus spec, section 1).

    `custom_filter` is deprecated: it is loaded so a config round-trips, and the query
    builder rejects it, as Kayenta does.

    Our extension: `ratio` or `histogram` instead of a query makes a *count* metric, judged
    on request-level evidence by the sequential judge (docs/judge.md) rather than on the
    points of a range query.
    """

    type: Literal["prometheus"] = "prometheus"
    metric_name: str | None = Field(None, alias="metricName")
    resource_type: str | None = Field(None, alias="resourceType")
    label_bindings: tuple[str, ...] = Field((), alias="labelBindings")
    group_by_fields: tuple[str, ...] = Field((), alias="groupByFields")
    custom_inline_template: str | None = Field(None, alias="customInlineTemplate")
    custom_filter_template: str | None = Field(None, alias="customFilterTemplate")
    custom_filter: str | None = Field(None, alias="customFilter")
    ratio: RatioCounters | None = None
    histogram: HistogramCounters | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PrometheusQuery:
        if self.ratio is not None and self.histogram is not None:
            raise PydanticCustomError("two_kinds", "give ratio or histogram, not both")
        if self.evidence != "series":
            query_keys = [alias for alias, value in (
                ("metricName", self.metric_name), ("customInlineTemplate", self.custom_inline_template),
                ("customFilterTemplate", self.custom_filter_template), ("customFilter", self.custom_filter),
            ) if value is not None]  # fmt: skip
            if query_keys:
                raise PydanticCustomError(
                    "counts_and_query",
                    "a {kind} metric is read from its counters; remove {keys}",
                    {"kind": self.evidence, "keys": ", ".join(query_keys)},
                )
        return self

    @property
    def evidence(self) -> Evidence:
        """"ratio" or "histogram" for count metrics, "series" for Kayenta's range queries."""
        return evidence_of(self.ratio, self.histogram)

    @field_validator("label_bindings", "group_by_fields", mode="before")
    @classmethod
    def _null_list(cls, value: object, info: ValidationInfo) -> object:
        # Kayenta's Java lists may be serialised as null.
        return () if value is None and is_kayenta(info) else value

    def to_kayenta(self) -> dict[str, object]:
        """This query as Kayenta JSON (our extensions only when set).

        Returns:
            The query's keys by their Kayenta names, lists as lists.
        """
        out: dict[str, object] = self.model_dump(by_alias=True, exclude_none=True)
        out["labelBindings"] = list(self.label_bindings)
        out["groupByFields"] = list(self.group_by_fields)
        return out


class OtherQuery(Model):
    """A query for a metric store this project cannot query (atlas, datadog, ...).

    Every field besides `type` is kept, deep-frozen, in `fields`, so the config round-trips.
    Built from Kayenta JSON as ``{"type": "atlas", "q": ...}`` or by keyword as
    ``OtherQuery(type="atlas", fields={"q": ...})``.
    """

    type: str
    fields: FrozenMap[str, object] = Field(default_factory=FrozenMap)

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: object, info: ValidationInfo) -> object:
        if not isinstance(data, Mapping):
            return data
        keyword_form = set(data) <= {"type", "fields"} and isinstance(data.get("fields"), Mapping)
        if keyword_form:
            return dict(data)
        rest = {k: v for k, v in data.items() if k != "type"}
        return {"type": data.get("type"), "fields": freeze(rest)}

    @field_validator("type")
    @classmethod
    def _store(cls, value: str, info: ValidationInfo) -> str:
        if value == "prometheus":
            raise PydanticCustomError("prometheus_other", "a prometheus query is a PrometheusQuery")
        return value if is_kayenta(info) else choice(value, KNOWN_STORES, info, None)

    def to_kayenta(self) -> dict[str, object]:
        """This query as Kayenta JSON: its `type` and every kept field, thawed.

        Returns:
            ``{"type": ..., **fields}`` with plain dicts and lists.
        """
        return {"type": self.type, **{k: thaw(v) for k, v in self.fields.items()}}


def _query_tag(value: object) -> str:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return "prometheus-query" if kind == "prometheus" else "other-query"


Query = Annotated[
    Annotated[PrometheusQuery, Tag("prometheus-query")] | Annotated[OtherQuery, Tag("other-query")],
    Discriminator(_query_tag),
]
