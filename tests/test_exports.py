"""The public surface: ``__all__`` of belugaflow and of its public subpackages.

Like httpx's ``test_exported_members`` and trio's ``test_exports``: every list is sorted and
complete, every name exists, and exported classes show a public ``__module__`` (the path users
import them from), so reprs, tracebacks and docs never point into private modules.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

import pytest

PUBLIC_MODULES = [
    "belugaflow",
    "belugaflow.config",
    "belugaflow.graph",
    "belugaflow.llms",
    "belugaflow.memory",
    "belugaflow.resilience",
    "belugaflow.server",
    "belugaflow.temporal",
]


def module(name: str) -> ModuleType:
    """Import a module by name."""
    return importlib.import_module(name)


def exported(name: str) -> list[str]:
    """The ``__all__`` of a module."""
    names: list[str] = module(name).__all__
    return names


def exported_classes() -> list[Any]:
    """One pytest param ``(module, name)`` per class in a public ``__all__``."""
    return [
        pytest.param(mod, name, id=f"{mod}.{name}")
        for mod in PUBLIC_MODULES
        for name in exported(mod)
        if inspect.isclass(getattr(module(mod), name, None))
    ]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_without_duplicates(name: str) -> None:
    """``__all__`` is sorted (plain string order) and lists each name once."""
    names = exported(name)
    assert names == sorted(set(names))


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_exported_name_exists(name: str) -> None:
    """Every name in ``__all__`` is an attribute of the module."""
    missing = [attr for attr in exported(name) if not hasattr(module(name), attr)]
    assert missing == []


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_is_exported(name: str) -> None:
    """Public belugaflow objects in the module's namespace are all listed in ``__all__``."""
    mod = module(name)
    public = {
        attr
        for attr, obj in vars(mod).items()
        if not attr.startswith("_")
        and not inspect.ismodule(obj)
        and str(getattr(obj, "__module__", "")).startswith("belugaflow")
    }
    assert sorted(public - set(exported(name))) == []


@pytest.mark.parametrize(("module_name", "name"), exported_classes())
def test_exported_class_shows_its_public_module(module_name: str, name: str) -> None:
    """The class's ``__module__`` is a public module from which it can be imported."""
    cls = getattr(module(module_name), name)
    shown: str = cls.__module__
    private = [part for part in shown.split(".") if part.startswith("_")]
    assert private == [], f"{module_name}.{name}.__module__ is the private {shown!r}"
    assert getattr(module(shown), cls.__qualname__, None) is cls


@pytest.mark.parametrize("name", PUBLIC_MODULES[1:])
def test_top_level_re_exports_are_the_subpackage_objects(name: str) -> None:
    """A name exported both by ``belugaflow`` and by a subpackage is the very same object."""
    top = module("belugaflow")
    shared = set(exported("belugaflow")) & set(exported(name))
    assert [
        attr for attr in sorted(shared) if getattr(top, attr) is not getattr(module(name), attr)
    ] == []
