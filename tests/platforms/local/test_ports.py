"""Free-port picking: inside $CANARY_PORT_RANGE when set, and bands that never overlap per
xdist worker (tests/conftest.py), so chains started side by side cannot choose alike."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from canary.errors import PlatformError
from canary.platforms.local import procs


def test_ports_are_picked_inside_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(procs.PORT_RANGE_ENV, "23100-23140")
    ports = procs.free_ports(10)
    assert len(set(ports)) == 10
    assert all(23100 <= port < 23140 for port in ports)


def test_a_seeded_random_module_does_not_make_two_picks_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(procs.PORT_RANGE_ENV, "20000-30000")
    picks = []
    for _ in range(2):
        random.seed(0)
        picks.append(procs.free_ports(6))
    assert picks[0] != picks[1]


def test_a_taken_port_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    (port,) = procs.free_ports(1)
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        monkeypatch.setenv(procs.PORT_RANGE_ENV, f"{port}-{port + 1}")  # the taken one only
        with pytest.raises(PlatformError, match=f"no 1 free port.*{port}-{port + 1}.*CANARY_PORT_RANGE"):
            procs.free_ports(1)
    assert procs.free_ports(1) == [port]  # free again once let go
    with pytest.raises(PlatformError, match="no 1 free port"):
        procs.free_ports(1, exclude=[port])  # nor is an excluded one


@pytest.mark.parametrize("spec", ["20000", "abc-def", "30000-20000", "80-90", "20000-70000"])
def test_a_bad_range_is_named_with_what_to_write(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv(procs.PORT_RANGE_ENV, spec)
    with pytest.raises(PlatformError, match=rf"CANARY_PORT_RANGE='{spec}' is not a port range: write LOW-HIGH"):
        procs.free_ports(1)


def test_without_the_variable_ports_stay_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(procs.PORT_RANGE_ENV, raising=False)
    low, high = procs.port_range()
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert (low, high) == (10000, max(ephemeral, 11000))
    assert all(low <= port < high for port in procs.free_ports(20))


def test_xdist_workers_get_bands_that_do_not_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import conftest

    bands = []
    for index in range(4):
        monkeypatch.setenv(procs.PORT_RANGE_ENV, "21000-32000")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
        conftest.pytest_configure(pytest.Config.__new__(pytest.Config))
        bands.append(procs.port_range())
    assert bands == [(21000, 23750), (23750, 26500), (26500, 29250), (29250, 32000)]
