"""``python -m controlplane build|up|down|status``: the local Kubernetes control plane.

    build   build the pinned binaries and fetch the pinned CRDs (once; later only checks)
    up      start it (or find it running) and print how to reach it; `make kube`
    down    stop what `up` started (--wipe: delete its state too); `make kube-stop`
    status  say whether it runs, where, and the memory of each process
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from canary.platforms.local import procs

from .cluster import ControlPlane, ControlPlaneError, default_state
from .install import InstallError, build


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where its data, certificates, kubeconfig and logs live "
                             "(default: $CANARY_KUBE_STATE or .state/kube)")
    parser.add_argument("--wipe", action="store_true", help="with down: delete the state directory")
    parser.add_argument("--force", action="store_true", help="with build: rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(force=args.force)
            return 0
        plane = ControlPlane(args.state_dir or default_state())
        if args.command == "up":
            endpoint = plane.up()
            print(f"API server: {endpoint.url}\n"
                  "use it from this shell (kubectl is the one built with it):\n"
                  f"  export KUBECONFIG={endpoint.kubeconfig} PATH={plane.where.bin}:$PATH\n"
                  "  kubectl get nodes\n"
                  "stop it with `make kube-stop` (or python -m controlplane down)")
            return 0
        if args.command == "down":
            stopped = plane.down(wipe=args.wipe)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
            return 0
        found = plane.running()
        if found is None:
            print(f"not running (state: {plane.state})")
            return 3
        record = procs.read_json(plane.state / "controlplane.json", {})
        print(f"running: {found.url}  KUBECONFIG={found.kubeconfig}")
        total = 0.0
        for name, data in record.get("processes", {}).items():
            rss = _rss_mib(int(data["pid"]))
            total += rss
            print(f"  {name:<24} pid {data['pid']:<8} {rss:7.0f} MiB")
        print(f"  {'total':<24} {'':<12} {total:7.0f} MiB")
        return 0
    except (InstallError, ControlPlaneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
