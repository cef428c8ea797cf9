"""``LocalPlatform``: a Prefect block describing the one-machine platform.

It holds only configuration (where state lives, which ports and binaries) and builds the
plain adapters of ``canary.platforms.local`` from it; no secrets are involved. Every adapter
it hands out shares one state directory, so the builder's artifacts, the workloads' records
and the stack's pid files are found by whichever flow run (or reconcile) comes next.

The flows pass every method the app and its release spec, as to every platform block
(canary.ports.Platform); nothing in a release spec changes how this platform runs an app
(its `kubernetes:` section is for the cluster), and one adapter serves every app, so the
spec is accepted and not read.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field, field_validator, model_validator

from canary.config.release import ReleaseSpec
from canary.platforms.local.builder import GitBuilder, load_artifact
from canary.platforms.local.haproxy import HAProxyRouter
from canary.platforms.local.parts import restarts_since
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.workloads import ProcessWorkloads
from canary.values.carried import Restart
from canary.values.release import check_app_name


class LocalPlatform(Block):
    """Git builds, process workloads, HAProxy routing and Prometheus on 127.0.0.1."""

    _block_type_name = "Local Platform"
    _block_type_slug = "local-platform"
    _description = (
        "Runs canary releases on one machine: git checkout builds, supervised processes, "
        "HAProxy weights through its admin socket, Prometheus scraping via file_sd."
    )

    state_dir: str = Field(".state/local", description="Artifacts, pid files, logs, configs.")
    app: str = Field("goldengoose", description="App name: HAProxy backend, metric label.")
    apps: dict[str, int] = Field(default_factory=dict, description=(
        "More apps on this machine, app name -> its HAProxy frontend port: each has its own "
        "backends, Prometheus targets and production, and is released independently."))  # fmt: skip
    app_subdir: str = Field("", description="The app's directory inside the git repository.")
    app_port: int = Field(18080, ge=1, le=65535, description="HAProxy frontend port of the app.")
    haproxy_stats_port: int = Field(18404, ge=1, le=65535, description="HAProxy /metrics port.")
    prometheus_port: int = Field(19090, ge=1, le=65535, description="Prometheus listen port.")
    scrape_interval_seconds: float = Field(1.0, gt=0, le=60, description="Scrape interval.")
    haproxy_bin: str = Field("/usr/sbin/haproxy", description="HAProxy binary (Debian haproxy).")
    prometheus_bin: str = Field("/usr/bin/prometheus", description="Prometheus binary.")
    python: str | None = Field(None, description="Python that runs the apps (default: this one).")
    stop_timeout_seconds: float = Field(10.0, gt=0, description="SIGTERM grace before SIGKILL.")

    @field_validator("app")
    @classmethod
    def _app_name(cls, value: str) -> str:
        return check_app_name(value)  # the one app-name rule (ConfigError is a ValueError)

    @field_validator("apps")
    @classmethod
    def _apps(cls, value: dict[str, int]) -> dict[str, int]:
        for name, port in value.items():
            check_app_name(name)
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"apps: the port of {name!r} must be 1-65535, not {port!r}")
        return value

    @model_validator(mode="after")
    def _ports_distinct(self) -> LocalPlatform:
        ports = {"haproxy_stats_port": self.haproxy_stats_port,
                 "prometheus_port": self.prometheus_port,
                 f"app_port ({self.app})": self.app_port,
                 **{f"apps[{n}]": p for n, p in self.apps.items() if n != self.app}}  # fmt: skip
        seen: dict[int, str] = {}
        for what, port in ports.items():
            if port in seen:
                raise ValueError(f"{what} and {seen[port]} both use port {port}: give each its own")
            seen[port] = what
        return self

    def frontends(self) -> dict[str, int]:
        """Every app of this platform and its frontend port (`app` first)."""
        return {self.app: self.app_port, **{n: p for n, p in self.apps.items() if n != self.app}}

    def stack(self) -> LocalStack:
        """The HAProxy + Prometheus stack this block configures."""
        return LocalStack(
            Path(self.state_dir),
            haproxy_bin=self.haproxy_bin,
            prometheus_bin=self.prometheus_bin,
            haproxy_stats_port=self.haproxy_stats_port,
            prometheus_port=self.prometheus_port,
            scrape_interval=self.scrape_interval_seconds,
        )

    def start(self) -> dict[str, str]:
        """Register the apps and bring HAProxy and Prometheus up (idempotent)."""
        stack = self.stack()
        for name, port in self.frontends().items():
            stack.add_app(name, port)
        return stack.start()

    def builder(self) -> GitBuilder:
        """The git builder of the block's own `app`."""
        return GitBuilder(self.state_dir, app=self.app, subdir=self.app_subdir, python=self.python)

    def router(self, app: str | None = None, spec: ReleaseSpec | None = None) -> HAProxyRouter:
        """HAProxy's weights, for every app (`app` and `spec` change nothing here)."""
        return self.stack().router()

    def workloads(self, app: str | None = None, spec: ReleaseSpec | None = None) -> ProcessWorkloads:
        """The supervised processes, of every app (`app` and `spec` change nothing here)."""
        return self.stack().workloads(python=self.python, stop_timeout=self.stop_timeout_seconds)

    @property
    def prometheus_url(self) -> str:
        """Where this platform's Prometheus answers."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def app_url(self) -> str:
        """The frontend of the block's own `app`."""
        return f"http://127.0.0.1:{self.app_port}"

    # -- what the flows call (the same methods on every platform block) -----------------
    def for_app(self, app: str, spec: ReleaseSpec | None = None) -> LocalApp:
        """`app` on this machine (the spec changes nothing here: see the module's doc)."""
        return LocalApp(self, app)

    def image_version(self, image: str) -> str | None:
        """The VERSION the artifact was built with (canary.ports.ImageVersions)."""
        artifact = load_artifact(self.state_dir, image)
        return artifact.version if artifact is not None else None

    # -- the same per-app calls, for scripts (the tasks use for_app) ---------------------
    def builder_for(self, app: str, spec: ReleaseSpec | None = None) -> GitBuilder:
        """The builder for `app`'s commits (one local builder serves every app)."""
        return self.for_app(app).builder()

    def production_image(self, app: str, spec: ReleaseSpec | None = None) -> str | None:
        """The artifact production runs now, or None before the first release."""
        return self.for_app(app).production_image()

    def production_commit(self, app: str) -> str | None:
        """The commit production's artifact was built from, or None before the first release."""
        return self.for_app(app).production_commit()

    def reconcile(self, app: str, spec: ReleaseSpec | None = None) -> dict[str, object]:
        """Repair a crashed release: 100 % primary (read back), orphans stopped."""
        return self.for_app(app).reconcile()

    def restore_routes(self, app: str, spec: ReleaseSpec | None = None) -> None:
        """HAProxy has no user routes to restore: all traffic to production, read back."""
        self.for_app(app).restore_routes()


class LocalApp:
    """One app on the local platform (canary.ports.AppPlatform)."""

    def __init__(self, platform: LocalPlatform, app: str) -> None:
        """Bind `app` to `platform` (whose adapters serve every app)."""
        self.platform, self.app = platform, app

    def builder(self) -> GitBuilder:
        """The git builder of the app's commits."""
        p = self.platform
        return GitBuilder(p.state_dir, app=self.app, subdir=p.app_subdir, python=p.python)

    def workloads(self) -> ProcessWorkloads:
        """The supervised processes (of every app)."""
        return self.platform.workloads()

    def router(self) -> HAProxyRouter:
        """HAProxy's weights (of every app)."""
        return self.platform.router()

    def production_image(self) -> str | None:
        """The artifact production runs now, or None before the first release."""
        current = self.workloads().get(self.app, "primary")
        return current.image if current is not None else None

    def production_commit(self) -> str | None:
        """The commit production's artifact was built from, or None before the first release."""
        image = self.production_image()
        if image is None:
            return None
        artifact = load_artifact(self.platform.state_dir, image)
        return artifact.commit if artifact is not None else None

    def reconcile(self) -> dict[str, object]:
        """Repair a crashed release: 100 % primary (read back), orphans stopped."""
        self.platform.start()
        return self.workloads().reconcile(self.app)

    def restore_routes(self) -> None:
        """HAProxy has no user routes to restore: all traffic to production, read back."""
        self.router().restore(self.app)

    def restarts(self, since: datetime) -> list[Restart]:
        """The supervisor's restarts since `since` of what the app's releases depend on:
        HAProxy, Prometheus and the app's production (canary.ports.RestartLog)."""
        parts = ("haproxy", "prometheus", f"production/{self.app}")
        return restarts_since(self.platform.state_dir, since, parts)
