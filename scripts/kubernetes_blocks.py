"""Create (or overwrite) the blocks the cluster deployments load. Re-runnable.

    PREFECT_API_URL=https://prefect.example.com/api python scripts/kubernetes_blocks.py \
        --namespace shop --in-cluster \
        --prometheus-url http://prometheus.istio-system.svc:9090 \
        [--image-repository registry.example.com/shop] [--name cluster]

saves `canary-kubernetes-cluster/<name>` (blocks/kubernetes.py) and
`prometheus-source/<name>` (blocks/prometheus.py), the names prefect.kubernetes.yaml passes
to the flows (`cluster` by default). Where the cluster is, one of:

  --in-cluster                 flow runs in pods log in with their ServiceAccount
                               (prefect-canary, deployments/kubernetes/rbac.yaml): no secret
                               is stored at all. The choice for the kubernetes work pool.
  --kubeconfig PATH [--context NAME]
                               a kubeconfig that exists where the flow runs (a process
                               worker on an operator's machine); checked here: the file
                               parses and has the context.
  --host URL --token-file FILE [--ca-cert PATH]
                               an API server and a ServiceAccount token, read from a file
                               (never from the command line, which ps and shell history
                               show); stored encrypted as a SecretStr.

Prometheus credentials, if any, come from files too (--prometheus-token-file, or
--prometheus-user with --prometheus-password-file). Blocks are saved with overwrite, so a
second run replaces both documents. What was saved is printed as JSON, secrets only as
"set". Errors name the option to fix and exit 2; nothing secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr, ValidationError  # noqa: E402

from blocks.kubernetes import KubernetesCluster  # noqa: E402
from blocks.prometheus import PrometheusSource  # noqa: E402
from canary.metrics.prometheus import redact_url  # noqa: E402
from canary.platforms.kubernetes.routers import ROUTERS  # noqa: E402


class Refused(Exception):
    """A usage or input error, in words that name what to change (never a secret)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubernetes_blocks.py", description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    parser.add_argument("--name", default="cluster", help="document name of both blocks")
    parser.add_argument("--namespace", required=True, help="the app's namespace")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--in-cluster", action="store_true", help="use the pod's ServiceAccount")
    where.add_argument("--kubeconfig", help="kubeconfig path (as seen where the flow runs)")
    where.add_argument("--host", help="API server URL, e.g. https://10.0.0.1:6443")
    parser.add_argument("--context", help="kubeconfig context (default: its current one)")
    parser.add_argument("--token-file", help="file holding the bearer token for --host")
    parser.add_argument("--ca-cert", help="CA bundle of the API server (for --host)")
    parser.add_argument("--insecure-skip-tls-verify", action="store_true",
                        help="do not verify the API server's certificate (tests only)")
    parser.add_argument("--image-repository", help="registry path builds push to")
    parser.add_argument("--build-system", choices=("tekton", "knative"), default="tekton")
    parser.add_argument("--traffic-router", choices=sorted(ROUTERS), default="istio",
                        help="what splits the traffic: istio (a VirtualService) or gateway-api "
                        "(an HTTPRoute); docs/kubernetes.md compares them")  # fmt: skip
    parser.add_argument("--prometheus-url", required=True)
    parser.add_argument("--prometheus-token-file", help="file holding a bearer token")
    parser.add_argument("--prometheus-user", help="basic auth user (with --prometheus-password-file)")
    parser.add_argument("--prometheus-password-file", help="file holding the basic auth password")
    parser.add_argument("--prometheus-no-verify-tls", action="store_true")
    return parser


def _secret(path: str | None, option: str) -> SecretStr | None:
    """The first line of a secret file; the file's name is said in errors, never its content."""
    if path is None:
        return None
    file = Path(path).expanduser()
    try:
        text = file.read_text().strip()
    except OSError as exc:
        raise Refused(f"{option} {file}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not text:
        raise Refused(f"{option} {file}: the file is empty")
    return SecretStr(text.splitlines()[0].strip())


def _checked_kubeconfig(path: str, context: str | None) -> str:
    """The kubeconfig's absolute path, once it parses and has the context (the flow would
    only find out at its first API call, minutes into a release)."""
    file = Path(path).expanduser().resolve()
    try:
        config = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise Refused(f"--kubeconfig {file}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except yaml.YAMLError:
        raise Refused(f"--kubeconfig {file}: not a YAML kubeconfig") from None
    if not isinstance(config, dict):
        raise Refused(f"--kubeconfig {file}: not a kubeconfig (no mapping at the top)")
    names = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    wanted = context or config.get("current-context")
    if not wanted:
        raise Refused(f"--kubeconfig {file} has no current-context; pick one with --context "
                      f"(it has: {', '.join(map(str, names)) or 'none'})")  # fmt: skip
    if wanted not in names:
        raise Refused(f"--kubeconfig {file} has no context {wanted!r} "
                      f"(it has: {', '.join(map(str, names)) or 'none'})")  # fmt: skip
    return str(file)


def build_blocks(args: argparse.Namespace) -> tuple[KubernetesCluster, PrometheusSource]:
    """Both blocks from the arguments, validated; Refused says what to change."""
    if args.context and not args.kubeconfig:
        raise Refused("--context goes with --kubeconfig")
    if (args.token_file or args.ca_cert or args.insecure_skip_tls_verify) and not args.host:
        raise Refused("--token-file, --ca-cert and --insecure-skip-tls-verify go with --host")
    if args.host and not args.token_file:
        raise Refused("--host needs --token-file (a ServiceAccount token: kubectl -n <namespace> "
                      "create token prefect-canary --duration=720h > token; it is stored in the "
                      "block, so it must outlive the releases: the default lasts an hour)")  # fmt: skip
    cluster: dict[str, Any] = {"namespace": args.namespace, "build_system": args.build_system,
                               "image_repository": args.image_repository,
                               "traffic_router": args.traffic_router}  # fmt: skip
    if args.in_cluster:
        cluster["in_cluster"] = True
    elif args.kubeconfig:
        cluster |= {"kubeconfig_path": _checked_kubeconfig(args.kubeconfig, args.context),
                    "context": args.context}  # fmt: skip
    else:
        cluster |= {"host": args.host, "token": _secret(args.token_file, "--token-file"),
                    "ca_cert_path": str(Path(args.ca_cert).expanduser().resolve()) if args.ca_cert else None,
                    "verify_ssl": not args.insecure_skip_tls_verify}  # fmt: skip
    if args.prometheus_user and not args.prometheus_password_file:
        raise Refused("--prometheus-user needs --prometheus-password-file")
    if args.prometheus_password_file and not args.prometheus_user:
        raise Refused("--prometheus-password-file needs --prometheus-user")
    prometheus: dict[str, Any] = {
        "url": args.prometheus_url,
        "bearer_token": _secret(args.prometheus_token_file, "--prometheus-token-file"),
        "basic_auth_username": args.prometheus_user,
        "basic_auth_password": _secret(args.prometheus_password_file, "--prometheus-password-file"),
        "verify_tls": not args.prometheus_no_verify_tls,
    }
    if not args.prometheus_url.startswith(("http://", "https://")):
        raise Refused(f"--prometheus-url must start with http:// or https://, not "
                      f"{redact_url(args.prometheus_url)!r}")  # fmt: skip
    return _valid(KubernetesCluster, cluster), _valid(PrometheusSource, prometheus)


def _valid(kind: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return kind(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:  # the messages name fields, never their values
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind.__name__}: {e['msg']}"
                             for e in exc.errors(include_input=False))  # fmt: skip
        raise Refused(f"{kind.__name__}: {problems}") from None


def summary(name: str, cluster: KubernetesCluster, prometheus: PrometheusSource) -> dict[str, Any]:
    """What was saved, secrets as "set" (the output may end up in a CI log)."""
    source = ("in-cluster" if cluster.in_cluster else
              f"kubeconfig {cluster.kubeconfig_path}" + (f" (context {cluster.context})" if cluster.context else "")
              if cluster.kubeconfig_path else f"host {cluster.host}")  # fmt: skip
    auth = ("bearer token set" if prometheus.bearer_token is not None else
            "basic auth set" if prometheus.basic_auth_username is not None else "none")  # fmt: skip
    return {
        "blocks": [f"canary-kubernetes-cluster/{name}", f"prometheus-source/{name}"],
        "cluster": {"namespace": cluster.namespace, "source": source,
                    "token": "set" if cluster.token is not None else "unset",
                    "image_repository": cluster.image_repository,
                    "build_system": cluster.build_system, "traffic_router": cluster.traffic_router},
        "prometheus": {"url": redact_url(prometheus.url), "auth": auth},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        cluster, prometheus = build_blocks(args)
    except Refused as exc:
        parser.error(str(exc))  # exits 2 with the usage line
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        parser.error("set PREFECT_API_URL to your Prefect API (e.g. https://prefect.example.com/api): "
                     "without it the blocks would go to a temporary server and be lost")  # fmt: skip
    try:
        for block in (cluster, prometheus):
            type(block).register_type_and_schema()
            block.save(args.name, overwrite=True)
    except Exception as exc:  # the API is down or refuses: say where, not the payload
        print(f"kubernetes_blocks.py: error: saving the blocks to the Prefect API at "
              f"{redact_url(str(PREFECT_API_URL.value()))} failed "
              f"({type(exc).__name__}); check PREFECT_API_URL and that the server is up",
              file=sys.stderr)  # fmt: skip
        return 1
    print(json.dumps(summary(args.name, cluster, prometheus)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
