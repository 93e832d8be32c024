"""``GET`` and ``DELETE /api/v1/memory/{scope}`` over real HTTP on 127.0.0.1, on real stores
(SQLite files, the in-process store): entries newest last, deleting a scope or a prefix, the
config's store, memory off, a store that is down, and tenants who reach only their own scopes.

These routes never reach Temporal: the orchestrator points at an address where nothing
listens, and every answer still comes.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.conftest import BackgroundApi
from tests.server.web import Reply, call

from belugaflow import Orchestrator
from belugaflow.config import ApiKeyConfig, load_config_text
from belugaflow.memory import Entry, InProcessStore, SQLiteStore, Store
from belugaflow.server import ApiKeys, hash_key, new_key


def nowhere() -> str:
    """A Temporal address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def orchestrator(config: str | None = None) -> Orchestrator:
    orch = (
        Orchestrator.from_config(load_config_text(config, env={}))
        if config is not None
        else Orchestrator()
    )
    orch.temporal_address = nowhere()
    return orch


def notes(scope: str, n: int, *, start: float = 1_700_000_000.0) -> list[Entry]:
    return [
        Entry(scope, f"note {i}", kind="order", data={"i": i}, id=f"{scope}#{i}", created=start + i)
        for i in range(n)
    ]


def path(scope: str) -> str:
    return "/memory/" + urllib.parse.quote(scope, safe="")


class Api:
    """The API served with ``store``; ``seed`` and ``scopes`` work on the store from the API's
    own event loop."""

    def __init__(self, background: BackgroundApi, store: Store | None) -> None:
        self.background = background
        self.store = store

    @property
    def url(self) -> str:
        return self.background.url + "/api/v1"

    def call(self, method: str, route: str, key: str | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return call(self.url + route, method, headers=headers)

    def seed(self, entries: list[Entry]) -> None:
        assert self.store is not None
        self.background.run(self.store.add(entries))

    def scopes(self) -> dict[str, int]:
        assert self.store is not None
        found: dict[str, int] = self.background.run(self.store.scopes())
        return found


def serve(store: Store | None, orch: Orchestrator | None = None, **options: Any) -> BackgroundApi:
    if store is not None:
        options["memory_store"] = store
    return BackgroundApi(orch or orchestrator(), **options)


@pytest.fixture(params=["sqlite", "inprocess"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API with keys off, on a fresh store of each kind."""
    store: Store = (
        SQLiteStore(tmp_path / "memory.db") if request.param == "sqlite" else InProcessStore()
    )
    with serve(store) as background:
        yield Api(background, store)
        background.run(store.close())


def test_get_gives_the_newest_entries_oldest_first(api: Api) -> None:
    api.seed(notes("customer:42", 5) + notes("customer:7", 1))
    reply = api.call("GET", path("customer:42"))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert (body["scope"], body["total"]) == ("customer:42", 5)
    assert [entry["text"] for entry in body["entries"]] == [f"note {i}" for i in range(5)]
    assert body["entries"][0] == {
        "id": "customer:42#0",
        "scope": "customer:42",
        "kind": "order",
        "text": "note 0",
        "data": {"i": 0},
        "created": 1_700_000_000.0,
    }
    last = api.call("GET", path("customer:42") + "?last=2").json()
    assert [entry["text"] for entry in last["entries"]] == ["note 3", "note 4"]
    assert last["total"] == 5


def test_scopes_with_slashes_and_spaces_travel_in_the_path(api: Api) -> None:
    api.seed(notes("run:r-1/node validate", 2))
    assert api.call("GET", path("run:r-1/node validate")).json()["total"] == 2
    unquoted = api.call("GET", "/memory/run:r-1/node%20validate")  # "/" as it is
    assert unquoted.status == 200 and unquoted.json()["scope"] == "run:r-1/node validate"


def test_an_empty_scope_is_not_found(api: Api) -> None:
    reply = api.call("GET", path("nobody"))
    assert reply.status == 404
    assert reply.problem["code"] == "memory_scope_unknown"
    assert reply.problem["scope"] == "nobody"
    assert "no memory under scope 'nobody'" in reply.problem["detail"]


def test_delete_a_scope_then_it_is_gone(api: Api) -> None:
    api.seed(notes("run:1", 3) + notes("run:10", 2))
    reply = api.call("DELETE", path("run:1"))
    assert reply.status == 200 and reply.json() == {"deleted": 3}
    assert api.scopes() == {"run:10": 2}  # another scope, not under run:1
    assert api.call("GET", path("run:1")).problem["code"] == "memory_scope_unknown"
    again = api.call("DELETE", path("run:1"))
    assert again.status == 404 and again.problem["code"] == "memory_scope_unknown"


def test_delete_a_prefix(api: Api) -> None:
    api.seed(notes("acme:c-1", 2) + notes("acme:c-2", 1) + notes("globex:c-1", 4))
    reply = api.call("DELETE", path("acme:") + "?prefix=true")
    assert reply.status == 200 and reply.json() == {"deleted": 3}
    assert api.scopes() == {"globex:c-1": 4}
    assert api.call("DELETE", path("acme:") + "?prefix=true").status == 404


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", "/memory/s?last=0"),
        ("GET", "/memory/s?last=many"),
        ("GET", "/memory/s?last=10001"),
        ("DELETE", "/memory/s?prefix=maybe"),
        ("GET", "/memory/"),
        ("DELETE", "/memory/"),
    ],
)
def test_bad_requests_are_422(api: Api, method: str, route: str) -> None:
    """Nothing is read or deleted: an empty scope never means every scope."""
    api.seed(notes("s", 1))
    reply = api.call(method, route)
    assert reply.status == 422, reply.body
    assert reply.problem["code"] == "validation_error"
    assert api.scopes() == {"s": 1}


def test_the_store_of_the_config(tmp_path: Path) -> None:
    """Without memory_store=, the config's memory section names the store."""
    db = tmp_path / "memory.db"
    orch = orchestrator(
        f"memory: {{store: {{path: '{db}'}}}}\nserver: {{auth: {{enabled: false}}}}"
    )
    apps: list[Any] = []
    with serve(None, orch, auth=None, customize=apps.append) as background:
        (configured,) = [app.state.memory_store for app in apps]
        assert isinstance(configured, SQLiteStore) and configured.path == db
        api = Api(background, SQLiteStore(db))  # another connection to the same file
        api.seed(notes("s", 2))
        assert api.call("GET", path("s")).json()["total"] == 2
        assert api.call("DELETE", path("s")).json() == {"deleted": 2}
        for store in (api.store, configured):
            background.run(store.close())


@pytest.mark.parametrize("config", [None, "app: {name: shop}"])
def test_without_a_store_memory_is_off(config: str | None) -> None:
    with serve(None, orchestrator(config)) as background:
        api = Api(background, None)
        for method in ("GET", "DELETE"):
            reply = api.call(method, path("s"))
            assert reply.status == 404
            assert reply.problem["code"] == "memory_off"


def test_a_store_that_is_down_is_503(tmp_path: Path) -> None:
    """A SQLite 'file' that is a directory cannot be opened: 503, the file named."""
    store = SQLiteStore(tmp_path)
    with serve(store) as background:
        reply = Api(background, store).call("GET", path("s"))
        assert reply.status == 503
        assert reply.problem["code"] == "memory_store_unavailable"
        assert str(tmp_path) in reply.problem["detail"]


# --- Tenants --------------------------------------------------------------------------------


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[tuple[Api, dict[str, str]]]:
    """The API with keys for tenants acme, acme-2 and globex, on a SQLite store holding
    scopes of each (and one of nobody's)."""
    keys = {name: new_key() for name in ("acme", "acme-2", "globex")}
    auth = ApiKeys(
        {name: name for name in keys},
        [ApiKeyConfig(tenant=name, hash=hash_key(key)) for name, key in keys.items()],
    )
    store = SQLiteStore(tmp_path / "memory.db")
    with serve(store, auth=auth) as background:
        api = Api(background, store)
        api.seed(notes("acme:c-1", 3) + notes("acme:c-2", 1) + notes("acme-2:c-1", 2))
        api.seed(notes("globex:c-1", 2) + notes("c-1", 1))
        yield api, keys
        background.run(store.close())


def test_a_tenant_reads_and_deletes_its_own_scopes(tenants: tuple[Api, dict[str, str]]) -> None:
    api, keys = tenants
    reply = api.call("GET", path("acme:c-1"), keys["acme"])
    assert reply.status == 200 and reply.json()["total"] == 3
    reply = api.call("DELETE", path("acme:") + "?prefix=true", keys["acme"])
    assert reply.status == 200 and reply.json() == {"deleted": 4}
    assert api.scopes() == {"acme-2:c-1": 2, "c-1": 1, "globex:c-1": 2}


def test_other_scopes_look_empty_to_a_tenant(tenants: tuple[Api, dict[str, str]]) -> None:
    """Another tenant's scope, a scope of nobody's, and one whose name only starts like the
    tenant's: each is 404 memory_scope_unknown, as a scope that holds nothing is — the answer
    tells nothing about what exists. Nothing is deleted."""
    api, keys = tenants
    before = api.scopes()
    empty = api.call("GET", path("globex:nothing"), keys["globex"]).problem
    for key, scope, prefix in [
        ("globex", "acme:c-1", False),
        ("globex", "acme:", True),
        ("acme", "c-1", False),  # exists, but not the tenant's
        ("acme", "acme-2:c-1", False),  # another tenant whose name starts alike
        ("acme", "acme", True),  # a prefix without the colon would reach acme-2's
        ("acme", "", True),
    ]:
        for method in ("GET", "DELETE"):
            route = path(scope) + ("?prefix=true" if prefix else "")
            reply = api.call(method, route, keys[key])
            if scope == "":
                assert reply.status == 422
                continue
            assert reply.status == 404, (method, scope, reply.body)
            problem = reply.problem
            assert problem["code"] == "memory_scope_unknown"
            assert {k: v for k, v in problem.items() if k not in ("detail", "scope")} == {
                k: v for k, v in empty.items() if k not in ("detail", "scope")
            }
    assert api.scopes() == before


def test_memory_needs_a_key(tenants: tuple[Api, dict[str, str]]) -> None:
    api, _ = tenants
    assert api.call("GET", path("acme:c-1")).problem["code"] == "unauthorized"
    wrong = api.call("DELETE", path("acme:c-1"), new_key())
    assert wrong.status == 401 and wrong.problem["code"] == "invalid_api_key"
    assert api.scopes()["acme:c-1"] == 3


def test_the_routes_are_in_the_openapi_schema(api: Api) -> None:
    schema = call(api.background.url + "/openapi.json").json()
    operations = schema["paths"]["/api/v1/memory/{scope}"]
    assert set(operations) == {"get", "delete"}
    for operation in operations.values():
        assert {"200", "404", "422", "503"} <= set(operation["responses"])
