"""What the API says when Temporal is down, and when the API itself fails."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from tests.server.app import build
from tests.server.conftest import BackgroundApi
from tests.server.web import call


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_temporal_unavailable_is_503(tmp_path: Path) -> None:
    """With nothing at the Temporal address, routes that need it answer 503
    ``temporal_unavailable`` and ``/readyz`` says not ready; the rest still serves."""
    orch = build(tmp_path / "shop.db")
    orch.temporal_address = f"127.0.0.1:{free_port()}"
    with BackgroundApi(orch) as api:
        url = api.url + "/api/v1"
        body = {"type": "order-processing", "input": {"order_id": "o", "product_id": "prod-1"}}
        for reply in (
            call(f"{url}/workflows", "POST", body),
            call(f"{url}/workflows"),
            call(f"{url}/workflows/some-id"),
            call(f"{url}/workflows/some-id/events"),
        ):
            assert reply.status == 503 and reply.problem["code"] == "temporal_unavailable"
            assert orch.temporal_address in reply.problem["detail"]
        ready = call(f"{api.url}/readyz")
        assert ready.status == 503 and ready.json()["checks"]["temporal"]["ok"] is False
        assert call(f"{api.url}/healthz").status == 200
        assert call(f"{url}/graphs").status == 200


def test_an_unexpected_error_is_a_500_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception no handler knows becomes ``500`` with code ``internal`` and no stack
    trace in the response; the traceback goes to the ``belugaflow.server`` log."""

    def customize(app: object) -> None:
        async def boom() -> None:
            raise RuntimeError("secret detail")

        app.get("/boom")(boom)  # type: ignore[attr-defined]

    with (
        caplog.at_level(logging.ERROR, logger="belugaflow.server"),
        BackgroundApi(build(tmp_path / "shop.db"), customize=customize) as api,
    ):
        reply = call(f"{api.url}/boom")
    assert reply.status == 500 and reply.problem["code"] == "internal"
    assert b"secret" not in reply.body and b"Traceback" not in reply.body
    [record] = [r for r in caplog.records if r.name == "belugaflow.server"]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


def test_the_body_limit_comes_from_the_config() -> None:
    """``server.max_body_bytes`` of the orchestrator's config is the default limit; the
    OpenAPI schema and its page are served."""
    from belugaflow import Orchestrator
    from belugaflow.config import load_config_text

    config = load_config_text("server: {max_body_bytes: 100}", env={})
    with BackgroundApi(Orchestrator.from_config(config)) as api:
        small = call(f"{api.url}/api/v1/graphs/none/invoke", "POST", {"x": "y"})
        large = call(f"{api.url}/api/v1/graphs/none/invoke", "POST", {"x": "y" * 100})
        schema = call(f"{api.url}/openapi.json").json()
        page = call(f"{api.url}/docs")
    assert (small.status, small.problem["code"]) == (404, "unknown_graph")
    assert (large.status, large.problem["code"]) == (413, "body_too_large")
    assert large.problem["max_body_bytes"] == 100
    assert "/api/v1/workflows/{id}/events" in schema["paths"]
    assert page.status == 200 and b"swagger" in page.body.lower()
