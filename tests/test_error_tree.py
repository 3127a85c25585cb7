"""The tree of errors drawn in mimi_reactive._exceptions' docstring is the one the code has."""

from __future__ import annotations

import re

import mimi_reactive
from mimi_reactive import MimiCoreError, _exceptions

from .test_public_api import PUBLIC_MODULES

# A drawn line: the tree's marks, then the error's name (``verify.`` or ``server.`` before it
# if that module exports it), then its other bases in parentheses, then what it means.
_LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Za-z.]+Error)(?: \((?P<bases>[^)]*)\))?")

Tree = dict[str, tuple[str | None, tuple[str, ...]]]
"""Each error by its drawn name: the error it derives from and its other bases (ValueError)."""


def drawn_tree() -> Tree:
    """The tree the docstring draws, read back: each line's depth is its name's column / 4."""
    block = re.search(r"```text\n(.*?)```", _exceptions.__doc__ or "", re.DOTALL)
    assert block is not None
    tree: Tree = {}
    parents: list[str] = []
    for line in block.group(1).splitlines():
        match = _LINE.match(line)
        assert match is not None, line
        depth = len(match["indent"]) // 4
        del parents[depth:]
        bases = tuple(match["bases"].split(", ")) if match["bases"] else ()
        tree[match["name"]] = (parents[-1] if parents else None, bases)
        parents.append(match["name"])
    return tree


def drawn_name(error: type[BaseException]) -> str:
    """How the drawing names an error: its public module past ``mimi_reactive``, then its name."""
    module = error.__module__.removeprefix(mimi_reactive.__name__).lstrip(".")
    return f"{module}.{error.__name__}" if module else error.__name__


def code_tree() -> Tree:
    """MimiCoreError and every subclass of it (recursively) a public module exports, each with
    the nearest exported error it derives from and its other bases (``Exception`` aside)."""
    exported = {getattr(module, name) for module in PUBLIC_MODULES for name in module.__all__}
    tree: Tree = {}
    found: list[type[BaseException]] = [MimiCoreError]
    while found:
        error = found.pop()
        found += error.__subclasses__()
        if error not in exported:
            # A private refinement (FileSessionStorage's own loss) is raised as its parent.
            assert error.__name__.startswith("_"), f"{error.__qualname__} is not exported"
            continue
        parent = next((base for base in error.__mro__[1:] if base in exported), None)
        others = tuple(
            base.__name__
            for base in error.__bases__
            if not issubclass(base, MimiCoreError) and base is not Exception
        )
        tree[drawn_name(error)] = (drawn_name(parent) if parent else None, others)
    return tree


def test_the_drawn_tree_is_the_code_s() -> None:
    """Every error a public module exports is drawn under the error it derives from, with its
    other bases; nothing else is drawn (a new, moved or removed error fails this)."""
    assert drawn_tree() == code_tree()


def test_every_exported_error_is_a_mimi_core_error() -> None:
    """Every exception a public module exports (the verifier's and the server's too) derives
    from MimiCoreError, so it is in the tree."""
    exported = [getattr(module, name) for module in PUBLIC_MODULES for name in module.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert {drawn_name(error) for error in errors} == set(code_tree())
