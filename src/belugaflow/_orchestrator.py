"""``Orchestrator``: the facade that holds defaults, the registry, breakers and hooks."""

from __future__ import annotations

import builtins
import copy
import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Unpack

from ._chain import Chain, Step
from ._defaults import DEFAULTS
from ._duration import to_seconds, to_seconds_or_none
from ._errors import InputError
from ._events import Hook
from ._runnable import RunnableBase
from ._schema import SchemaLike
from .graph import CompiledGraph, Graph, GraphSpec, Registry, RunHandle
from .monitoring import Check, Metrics, MonitoringApp
from .resilience import BreakerRegistry, CircuitBreaker, RetryPolicy
from .resilience._breaker import BreakerOptions

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from temporalio.client import Client, WorkflowHandle
    from temporalio.converter import DataConverter

    from .config import Config, Secret, TemporalTLSConfig, TemporalWorkerConfig
    from .llms import LLMHook
    from .monitoring import Tracing
    from .temporal import DurableRun
    from .temporal._client import IfExists, Started, WorkflowSummary

__all__ = ["Orchestrator"]


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET
"""Marks an option as not given, so ``None`` can mean "no limit"."""


class Orchestrator:
    """Builds chains and graphs with shared defaults, and runs them.

    Everything built by one orchestrator shares its registry (names → callables, so a spec can
    travel to another process), its circuit breakers (one per dependency, by name) and its
    event hooks. Defaults follow ``config.yaml`` (all of them in
    :data:`~belugaflow._defaults.DEFAULTS`); ``max_retries=n`` means ``n + 1`` attempts.

    Args:
        chain_timeout: Seconds a whole chain may take (``orchestration.chain.timeout``).
        chain_max_retries: Retries per chain step after the first attempt.
        graph_max_workers: Most nodes of one graph run at once.
        graph_parallel: False runs a graph's ready nodes one at a time.
        graph_timeout: Seconds a whole graph run may take.
        graph_max_retries: Retries per graph node after the first attempt.
        graph_max_steps: Most runs of nodes inside loops, in one graph run.
        heartbeat_timeout: Durable graph runs: seconds a running node's worker may stay silent
            before the node is retried elsewhere (``orchestration.graph.heartbeat_timeout``).
        workflow_task_queue: Temporal task queue of durable runs.
        workflow_timeout: Seconds a durable workflow may run (its execution timeout).
        workflow_max_retries: Retries of a hand-written workflow's activities, by default.
        temporal_address: ``host:port`` of the Temporal frontend.
        temporal_namespace: Temporal namespace.
        temporal_tls: TLS and mutual TLS to the frontend (``temporal.tls``); None: plain TCP,
            unless ``temporal_api_key`` is given (then TLS with the system's roots).
        temporal_api_key: API key sent as ``authorization: Bearer`` (``temporal.api_key``);
            kept as a :class:`~belugaflow.config.Secret`, so it never shows.
        temporal_worker: What each worker process takes on (concurrency limits, graceful
            shutdown) and its worker deployment version (``temporal.worker``); None: the
            defaults, unversioned.
        metrics_prefix: Prefix of metric names (``monitoring.metrics.prefix``).
        metrics: Record Prometheus metrics of every run, node and model call
            (:attr:`metrics`, served by :meth:`metrics_app`; ``monitoring.metrics.enabled``).
        metrics_port: Port where ``belugaflow worker`` serves :meth:`metrics_app`; 0 takes a
            free one, None serves none (``monitoring.metrics.port``).
        metrics_host: Address that port listens on (``monitoring.metrics.host``).
        otel_endpoint: OTLP gRPC endpoint (``host:port``; ``https://`` for TLS) that receives
            OpenTelemetry spans of every run, node and model call, and of the Temporal calls
            of :meth:`client` and its workers (``monitoring.otel.endpoint``). None or ``""``:
            no tracing, at no cost. Needs the ``otel`` extra. The first provider made sets the
            process's global tracer provider, unless the application set one: then spans go
            to the application's (see docs/observability.md).
        otel_service_name: ``service.name`` of those spans (``monitoring.otel.service_name``).
        tracer_provider: An OpenTelemetry tracer provider to make the spans with instead of
            one exporting to ``otel_endpoint`` (an application's own; an in-memory one in
            tests).
        hooks: Event hooks attached to everything this orchestrator builds.
        data_converter: How payloads cross Temporal, for the client this orchestrator connects
            and so for its workers (:func:`~belugaflow.temporal.run_worker`, ``belugaflow
            worker``). Default ``belugaflow.temporal.data_converter()``: a payload over
            Temporal's size limit fails at once. Pass ``data_converter(blob_dir=...)`` for the
            claim check (every client and worker needs the same one).
    """

    def __init__(
        self,
        *,
        chain_timeout: float | timedelta | None = DEFAULTS.chain_timeout,
        chain_max_retries: int = DEFAULTS.max_retries,
        graph_max_workers: int = DEFAULTS.max_workers,
        graph_parallel: bool = DEFAULTS.parallel,
        graph_timeout: float | timedelta | None = DEFAULTS.graph_timeout,
        graph_max_retries: int = DEFAULTS.max_retries,
        graph_max_steps: int = DEFAULTS.max_steps,
        heartbeat_timeout: float | timedelta = DEFAULTS.heartbeat_timeout,
        workflow_task_queue: str = DEFAULTS.task_queue,
        workflow_timeout: float | timedelta | None = DEFAULTS.workflow_timeout,
        workflow_max_retries: int = DEFAULTS.workflow_max_retries,
        temporal_address: str = DEFAULTS.temporal_address,
        temporal_namespace: str = DEFAULTS.temporal_namespace,
        temporal_tls: TemporalTLSConfig | None = None,
        temporal_api_key: Secret | str | None = None,
        temporal_worker: TemporalWorkerConfig | None = None,
        metrics_prefix: str = DEFAULTS.metrics_prefix,
        metrics: bool = DEFAULTS.metrics,
        metrics_port: int | None = DEFAULTS.metrics_port,
        metrics_host: str = "127.0.0.1",
        otel_endpoint: str | None = None,
        otel_service_name: str = DEFAULTS.otel_service_name,
        tracer_provider: TracerProvider | None = None,
        hooks: Sequence[Hook] = (),
        data_converter: DataConverter | None = None,
    ) -> None:
        self.chain_timeout = to_seconds_or_none(chain_timeout, "chain_timeout")
        self.chain_retry = RetryPolicy.from_max_retries(chain_max_retries)
        self.graph_max_workers = graph_max_workers
        self.graph_parallel = graph_parallel
        self.graph_timeout = to_seconds_or_none(graph_timeout, "graph_timeout")
        self.graph_retry = RetryPolicy.from_max_retries(graph_max_retries)
        self.graph_max_steps = graph_max_steps
        self.heartbeat_timeout = to_seconds(heartbeat_timeout, "heartbeat_timeout")
        self.workflow_task_queue = workflow_task_queue
        self.workflow_timeout = to_seconds_or_none(workflow_timeout, "workflow_timeout")
        self.workflow_retry = RetryPolicy.from_max_retries(workflow_max_retries)
        self.temporal_address = temporal_address
        self.temporal_namespace = temporal_namespace
        self.temporal_tls = temporal_tls
        """TLS settings of :meth:`client`'s connection, or None."""
        self.temporal_api_key: Secret | None = None
        """API key of :meth:`client`'s connection (masked), or None."""
        if temporal_api_key is not None:
            from .config import Secret

            self.temporal_api_key = (
                temporal_api_key
                if isinstance(temporal_api_key, Secret)
                else Secret(temporal_api_key)
            )
        self.temporal_worker = temporal_worker
        """Settings of this orchestrator's workers (``temporal.worker``), or None for the
        defaults."""
        self.metrics_prefix = metrics_prefix
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.registry = Registry()
        self.breakers = BreakerRegistry()
        self.metrics = Metrics(metrics_prefix, [self.breakers]) if metrics else None
        """The Prometheus metrics, or None when they are off."""
        self.hooks: list[Hook] = list(hooks)
        self.llm_hooks: list[LLMHook] = []
        """LLM hooks for the models this orchestrator's nodes use:
        ``chat_model_from_config(config, hooks=orch.llm_hooks)``."""
        if self.metrics is not None:
            self.hooks.append(self.metrics.on_event)
            self.llm_hooks.append(self.metrics.on_llm_call)
        self.tracing: Tracing | None = None
        """The OpenTelemetry spans, or None when tracing is off."""
        if otel_endpoint or tracer_provider is not None:  # "" (an env override) is none
            self.tracing = _tracing(otel_endpoint, otel_service_name, tracer_provider)
            self.hooks.append(self.tracing.on_event)
            self.llm_hooks.append(self.tracing.on_llm_call)
        self.workflows: list[type] = []
        self.activities: list[Callable[..., Any]] = []
        self._added: set[tuple[str, int]] = set()  # graphs added as data (add_graph)
        self._graphs: dict[tuple[str, int], CompiledGraph] = {}
        self._data_converter = data_converter
        self._client: Client | None = None
        self._base: Orchestrator | None = None  # what an in_namespace() view connects through
        self.config: Config | None = None
        """The configuration this orchestrator was made from (:meth:`from_config`), else None;
        ``belugaflow worker`` takes its ``monitoring.logging`` from it."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        hooks: Sequence[Hook] = (),
        data_converter: DataConverter | None = None,
    ) -> Orchestrator:
        """An orchestrator with the defaults of a loaded ``config.yaml``, kept as
        :attr:`config`."""
        orchestration = config.orchestration
        orch = cls(
            chain_timeout=orchestration.chain.timeout,
            chain_max_retries=orchestration.chain.max_retries,
            graph_max_workers=orchestration.graph.max_workers,
            graph_parallel=orchestration.graph.parallel_execution,
            graph_timeout=orchestration.graph.timeout,
            graph_max_retries=orchestration.graph.max_retries,
            graph_max_steps=orchestration.graph.max_steps,
            heartbeat_timeout=orchestration.graph.heartbeat_timeout,
            workflow_task_queue=orchestration.workflow.task_queue,
            workflow_timeout=orchestration.workflow.timeout,
            workflow_max_retries=orchestration.workflow.max_retries,
            temporal_address=config.temporal.address,
            temporal_namespace=config.temporal.namespace,
            temporal_tls=config.temporal.tls,
            temporal_api_key=config.temporal.api_key,
            temporal_worker=config.temporal.worker,
            metrics_prefix=config.monitoring.metrics.prefix,
            metrics=config.monitoring.metrics.enabled,
            metrics_port=config.monitoring.metrics.port,
            metrics_host=config.monitoring.metrics.host,
            otel_endpoint=config.monitoring.otel.endpoint,
            otel_service_name=config.monitoring.otel.service_name,
            hooks=hooks,
            data_converter=data_converter,
        )
        orch.config = config
        return orch

    def __repr__(self) -> str:
        return (
            f"<Orchestrator task_queue={self.workflow_task_queue!r}"
            f" registered={len(self.registry)} breakers={len(self.breakers)}>"
        )

    def create_graph(
        self,
        name: str,
        *,
        max_workers: int | None = None,
        parallel: bool | None = None,
        timeout: float | timedelta | _Unset | None = UNSET,
        retry: RetryPolicy | None = None,
        max_steps: int | None = None,
        version: int = 1,
        input_schema: SchemaLike | None = None,
    ) -> Graph:
        """A new graph builder; options not given take this orchestrator's defaults.

        ``timeout=None`` runs without a whole-run time limit. Once compiled, the graph is
        served by this orchestrator's workers under its name, as a workflow type; its input
        is checked against ``input_schema`` (a type or JSON Schema) on both engines.
        """
        return Graph(
            name,
            max_workers=self.graph_max_workers if max_workers is None else max_workers,
            parallel=self.graph_parallel if parallel is None else parallel,
            timeout=self.graph_timeout if timeout is UNSET else timeout,
            retry=retry or self.graph_retry,
            max_steps=self.graph_max_steps if max_steps is None else max_steps,
            version=version,
            registry=self.registry,
            breakers=self.breakers,
            hooks=self.hooks,
            input_schema=input_schema,
        )

    def create_chain(
        self,
        steps: Sequence[Callable[[Any], Any] | RunnableBase | Step],
        *,
        name: str = "chain",
        timeout: float | timedelta | _Unset | None = UNSET,
        retry: RetryPolicy | None = None,
    ) -> Chain:
        """A chain of ``steps``; options not given take this orchestrator's defaults.

        ``timeout=None`` runs without a whole-chain time limit.
        """
        return Chain(
            steps,
            name=name,
            timeout=self.chain_timeout if timeout is UNSET else timeout,
            retry=retry or self.chain_retry,
            breakers=self.breakers,
            hooks=self.hooks,
        )

    def breaker(self, name: str, **options: Unpack[BreakerOptions]) -> CircuitBreaker:
        """The circuit breaker called ``name``, created with ``options`` on first use."""
        return self.breakers.get_or_create(name, **options)

    def register(self, name: str, fn: object) -> str:
        """Make ``fn`` resolvable as ``name`` in specs (nodes, routers, reducers)."""
        return self.registry.register(name, fn)

    def add_graph(self, spec: GraphSpec) -> CompiledGraph:
        """Add a graph defined as data — a spec naming callables this orchestrator's registry
        holds (sent to the REST API, read from YAML) — checked exactly as a built graph is, and
        return it ready to run.

        Its durable runs carry the spec in their input (workflow type ``belugaflow.graph``,
        the memo naming the graph and version), so any worker of the app runs them — one in
        another process, started before the graph was added, too: it needs only the
        callables, which it has. Adding the same spec again changes nothing.

        Raises:
            SpecError: a name does not resolve, or the graph is invalid; every problem listed.
            ValueError: another definition already has this name and version, or a
                hand-written workflow has this name.
        """
        if self.workflows and spec.name in self.types() and self.types()[spec.name] != "graph":
            raise ValueError(f"{spec.name!r} is the type of a hand-written workflow")
        compiled = CompiledGraph(spec, self.registry, breakers=self.breakers, hooks=self.hooks)
        known = self.registry.graph(spec.name, spec.version) is not None
        self.registry.add_graph(spec)  # refuses another definition of this version
        if not known:
            self._added.add((spec.name, spec.version))
        return self._graphs.setdefault((spec.name, spec.version), compiled)

    def graph(self, name: str, version: int | None = None) -> CompiledGraph:
        """The graph called ``name`` — built here or added with :meth:`add_graph` — at
        ``version`` (default: the newest), ready to run.

        Raises:
            KeyError: there is no such graph, or not at that version.
        """
        versions = self.registry.graphs.get(name)
        if not versions:
            raise KeyError(f"no graph named {name!r}")
        version = max(versions) if version is None else version
        if version not in versions:
            found = ", ".join(map(str, sorted(versions)))
            raise KeyError(f"graph {name!r} has no version {version} (it has {found})")
        compiled = self._graphs.get((name, version))
        if compiled is None:
            compiled = CompiledGraph(
                versions[version], self.registry, breakers=self.breakers, hooks=self.hooks
            )
            self._graphs[name, version] = compiled
        return compiled

    def added(self, name: str, version: int) -> bool:
        """Whether graph ``name`` at ``version`` was added as data (:meth:`add_graph`), not
        built in code."""
        return (name, version) in self._added

    def types(self) -> dict[str, Literal["graph", "workflow"]]:
        """Every workflow type a client can start on this orchestrator's workers, by name:
        its graphs' names (``"graph"``) and its hand-written workflows' types
        (``"workflow"``)."""
        found: dict[str, Literal["graph", "workflow"]] = dict.fromkeys(
            self.registry.graphs, "graph"
        )
        if self.workflows:
            from .temporal._schemas import workflow_type

            found.update((workflow_type(cls), "workflow") for cls in self.workflows)
        return found

    # -- durable execution (needs the ``temporal`` extra) ---------------------------------------

    def register_workflow(self, workflow: type) -> type:
        """Make a hand-written Temporal workflow class part of this orchestrator's workers.

        Usable as a class decorator (below ``@workflow.defn``).
        """
        if workflow not in self.workflows:
            self.workflows.append(workflow)
        return workflow

    def schemas(self) -> dict[str, dict[str, Any]]:
        """The published schema of every workflow type this orchestrator's workers serve — its
        graphs (newest version of each) and its hand-written workflows — by type name: input,
        result, signals, updates and queries as JSON Schema."""
        found = {
            name: versions[max(versions)].schema()
            for name, versions in self.registry.graphs.items()
        }
        if self.workflows:
            from .temporal._schemas import workflow_schema

            for workflow in self.workflows:
                schema = workflow_schema(workflow)
                found[schema["workflow_type"]] = schema
        return found

    def register_activities(self, *activities: Callable[..., Any]) -> None:
        """Make Temporal activities part of this orchestrator's workers."""
        self.activities.extend(a for a in activities if a not in self.activities)

    @property
    def data_converter(self) -> DataConverter:
        """The data converter of the client this orchestrator connects (see the constructor)."""
        if self._data_converter is None:
            from .temporal._payloads import data_converter

            self._data_converter = data_converter()
        return self._data_converter

    async def client(self) -> Client:
        """The Temporal client, connected on first use to ``temporal_address`` (with
        ``temporal_tls`` and ``temporal_api_key``) and :attr:`data_converter`; workers built
        from it use the same converter.

        Raises:
            TemporalConnectionError: The server cannot be reached or refused the connection
                (the message names the address and what to check).
        """
        if self._client is None and self._base is not None:
            from .temporal._namespaces import in_namespace

            self._client = in_namespace(await self._base.client(), self.temporal_namespace)
        if self._client is None:
            from .temporal._connect import connect

            runtime = None
            if self.metrics is not None:  # the SDK's metrics go beside ours
                from .temporal._runtime import sdk_runtime

                runtime = sdk_runtime()[0]
            interceptors = []
            if self.tracing is not None:  # the trace goes through the server to the workers
                from .temporal._tracing import client_interceptors

                interceptors = client_interceptors(self.tracing)
            self._client = await connect(
                self.temporal_address,
                namespace=self.temporal_namespace,
                tls=self.temporal_tls,
                api_key=self.temporal_api_key,
                data_converter=self.data_converter,
                runtime=runtime,
                interceptors=interceptors,
            )
        return self._client

    def in_namespace(self, namespace: str) -> Orchestrator:
        """This orchestrator acting in another Temporal namespace: a tenant's view.

        The view shares the connection (its client is made from this one's on first use),
        the callables, workflows, activities, metrics and hooks; graphs it adds with
        :meth:`add_graph` stay its own, and it sees the ones this orchestrator held when the
        view was made.
        """
        view = copy.copy(self)
        view.temporal_namespace = namespace
        view.registry = self.registry.fork()
        view._graphs = dict(self._graphs)
        view._added = set(self._added)
        view._client = None
        view._base = self
        return view

    def metrics_app(self, checks: Mapping[str, Check] | None = None) -> MonitoringApp:
        """An ASGI app serving ``/metrics`` (this orchestrator's, then the Temporal SDK's once
        :meth:`client` connected), ``/healthz`` and ``/readyz`` (``checks`` by name)."""
        extra = None
        if self.metrics is not None and self._client is not None:
            from .temporal._runtime import sdk_metrics, sdk_runtime

            if self._client.service_client.config.runtime is sdk_runtime()[0]:
                extra = sdk_metrics
        return MonitoringApp(self.metrics, checks, extra)

    def use_client(self, client: Client) -> None:
        """Use an already connected client, with its own data converter, instead of connecting
        one (workers built by :func:`~belugaflow.temporal.run_worker` use it too)."""
        self._client = client

    async def start_workflow(
        self,
        workflow: Any,
        arg: Any,
        *,
        id: str,
        if_exists: IfExists = "use_existing",
        **options: Any,
    ) -> WorkflowHandle[Any, Any]:
        """Start a workflow on this orchestrator's task queue; the id is the idempotency key.

        Starting an id that is running or already ran returns that execution's handle
        (``if_exists="fail"`` raises instead). The execution timeout defaults to
        ``workflow_timeout``. ``options`` go to ``temporalio.client.Client.start_workflow``.

        Raises:
            InputError: ``arg`` breaks the input schema a registered workflow publishes
                (:func:`~belugaflow.temporal.workflow_schema`); nothing was sent.
        """
        started = await self._start_workflow(workflow, arg, id=id, if_exists=if_exists, **options)
        return started.handle

    async def _start_workflow(
        self, workflow: Any, arg: Any, *, id: str, if_exists: IfExists, **options: Any
    ) -> Started:
        from .temporal._client import start_once
        from .temporal._schemas import check_start

        client = await self.client()
        [payload] = client.data_converter.payload_converter.to_payloads([arg])
        if payload.metadata.get("encoding") == b"json/plain":
            check_start(self.workflows, workflow, json.loads(payload.data))
        if self.workflow_timeout is not None:
            options.setdefault("execution_timeout", timedelta(seconds=self.workflow_timeout))
        options.setdefault("task_queue", self.workflow_task_queue)
        return await start_once(client, workflow, arg, id=id, if_exists=if_exists, **options)

    async def start_type(
        self,
        type: str,
        input: Any,
        *,
        id: str | None = None,
        if_exists: IfExists = "use_existing",
    ) -> Started:
        """Start a run of any type :meth:`types` names — a graph by its name (its newest
        version, as :meth:`start` starts it), or a hand-written workflow by its type (as
        :meth:`start_workflow` does) — on plain JSON ``input``, and say whether this call
        started it. ``id`` (default: a fresh one) is the idempotency key.

        Raises:
            KeyError: no such type.
            InputError: ``input`` breaks the type's published input schema; nothing started.
            temporalio.exceptions.WorkflowAlreadyStartedError: ``if_exists="fail"`` and the
                id is taken.
        """
        from .temporal._client import Started

        kind = self.types().get(type)
        if kind is None:
            raise KeyError(f"no workflow type {type!r}")
        if kind == "graph":
            if not isinstance(input, Mapping):
                got = "null" if input is None else builtins.type(input).__name__
                raise InputError(
                    f"input of graph {type!r}", [f"the value: expected an object, got {got}"]
                )
            run = await self._start_durable(self.graph(type), input, id=id, if_exists=if_exists)
            return Started(run.handle, run.created)
        if id is None:
            id = f"{type}-{uuid.uuid4().hex}"
        return await self._start_workflow(type, input, id=id, if_exists=if_exists)

    async def get_workflow(self, id: str) -> WorkflowHandle[Any, Any]:
        """The handle of the workflow with ``id`` (its latest run)."""
        return (await self.client()).get_workflow_handle(id)

    async def list_workflows(
        self, *, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSummary]:
        """The newest workflows (at most ``limit``), optionally only those with ``status``:
        ``running``, ``completed``, ``failed``, ``canceled``, ``terminated``, ``timed_out`` or
        ``continued_as_new``; any other name raises ``ValueError``."""
        from .temporal._client import list_workflows

        return await list_workflows(await self.client(), status=status, limit=limit)

    async def list_page(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int = 100,
        page_token: bytes | None = None,
    ) -> tuple[list[WorkflowSummary], bytes | None]:
        """One page of workflows, newest first, and the token of the next (None after the
        last); ``status`` as for :meth:`list_workflows`, ``type`` any workflow type. A graph's
        runs started with their spec (:meth:`add_graph`) count as of the graph's name; a page
        filtered by such a name may hold fewer than ``limit`` runs even when more follow."""
        from .temporal._client import list_page

        spec_runs = type is not None and type in self.registry.graphs
        return await list_page(
            await self.client(),
            status=status,
            type=type,
            spec_runs=spec_runs,
            limit=limit,
            page_token=page_token,
        )

    async def run(
        self, runnable: RunnableBase, input: Any, *, engine: Literal["local", "temporal"] = "local"
    ) -> Any:
        """Run a chain or graph and return its result: in process, or durably on Temporal
        (graphs; a worker for this orchestrator must be polling the task queue).

        Raises:
            RunError: the run failed, on either engine as the same subclass
                (:class:`~belugaflow.NodeFailedError`, :class:`~belugaflow.RunTimeoutError`,
                ...); see ``TemporalEngine.run`` for the durable details.
        """
        if engine == "local":
            return await runnable.ainvoke(input)
        return await (await self.start(_graph(runnable), input, engine="temporal")).result()

    async def start(
        self,
        graph: Graph | CompiledGraph,
        input: Any,
        *,
        engine: Literal["local", "temporal"] = "local",
        id: str | None = None,
        if_exists: IfExists = "use_existing",
    ) -> RunHandle:
        """Start a graph run and return its handle — signal it, query its ``progress``, cancel
        it, await its result — the same on both engines. Durably, ``id`` is the workflow id
        and an idempotency key (``if_exists`` as for :meth:`start_workflow`), and the graph
        starts by its name (this orchestrator's workers serve it), or with its spec in the
        input if it was added as data (:meth:`add_graph`).

        Raises:
            InputError: ``input`` breaks the graph's input schema; nothing started.
        """
        if engine == "local":
            return await graph.start(input, id=id)
        return await self._start_durable(graph, input, id=id, if_exists=if_exists)

    async def _start_durable(
        self,
        graph: Graph | CompiledGraph,
        input: Any,
        *,
        id: str | None,
        if_exists: IfExists,
    ) -> DurableRun:
        from .temporal._engine import TemporalEngine

        spec = graph.compile().spec if isinstance(graph, Graph) else graph.spec
        durable = TemporalEngine(
            await self.client(),
            task_queue=self.workflow_task_queue,
            heartbeat_timeout=self.heartbeat_timeout,
            # Workers in other processes do not hold a graph added as data by name.
            registry=None if self.added(spec.name, spec.version) else self.registry,
            execution_timeout=self.workflow_timeout,
        )
        return await durable.start(graph, input, id=id, if_exists=if_exists)


def _tracing(endpoint: str | None, service_name: str, provider: TracerProvider | None) -> Tracing:
    """Spans to ``provider``, else to ``endpoint`` (the ``otel`` extra's exporter)."""
    try:
        from .monitoring._tracing import Tracing
    except ImportError as error:  # not even the OpenTelemetry API
        raise ImportError(
            f"tracing needs the otel extra: pip install 'belugaflow[otel]' ({error})"
        ) from error
    if provider is None:
        from .monitoring._otlp import otlp_provider  # raises an ImportError naming the extra

        provider = otlp_provider(f"{endpoint}", service_name)
    return Tracing(provider)


def _graph(runnable: RunnableBase) -> Graph | CompiledGraph:
    if not isinstance(runnable, Graph | CompiledGraph):
        raise TypeError(
            f"engine='temporal' runs graphs; got {type(runnable).__name__} (a chain is a"
            " graph of one path: build it with create_graph)"
        )
    return runnable
