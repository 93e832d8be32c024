"""Resolve ``MODULE:OBJECT`` import paths to graph specs, the way uvicorn resolves ``main:app``."""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable

from belugaflow import CompiledGraph, Graph, GraphSpec, Orchestrator, SpecError

__all__ = ["TargetError", "load_graph_spec", "load_object", "load_orchestrator", "parse_target"]

_ACCEPTED = "a Graph, CompiledGraph or GraphSpec (or a zero-argument callable returning one)"


class TargetError(Exception):
    """An import path does not lead to a valid graph; the message names the path."""


def parse_target(target: str) -> tuple[str, list[str]]:
    """Split ``pkg.mod:obj.attr`` into the module name and the attribute path.

    Raises:
        ValueError: ``target`` is not of the form ``MODULE:OBJECT``.
    """
    module, sep, attrs = target.partition(":")
    parts = attrs.split(".")
    if not sep or not module.strip() or not all(p.isidentifier() for p in parts):
        raise ValueError(
            f"{target!r} is not an import path: expected MODULE:OBJECT,"
            " e.g. flows:graph or myapp.flows:make_graph"
        )
    return module, parts


def load_object(
    target: str, *, accept: tuple[type, ...], accepted: str, search_dir: str | None = None
) -> object:
    """Import ``target`` (``MODULE:OBJECT``, a dotted attribute path) and return the object.

    An object that is not an instance of ``accept`` but is callable is called without
    arguments (a factory).

    Args:
        target: The import path.
        accept: The types the caller wants.
        accepted: How to name those types in errors.
        search_dir: A directory to put first on ``sys.path`` (the CLI passes the working
            directory), unless it is there already.

    Raises:
        ValueError: ``target`` is malformed.
        TargetError: The module does not import, the attribute is missing, or the object is
            of the wrong type.
    """
    module_name, attrs = parse_target(target)
    if search_dir is not None and search_dir not in sys.path:
        sys.path.insert(0, search_dir)
    obj: object = _import(target, module_name)
    for depth, attr in enumerate(attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            owner = ".".join([module_name, *attrs[:depth]])
            public = [name for name in dir(obj) if not name.startswith("_")]
            close = difflib.get_close_matches(attr, public, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TargetError(f"{target}: {owner!r} has no attribute {attr!r}{hint}") from None
    if not isinstance(obj, accept) and callable(obj):
        obj = _call_factory(target, obj, accepted)
    if not isinstance(obj, accept):
        raise TargetError(f"{target}: expected {accepted}, got {type(obj).__name__}")
    return obj


def load_orchestrator(target: str, *, search_dir: str | None = None) -> Orchestrator:
    """Import the :class:`~belugaflow.Orchestrator` (or its factory) at ``target``.

    Raises:
        ValueError: ``target`` is malformed.
        TargetError: as :func:`load_object`.
    """
    orch = load_object(
        target, accept=(Orchestrator,), accepted="an Orchestrator", search_dir=search_dir
    )
    assert isinstance(orch, Orchestrator)
    return orch


def load_graph_spec(target: str, *, search_dir: str | None = None) -> GraphSpec:
    """Import ``target`` (``MODULE:OBJECT``) and return the spec of the graph it names.

    A :class:`~belugaflow.Graph` is compiled, so every problem a run would meet at compile
    time is reported here.

    Raises:
        ValueError: ``target`` is malformed.
        TargetError: as :func:`load_object`, or the graph is invalid.
    """
    obj = load_object(
        target,
        accept=(Graph, CompiledGraph, GraphSpec),
        accepted=_ACCEPTED,
        search_dir=search_dir,
    )
    try:
        if isinstance(obj, Graph):
            return obj.compile().spec
        if isinstance(obj, CompiledGraph):
            return obj.spec
    except SpecError as error:
        raise TargetError(f"{target}: {error}") from error
    assert isinstance(obj, GraphSpec)
    return obj


def _import(target: str, module_name: str) -> object:
    # A module written after this process started may be hidden by stale finder caches.
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Distinguish "no such module" from a module that fails on an import of its own.
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise TargetError(
                f"{target}: no module named {error.name!r} (looked in the current directory"
                " and sys.path)"
            ) from None
        raise TargetError(f"{target}: importing {module_name!r} failed: {_brief(error)}") from error
    except Exception as error:  # the user's module may raise anything while it loads
        raise TargetError(f"{target}: importing {module_name!r} failed: {_brief(error)}") from error


def _call_factory(target: str, factory: Callable[..., object], accepted: str) -> object:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature (some builtins): just try the call
        pass
    else:
        try:
            signature.bind()
        except TypeError:
            raise TargetError(
                f"{target}: the callable needs arguments {signature}; expected {accepted}"
            ) from None
    try:
        return factory()
    except SpecError as error:
        raise TargetError(f"{target}: {error}") from error
    except Exception as error:  # user code
        raise TargetError(f"{target}: calling it failed: {_brief(error)}") from error


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
