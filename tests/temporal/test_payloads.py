"""Large payloads: the claim check carries them through a real server, and without it an
over-limit payload fails at once, non-retryably, with a message that says what to do."""

from __future__ import annotations

import asyncio
import json
import pickle
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload

with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.converter import DataConverter, WorkflowSerializationContext
    from temporalio.exceptions import ActivityError, ApplicationError, RetryState
    from temporalio.service import RPCError, RPCStatusCode
    from temporalio.worker import Worker

    from belugaflow.temporal._payloads import (
        CLAIM_CHECK_ENCODING,
        BlobCorruptError,
        BlobMissingError,
        ClaimCheckCodec,
        LocalBlobStore,
        PayloadTooLargeError,
        SizeGuardCodec,
        SizeGuardPayloadConverter,
        data_converter,
    )

BIG = 3 * 1024 * 1024
LIMIT = 2 * 1024 * 1024
TIMEOUT = timedelta(seconds=30)
PROMPTLY = 20.0
"""Seconds a failing run may take; without the guard these runs never end."""


# --- workflows and activities (module level, so the workflow sandbox can import them) ------------


@activity.defn
async def echo(text: str) -> str:
    return text


@activity.defn
async def make_text(size: int) -> str:
    return "x" * size


@activity.defn
async def text_length(text: str) -> int:
    return len(text)


@workflow.defn
class EchoThroughActivity:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(echo, text, start_to_close_timeout=TIMEOUT)


@workflow.defn
class LargeActivityResult:
    @workflow.run
    async def run(self, size: int) -> int:
        text = await workflow.execute_activity(make_text, size, start_to_close_timeout=TIMEOUT)
        return len(text)


@workflow.defn
class LargeActivityInput:
    @workflow.run
    async def run(self, size: int) -> int:
        return await workflow.execute_activity(
            text_length, "z" * size, start_to_close_timeout=TIMEOUT
        )


@workflow.defn
class LargeWorkflowResult:
    @workflow.run
    async def run(self, size: int) -> str:
        return "y" * size


@workflow.defn
class TextLength:
    @workflow.run
    async def run(self, text: str) -> int:
        return len(text)


WORKFLOWS = [EchoThroughActivity, LargeActivityResult, LargeActivityInput, LargeWorkflowResult]
ACTIVITIES: list[Callable[..., Any]] = [echo, make_text, text_length]


# --- helpers -------------------------------------------------------------------------------------


def with_converter(client: Client, converter: DataConverter) -> Client:
    """A client on the same connection that uses ``converter``."""
    config: dict[str, Any] = dict(client.config())
    config["data_converter"] = converter
    return Client(**config)


def worker(client: Client, queue: str) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[*WORKFLOWS, TextLength],
        activities=ACTIVITIES,
    )


def queue() -> str:
    return f"payloads-{uuid.uuid4().hex[:8]}"


def blobs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def assert_too_large(error: BaseException | None) -> ApplicationError:
    """``error`` is the guard's error, with size, limit and remedy in its message."""
    assert isinstance(error, ApplicationError), repr(error)
    assert error.type == "PayloadTooLargeError"
    assert error.non_retryable
    assert "3,145,7" in error.message and "2,097,152" in error.message
    assert "configure the claim-check: data_converter(blob_dir=...)" in error.message
    return error


def json_payload(text: str, **metadata: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", **metadata}, data=json.dumps(text).encode())


# --- the claim check on a real server ------------------------------------------------------------


async def test_claim_check_carries_3mb_through_an_activity_and_back(
    temporal_client: Client, tmp_path: Path
) -> None:
    """A 3 MB string goes client → workflow → activity → workflow → client as one stored blob."""
    client = with_converter(temporal_client, data_converter(blob_dir=tmp_path))
    text = "é" * (BIG // 2)
    task_queue = queue()
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            EchoThroughActivity.run, text, id=task_queue, task_queue=task_queue
        )
        assert await asyncio.wait_for(handle.result(), PROMPTLY) == text
    [blob] = blobs(tmp_path)
    assert blob.stat().st_size > BIG
    history = await handle.fetch_history()
    assert max(event.ByteSize() for event in history.events) < 4096


# --- codec units ---------------------------------------------------------------------------------


async def test_codec_round_trip_replaces_a_large_payload_with_a_reference(tmp_path: Path) -> None:
    """A payload over the threshold becomes a small reference and decodes back to itself."""
    codec = ClaimCheckCodec(LocalBlobStore(tmp_path), threshold=1000)
    payload = json_payload("a" * 5000)
    [reference] = await codec.encode([payload])
    assert reference.metadata["encoding"] == CLAIM_CHECK_ENCODING
    ref = json.loads(reference.data)
    assert ref["size"] == payload.ByteSize() and ref["key"] == ref["sha256"]
    assert reference.ByteSize() < 256
    assert await codec.decode([reference]) == [payload]


async def test_codec_leaves_payloads_at_or_below_the_threshold_untouched(tmp_path: Path) -> None:
    """Payloads no bigger than the threshold pass both ways unchanged and store nothing."""
    small = json_payload("b" * 10)
    edge = json_payload("c" * 100)
    codec = ClaimCheckCodec(LocalBlobStore(tmp_path), threshold=edge.ByteSize())
    assert await codec.encode([small, edge]) == [small, edge]
    assert await codec.decode([small, edge]) == [small, edge]
    assert blobs(tmp_path) == []


async def test_codec_preserves_metadata(tmp_path: Path) -> None:
    """Every metadata entry of the original payload survives the round trip."""
    codec = ClaimCheckCodec(LocalBlobStore(tmp_path), threshold=10)
    payload = json_payload("d" * 100, messageType=b"my.Type", custom=b"\x00\xff")
    [reference] = await codec.encode([payload])
    assert set(reference.metadata) == {"encoding"}
    [restored] = await codec.decode([reference])
    assert dict(restored.metadata) == dict(payload.metadata)


async def test_equal_payloads_are_written_once(tmp_path: Path) -> None:
    """Encoding equal payloads (even concurrently) gives equal references and one blob file."""
    codec = ClaimCheckCodec(LocalBlobStore(tmp_path), threshold=10)
    payload = json_payload("e" * 100_000)
    results = await asyncio.gather(*(codec.encode([payload]) for _ in range(8)))
    assert all(result == results[0] for result in results)
    [blob] = blobs(tmp_path)
    modified = blob.stat().st_mtime_ns
    await codec.encode([payload])
    assert blobs(tmp_path) == [blob] and blob.stat().st_mtime_ns == modified


async def test_missing_blob_raises_an_error_naming_key_and_store(tmp_path: Path) -> None:
    """A reference whose blob is gone fails with BlobMissingError naming the key and the store."""
    store = LocalBlobStore(tmp_path)
    [reference] = await ClaimCheckCodec(store, threshold=10).encode([json_payload("f" * 100)])
    key = json.loads(reference.data)["key"]
    store.path(key).unlink()
    with pytest.raises(BlobMissingError) as caught:
        await ClaimCheckCodec(store).decode([reference])
    assert key in str(caught.value) and str(tmp_path) in str(caught.value)
    assert caught.value.key == key and caught.value.store is store


async def test_corrupt_blob_raises_an_error_naming_key_and_store(tmp_path: Path) -> None:
    """A blob whose bytes no longer match the reference's hash fails with BlobCorruptError."""
    store = LocalBlobStore(tmp_path)
    [reference] = await ClaimCheckCodec(store, threshold=10).encode([json_payload("g" * 100)])
    key = json.loads(reference.data)["key"]
    path = store.path(key)
    path.write_bytes(path.read_bytes().replace(b"g", b"h", 1))
    with pytest.raises(BlobCorruptError) as caught:
        await ClaimCheckCodec(store).decode([reference])
    assert key in str(caught.value) and str(tmp_path) in str(caught.value)
    assert "sha256" in str(caught.value)


async def test_local_store_writes_atomically_and_rejects_path_keys(tmp_path: Path) -> None:
    """Concurrent puts leave one complete file and no temporary files; keys cannot be paths."""
    store = LocalBlobStore(tmp_path)
    data = b"0123456789" * 100_000
    await asyncio.gather(*(store.put("k1", data) for _ in range(8)))
    assert await store.get("k1") == data
    assert [p.name for p in blobs(tmp_path)] == ["k1"]
    with pytest.raises(KeyError):
        await store.get("absent")
    for bad in ("../escape", "a/b", ""):
        with pytest.raises(ValueError, match="invalid blob key"):
            await store.put(bad, b"x")


# --- the size guard ------------------------------------------------------------------------------


async def test_size_guard_codec_checks_the_encoded_size() -> None:
    """SizeGuardCodec passes payloads up to the limit and rejects a bigger field non-retryably."""
    small, big = json_payload("s" * 100), json_payload("t" * BIG)
    codec = SizeGuardCodec(LIMIT)
    assert await codec.encode([small]) == [small]
    assert await codec.decode([big]) == [big]
    with pytest.raises(PayloadTooLargeError) as caught:
        await codec.with_context(WorkflowSerializationContext("default", "wf-1")).encode([big])
    assert_too_large(caught.value)
    assert "for workflow 'wf-1'" in caught.value.message


def test_guard_converter_classes_carry_their_limit_and_pickle() -> None:
    """with_limit gives a picklable converter class per limit (process-pool activities need it)."""
    assert SizeGuardPayloadConverter.with_limit(LIMIT) is SizeGuardPayloadConverter
    small = SizeGuardPayloadConverter.with_limit(1000)
    assert small.max_payload_size == 1000 and small is SizeGuardPayloadConverter.with_limit(1000)
    assert pickle.loads(pickle.dumps(small)) is small
    small().to_payloads(["u" * 900])
    with pytest.raises(PayloadTooLargeError, match="a str value is 1,"):
        small().to_payloads(["u" * 1000])


def test_data_converter_rejects_contradictory_options(tmp_path: Path) -> None:
    """blob_dir and store together, or a threshold at or over the limit, are refused."""
    with pytest.raises(ValueError, match="not both"):
        data_converter(blob_dir=tmp_path, store=LocalBlobStore(tmp_path))
    with pytest.raises(ValueError, match="threshold"):
        data_converter(blob_dir=tmp_path, threshold=LIMIT)


# --- over the limit without the claim check, on a real server ------------------------------------


@pytest.fixture
async def guarded(temporal_client: Client) -> AsyncIterator[tuple[Client, str]]:
    """A client with ``data_converter()`` (no claim check) and a worker on its own task queue."""
    client = with_converter(temporal_client, data_converter())
    task_queue = queue()
    async with worker(client, task_queue):
        yield client, task_queue


async def test_over_limit_activity_result_fails_the_activity_without_retry(
    guarded: tuple[Client, str],
) -> None:
    """A 3 MB activity result fails that activity once, non-retryably, and so the workflow."""
    client, task_queue = guarded
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(
            client.execute_workflow(
                LargeActivityResult.run, BIG, id=task_queue, task_queue=task_queue
            ),
            PROMPTLY,
        )
    error = caught.value.cause
    assert isinstance(error, ActivityError)
    assert error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert "for activity 'make_text'" in assert_too_large(error.cause).message


async def test_over_limit_workflow_result_fails_the_workflow(guarded: tuple[Client, str]) -> None:
    """A 3 MB workflow result fails the workflow itself (not its task, which would retry)."""
    client, task_queue = guarded
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(
            client.execute_workflow(
                LargeWorkflowResult.run, BIG, id=task_queue, task_queue=task_queue
            ),
            PROMPTLY,
        )
    message = assert_too_large(caught.value.cause).message
    assert f"a str value for workflow '{task_queue}'" in message


async def test_over_limit_activity_input_fails_the_workflow(guarded: tuple[Client, str]) -> None:
    """Scheduling an activity with a 3 MB argument fails the workflow at the call."""
    client, task_queue = guarded
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(
            client.execute_workflow(
                LargeActivityInput.run, BIG, id=task_queue, task_queue=task_queue
            ),
            PROMPTLY,
        )
    assert "for activity 'text_length'" in assert_too_large(caught.value.cause).message


async def test_over_limit_workflow_input_fails_in_the_client(guarded: tuple[Client, str]) -> None:
    """Starting a workflow with a 3 MB argument raises in the client; no workflow is created."""
    client, task_queue = guarded
    with pytest.raises(PayloadTooLargeError) as caught:
        await client.start_workflow(TextLength.run, "v" * BIG, id=task_queue, task_queue=task_queue)
    assert_too_large(caught.value)
    assert f"for workflow '{task_queue}'" in caught.value.message
    with pytest.raises(RPCError) as absent:
        await client.get_workflow_handle(task_queue).describe()
    assert absent.value.status == RPCStatusCode.NOT_FOUND
