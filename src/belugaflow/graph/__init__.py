"""Graphs: nodes sharing a state dict, with parallel branches, routes and loops.

Build with :class:`Graph`, which compiles to an immutable :class:`GraphSpec` (plain data) plus a
:class:`Registry` that resolves its names to callables.
"""

from belugaflow._public import show_public_paths as _show_public_paths

from ._builder import Graph
from ._compiled import CompiledGraph
from ._handle import LocalRun, RunHandle
from ._reducers import BUILTIN_REDUCERS, Reducer
from ._registry import Registry
from ._spec import EdgeSpec, GraphSpec, NodeSpec, RouterSpec, WaitSpec
from ._timeline import NodeTimeline, Timeline

__all__ = [
    "BUILTIN_REDUCERS",
    "CompiledGraph",
    "EdgeSpec",
    "Graph",
    "GraphSpec",
    "LocalRun",
    "NodeSpec",
    "NodeTimeline",
    "Reducer",
    "Registry",
    "RouterSpec",
    "RunHandle",
    "Timeline",
    "WaitSpec",
]

_show_public_paths(globals())
