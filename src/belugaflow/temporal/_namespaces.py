"""Namespaces made on first use: a tenant's runs live in a namespace of their own."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListWorkflowExecutionsRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from .._errors import BelugaflowError

__all__ = ["NamespaceError", "ensure_namespace", "in_namespace"]

RETENTION = timedelta(days=3)
"""How long a created namespace keeps closed runs (``temporal operator namespace create``'s
default)."""


def in_namespace(client: Client, namespace: str) -> Client:
    """``client`` acting in ``namespace``: the same connection, converter and interceptors."""
    config = client.config()
    config["namespace"] = namespace
    return Client(**config)


class NamespaceError(BelugaflowError):
    """A namespace is missing and could not be created (a cluster that lets only its admins
    create namespaces, say)."""

    code = "namespace_unavailable"

    def __init__(self, namespace: str, why: str) -> None:
        super().__init__(
            f"Temporal namespace {namespace!r} does not exist and could not be created: {why};"
            f" create it (temporal operator namespace create --namespace {namespace})"
        )
        self.namespace = namespace


async def ensure_namespace(
    client: Client, namespace: str, *, retention: timedelta = RETENTION, wait: float = 30.0
) -> bool:
    """Make sure ``namespace`` exists on ``client``'s server, registering it when it does not
    (with ``retention``); return whether this call created it. Returns once the server answers
    for it, lists included (waiting up to ``wait`` seconds for a namespace that is new).

    Raises:
        NamespaceError: it is missing, and the server refused to create it.
    """
    service = client.workflow_service
    describe = DescribeNamespaceRequest(namespace=namespace)
    created = False
    try:
        await service.describe_namespace(describe)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        period = Duration()
        period.FromTimedelta(retention)
        request = RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=period
        )
        try:
            await service.register_namespace(request)
            created = True
        except RPCError as refused:
            if refused.status != RPCStatusCode.ALREADY_EXISTS:  # else: made by another process
                raise NamespaceError(namespace, refused.message) from None
    # A server learns of a new namespace within seconds, its visibility store last (about
    # 1 s on the dev server), and one just made by another process may be that new: wait
    # until a list answers, so the first request's list does.
    listing = ListWorkflowExecutionsRequest(namespace=namespace, page_size=1)
    deadline = time.monotonic() + wait
    while True:
        try:
            await service.describe_namespace(describe)
            await service.list_workflow_executions(listing)
            return created
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)
