"""docs/firebase.md's capability table says what each backend's declaration says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mimi_reactive import BackendCapabilities, LogIn, LogInAnonymously, Promote, SignUpAnonymously
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import ScriptedBackend

DOC = (Path(__file__).resolve().parent.parent / "docs" / "firebase.md").read_text()

# Each row of the table, by how it starts, and the declaration it describes.
ROWS: dict[str, Callable[[BackendCapabilities], bool]] = {
    "| anonymous sign-up": lambda c: SignUpAnonymously in c.routes,
    "| log in by anonymous id": lambda c: LogInAnonymously in c.routes,
    "| email/password sign-up": lambda c: LogIn in c.routes,
    "| promote the anonymous user": lambda c: Promote in c.routes,
    "| refresh": lambda c: c.refresh,
    "| revoke on log-out": lambda c: c.revoke,
    "| delete the account": lambda c: c.delete,
    "| log out everywhere": lambda c: c.revoke_everywhere,
}
COLUMNS = {
    "reference server": HttpBackend.capabilities,
    "Firebase": FirebaseBackend.capabilities,
    "scripted": ScriptedBackend().capabilities,
}


@pytest.mark.parametrize("row", list(ROWS))
def test_each_row_matches_the_declarations(row: str) -> None:
    """A cell says yes exactly when that backend declares the capability."""
    line = next(line for line in DOC.splitlines() if line.startswith(row))
    cells = [cell.strip() for cell in line.strip("|").split("|")][1:]
    for (name, capabilities), cell in zip(COLUMNS.items(), cells, strict=True):
        assert cell.startswith("yes") == ROWS[row](capabilities), (name, cell)
