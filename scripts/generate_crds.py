"""Write the ReleasePolicy CRD generated from the config models (canary.config.policy_schema).

    python scripts/generate_crds.py            # (re)write deployments/kubernetes/crds/
    python scripts/generate_crds.py --check    # exit 1 when the shipped file is stale

Run it after changing a model in canary/config/ (tests/config/test_policy_schema.py fails
until the shipped file equals the generated one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canary.config.policy_schema import render  # noqa: E402

TARGET = ROOT / "deployments" / "kubernetes" / "crds" / "releasepolicy.yaml"


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) the shipped CRD.

    Args:
        argv: The command line (default: sys.argv[1:]).

    Returns:
        The exit code: 0, or 1 when --check finds the shipped file stale.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not TARGET.exists() or TARGET.read_text() != text
        if stale:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python scripts/generate_crds.py")
        return 1 if stale else 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
