"""Graphs: nodes sharing a state dict, with parallel branches, routes and loops.

Build with :class:`Graph`, which compiles to an immutable :class:`GraphSpec` (plain data) plus a
:class:`Registry` that resolves its names to callables.
"""

from ._builder import Graph
from ._compiled import CompiledGraph
from ._reducers import BUILTIN_REDUCERS, Reducer
from ._registry import Registry
from ._spec import EdgeSpec, GraphSpec, NodeSpec, RouterSpec

__all__ = [
    "BUILTIN_REDUCERS",
    "CompiledGraph",
    "EdgeSpec",
    "Graph",
    "GraphSpec",
    "NodeSpec",
    "Reducer",
    "Registry",
    "RouterSpec",
]

# Reprs, tracebacks and docs show the public path (belugaflow.graph.GraphSpec).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(f"{__name__}._"):
        _obj.__module__ = __name__
del _name, _obj
