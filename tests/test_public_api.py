"""The public surface: what users import."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import attrs

import mimi_reactive
import mimi_reactive.backends.http
import mimi_reactive.server
from mimi_reactive._redaction import value_repr

REQUIRED = {
    "MimiCore",
    "MimiConfiguration",
    "AuthRoute",
    "AnonymousAuthManager",
    "MimiUser",
    "SessionState",
    "Transition",
    "Success",
    "Failure",
    "Skipped",
    "MimiCoreError",
    "RouteRefusedError",
    "ConfigurationError",
}


def test_required_names_are_exported() -> None:
    """Every name the issue promises is importable from the package."""
    assert set(mimi_reactive.__all__) >= REQUIRED


def test_all_is_sorted_and_resolves() -> None:
    """__all__ is sorted and each name in it exists."""
    assert mimi_reactive.__all__ == sorted(mimi_reactive.__all__)
    for name in mimi_reactive.__all__:
        assert getattr(mimi_reactive, name) is not None


def test_exported_names_are_exactly_all() -> None:
    """Nothing public leaks from the package besides __all__ and its submodules."""
    public = {name for name in vars(mimi_reactive) if not name.startswith("_")}
    submodules = {"backends", "server", "testing", "verify"}
    assert public - submodules == set(mimi_reactive.__all__)


def test_http_backend_module() -> None:
    """HttpBackend lives in mimi_reactive.backends.http."""
    assert mimi_reactive.backends.http.__all__ == ["HttpBackend"]


def test_every_error_is_a_mimi_core_error() -> None:
    """Every exported exception derives from MimiCoreError."""
    errors = [getattr(mimi_reactive, n) for n in mimi_reactive.__all__ if n.endswith("Error")]
    assert errors
    for error in errors:
        assert issubclass(error, mimi_reactive.MimiCoreError)


def test_a_wrong_value_is_a_value_error_too() -> None:
    """The errors for a value given wrong are also ValueErrors, for code that catches those."""
    for error in (
        mimi_reactive.ConfigurationError,
        mimi_reactive.InvalidRouteError,
        mimi_reactive.SessionFilePathError,
    ):
        assert issubclass(error, ValueError)


def test_exports_name_the_public_module() -> None:
    """Tracebacks and reprs show mimi_reactive.X, never the private module."""
    for name in mimi_reactive.__all__:
        exported = getattr(mimi_reactive, name)
        if isinstance(exported, type):
            assert exported.__module__ == "mimi_reactive", name


def test_server_exports_name_the_server_module() -> None:
    """The server's public classes show as mimi_reactive.server.X, never the private module."""
    for name in mimi_reactive.server.__all__:
        exported = getattr(mimi_reactive.server, name)
        assert isinstance(exported, type), name
        assert exported.__module__ == "mimi_reactive.server", name


def test_version_is_the_installed_distributions() -> None:
    """mimi_reactive.__version__ is the version pip installed."""
    assert mimi_reactive.__version__ == importlib.metadata.version("mimi-reactive")


def test_every_client_value_is_shown_by_value_repr() -> None:
    """Each attrs class of the client library uses the one shared repr (secrets masked
    through their fields' ``repr`` option), so attrs generates none at import."""
    package = Path(mimi_reactive.__file__).parent
    names = [path.stem for path in package.glob("*.py") if not path.stem.startswith("__")]
    values = {
        value
        for name in names
        for value in vars(importlib.import_module(f"mimi_reactive.{name}")).values()
        if isinstance(value, type)
        and attrs.has(value)
        and value.__module__.partition(".")[0] == "mimi_reactive"
    }
    server = ("mimi_reactive._server", "mimi_reactive.server")
    client = {value for value in values if not value.__module__.startswith(server)}
    assert len(client) > 40
    assert {value for value in client if value.__repr__ is not value_repr} == set()
