"""`python -m demo`: the pieces that decide things, without starting the chain.

The chain itself is covered by tests/e2e; a whole demo run (~3 min) by test_demo_run.py
(live). The hook test pushes for real through git into a tiny signature-checking
HTTP server standing in for the relay.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from canary.values.events import ReleaseEnded
from canary.values.outcome import Outcome
from demo import __main__ as cli
from demo.chain import ROOT
from demo.config import DemoError, chain_config, webhook_secret
from demo.hooks import install_post_receive, render_post_receive
from demo.ports import port_conflicts
from demo.progress import Progress, status_line
from demo.repo import DemoRepo, check_delivery
from demo.summary import RELEASED, ReleaseRow, release_outcome, render_summary, verdict
from store.records import FlowRun

PROMOTED, ROLLED_BACK, FAILED = Outcome.PROMOTED, Outcome.ROLLED_BACK, None  # None: no outcome
NO_ROW = "no row"  # the release was not pushed
SECRET = "s3cr3t-" + "ab" * 16


# -- arguments -------------------------------------------------------------------------------
def test_defaults_are_the_chain_defaults() -> None:
    args = cli.parse_args([])
    assert args.command == "run"
    assert (args.prefect_port, args.relay_port, args.app_port, args.stats_port,
            args.prometheus_port) == (4200, 8088, 18080, 18404, 19090)  # fmt: skip
    assert args.home == ROOT / ".demo"
    assert (args.rate, args.load_duration) == (60.0, 900.0)


def test_flags_override_ports_and_commands_parse(tmp_path: Path) -> None:
    args = cli.parse_args(["--prefect-port", "4301", "--relay-port", "8090", "--home",
                           str(tmp_path)])  # fmt: skip
    config = chain_config(args, "x")
    assert (config.prefect_port, config.relay_port, config.app_port) == (4301, 8090, 18080)
    assert config.home == tmp_path.resolve() and config.api_url == "http://127.0.0.1:4301/api"
    assert cli.parse_args(["stop"]).command == "stop"
    assert cli.parse_args(["status", "--home", str(tmp_path)]).command == "status"


@pytest.mark.parametrize("argv", [["--prefect-port", "0"], ["--app-port", "http"], ["restart"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2


# -- the secret ------------------------------------------------------------------------------
def test_secret_is_generated_once_mode_600_and_reused(tmp_path: Path) -> None:
    first, where = webhook_secret(tmp_path, environ={})
    assert len(first) >= 32 and "new" in where
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    again, _ = webhook_secret(tmp_path, environ={})
    assert again == first


def test_secret_from_the_environment_is_not_written(tmp_path: Path) -> None:
    value, where = webhook_secret(tmp_path, environ={"GITHUB_WEBHOOK_SECRET": SECRET})
    assert value == SECRET and where == "$GITHUB_WEBHOOK_SECRET"
    assert not (tmp_path / "secret").exists()


# -- the post-receive hook -------------------------------------------------------------------
class _Relay(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers), body))
        answer = json.dumps({"status": "accepted"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def relay() -> Iterator[str]:
    _Relay.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/github"
    finally:
        server.shutdown()
        server.server_close()


def test_hook_text_holds_no_secret() -> None:
    text = render_post_receive(relay_url="http://127.0.0.1:8088/github",
                               secret_file=Path("/x/.demo/secret"))  # fmt: skip
    assert text.startswith("#!/bin/sh\n")
    assert "GITHUB_WEBHOOK_SECRET=$(cat" in text and "/x/.demo/secret" in text
    assert "send_github_push.py" in text and "http://127.0.0.1:8088/github" in text


@pytest.mark.parametrize("secret_via", ["file", "environment"])
def test_push_sends_a_signed_delivery_and_the_hook_file_has_no_secret(
    tmp_path: Path, relay: str, secret_via: str
) -> None:
    secret_file = tmp_path / "secret"
    if secret_via == "file":
        secret_file.write_text(SECRET + "\n")
        secret_file.chmod(0o600)
    repo = DemoRepo(tmp_path / "git" / "goldengoose.git", tmp_path / "work" / "goldengoose")
    repo.create(ROOT / "examples" / "goldengoose")
    v1 = repo.commit("1.0.0", {})
    repo.push()  # no hook yet: nothing is sent
    hook = install_post_receive(repo.bare, relay_url=relay, secret_file=secret_file)
    assert os.access(hook, os.X_OK)
    v2 = repo.commit("2.0.0", {})
    output = repo.push(SECRET if secret_via == "environment" else None)
    check_delivery(output)
    assert SECRET not in hook.read_text()
    assert len(_Relay.got) == 1
    headers, body = _Relay.got[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    payload = json.loads(body)
    assert (payload["before"], payload["after"]) == (v1, v2)
    assert payload["repository"]["full_name"] == "local/goldengoose"
    assert payload["repository"]["clone_url"] == str(repo.bare.resolve())


def test_a_refused_delivery_is_an_error() -> None:
    out = 'remote: delivery 1234 refs/heads/main 0123456789ab -> 401 {"error": "bad"}'
    with pytest.raises(DemoError, match="did not deliver"):
        check_delivery(out)
    with pytest.raises(DemoError):
        check_delivery("")
    check_delivery("remote: delivery 1234 refs/heads/main 0123456789ab -> 202 {}")


# -- ports -----------------------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_taken_by_someone_else_is_named_with_its_flag(listener: int) -> None:
    (problem,) = port_conflicts({"prefect_port": listener}, our_sessions=set())
    assert f"port {listener} (Prefect server" in problem
    assert f"pid {os.getpid()}" in problem
    assert "--prefect-port" in problem and "make demo DEMO_ARGS=" in problem


def test_a_port_held_by_our_own_recorded_session_is_no_conflict(listener: int) -> None:
    assert port_conflicts({"relay_port": listener}, our_sessions={os.getsid(0)}) == []


def test_free_and_duplicate_ports(listener: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert port_conflicts({"app_port": free}, our_sessions=set()) == []
    problems = port_conflicts({"app_port": free, "stats_port": free}, our_sessions=set())
    assert problems == [f"port {free} is given for both --app-port and --stats-port: "
                        "every part needs its own port"]  # fmt: skip


def test_an_invisible_holder_is_a_conflict() -> None:
    problems = port_conflicts({"prometheus_port": 19090}, set(), holders_of=lambda p: {})
    assert "a process this user cannot see" in problems[0] and "--prometheus-port" in problems[0]


# -- summary and exit code -------------------------------------------------------------------
def _rows(v2: Outcome | None, v3: Outcome | str | None) -> list[ReleaseRow]:
    rows = [ReleaseRow("v2", "2.0.0", "a" * 40, PROMOTED, v2, 100.0, "http://u/2", "", 79.0, 45.0, 3, 120.0)]
    if v3 is None or isinstance(v3, Outcome):
        rows.append(ReleaseRow("v3", "3.0.0", "b" * 40, ROLLED_BACK, v3, 50.0, "http://u/3"))
    return rows


def test_summary_table_renders_given_rows() -> None:
    rows = _rows(PROMOTED, FAILED)
    rows[1].score, rows[1].reason = None, "canary-release ended Crashed"
    text = render_summary(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["release", "commit", "version", "outcome", "expected", "score",
                                "decided", "after", "saved", "time", "flow", "run"]  # fmt: skip
    assert lines[2].split() == ["v2", "aaaaaaa", "2.0.0", "promoted", "promoted", "100", "0:45",
                                "(3", "looks)", "1:15", "1:19", "http://u/2"]  # fmt: skip
    assert lines[3].split()[:6] == ["v3", "bbbbbbb", "3.0.0", "failed", "rolled", "back"]
    assert lines[3].split()[6:] == ["-", "-", "-", "-", "http://u/3"]
    assert lines[-1] == "v3: canary-release ended Crashed"


@pytest.mark.parametrize(
    ("v2", "v3", "code"),
    [
        (PROMOTED, ROLLED_BACK, 0),
        (PROMOTED, PROMOTED, 1),
        (ROLLED_BACK, ROLLED_BACK, 1),
        (FAILED, NO_ROW, 1),
        (PROMOTED, FAILED, 1),
        (PROMOTED, NO_ROW, 1),
    ],
)
def test_exit_code_is_0_only_for_v2_promoted_and_v3_rolled_back(
    v2: Outcome | None, v3: Outcome | str | None, code: int
) -> None:
    got, why = verdict(_rows(v2, v3))
    assert got == code
    if code:
        assert "should be" in why


def _run(state_type: str, state_name: str, message: str = "") -> FlowRun:
    return FlowRun("r", state_type, state_name, message)


def _event(kind: str, reason: str = "why") -> ReleaseEnded:
    return ReleaseEnded.from_event(f"canary.release.{kind}", {"reason": reason}, app="goldengoose")


@pytest.mark.parametrize(("run", "event", "outcome", "why"), [
    # a rolled-back release ends RolledBack, of type FAILED: still a rolled-back outcome
    (_run("FAILED", "RolledBack"), _event("rolled-back", "latency +215%"), ROLLED_BACK,
     "rolled back: latency +215%"),
    (_run("COMPLETED", "Promoted"), _event("promoted", "score 100"), PROMOTED, "promoted: score 100"),
    # a crash or a plain failure is no outcome, whatever the event said
    (_run("CRASHED", "Crashed", "worker died"), _event("rolled-back"), FAILED,
     "canary-release ended Crashed: worker died"),
    (_run("FAILED", "Failed", "boom"), None, FAILED, "canary-release ended Failed: boom"),
    # an operator's abort (older runs: an aborted event) is not released either
    (_run("CANCELLED", "Aborted", "by alice"), _event("aborted"), FAILED,
     "canary-release ended Aborted: by alice"),
    (_run("CANCELLED", "Skipped", "a newer commit"), None, FAILED,
     "canary-release ended Skipped: a newer commit"),
    # run state and event must agree, and the event must exist
    (_run("FAILED", "RolledBack"), None, FAILED, "no canary.release.* event was found"),
    (_run("COMPLETED", "Promoted"), _event("rolled-back"), FAILED, "its event says rolled-back"),
])  # fmt: skip
def test_release_outcome_reads_the_run_state_and_its_event(
    run: FlowRun, event: ReleaseEnded | None, outcome: Outcome | None, why: str
) -> None:
    got, reason = release_outcome(run, event)
    assert got == outcome and why in reason


def test_the_outcome_names_are_the_flow_s_final_states() -> None:
    """The demo reads a run's outcome by Outcome's state names, the ones
    flows/canary_release.py ends in (named there literally, or through Outcome)."""
    source = (ROOT / "flows" / "canary_release.py").read_text()
    for outcome in RELEASED:
        assert Outcome.from_state_name(outcome.state.name) is outcome
        assert f'name="{outcome.state.name}"' in source or "Outcome" in source


# -- progress and status ---------------------------------------------------------------------
def test_status_line_follows_the_runs() -> None:
    sha = "c" * 40
    assert status_line("v2", sha, None, None, None) == "v2 ccccccc: waiting for the build run"
    build = FlowRun("b", "COMPLETED", "Completed")
    release = FlowRun("r", "RUNNING", "Running")
    line = status_line("v2", sha, build, release, "judgement #2 score 100 → Pass")
    assert line == ("v2 ccccccc: build Completed · canary-release Running · "
                    "judgement #2 score 100 → Pass")  # fmt: skip


def test_progress_rewrites_one_line_on_a_tty_and_prints_changes_otherwise() -> None:
    tty, plain = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (plain, False)):
        progress = Progress(stream, tty=is_tty, every=3600)
        for t, text in ((1, "build Running"), (2, "build Running"), (3, "build Completed")):
            progress.update(t, text)
        progress.done()
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().endswith("\n")
    assert plain.getvalue().splitlines() == ["  [+0:01] build Running",
                                             "  [+0:03] build Completed"]  # fmt: skip


def test_stop_and_status_on_a_demo_that_never_ran(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    out = io.StringIO()
    assert cli.stop(cli.parse_args(["stop", "--home", str(home)]), out) == 0
    assert "nothing to stop" in out.getvalue()
    home.mkdir()
    out = io.StringIO()
    assert cli.stop(cli.parse_args(["stop", "--home", str(home)]), out) == 0
    assert out.getvalue() == "nothing was running\n"
    out = io.StringIO()
    assert cli.status(cli.parse_args(["status", "--home", str(home)]), out) == 0
    assert "prefect-server  not running" in out.getvalue()


def test_the_summary_shows_the_release_counters_prometheus_answers() -> None:
    from demo.summary import RELEASE_QUERIES, release_metrics, render_release_metrics

    promoted, rolled_back = RELEASE_QUERIES
    assert promoted == 'canary_releases_total{app="goldengoose",outcome="promoted"}'
    assert rolled_back == 'canary_releases_total{app="goldengoose",outcome="rolled_back"}'
    answers = iter([{}, {promoted: 1.0}, {promoted: 1.0, rolled_back: 1.0}])
    current: dict[str, float] = {}

    def query(promql: str) -> float | None:
        return current.get(promql)

    polls = 0

    def polled(promql: str) -> float | None:
        nonlocal current, polls
        if promql == promoted:  # one poll asks both: move on once per poll
            current, polls = next(answers), polls + 1
        return query(promql)

    got = release_metrics(polled, timeout=10, every=0.01)
    assert got == {promoted: 1.0, rolled_back: 1.0} and polls == 3
    text = render_release_metrics(got, "http://127.0.0.1:19090")
    assert f"{rolled_back}  1" in text
    # a Prometheus that never has them: the last answers, after the deadline
    missing = release_metrics(lambda promql: None, timeout=0.05, every=0.01)
    assert missing == {promoted: None, rolled_back: None}
    assert f"{promoted}     -" in render_release_metrics(missing, "http://p")
