"""The methods every value class of the library shares: repr, equality and hash.

attrs would generate each of them for each class, compiling source at import; written once
here, they are looked up, not compiled. Generating the repr was a quarter of ``import
mimi_reactive``, and equality and hash another fifth. A class takes them by naming them in its
body, ``__repr__, __eq__, __hash__ = value_repr, value_eq, value_hash``, which attrs sees and
keeps (its ``auto_detect``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["field_setters", "value_eq", "value_hash", "value_repr"]


def value_repr(value: attrs.AttrsInstance) -> str:
    """``Name(field=..., ...)`` as attrs writes it, each field shown through its ``repr``
    option (``False`` leaves it out, a function such as ``mask`` shows it)."""
    shown = []
    for field in attrs.fields(type(value)):
        if field.repr is False:
            continue
        content = getattr(value, field.name)
        text = field.repr(content) if callable(field.repr) else repr(content)
        shown.append(f"{field.name}={text}")
    return f"{type(value).__qualname__}({', '.join(shown)})"


_compared: dict[type, Callable[[Any], object]] = {}


def _compared_fields(cls: type) -> Callable[[Any], object]:
    """What a value of ``cls`` is compared and hashed by: its fields with ``eq`` on, in order
    (one getter per class, made at first use and kept)."""
    names = [field.name for field in attrs.fields(cls) if field.eq]
    getter: Callable[[Any], object] = operator.attrgetter(*names) if names else (lambda _: ())
    _compared[cls] = getter
    return getter


def value_eq(value: attrs.AttrsInstance, other: object) -> bool:
    """Equal when ``other`` is of the same class and their compared fields are equal, as
    attrs' generated ``__eq__`` is (but that tuples take a member for equal to itself: a NaN
    field would equal itself, and no field may hold one). It builds both tuples, where attrs'
    stops at the first field that differs: the classes compared on every publish keep attrs'."""
    if other.__class__ is not value.__class__:
        # typeshed types NotImplemented as Any; Python reads it as "ask the other operand".
        return NotImplemented  # type: ignore[no-any-return]
    fields = _compared.get(value.__class__) or _compared_fields(value.__class__)
    return fields(value) == fields(other)


def value_hash(value: attrs.AttrsInstance) -> int:
    """The hash of the class and the compared fields: equal values hash alike."""
    fields = _compared.get(value.__class__) or _compared_fields(value.__class__)
    return hash((value.__class__, fields(value)))


def field_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The setter of each field of the slotted attrs class ``cls``, in the order of its fields.

    ``object.__new__(cls)`` and these make a value without attrs' ``__init__``, which sets a
    frozen value's fields one by one through ``object.__setattr__``: about 1k instructions a
    field, where a setter takes half that. For values made on every command, of a class with
    no checks, converters or defaults for the ``__init__`` to apply; a function that makes
    them takes every field, and a test compares what it makes with the class's own."""
    return tuple(getattr(cls, field.name).__set__ for field in attrs.fields(cls))
