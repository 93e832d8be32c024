"""Registry: names ↔ callables, so specs stay plain data and any worker can resolve them."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._builder import Graph
    from ._spec import GraphSpec

__all__ = ["Registry"]


class Registry:
    """Maps keys to node callables, routers, reducers and Runnables.

    A key, once taken, always means the same object: registering another object under it is an
    error, so a spec can never silently run different code than it was built with.
    """

    def __init__(self) -> None:
        self._items: dict[str, object] = {}
        self._graphs: dict[str, dict[int, GraphSpec]] = {}
        self._builders: list[Graph] = []

    @property
    def graphs(self) -> Mapping[str, Mapping[int, GraphSpec]]:
        """The graphs built with this registry (compiled now if they were not yet): name ->
        version -> spec. A worker serves each under its name as a workflow type."""
        while self._builders:
            self._builders.pop().compile()
        return self._graphs

    def graph(self, name: str, version: int) -> GraphSpec | None:
        """The compiled graph ``name`` at ``version``, if there is one (compiles nothing)."""
        return self._graphs.get(name, {}).get(version)

    def fork(self) -> Registry:
        """A registry with the same callables (registered on either, seen by both) and a copy
        of the graphs: graphs added to the fork stay its own."""
        fork = Registry()
        fork._items = self._items
        fork._graphs = {name: dict(versions) for name, versions in self.graphs.items()}
        return fork

    def add_builder(self, graph: Graph) -> None:
        """Count ``graph`` among :attr:`graphs` once it is built."""
        self._builders.append(graph)

    def add_graph(self, spec: GraphSpec) -> None:
        """Record ``spec`` under its name and version.

        Raises:
            ValueError: another definition has that name and version (a run that started on
                one could otherwise finish on the other).
        """
        current = self._graphs.setdefault(spec.name, {}).setdefault(spec.version, spec)
        if current != spec:
            raise ValueError(
                f"graph {spec.name!r} version {spec.version} is already defined differently;"
                " a changed graph needs a new version (version=...)"
            )

    @staticmethod
    def key_for(obj: object, fallback: str) -> str:
        """The natural key of ``obj``: ``module:qualname`` for module-level functions and
        classes (stable across processes), else ``fallback``."""
        qualname = getattr(obj, "__qualname__", None)
        module = getattr(obj, "__module__", None)
        if (
            (inspect.isfunction(obj) or inspect.isclass(obj))
            and qualname
            and module
            and "<" not in qualname
        ):
            return f"{module}:{qualname}"
        return fallback

    def register(self, key: str, obj: object) -> str:
        """Register ``obj`` under ``key`` and return the key.

        Raises:
            ValueError: ``key`` already names a different object.
        """
        current = self._items.setdefault(key, obj)
        if current is not obj:
            raise ValueError(
                f"registry key {key!r} already names {current!r}; "
                f"refusing to rebind it to {obj!r} (use another node name)"
            )
        return key

    def resolve(self, key: str) -> object:
        """The object registered under ``key``.

        Raises:
            KeyError: nothing is registered under ``key``; the message lists what is.
        """
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "nothing"
            raise KeyError(f"no callable registered as {key!r} (registered: {known})") from None

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
