"""A project-owned PostgreSQL cluster for the Prefect server: Debian's binaries, started by
hand on a loopback port, data under the chain's home (no system service, no root-owned data).

PostgreSQL refuses to run as root. Run as root (CI, containers), the cluster runs as the
`postgres` user that Debian's package creates, and its data directory must be reachable by
that user: when the chain's home is not (e.g. under a 0700 directory of root's), the data
lives in a directory of its own under the system temp dir, named after the home, and the
home records where. The password is generated once (mode 600) and only ever passed in the
server's environment (PREFECT_API_DATABASE_CONNECTION_URL), never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN_GLOB = "/usr/lib/postgresql/*/bin"
USER, DATABASE = "prefect", "prefect"


class PostgresError(RuntimeError):
    """The cluster could not be created or started; the message says what to do."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout)."""
    found = sorted(Path("/").glob(BIN_GLOB.lstrip("/")), key=lambda p: _version(p.parent.name))
    found = [p for p in found if (p / "initdb").exists()]
    if not found:
        raise PostgresError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                            "`make setup` installs Debian's postgresql package")  # fmt: skip
    return found[-1]


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split(".") if x.isdigit()) or (0,)


def _reachable_by(path: Path, uid: int) -> bool:
    """Every directory from / down to `path` can be entered by `uid` (others' x bit)."""
    for part in [path, *path.parents]:
        if not part.exists():
            continue
        st = part.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            return False
    return True


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of the chain's own, on a loopback port (see the module docstring)."""

    home: Path  # the chain's home: the password file and the data's location live here
    port: int

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _owner(self) -> pwd.struct_passwd | None:
        if not self._as_root:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresError("running as root needs Debian's `postgres` user (the "
                                "postgresql package creates it)") from exc  # fmt: skip

    @property
    def data_dir(self) -> Path:
        """Where the cluster's data lives: under the home, or (run as root, when the home is
        not reachable by the postgres user) under the system temp dir."""
        default = self.home / "postgres" / "data"
        owner = self._owner()
        if owner is None or _reachable_by(default.parent, owner.pw_uid):
            return default
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"prefect-canary-pg-{digest}" / "data"

    @property
    def log(self) -> Path:
        """The cluster's log file."""
        return self.data_dir.parent / "postgres.log"

    def _password(self) -> str:
        path = self.home / "postgres" / "password"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect's server takes (asyncpg): a secret, never print it."""
        return f"postgresql+asyncpg://{USER}:{self._password()}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, argv: list[str], *, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        owner = self._owner()
        if owner is not None:
            argv = ["runuser", "-u", owner.pw_name, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **(env or {})})  # fmt: skip
        if check and done.returncode != 0:
            raise PostgresError(f"{Path(argv[-1] if owner else argv[0]).name} failed "
                                f"({done.returncode}): {done.stderr.strip()[-1500:]}; log: {self.log}")  # fmt: skip
        return done

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def running(self) -> bool:
        """The cluster's server runs (pg_ctl status)."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run([str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "status"],
                         check=False).returncode == 0  # fmt: skip

    def start(self) -> str:
        """Create the cluster once, start it (idempotent), create the database; its URL."""
        bindir = bin_dir()
        data = self.data_dir
        data.parent.mkdir(parents=True, exist_ok=True)
        self._chown(data.parent)
        if not (data / "PG_VERSION").exists():
            pwfile = data.parent / "pwfile"
            pwfile.write_text(self._password() + "\n")
            pwfile.chmod(0o600)
            self._chown(pwfile)
            try:
                self._run([str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A",
                           "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"])  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
        if not self.running():
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                       f"-c unix_socket_directories={data.parent} -c max_connections=200 "
                       "-c fsync=off -c synchronous_commit=off")  # fmt: skip
            self._run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.log), "-o",
                       options, "-w", "-t", "60", "start"])  # fmt: skip
        env = {"PGPASSWORD": self._password()}
        exists = self._run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            USER, "-d", "postgres", "-tAc",
                            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"], env=env)  # fmt: skip
        if exists.stdout.strip() != "1":
            self._run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                       USER, DATABASE], env=env)  # fmt: skip
        return self.url

    def stop(self) -> bool:
        """Stop this cluster (its postmaster, found by its own data directory); idempotent."""
        if not self.running():
            return False
        with contextlib.suppress(PostgresError):
            self._run([str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                       "stop"])  # fmt: skip
        return not self.running()

    def remove(self) -> None:
        """Stop it and delete its data (tests: nothing left behind in the temp dir)."""
        import shutil

        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.home / "postgres", ignore_errors=True)

