"""``/api/v1/memory/{scope}``: show and delete what steps and runs remembered under a scope.

The store is the app's (``create_app(memory_store=)``, else the config's ``memory`` section);
without one, every route answers 404 ``memory_off``. With API keys, a tenant reaches only the
scopes that start with ``"{tenant}:"``: any other scope is 404 ``memory_scope_unknown``,
exactly as an empty one, so no answer tells whether another tenant's scope exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Query, Request

from ..memory._contract import ScopeNotFoundError, StoreUnavailableError
from ._auth import Acting, Tenant
from ._models import MemoryDeleted, MemoryEntries, MemoryEntry
from ._problems import Problem, responses

if TYPE_CHECKING:
    from ..memory import Entry, Store

__all__ = ["DEFAULT_LAST", "memory_routes"]

DEFAULT_LAST = 100
"""Entries ``GET /memory/{scope}`` gives without ``?last=``."""

ScopePath = Annotated[
    str,
    Path(
        min_length=1,
        description="The scope, e.g. acme:customer:42. With API keys it starts with the"
        " tenant's name and a colon.",
    ),
]


def memory_routes() -> APIRouter:
    """The routes under ``/memory``."""
    router = APIRouter(prefix="/memory", tags=["memory"])

    @router.get(
        "/{scope:path}", summary="Show a scope's memory", responses=responses(404, 422, 503)
    )
    async def show_memory(
        request: Request,
        tenant: Acting,
        scope: ScopePath,
        last: Annotated[
            int, Query(ge=1, le=10_000, description="How many of the newest entries.")
        ] = DEFAULT_LAST,
    ) -> MemoryEntries:
        """The scope's newest ``last`` entries, oldest first, and how many it holds in all.
        404 ``memory_scope_unknown`` if it holds nothing (or is another tenant's)."""
        store = _store(request)
        _check_reach(tenant, scope)
        try:
            entries = await store.entries(scope, last=last)
            total = (await store.scopes(scope)).get(scope, len(entries)) if entries else 0
        except StoreUnavailableError as error:
            raise Problem(503, error.code, str(error)) from None
        if not entries:
            raise _unknown(scope)
        return MemoryEntries(scope=scope, total=total, entries=[_entry(e) for e in entries])

    @router.delete(
        "/{scope:path}", summary="Delete a scope's memory", responses=responses(404, 422, 503)
    )
    async def delete_memory(
        request: Request,
        tenant: Acting,
        scope: ScopePath,
        prefix: Annotated[
            bool, Query(description="Delete every scope that starts with ``scope``.")
        ] = False,
    ) -> MemoryDeleted:
        """Delete what the scope holds (with ``?prefix=true``, what every scope starting with
        it holds: ``acme:`` is tenant acme's whole memory). 404 ``memory_scope_unknown`` if
        there was nothing (or it is another tenant's)."""
        store = _store(request)
        _check_reach(tenant, scope)
        try:
            deleted = await store.delete(scope, prefix=prefix)
        except StoreUnavailableError as error:
            raise Problem(503, error.code, str(error)) from None
        if not deleted:
            raise _unknown(scope)
        return MemoryDeleted(deleted=deleted)

    return router


def _store(request: Request) -> Store:
    store: Store | None = request.app.state.memory_store
    if store is None:
        raise Problem(
            404,
            "memory_off",
            "memory is off: the config has no memory section, and the app was given no"
            " memory_store",
        )
    return store


def _check_reach(tenant: Tenant | None, scope: str) -> None:
    """With keys, only the tenant's own scopes: others look empty (never 403)."""
    if tenant is not None and not scope.startswith(f"{tenant.name}:"):
        raise _unknown(scope)


def _unknown(scope: str) -> Problem:
    error = ScopeNotFoundError(scope)
    return Problem(404, error.code, str(error), scope=scope)


def _entry(entry: Entry) -> MemoryEntry:
    return MemoryEntry(
        id=entry.id,
        scope=entry.scope,
        kind=entry.kind,
        text=entry.text,
        data=dict(entry.data),
        created=entry.created,
    )
