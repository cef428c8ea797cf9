"""``PrometheusSource``: a Prefect block holding where Prometheus is and how to log in.

Secrets live in ``SecretStr`` fields, so Prefect stores them encrypted and never shows them in
the UI, repr or ``model_dump()``; they are revealed only in ``source()``, which hands them to
the HTTP client as headers.
"""

from __future__ import annotations

import base64
from typing import Unpack

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from canary.metrics.prometheus import PrometheusMetricSource, SourceOptions


class PrometheusSource(Block):
    """Connection settings for the Prometheus that canary analysis queries.

    Use at most one of ``bearer_token`` and basic auth (username + password).
    ``extra_headers`` is for non-secret headers such as a tenant id.
    """

    _block_type_name = "Prometheus Source"
    _block_type_slug = "prometheus-source"
    _description = "Prometheus server queried for canary analysis (Kayenta-compatible)."

    url: str = Field(..., description="Base URL, e.g. http://prometheus:9090 (with any prefix).")
    bearer_token: SecretStr | None = Field(None, description="Sent as Authorization: Bearer.")
    basic_auth_username: str | None = Field(None, description="Basic auth user name.")
    basic_auth_password: SecretStr | None = Field(None, description="Basic auth password.")
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="Additional, non-secret HTTP headers."
    )
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout in seconds.")

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSource:
        basic = self.basic_auth_username is not None or self.basic_auth_password is not None
        if self.bearer_token is not None and basic:
            raise ValueError("set either bearer_token or basic auth, not both")
        if basic and (self.basic_auth_username is None or self.basic_auth_password is None):
            raise ValueError("basic auth needs both basic_auth_username and basic_auth_password")
        if (self.bearer_token is not None or basic) and any(
            name.lower() == "authorization" for name in self.extra_headers
        ):
            raise ValueError("extra_headers must not set Authorization when credentials are set")
        return self

    def headers(self) -> dict[str, str]:
        """The HTTP headers to send, credentials included (do not log the result)."""
        headers = dict(self.extra_headers)
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        elif self.basic_auth_username is not None and self.basic_auth_password is not None:
            pair = f"{self.basic_auth_username}:{self.basic_auth_password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return headers

    def source(self, **options: Unpack[SourceOptions]) -> PrometheusMetricSource:
        """A ready PrometheusMetricSource (``options``: scope_label, align, ...)."""
        return PrometheusMetricSource(
            self.url,
            headers=self.headers(),
            verify_tls=self.verify_tls,
            timeout=self.timeout_seconds,
            **options,
        )
