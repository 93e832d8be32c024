"""Large payloads: a claim check for Temporal, and a fast, clear failure without one.

Temporal keeps every workflow input, activity result and workflow result in its history, and the
server rejects a payload field over 2 MiB by default (``limit.blobSize.error``). LLM outputs and
graph states can be bigger. Two answers, both carried by the
:class:`~temporalio.converter.DataConverter` that :func:`data_converter` builds (give it to
``Client.connect``; workers built from that client use it too):

- **Claim check** (``data_converter(blob_dir=...)``): :class:`ClaimCheckCodec` writes each payload
  whose serialized size exceeds ``threshold`` to a :class:`BlobStore` under the SHA-256 of its
  bytes and sends a small reference through Temporal instead; ``decode`` fetches, verifies and
  restores it. User code never sees the difference.
- **Size guard** (``data_converter()``): a payload over ``max_payload_size`` fails at once with a
  non-retryable :class:`PayloadTooLargeError` that says what was too big, its size, the limit and
  how to configure the claim check. Without it the SDK and the server reject the payload in ways
  that retry forever (see ``docs/payloads.md``). The check runs in the *payload converter*, which
  is where it fails fast in all three places a payload is produced: in the client (start
  arguments), in the activity (its result, encoded inside the activity's completion path) and in
  the workflow (its result and the arguments of the activities it schedules, converted inside
  workflow code, so the workflow fails instead of its task). A codec alone cannot do the last
  one: the worker encodes a workflow's commands after the workflow code ran, and the SDK turns
  any codec error there into a workflow *task* failure, which the server retries forever.
  :class:`SizeGuardCodec` also checks the encoded size, e.g. at the end of your own codec chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultPayloadConverter,
    PayloadCodec,
    PayloadConverter,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from .._errors import BelugaflowError

__all__ = [
    "CLAIM_CHECK_ENCODING",
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "DEFAULT_THRESHOLD",
    "BlobCorruptError",
    "BlobMissingError",
    "BlobStore",
    "ClaimCheckCodec",
    "ClaimCheckError",
    "LocalBlobStore",
    "PayloadTooLargeError",
    "SizeGuardCodec",
    "SizeGuardPayloadConverter",
    "data_converter",
]

CLAIM_CHECK_ENCODING = b"binary/belugaflow-claim-check"
"""``encoding`` metadata of a reference payload; its data is JSON ``{key, size, sha256}``."""
DEFAULT_THRESHOLD = 256 * 1024
"""Payloads whose serialized size exceeds this many bytes go to the blob store."""
DEFAULT_MAX_PAYLOAD_SIZE = 2 * 1024 * 1024
"""Temporal's default per-field payload limit (the server's ``limit.blobSize.error``)."""

_REMEDY = "configure the claim-check: data_converter(blob_dir=...)"
_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")


# --- errors --------------------------------------------------------------------------------------


class PayloadTooLargeError(ApplicationError):
    """A payload is over the size Temporal accepts; raised before it is sent, never retried.

    A non-retryable :class:`~temporalio.exceptions.ApplicationError` of type
    ``PayloadTooLargeError``: raised in an activity it fails the activity at once, raised in
    workflow code it fails the workflow, raised in the client it fails the call before any RPC.
    On the far side of Temporal it arrives as an ``ApplicationError`` with that ``type`` and the
    same message; ``details[0]`` is ``{"size": ..., "limit": ...}``.
    """

    code: ClassVar[str] = "payload_too_large"
    retryable: ClassVar[bool] = False

    def __init__(self, what: str, size: int, limit: int) -> None:
        message = (
            f"{what} is {size:,} bytes, over the {limit:,}-byte payload limit of Temporal "
            f"(the server rejects bigger payloads); {_REMEDY} to store large payloads outside "
            "Temporal and pass a reference"
        )
        super().__init__(
            message,
            {"size": size, "limit": limit},
            type="PayloadTooLargeError",
            non_retryable=True,
        )
        self.what = what
        self.size = size
        self.limit = limit


class ClaimCheckError(BelugaflowError):
    """A claim-check reference could not be turned back into its payload."""

    code = "claim_check_failed"

    def __init__(self, message: str, *, key: str, store: object) -> None:
        super().__init__(message)
        self.key = key
        self.store = store


class BlobMissingError(ClaimCheckError):
    """The store has no blob under the referenced key (e.g. a worker on another machine with a
    machine-local store). Retryable: the blob may appear once the shared store is mounted."""

    code = "claim_check_blob_missing"
    retryable = True


class BlobCorruptError(ClaimCheckError):
    """The blob under the referenced key does not have the referenced size or SHA-256."""

    code = "claim_check_blob_corrupt"


# --- blob stores ---------------------------------------------------------------------------------


@runtime_checkable
class BlobStore(Protocol):
    """Where :class:`ClaimCheckCodec` keeps large payloads, by content-addressed key.

    ``put`` must be idempotent (the same key always comes with the same bytes, and may be put many
    times) and durable before it returns: once it returns, Temporal's history may reference the
    key. ``get`` raises :class:`KeyError` when the key is unknown. Every worker and client that
    can see a reference must be able to ``get`` it: one machine can use :class:`LocalBlobStore`; a
    cluster needs a shared one (a :class:`LocalBlobStore` on an NFS path, or an object store
    implementing these two methods).
    """

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (a no-op when the key is already stored)."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`KeyError` when there are none."""
        ...


class LocalBlobStore:
    """Blobs as files under ``directory`` (``<directory>/<key[:2]>/<key>``).

    Writes are atomic (a temporary file in the same directory, fsynced, then ``os.replace``), so
    concurrent workers on one machine — even writing the same key — never see a partial blob.
    A key that is already stored is not written again. Blobs are never deleted automatically:
    remove files older than your longest workflow plus its history retention.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.directory)!r})"

    def path(self, key: str) -> Path:
        """The file that holds ``key``.

        Raises:
            ValueError: ``key`` is not 1-200 characters of ``[A-Za-z0-9_-]``.
        """
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid blob key {key!r}: expected 1-200 of [A-Za-z0-9_-]")
        return self.directory / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically, unless ``key`` is already stored."""
        await asyncio.to_thread(self._put, self.path(key), data)

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`KeyError` when there is no such blob."""
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --- sizes and descriptions ----------------------------------------------------------------------


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _field_size(payloads: Sequence[Payload]) -> int:
    """Serialized size of these payloads as one ``Payloads`` message (what the limit measures)."""
    return sum(1 + _varint_size(size) + size for size in (p.ByteSize() for p in payloads))


def _describe(
    count: int, values: Sequence[Any] | None, context: SerializationContext | None
) -> str:
    if values is not None and len(values) == 1:
        what = f"a {type(values[0]).__name__} value"
    else:
        what = f"{count} payloads together" if count != 1 else "a payload"
    if isinstance(context, ActivitySerializationContext):
        activity = context.activity_type or context.activity_id or "?"
        what += f" for activity {activity!r}"
        if context.workflow_id:
            what += f" of workflow {context.workflow_id!r}"
    elif isinstance(context, WorkflowSerializationContext):
        what += f" for workflow {context.workflow_id!r}"
    return what


def _check(
    payloads: Sequence[Payload],
    limit: int,
    values: Sequence[Any] | None,
    context: SerializationContext | None,
) -> None:
    size = _field_size(payloads)
    if size > limit:
        raise PayloadTooLargeError(_describe(len(payloads), values, context), size, limit)


# --- size guard ----------------------------------------------------------------------------------


class SizeGuardPayloadConverter(PayloadConverter, WithSerializationContext):
    """The default payload converter, failing with :class:`PayloadTooLargeError` when the
    payloads of one call (one field: the arguments, a result) exceed ``max_payload_size``.

    ``DataConverter`` wants a class with a no-argument constructor, so the limit is a class
    attribute: :meth:`with_limit` returns the subclass for another limit (picklable by name, for
    process-pool activity executors).
    """

    max_payload_size: ClassVar[int] = DEFAULT_MAX_PAYLOAD_SIZE

    def __init__(
        self,
        inner: PayloadConverter | None = None,
        context: SerializationContext | None = None,
    ) -> None:
        self._inner = inner if inner is not None else DefaultPayloadConverter()
        self._context = context

    @classmethod
    def with_limit(cls, max_payload_size: int) -> type[SizeGuardPayloadConverter]:
        """The converter class that allows ``max_payload_size`` bytes per field."""
        if max_payload_size <= 0:
            raise ValueError(f"max_payload_size must be positive, got {max_payload_size}")
        if max_payload_size == DEFAULT_MAX_PAYLOAD_SIZE:
            return SizeGuardPayloadConverter
        return _guard_class(f"SizeGuardPayloadConverter_{max_payload_size}")

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """Convert like the default converter, then check the size."""
        payloads = self._inner.to_payloads(values)
        _check(payloads, self.max_payload_size, values, self._context)
        return payloads

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        """Convert like the default converter."""
        return self._inner.from_payloads(payloads, type_hints)

    def with_context(self, context: SerializationContext) -> Self:
        """A copy that names the workflow or activity in its errors."""
        inner = self._inner
        if isinstance(inner, WithSerializationContext):
            inner = inner.with_context(context)
        return type(self)(inner, context)


_GUARD_NAME = re.compile(r"SizeGuardPayloadConverter_([1-9][0-9]*)")


def _guard_class(name: str) -> type[SizeGuardPayloadConverter]:
    existing = globals().get(name)
    if isinstance(existing, type) and issubclass(existing, SizeGuardPayloadConverter):
        return existing
    match = _GUARD_NAME.fullmatch(name)
    if match is None:
        raise AttributeError(name)
    created = type(name, (SizeGuardPayloadConverter,), {"max_payload_size": int(match[1])})
    created.__module__ = __name__
    globals()[name] = created
    return created


if not TYPE_CHECKING:

    def __getattr__(name: str) -> type[SizeGuardPayloadConverter]:
        # Unpickling a with_limit() class in another process re-creates it by its name.
        if _GUARD_NAME.fullmatch(name):
            return _guard_class(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SizeGuardCodec(PayloadCodec, WithSerializationContext):
    """A codec that raises :class:`PayloadTooLargeError` when the encoded payloads of one field
    exceed ``max_payload_size``, and passes everything else through unchanged.

    Put it last in a codec chain to check what is really sent. It fails fast where codec errors
    are reported as failures — in the client and in activities — but when a *workflow's* result or
    commands are too big, the SDK reports the error as a workflow task failure, which the server
    retries: use :class:`SizeGuardPayloadConverter` (as :func:`data_converter` does) for those.
    """

    def __init__(
        self,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        *,
        context: SerializationContext | None = None,
    ) -> None:
        if max_payload_size <= 0:
            raise ValueError(f"max_payload_size must be positive, got {max_payload_size}")
        self.max_payload_size = max_payload_size
        self._context = context

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """The payloads, unchanged, once their size is checked."""
        _check(payloads, self.max_payload_size, None, self._context)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """The payloads, unchanged."""
        return list(payloads)

    def with_context(self, context: SerializationContext) -> Self:
        """A copy that names the workflow or activity in its errors."""
        return type(self)(self.max_payload_size, context=context)


# --- claim check ---------------------------------------------------------------------------------


def _serialize(payload: Payload) -> tuple[bytes, str]:
    data = payload.SerializeToString(deterministic=True)
    return data, hashlib.sha256(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ClaimCheckCodec(PayloadCodec):
    """Stores payloads bigger than ``threshold`` bytes in ``store`` and sends a reference.

    ``encode`` serializes each such ``Payload`` (data *and* metadata), puts the bytes under their
    SHA-256 (so equal payloads share one blob, written once) and replaces the payload with a
    reference: ``encoding`` ``binary/belugaflow-claim-check``, data JSON ``{key, size, sha256}``.
    ``decode`` gets the blob, checks its size and hash, and restores the original payload;
    :class:`BlobMissingError` / :class:`BlobCorruptError` name the key and the store.
    Other payloads pass through unchanged in both directions.
    """

    def __init__(self, store: BlobStore, *, threshold: int = DEFAULT_THRESHOLD) -> None:
        if threshold < 0:
            raise ValueError(f"threshold must not be negative, got {threshold}")
        self.store = store
        self.threshold = threshold

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each payload over the threshold with a reference to its stored blob."""
        return [await self._check_in(p) if p.ByteSize() > self.threshold else p for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each reference with the payload it stands for."""
        return [
            await self._check_out(p) if p.metadata.get("encoding") == CLAIM_CHECK_ENCODING else p
            for p in payloads
        ]

    async def _check_in(self, payload: Payload) -> Payload:
        data, digest = await asyncio.to_thread(_serialize, payload)
        await self.store.put(digest, data)
        reference = {"key": digest, "size": len(data), "sha256": digest}
        return Payload(
            metadata={"encoding": CLAIM_CHECK_ENCODING},
            data=json.dumps(reference, separators=(",", ":")).encode(),
        )

    async def _check_out(self, reference: Payload) -> Payload:
        try:
            ref = json.loads(reference.data)
            key, size, digest = str(ref["key"]), int(ref["size"]), str(ref["sha256"])
        except (ValueError, KeyError, TypeError) as err:
            raise ClaimCheckError(
                f"invalid claim-check reference {reference.data[:200]!r} (store {self.store!r})",
                key="",
                store=self.store,
            ) from err
        try:
            data = await self.store.get(key)
        except KeyError:
            raise BlobMissingError(
                f"claim-check blob {key} not found in {self.store!r}: every worker and client "
                "must share the blob store (an NFS path or an object store on a cluster)",
                key=key,
                store=self.store,
            ) from None
        actual = await asyncio.to_thread(_sha256, data)
        if len(data) != size or actual != digest:
            raise BlobCorruptError(
                f"claim-check blob {key} in {self.store!r} is corrupt: expected {size:,} bytes "
                f"with sha256 {digest}, found {len(data):,} bytes with sha256 {actual}",
                key=key,
                store=self.store,
            )
        try:
            return Payload.FromString(data)
        except DecodeError as err:
            raise BlobCorruptError(
                f"claim-check blob {key} in {self.store!r} is not a serialized payload: {err}",
                key=key,
                store=self.store,
            ) from err


# --- the data converter --------------------------------------------------------------------------


def data_converter(
    *,
    blob_dir: str | os.PathLike[str] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    store: BlobStore | None = None,
) -> DataConverter:
    """Temporal's default data converter, made safe for large payloads.

    With ``blob_dir`` (a :class:`LocalBlobStore` there) or another ``store``: a
    :class:`ClaimCheckCodec` moves payloads over ``threshold`` bytes out of Temporal. Without:
    any field over ``max_payload_size`` bytes fails at once, non-retryably, with
    :class:`PayloadTooLargeError` (:class:`SizeGuardPayloadConverter` and
    :class:`SizeGuardCodec`). Pass the result to ``Client.connect(..., data_converter=...)``.

    Raises:
        ValueError: both ``blob_dir`` and ``store``, or ``threshold`` not below
            ``max_payload_size``.
    """
    if blob_dir is not None and store is not None:
        raise ValueError("pass blob_dir or store, not both")
    if blob_dir is not None:
        store = LocalBlobStore(blob_dir)
    if store is not None:
        if not 0 <= threshold < max_payload_size:
            raise ValueError(
                f"threshold ({threshold:,}) must be below max_payload_size ({max_payload_size:,})"
            )
        return dataclasses.replace(
            DataConverter.default, payload_codec=ClaimCheckCodec(store, threshold=threshold)
        )
    return dataclasses.replace(
        DataConverter.default,
        payload_converter_class=SizeGuardPayloadConverter.with_limit(max_payload_size),
        payload_codec=SizeGuardCodec(max_payload_size),
    )
