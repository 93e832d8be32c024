"""``embedded_server``: the configured server if it answers, else the embedded one."""

from __future__ import annotations

from pathlib import Path

import pytest

from belugaflow.temporal import DevServer, DevServerError, embedded_server
from belugaflow.temporal._devserver import _free_port as free_port


async def test_a_server_that_answers_is_used_as_it_is(temporal_server: DevServer) -> None:
    async with embedded_server(temporal_server.address) as server:
        assert server is None


async def test_a_local_address_without_server_gets_the_embedded_one(tmp_path: Path) -> None:
    port = free_port()
    async with embedded_server(f"localhost:{port}", db_file=tmp_path / "t.db") as server:
        assert server is not None and server.running
        assert (server.port, server.db_file) == (port, tmp_path / "t.db")
    assert not server.running


@pytest.mark.parametrize("address", ["localhost", "localhost:port", ":7233"])
async def test_an_address_without_host_and_port_is_an_error_naming_it(address: str) -> None:
    with pytest.raises(DevServerError, match=f"a Temporal address is HOST:PORT, got '{address}'"):
        async with embedded_server(address):
            pass  # pragma: no cover
