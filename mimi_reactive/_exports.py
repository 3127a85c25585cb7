"""How a public module presents what it exports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["name_public_module"]


def name_public_module(module: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Set ``__module__`` of each class ``names`` lists to ``module``, where it was defined
    in a private module of the package (``_core``, ``backends._http``): tracebacks and reprs
    then name the public module.
    (Type aliases such as ``AnonymousLogInResult`` are unions: they have no module to set.)"""
    for name in names:
        exported = namespace[name]
        if isinstance(exported, type) and _is_private(exported.__module__):
            exported.__module__ = module


def _is_private(module: str) -> bool:
    """Whether ``module`` is one of the package's private modules (``mimi_reactive._core``,
    ``mimi_reactive.backends._http``, ...)."""
    package, *parts = module.split(".")
    return package == "mimi_reactive" and any(part.startswith("_") for part in parts)
