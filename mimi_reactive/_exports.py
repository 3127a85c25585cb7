"""How a public module presents what it exports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["name_public_module"]


def name_public_module(module: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Set ``__module__`` of each class ``names`` lists to ``module``, where it was defined
    in a private module of the package: tracebacks and reprs then name the public module.
    (Type aliases such as ``AnonymousLoginResult`` are unions: they have no module to set.)"""
    for name in names:
        exported = namespace[name]
        if isinstance(exported, type) and exported.__module__.startswith("mimi_reactive._"):
            exported.__module__ = module
