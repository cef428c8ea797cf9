"""The per-app Kubernetes options of a release spec (its ``kubernetes:`` section).

Per-app things live here, with the app (its traffic router's options under ``router:``,
how its traffic is shared, its replicas, where its Dockerfile is);
per-cluster things (credentials, registry, build system, service account) live on the
``KubernetesCluster`` block. docs/kubernetes.md lists every option. This module imports no
Kubernetes client: a local release validates the section without loading one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from canary.config._base import Model

#: RFC 1123 subdomain: names of VirtualServices, DestinationRules, hosts.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
#: RFC 1123 label: container names.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def object_name(value: str | None) -> str | None:
    """An RFC 1123 subdomain (<= 253 chars) or None; the error says what to use instead."""
    if value is not None and (len(value) > 253 or not _SUBDOMAIN.fullmatch(value)):
        raise ValueError(f"{value!r} is not a Kubernetes object name: use lowercase "
                         "letters, digits, '-' and '.', starting and ending with a letter or digit")
    return value


def repository_path(value: str) -> str:
    """A path inside the cloned repository: relative, without '..' (it must not escape it)."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{value!r} must be a relative path inside the repository "
                         "(like 'Dockerfile' or 'services/api'), without '..'")
    return value


class BaseRouterOptions(Model):
    """What every router's options model has: the `kind` naming the router.

    A router's model subclasses it with `kind: Literal["<name>"] = "<name>"` and every
    other field optional, so that its defaults apply when a spec gives no `router:`.
    """

    kind: str


class IstioOptions(BaseRouterOptions):
    """How the Istio router splits one app's traffic: ``router: {kind: istio, ...}``.

    Every field is optional (defaults in docs/kubernetes.md).
    """

    kind: Literal["istio"] = "istio"
    #: the app's VirtualService (default: named like the app)
    virtual_service: str | None = None
    #: names of the HTTP routes to split (default: every route to the app's one host)
    routes: tuple[str, ...] = ()
    #: the host those routes send to, when a VirtualService routes to several
    host: str | None = None
    #: a DestinationRule of the app's to add our subsets to (e.g. one with mTLS settings),
    #: instead of creating `<app>-canary`; at cleanup only our subsets are removed
    destination_rule: str | None = None

    @field_validator("virtual_service", "host", "destination_rule")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return object_name(value)

    @field_validator("routes")
    @classmethod
    def _routes(cls, routes: tuple[str, ...]) -> tuple[str, ...]:
        if any(not r.strip() for r in routes) or len(set(routes)) != len(routes):
            raise ValueError(f"{list(routes)} must be distinct, non-empty names of "
                             "HTTP routes in the VirtualService (their `name:` fields)")
        return routes


class GatewayApiOptions(BaseRouterOptions):
    """How the Gateway API router splits one app's traffic: ``router: {kind: gateway-api, ...}``.

    Weights go into the ``backendRefs`` of rules of the user's HTTPRoute, over per-track
    Services (``<app>-primary``, ``<app>-baseline``, ``<app>-canary``); the route's parent
    refs, matches, filters and other rules are never written. Every field is optional.
    """

    kind: Literal["gateway-api"] = "gateway-api"
    #: the app's HTTPRoute (default: named like the app)
    http_route: str | None = None
    #: the rule to split, by its `name:` or its index in `rules` (default: every rule whose
    #: one backendRef is `service`)
    rule: str | int | None = None
    #: the Service the split rules send to now, which the per-track Services copy (ports,
    #: selector); default: the Service named like the app
    service: str | None = None

    @field_validator("http_route", "service")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return object_name(value)

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, bool) or (isinstance(value, int) and not 0 <= value < 16):
            raise ValueError(f"{value!r} is not a rule index: an HTTPRoute has rules 0 to 15")
        if isinstance(value, str) and (len(value) > 253 or not _SUBDOMAIN.fullmatch(value)):
            raise ValueError(f"{value!r} is not an HTTPRoute rule name (lowercase letters, "
                             "digits, '-' and '.'), nor an index")
        return value


def _kind(value: object) -> object:
    """The `kind` of router options, given as a mapping or as a model."""
    return value.get("kind") if isinstance(value, Mapping) else getattr(value, "kind", None)


#: The options of every traffic router, told apart by their `kind` (a new router adds
#: its options model to this union; its `kind` is the name it is registered under in
#: canary.platforms.kubernetes.routers.ROUTERS).
RouterOptions = Annotated[
    Annotated[IstioOptions, Tag("istio")] | Annotated[GatewayApiOptions, Tag("gateway-api")],
    Discriminator(lambda value: _kind(value), custom_error_type="router_kind",
                  custom_error_message="`kind:` must name a known router: istio, gateway-api"),
]  # fmt: skip

#: The Istio options once written straight under `kubernetes:` (still accepted, the same
#: as under `router: {kind: istio}`).
_FLAT_ISTIO_KEYS = ("virtual_service", "routes", "host", "destination_rule")


class KubernetesRelease(Model):
    """How one app is released on Kubernetes; every field is optional (defaults in docs)."""

    _extra_keys: ClassVar[frozenset[str]] = frozenset(_FLAT_ISTIO_KEYS)

    #: the traffic router's options for this app (None: the defaults of the router the
    #: cluster uses); `kind` must name that router
    router: RouterOptions | None = None
    #: "split": baseline/canary serve their share of live traffic; "mirror": live traffic
    #: stays on production and baseline/canary get mirrored copies of their share
    traffic: Literal["split", "mirror"] = "split"
    #: pods of baseline and of canary each (default: ceil(production x max share / 100))
    replicas: int | None = Field(None, ge=1, le=1000)
    #: the container whose image a release replaces (default: the first)
    container: str | None = None
    #: Dockerfile path, relative to `context`
    dockerfile: str = "Dockerfile"
    #: build context, relative to the repository's root
    context: str = "."

    @model_validator(mode="before")
    @classmethod
    def _flat_istio_keys(cls, data: object) -> object:
        """Istio's options given straight under `kubernetes:` go under `router:`."""
        if not isinstance(data, Mapping) or not any(k in data for k in _FLAT_ISTIO_KEYS):
            return data
        flat = [k for k in _FLAT_ISTIO_KEYS if k in data]
        if data.get("router") is not None:
            raise ValueError(f"{', '.join(flat)}: give the router's options under `router:` "
                             "only, not also straight under `kubernetes:`")
        # validated here, so that an error names the key where it was written
        # (kubernetes.virtual_service); pydantic's own validate keeps the error's location
        router = super(Model, IstioOptions).model_validate({k: data[k] for k in flat})
        return {**{k: v for k, v in data.items() if k not in _FLAT_ISTIO_KEYS}, "router": router}

    @field_validator("container")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a container name "
                             "(1-63 lowercase letters, digits and '-')")
        return value

    @field_validator("dockerfile", "context")
    @classmethod
    def _paths(cls, value: str) -> str:
        return repository_path(value)
