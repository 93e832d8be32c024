"""API keys and tenants: who a request acts for, and the orchestrator that acts for them.

Each key (stored hashed, :mod:`belugaflow._apikeys`) belongs to a tenant; each tenant's runs
live in a Temporal namespace of its own, made on first use. A tenant therefore cannot see,
signal or cancel another's runs: in its namespace they do not exist (404, so ids don't leak).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from .._apikeys import hash_key
from .._errors import ConfigError
from .._orchestrator import Orchestrator  # at run time: FastAPI reads Scoped's type
from ..config import ApiKeyConfig, AuthConfig
from ._problems import Problem
from ._runs import connected

__all__ = ["Acting", "ApiKeys", "Scoped", "Tenancy", "Tenant"]

logger = logging.getLogger("belugaflow.server")


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    namespace: str


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeyConfig] = []


class ApiKeys:
    """The keys a server accepts, each for one of ``tenants`` (name → namespace): those given,
    and those of ``keys_file``, read again (at most once a second) when it changes.

    Raises:
        ConfigError: a key names an unknown tenant, or the keys file is missing or invalid.
    """

    RECHECK = 1.0
    """Seconds between looks at the keys file: a revoked key stops working within this."""

    def __init__(
        self,
        tenants: Mapping[str, str],
        keys: Iterable[ApiKeyConfig] = (),
        *,
        keys_file: str | Path | None = None,
    ) -> None:
        self.tenants = {name: Tenant(name, namespace) for name, namespace in tenants.items()}
        self._fixed = self._index(keys, "server.auth.keys")
        self._file = Path(keys_file) if keys_file is not None else None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._by_hash = dict(self._fixed)
        if self._file is not None:
            self._by_hash.update(self._read(self._file, self._file_stamp()))

    @classmethod
    def from_config(cls, auth: AuthConfig) -> ApiKeys:
        """The keys and tenants of a ``server.auth`` section (whose ``enabled`` is true)."""
        return cls(auth.namespaces(), auth.keys, keys_file=auth.keys_file)

    def __len__(self) -> int:
        return len(self._by_hash)

    def tenant(self, key: str) -> Tenant | None:
        """The tenant ``key`` acts for; None for a key this server does not hold."""
        self._recheck()
        return self._by_hash.get(hash_key(key))

    def _index(self, keys: Iterable[ApiKeyConfig], where: str) -> dict[str, Tenant]:
        found = {}
        for index, key in enumerate(keys):
            tenant = self.tenants.get(key.tenant)
            if tenant is None:
                known = ", ".join(sorted(self.tenants)) or "none"
                raise ConfigError(
                    f"keys[{index}] is for tenant {key.tenant!r}, which is not one of the"
                    f" tenants (server.auth.tenants: {known})",
                    key=where,
                )
            found[key.hash] = tenant
        return found

    def _file_stamp(self) -> tuple[int, int]:
        assert self._file is not None
        try:
            info = self._file.stat()
        except OSError as error:
            raise ConfigError(
                f"the keys file cannot be read: {error.strerror}",
                key="server.auth.keys_file",
                file=str(self._file),
            ) from None
        return info.st_mtime_ns, info.st_size

    def _read(self, file: Path, stamp: tuple[int, int]) -> dict[str, Tenant]:
        try:
            loaded: Any = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            keys = _KeysFile.model_validate(loaded).keys
        except (OSError, yaml.YAMLError, ValidationError) as error:
            raise ConfigError(f"invalid keys file: {error}", file=str(file)) from None
        found = self._index(keys, f"keys in {file}")
        self._stamp = stamp
        return found

    def _recheck(self) -> None:
        now = time.monotonic()
        if self._file is None or now - self._checked < self.RECHECK:
            return
        self._checked = now
        try:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._by_hash = {**self._fixed, **self._read(self._file, stamp)}
                logger.info("read the keys file %s again: %d keys", self._file, len(self))
        except ConfigError as error:  # keep serving with the keys read last
            logger.error("%s; the keys read before stay in use", error)


class Tenancy:
    """Who a request acts for: with ``keys``, the tenant of its bearer key, acting through a
    view of ``orch`` in the tenant's namespace (made, with the namespace, on first use);
    without, everyone acts through ``orch``."""

    def __init__(self, orch: Orchestrator, keys: ApiKeys | None) -> None:
        self.orch = orch
        self.keys = keys
        self._views: dict[str, Orchestrator] = {}
        self._lock = asyncio.Lock()

    async def orchestrator(self, authorization: str | None) -> Orchestrator:
        """The orchestrator a request with this ``Authorization`` header acts through.

        Raises:
            Problem: 401 without a bearer key, or with one this server does not hold; 503 if
                the tenant's namespace cannot be reached or made.
        """
        tenant = self.tenant(authorization)
        if tenant is None:
            return self.orch
        view = self._views.get(tenant.name)
        if view is None:
            async with self._lock:  # one namespace check per tenant, however many requests
                view = self._views.get(tenant.name) or await self._view(tenant)
        return view

    def tenant(self, authorization: str | None) -> Tenant | None:
        """The tenant a request with this ``Authorization`` header acts for; None with keys
        off.

        Raises:
            Problem: 401 without a bearer key, or with one this server does not hold.
        """
        if self.keys is None:
            return None
        tenant = self.keys.tenant(_bearer(authorization))
        if tenant is None:
            raise _unauthorized("invalid_api_key", "the API key is not valid (revoked, or a typo?)")
        return tenant

    async def _view(self, tenant: Tenant) -> Orchestrator:
        from ..temporal._namespaces import NamespaceError, ensure_namespace

        view = self.orch.in_namespace(tenant.namespace)
        try:
            if await ensure_namespace(await connected(view), tenant.namespace):
                logger.info("created namespace %r for tenant %r", tenant.namespace, tenant.name)
        except NamespaceError as error:
            raise Problem(503, error.code, str(error), tenant=tenant.name) from None
        self._views[tenant.name] = view
        return view


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorized("unauthorized", "this API needs a key: Authorization: Bearer KEY")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        # Not echoed: the header may be a key sent without its scheme.
        raise _unauthorized("unauthorized", "the Authorization header must be 'Bearer KEY'")
    return key.strip()


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="belugaflow"'})


async def _acting(request: Request) -> Orchestrator:
    tenancy: Tenancy = request.app.state.tenancy
    return await tenancy.orchestrator(request.headers.get("authorization"))


Scoped = Annotated[Orchestrator, Depends(_acting)]
"""A route's parameter: the orchestrator the request acts through (its tenant's)."""


async def _tenant(request: Request) -> Tenant | None:
    tenancy: Tenancy = request.app.state.tenancy
    return tenancy.tenant(request.headers.get("authorization"))


Acting = Annotated[Tenant | None, Depends(_tenant)]
"""A route's parameter: the tenant the request acts for (None with keys off), for routes that
never reach Temporal: unlike :data:`Scoped`, it does not make the tenant's namespace."""
