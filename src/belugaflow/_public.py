"""One helper for the package ``__init__`` files."""

from __future__ import annotations

from typing import Any

__all__ = ["show_public_paths"]


def show_public_paths(namespace: dict[str, Any]) -> None:
    """Point ``__module__`` of what a package exports at the package itself, so reprs,
    tracebacks and docs show ``belugaflow.graph.GraphSpec``, not a private module."""
    package = namespace["__name__"]
    for name in namespace["__all__"]:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(f"{package}._"):
            obj.__module__ = package
