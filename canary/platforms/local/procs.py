"""Processes this platform starts, and the proof that a pid is still one of them.

A pid alone is not an identity: after a crash and a reboot-free hour the number may belong to
someone else. A `ProcessRecord` keeps the pid together with the kernel's start time of that
process (/proc/<pid>/stat field 22) and its argv; a process is ours only while all three
match, and nothing is ever signalled otherwise. Children start in their own session, so a
Ctrl-C on the orchestrator does not take the workloads down behind the platform's back (the
reconcile does that, on purpose).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canary.errors import PlatformError

# Popen objects of the children started by this interpreter, so stopping one also reaps it.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


#: A state file's document (or a part of one), as JSON.
JSON = dict[str, object]


def as_int(value: object, what: str = "value") -> int:
    """``value`` read back from a state file as a whole number.

    Raises:
        PlatformError: it is not one (a corrupt state file).
    """
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    raise PlatformError(f"state file: {what} {value!r} is not a whole number; inspect or delete it")


def as_mapping(value: object) -> JSON:
    """``value`` if it is a JSON object, else {}."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ProcessRecord:
    """A process we started: its pid, its start time (so a reused pid is not taken for it)
    and its command line."""

    pid: int
    start_ticks: int
    argv: tuple[str, ...]

    def to_json(self) -> JSON:
        """The record as stored in a pid file."""
        return {**asdict(self), "argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        """The record stored by ``to_json``."""
        argv = data.get("argv")
        return cls(as_int(data.get("pid"), "pid"), as_int(data.get("start_ticks"), "start_ticks"),
                   tuple(str(a) for a in argv) if isinstance(argv, list) else ())  # fmt: skip


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live pid, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[19])


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return tuple(p.decode(errors="replace") for p in raw.split(b"\0")[:-1])


def is_ours(rec: ProcessRecord) -> bool:
    """True while `rec.pid` is the very process recorded: same start time, same argv.

    The recorded argv must appear in order in the current one: HAProxy's master re-executes
    itself on reload with extra arguments (``-sf <old> -x sockpair@3``) under the same pid.
    """
    stat = _stat(rec.pid)
    if stat is None or stat[0] in ("Z", "X") or stat[1] != rec.start_ticks:
        return False
    current = iter(_cmdline(rec.pid) or ())
    return bool(rec.argv) and all(word in current for word in rec.argv)


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``argv`` in a session of its own, output to ``log``; the process and its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlatformError(f"cannot start {argv[0]!r} in {cwd}: {exc}") from None
    _CHILDREN[proc.pid] = proc
    # Popen returns once exec has begun, but the kernel publishes the new argv a moment
    # later; until then /proc/<pid>/cmdline is empty and the process would not look ours.
    deadline = time.monotonic() + 5.0
    while not _cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    stat = _stat(proc.pid)
    if stat is None or proc.poll() is not None:  # exited already: the caller reports the log
        return proc, ProcessRecord(proc.pid, -1, tuple(argv))
    return proc, ProcessRecord(proc.pid, stat[1], tuple(argv))


def _wait_gone(rec: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    child = _CHILDREN.get(rec.pid)
    while True:
        if child is not None and child.poll() is not None:
            _CHILDREN.pop(rec.pid, None)
            return True
        if child is None and not is_ours(rec):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop(rec: ProcessRecord, timeout: float = 10.0) -> bool:
    """SIGTERM (then SIGKILL) the recorded process and its group; False if it was not ours.

    The group is signalled only when the verified process still leads it (it was started
    in its own session), so helpers it spawned go too and nobody else's processes do.
    """
    if not is_ours(rec):
        child = _CHILDREN.pop(rec.pid, None)
        if child is not None:
            child.poll()  # reap a zombie of ours
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(rec.pid) == rec.pid:
                os.killpg(rec.pid, sig)
            else:
                os.kill(rec.pid, sig)
        if _wait_gone(rec, timeout if sig == signal.SIGTERM else 5.0):
            return True
    raise PlatformError(f"process {rec.pid} ({rec.argv[0]}) survived SIGKILL", transient=True)


def find_marked(marker: Mapping[str, str]) -> list[ProcessRecord]:
    """Live processes whose environment holds every ``key=value`` of `marker`.

    The platform puts a marker in the environment of everything it spawns, so processes
    it started but never managed to record (a crash between fork and the state write) are
    still found. Only processes of this user are readable, so only those can match.
    """
    want = {f"{k}={v}".encode() for k, v in marker.items()}
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        stat, argv = _stat(int(entry.name)), _cmdline(int(entry.name))
        if want <= env and stat and stat[0] not in ("Z", "X") and argv:
            out.append(ProcessRecord(int(entry.name), stat[1], argv))
    return out


def group_of(pid: int) -> int | None:
    """The process group of ``pid``, None when it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing can bind ``host``:``port`` now."""
    return not _bindable(port, host)


#: "LOW-HIGH": where `free_ports` picks (HIGH excluded), for runs that must not meet each other's
#: choices (make test gives each pytest pass and xdist worker a range of its own)
PORT_RANGE_ENV = "CANARY_PORT_RANGE"


def port_range() -> tuple[int, int]:
    """Where `free_ports` picks: $CANARY_PORT_RANGE, else 10000 up to the ephemeral range.

    Raises:
        PlatformError: the variable is set but not "LOW-HIGH" with 1024 <= LOW < HIGH <= 65536.
    """
    spec = os.environ.get(PORT_RANGE_ENV, "").strip()
    if spec:
        low_text, _, high_text = spec.partition("-")
        try:
            low, high = int(low_text), int(high_text)
        except ValueError:
            low = high = 0
        if not 1024 <= low < high <= 65536:
            raise PlatformError(
                f"{PORT_RANGE_ENV}={spec!r} is not a port range: write LOW-HIGH, e.g. 20000-26000 "
                "(1024 <= LOW < HIGH <= 65536), or unset it"
            )
        return low, high
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    return 10000, max(ephemeral, 11000)


def free_ports(n: int, host: str = "127.0.0.1", exclude: Iterable[int] = ()) -> list[int]:
    """`n` distinct ports that are free now, chosen in `port_range()`.

    Outgoing connections (HAProxy opens one per request) and everyone's bind(0) draw from
    the kernel's ephemeral range, so a port picked there can be taken in the instant between
    this check and the app's own bind; below it, only explicit choices like this one compete,
    and runs side by side keep apart with a $CANARY_PORT_RANGE each.
    """
    low, high = port_range()
    chosen: list[int] = []
    excluded = set(exclude)
    for _ in range(1000):
        port = _PICK.randrange(low, high)
        if port not in excluded and port not in chosen and _bindable(port, host):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise PlatformError(
        f"no {n} free port(s) found on {host} in {low}-{high}"
        + (f" (${PORT_RANGE_ENV})" if os.environ.get(PORT_RANGE_ENV) else ""),
        transient=True,
    )


# Its own generator: a test that seeds the `random` module must not make two runs pick alike.
_PICK = random.SystemRandom()


def free_port(host: str = "127.0.0.1", exclude: Iterable[int] = ()) -> int:
    """One port free on ``host`` now, not in ``exclude`` (see free_ports)."""
    return free_ports(1, host, exclude)[0]


def write_json(path: Path, data: object) -> None:
    """Atomic replace: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON document in ``path``; ``default`` when there is no such file.

    Untyped for the callers outside the local platform (controlplane, demo) that index into
    it; the platform itself reads state through ``read_mapping`` / ``as_mapping``.

    Raises:
        PlatformError: the file is not valid JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise PlatformError(f"state file {path} is corrupt ({exc}); inspect or delete it") from None


def read_mapping(path: Path) -> JSON:
    """The JSON object in ``path``; {} when there is no such file (or it holds no object)."""
    return as_mapping(read_json(path))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock; released by the kernel if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" when it cannot be read)."""
    try:
        data = path.read_bytes()[-8192:]
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
