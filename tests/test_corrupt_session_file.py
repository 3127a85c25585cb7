"""A corrupt session file never stops a start: moved aside (0600, few kept), logged out, warned."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any

import pytest
from hypothesis import given

from mimi_reactive import (
    AuthTokens,
    FileSessionStorage,
    MimiCore,
    MimiUser,
    Session,
    SessionFilePathError,
    Transition,
)
from mimi_reactive._redaction import bounded_repr
from mimi_reactive._session_file import parse
from mimi_reactive._storage import decode_session, encode_session
from mimi_reactive.testing import ScriptedBackend

from .strategies import SessionFields, json_session_fields, valid_session_fields

ACCESS_TOKEN = "access-token-that-must-never-be-logged"
ANONYMOUS_ID = "anonymous-id-that-must-never-be-logged"

# A session as FileSessionStorage writes it; each $field is raw JSON a case may replace.
TEMPLATE = Template('{"schema": $schema, "session": $session}')
SESSION = Template(
    '{"user": {"id": "user-1", "anonymous_id": "$anonymous_id", "is_anonymous": $is_anonymous,'
    ' "email": null}, "tokens": {"access_token": $access_token, "refresh_token": "refresh-1",'
    ' "expires_in": $expires_in}, "obtained_at": $obtained_at}'
)


def session_file(**fields: str) -> bytes:
    """The JSON text of a live stored session with some fields replaced by raw JSON."""
    values = {
        "schema": "1",
        "anonymous_id": ANONYMOUS_ID,
        "is_anonymous": "true",
        "access_token": f'"{ACCESS_TOKEN}"',
        "expires_in": "3600.0",
        "obtained_at": repr(time.time()),
        **fields,
    }
    values.setdefault("session", SESSION.substitute(values))
    return TEMPLATE.substitute(values).encode()


CORRUPT = {
    "nested 100,000 deep": session_file(session="[" * 100_000 + "]" * 100_000),
    "an integer of 5,000 digits": session_file(expires_in="9" * 5_000),
    "NaN": session_file(expires_in="NaN"),
    "Infinity": session_file(obtained_at="Infinity"),
    "-Infinity": session_file(expires_in="-Infinity"),
    "a float beyond range": session_file(obtained_at="1e999"),
    "a negative expiry": session_file(expires_in="-5"),
    "an expiry of centuries": session_file(expires_in="1e300"),
    "obtained in the far future": session_file(obtained_at="1e300"),
    "a negative obtained_at": session_file(obtained_at="-1.0"),
    "obtained_at as a string": session_file(obtained_at='"1795000000"'),
    "is_anonymous as a string": session_file(is_anonymous='"no"'),
    "a token as a number": session_file(access_token="12345"),
    "schema as true": session_file(schema="true"),
    "session as a list": session_file(session="[1, 2]"),
    "a list at the top": b"[1, 2]",
    "origin as a number": b'{"schema": 1, "origin": 5, "session": null}',
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe\x00binary",
    "larger than a session file": b" " * (2 << 20) + session_file(),
}


@contextlib.contextmanager
def library_warnings() -> Iterator[list[str]]:
    """Collect the library's warnings, as the text a handler would show, logged inside the
    block (the library logs on stdlib loggers under ``mimi_reactive``)."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING:
                found.append(f"{self.format(record)} {vars(record)!r}")

    logger = logging.getLogger("mimi_reactive")
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


async def start_and_stop(path: Path) -> list[Any]:
    """Start a core on the file, return the states it published, and close it."""
    states: list[Any] = []
    async with MimiCore.start(
        client_id="app",
        client_secret="secret",
        backend=ScriptedBackend(),
        storage=FileSessionStorage(path),
    ) as core:
        core.auth.states.subscribe(states.append)
    return states


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.unreadable-*"))


async def test_the_good_form_restores(tmp_path: Path) -> None:
    """The template the corrupt cases alter is a live session the core restores."""
    path = tmp_path / "session.json"
    path.write_bytes(session_file())
    with library_warnings() as warnings:
        states = await start_and_stop(path)
    assert states[0].transition is Transition.RESTORED
    assert states[0].user.id == "user-1"
    assert warnings == []
    assert moved_aside(path) == []


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
async def test_a_corrupt_file_is_moved_aside_and_the_core_starts_logged_out(
    tmp_path: Path, content: bytes
) -> None:
    """Start logs out, moves the file aside 0600 with one warning, and starts again cleanly."""
    path = tmp_path / "session.json"
    path.write_bytes(content)
    path.chmod(0o644)
    with library_warnings() as warnings:
        states = await start_and_stop(path)
    assert states[0].transition is Transition.INITIAL
    assert states[0].user is None
    assert not path.exists()
    [aside] = moved_aside(path)
    assert aside.read_bytes() == content
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600
    assert len(warnings) == 1
    assert "storage.unreadable_session_moved_aside" in warnings[0]
    assert str(aside) in warnings[0]
    assert ACCESS_TOKEN not in warnings[0]
    assert ANONYMOUS_ID not in warnings[0]
    with library_warnings() as warnings:
        again = await start_and_stop(path)
    assert again[0].transition is Transition.INITIAL
    assert warnings == []


async def test_only_the_newest_three_files_moved_aside_are_kept(tmp_path: Path) -> None:
    """Moved-aside files hold credentials: a fourth deletes the oldest; all are 0600."""
    path = tmp_path / "session.json"
    contents = [session_file(expires_in=str(-number)) for number in range(1, 6)]
    for content in contents:
        path.write_bytes(content)
        with library_warnings():
            assert await FileSessionStorage(path).load() is None
    kept = moved_aside(path)
    assert [aside.read_bytes() for aside in kept] == contents[-3:]
    assert all(stat.S_IMODE(aside.stat().st_mode) == 0o600 for aside in kept)


@pytest.mark.parametrize("link", ["session.json", f"session.json.unreadable-{10**30}"])
async def test_a_symlink_is_never_followed_to_make_its_target_private(
    tmp_path: Path, link: str
) -> None:
    """A symlink at the session path (or among the files moved aside) pointing at another
    file (a config of the user's, 0644) is moved aside or kept as a link: its target's mode
    and content stay as they were (the moved-aside files are made 0600, never through one)."""
    path = tmp_path / "session.json"
    target = tmp_path / "someone-elses.conf"
    target.write_bytes(b"not a session\n")
    target.chmod(0o644)
    path.write_bytes(b"{not json")
    (tmp_path / link).unlink(missing_ok=True)
    (tmp_path / link).symlink_to(target)
    with library_warnings():
        assert await FileSessionStorage(path).load() is None
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == b"not a session\n"
    assert any(aside.is_symlink() for aside in moved_aside(path))
    assert all(
        stat.S_IMODE(aside.stat().st_mode) == 0o600
        for aside in moved_aside(path)
        if not aside.is_symlink()
    )


async def test_a_file_rewritten_while_read_is_not_moved_aside(tmp_path: Path) -> None:
    """Only the unreadable file read is moved aside, never a good save that replaced it."""

    class Racing(FileSessionStorage):
        """Another process saves a good session just after this one read a corrupt file."""

        def _move_aside(self, read: os.stat_result, reason: str) -> bool:
            replacement = self.path.with_name("replacement")
            replacement.write_bytes(session_file(obtained_at="1.0"))
            os.replace(replacement, self.path)
            return super()._move_aside(read, reason)

    path = tmp_path / "session.json"
    path.write_bytes(b"{not json")
    with library_warnings() as warnings:
        loaded = await Racing(path).load()
    assert loaded is not None
    assert loaded.obtained_at == 1.0
    assert moved_aside(path) == []
    assert warnings == []


def test_home_is_expanded_and_any_path_like_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/...`` lands in the home folder, not a folder named ``~``; os.PathLike works."""

    class Where:
        def __fspath__(self) -> str:
            return "~/.config/app/session.json"

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    expected = tmp_path / ".config" / "app" / "session.json"
    assert FileSessionStorage("~/.config/app/session.json").path == expected
    assert FileSessionStorage(Where()).path == expected
    assert FileSessionStorage(Path("~/.config/app/session.json")).path == expected


async def test_home_path_saves_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save through a ``~`` path writes the file in the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    storage = FileSessionStorage("~/session.json")
    await storage.clear()
    assert (tmp_path / "home" / "session.json").is_file()
    assert not (tmp_path / "~").exists()


def test_a_directory_at_the_path_is_refused_by_name(tmp_path: Path) -> None:
    """Giving a folder instead of the file fails at once, naming the folder."""
    folder = tmp_path / "my-app"
    folder.mkdir()
    with pytest.raises(SessionFilePathError, match="is a directory") as raised:
        FileSessionStorage(folder)
    # Quoted as every path is (its first 80 characters): pytest-xdist's folders are longer.
    assert bounded_repr(str(folder)) in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("below", ["session.json", "app/session.json"])
def test_a_path_under_a_file_is_refused_by_name(tmp_path: Path, below: str) -> None:
    """A path whose folder would be a regular file fails at once with SessionFilePathError
    naming that file, rather than NotADirectoryError at start."""
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    with pytest.raises(SessionFilePathError, match="which is not a directory") as raised:
        FileSessionStorage(file / below)
    assert bounded_repr(str(file)) in str(raised.value)
    assert file.read_text() == "not a folder"


@given(valid_session_fields | json_session_fields)
def test_every_session_the_values_take_is_read_back_as_written(fields: SessionFields) -> None:
    """Whatever session the values take is stored in a form the load takes, and read back
    equal: what the load refuses (a string where a flag goes, a time beyond the year 5000) is
    refused when the value is built, never found unreadable at the next start."""
    user, tokens, obtained_at = fields
    try:
        session = Session(MimiUser(**user), AuthTokens(**tokens), obtained_at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # refused when built: no session holds it
    written = json.dumps(encode_session(session)).encode()  # as FileSessionStorage writes
    assert decode_session(parse(written)) == session
