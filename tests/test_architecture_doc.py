"""docs/architecture.md names the guards, effects and events the code has, in its order."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from mimi_reactive import Transition
from mimi_reactive._diagram import mermaid
from mimi_reactive._guards import GUARDS
from mimi_reactive._messages import Effect, Event

DOC = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()


def test_the_guards_are_listed_in_the_order_they_run() -> None:
    """The numbered guard list is GUARDS, in order."""
    listed = re.findall(r"^\s+\d+\. `(\w+)`", DOC, flags=re.MULTILINE)
    assert listed == [guard.__name__ for guard in GUARDS]


def test_every_effect_and_event_is_described() -> None:
    """Each effect and event type is named in the document."""
    for kind in (*typing.get_args(Effect), *typing.get_args(Event)):
        assert f"`{kind.__name__}" in DOC, kind.__name__


def test_the_state_diagram_is_the_reducers() -> None:
    """The Mermaid diagram in the document is the one drawn from the reducer now."""
    block = re.search(r"```mermaid\n(.*?)```", DOC, flags=re.DOTALL)
    assert block is not None
    assert block.group(1) == mermaid()


def test_every_transition_appears_in_the_diagram() -> None:
    """Each Transition can be reached: the diagram labels every one."""
    labels = mermaid()
    for transition in Transition:
        assert transition.value.upper() in labels, transition
