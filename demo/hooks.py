"""The demo repository's git ``post-receive`` hook: a push becomes a signed GitHub delivery.

The hook lives in the bare repository the demo pushes to. For every updated ref it runs
``scripts/send_github_push.py``, which signs a GitHub-format ``push`` payload and POSTs it to
the webhook relay. The webhook secret is never written into the hook: it comes from the
pusher's environment (``GITHUB_WEBHOOK_SECRET``; git hands the pusher's environment to hooks
of a local repository) or, failing that, is read from the demo's secret file (mode 600) each
time the hook runs. So a plain ``git push`` from the demo's working clone starts a release.
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

from demo.chain import ROOT

SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
SENDER = ROOT / "scripts" / "send_github_push.py"


def render_post_receive(
    *, relay_url: str, secret_file: Path, python: str = sys.executable, sender: Path = SENDER
) -> str:
    """The hook's text (POSIX sh). Paths and the URL are quoted; no secret is an input."""
    q = shlex.quote
    return f"""#!/bin/sh
# post-receive hook written by `python -m demo` (prefect-canary). Every pushed ref becomes a
# signed GitHub-format push delivery to the webhook relay, which posts a github.push event
# to Prefect; its automation starts the build, whose success starts the canary release.
# The webhook secret is not stored here: it comes from the pusher's environment
# ({SECRET_ENV}) or is read from the demo's secret file when the hook runs.
secret_file={q(str(secret_file))}
if [ -z "${{{SECRET_ENV}:-}}" ]; then
    if [ ! -r "$secret_file" ]; then
        echo "post-receive: {SECRET_ENV} is not set and $secret_file is missing: no webhook sent" >&2
        exit 1
    fi
    {SECRET_ENV}=$(cat "$secret_file")
fi
export {SECRET_ENV}
status=0
while read -r before after ref; do
    {q(python)} {q(str(sender))} "$PWD" "$ref" "$before" "$after" {q(relay_url)} || status=1
done
exit $status
"""


def install_post_receive(bare_repo: Path, *, relay_url: str, secret_file: Path) -> Path:
    """Write ``hooks/post-receive`` into `bare_repo` (mode 755) and return its path."""
    hook = bare_repo / "hooks" / "post-receive"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(render_post_receive(relay_url=relay_url, secret_file=secret_file.resolve()))
    hook.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return hook
