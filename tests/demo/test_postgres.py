"""The chain's own PostgreSQL cluster (demo/postgres.py): created once under the chain's home
(or, run as root with a home postgres cannot reach, in a temp dir named after it), started
on a loopback port, idempotent, password-protected, stopped and removed."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from canary.platforms.local import procs
from demo.postgres import PostgresCluster, PostgresError, bin_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path):
    try:
        bin_dir()
    except PostgresError as exc:
        pytest.skip(str(exc))
    c = PostgresCluster(tmp_path / "chain", procs.free_port())
    (tmp_path / "chain").mkdir()
    yield c
    c.remove()
    assert not c.data_dir.exists()


def _query(url: str, sql: str) -> object:
    import asyncpg

    async def run() -> object:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_started_once_on_loopback_with_a_password_then_stopped(cluster: PostgresCluster) -> None:
    url = cluster.start()
    assert url.startswith("postgresql+asyncpg://prefect:") and f"@127.0.0.1:{cluster.port}/prefect" in url
    assert _query(url, "select current_database()") == "prefect"
    assert _query(url, "show listen_addresses") == "127.0.0.1"
    password = cluster.home / "postgres" / "password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert cluster.start() == url and cluster.running()  # idempotent: same cluster, same secret
    wrong = url.replace(password.read_text().strip(), "not-the-password")
    with pytest.raises(Exception, match="password authentication failed"):
        _query(wrong, "select 1")
    assert password.read_text().strip() not in cluster.log.read_text()  # never logged
    assert cluster.stop() and not cluster.running()
    assert cluster.stop() is False  # idempotent
    assert cluster.start() == url  # the data survives a restart
    assert _query(url, "select 1") == 1
