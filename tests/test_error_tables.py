"""The hand-written error tables of docs/architecture.md (HttpBackend) and docs/firebase.md
say what the backends' code maps each service error code to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mimi_reactive import BackendError, Reason
from mimi_reactive.backends import _firebase_errors, _http

DOCS = Path(__file__).resolve().parent.parent / "docs"

Row = tuple[str, str]


def table(document: str, header: str) -> list[Row]:
    """The (first cell, second cell) of each row of the table whose header row starts with
    ``header`` in ``docs/document``."""
    lines = iter((DOCS / document).read_text().splitlines())
    next(line for line in lines if line.startswith(header))
    next(lines)  # | --- | --- |
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1]))
    return rows


def quoted(text: str) -> list[str]:
    """The names written as code (in backticks) in ``text``, in order; ``code="X"`` is X."""
    return re.findall(r'`(?:code=)?"?([^`"]+)"?`', text)


def error_of(row: Row) -> str:
    """The error a row names: the first name in backticks of its second cell."""
    return quoted(row[1])[0]


HTTP = table("architecture.md", "| server code | error |")
FIREBASE = table("firebase.md", "| Firebase code | error |")
# What HttpBackend answers outside its table of codes: a 403 route_not_allowed (the reason
# of the refusal by the error's reason) and the "not now" codes of a 429 or 503.
HTTP_OTHER_CODES = {"route_not_allowed", "rate_limited", "server_busy", "temporarily_unavailable"}


def test_the_tables_are_found() -> None:
    """Both tables are parsed, every row naming an error."""
    assert len(HTTP) > 8
    assert len(FIREBASE) > 8
    for row in HTTP + FIREBASE:
        assert error_of(row).endswith("Error"), row


@pytest.mark.parametrize(
    ("code", "error"),
    [(code, error.__name__) for code, error in _http._ERRORS_BY_CODE.items()],
)
def test_each_http_code_is_in_the_table_with_its_error(code: str, error: str) -> None:
    """A row names each server code HttpBackend maps (or, for a code older servers sent,
    the code its error keeps) with the error it becomes."""
    rows = [row for row in HTTP if code in quoted(row[0] + row[1])]
    assert rows, code
    assert error in [error_of(row) for row in rows], (code, rows)


def test_every_http_code_the_table_names_is_mapped() -> None:
    """No row names a server code HttpBackend does not handle, or a reason it does not
    read, and each route_not_allowed row gives the Reason the backend refuses with."""
    handled = set(_http._ERRORS_BY_CODE) | HTTP_OTHER_CODES
    reasons = {reason for reason in _http._ROUTE_REFUSALS if reason is not None}
    for row in HTTP:
        codes = quoted(row[0])
        assert set(codes) <= handled | reasons, row
        if "route_not_allowed" in codes:
            reason = next((code for code in codes if code in reasons), None)
            expected = _http._ROUTE_REFUSALS.get(reason, Reason.SERVICE_ALLOWS_ONLY_ANONYMOUS)
            assert f"Reason.{expected.name}" in quoted(row[1]), row


@pytest.mark.parametrize(
    ("code", "error"),
    [(code, kind.__name__) for code, (kind, _) in _firebase_errors._ERRORS_BY_CODE.items()],
)
def test_each_firebase_code_is_in_the_table_with_its_error(code: str, error: str) -> None:
    """A row names each Firebase code FirebaseBackend maps with the error it becomes."""
    rows = [row for row in FIREBASE if code in quoted(row[0] + row[1])]
    assert rows, code
    assert error in [error_of(row) for row in rows], (code, rows)


def test_every_firebase_code_the_table_names_is_mapped() -> None:
    """Each Firebase code in a row's first cell is one FirebaseBackend maps, to that row's
    error (the others are kept as a plain BackendError, as the table says)."""
    for row in FIREBASE:
        for code in quoted(row[0]):
            if re.fullmatch(r"[A-Z][A-Z0-9_]+", code):
                kind, _ = _firebase_errors._ERRORS_BY_CODE.get(code, (BackendError, ""))
                assert kind.__name__ == error_of(row), (code, row)
