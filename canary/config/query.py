"""A metric's `query` object: Prometheus in full, every other metric store kept verbatim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator
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


class PrometheusQuery(Model):
    """Kayenta's PrometheusCanaryMetricSetQueryConfig (prometheus spec, section 1).

    `custom_filter` is deprecated: it is loaded so a config round-trips, and the query
    builder rejects it, as Kayenta does.
    """

    type: Literal["prometheus"] = "prometheus"
    metric_name: str | None = Field(None, alias="metricName")
    resource_type: str | None = Field(None, alias="resourceType")
    label_bindings: tuple[str, ...] = Field((), alias="labelBindings")
    group_by_fields: tuple[str, ...] = Field((), alias="groupByFields")
    custom_inline_template: str | None = Field(None, alias="customInlineTemplate")
    custom_filter_template: str | None = Field(None, alias="customFilterTemplate")
    custom_filter: str | None = Field(None, alias="customFilter")

    @field_validator("label_bindings", "group_by_fields", mode="before")
    @classmethod
    def _null_list(cls, value: Any, info: ValidationInfo) -> Any:
        # Kayenta's Java lists may be serialised as null.
        return () if value is None and is_kayenta(info) else value

    def to_kayenta(self) -> dict[str, Any]:
        out = self.model_dump(by_alias=True, exclude_none=True)
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
    fields: FrozenMap = Field(default_factory=FrozenMap)

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any, info: ValidationInfo) -> Any:
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

    def to_kayenta(self) -> dict[str, Any]:
        return {"type": self.type, **thaw(self.fields)}


def _query_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return "prometheus-query" if kind == "prometheus" else "other-query"


Query = Annotated[
    Annotated[PrometheusQuery, Tag("prometheus-query")] | Annotated[OtherQuery, Tag("other-query")],
    Discriminator(_query_tag),
]
