"""The public surface: what users import."""

from __future__ import annotations

import copy
import errno
import importlib
import importlib.metadata
import pickle
import re
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import attrs
import pytest

import mimi_reactive
import mimi_reactive.backends.firebase
import mimi_reactive.backends.http
import mimi_reactive.server
import mimi_reactive.testing
import mimi_reactive.verify
from mimi_reactive import MimiUser, Reason, SessionState, Transition
from mimi_reactive._guards import GUARDS
from mimi_reactive._values import value_eq, value_hash, value_repr
from mimi_reactive.testing import Reply

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


# Every module an app imports from: each shows only what its __all__ lists.
PUBLIC_MODULES = [
    mimi_reactive,
    mimi_reactive.testing,
    mimi_reactive.backends.http,
    mimi_reactive.backends.firebase,
    mimi_reactive.server,
    mimi_reactive.verify,
]


def module_name(module: ModuleType) -> str:
    """The test id of a public module: its dotted name."""
    return module.__name__


def isort_style(name: str) -> tuple[int, str]:
    """The order ruff (RUF022) keeps ``__all__`` in: CONSTANTS, then Classes, then the rest."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=module_name)
def test_all_is_sorted_and_resolves(module: ModuleType) -> None:
    """__all__ is sorted (as ruff sorts it) and each name in it exists."""
    assert module.__all__ == sorted(module.__all__, key=isort_style)
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=module_name)
def test_exported_names_are_exactly_all(module: ModuleType) -> None:
    """Nothing public leaks from a public module besides __all__ and its submodules (nor
    what pytest's assertion rewriting adds, @py_builtins, to a file named on its command
    line: no import can name that)."""
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name.isidentifier()
        and not (isinstance(value, ModuleType) and value.__name__.startswith(f"{module.__name__}."))
    }
    assert public == set(module.__all__)


def test_the_api_says_log_in_never_login() -> None:
    """One spelling, as LogIn and log_in have it: no exported name, reason or guard says
    "login" (the value a reason shows included)."""
    names = [name for module in PUBLIC_MODULES for name in module.__all__]
    names += [f"{reason.name} {reason.value}" for reason in Reason]
    names += [guard.__name__ for guard in GUARDS]
    assert [name for name in names if re.search("login|Login|LOGIN", name)] == []


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


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=module_name)
def test_exports_name_the_public_module(module: ModuleType) -> None:
    """Tracebacks and reprs show the public module (mimi_reactive.testing.Reply, ...), never
    the private one a class is defined in."""
    for name in module.__all__:
        exported = getattr(module, name)
        if isinstance(exported, type):
            assert exported.__module__ == module.__name__, name


def undocumented_methods(module: ModuleType) -> list[str]:
    """The public methods and properties of ``module``'s exported classes with no docstring
    of their own, but for implementations of a public protocol's methods (documented there)."""
    protocols = (
        mimi_reactive.AuthBackend,
        mimi_reactive.DeletingBackend,
        mimi_reactive.OriginBackend,
        mimi_reactive.SessionStorage,
        mimi_reactive.SharedSessionStorage,
    )
    implemented = {name for protocol in protocols for name in vars(protocol)}
    missing = []
    for name in module.__all__:
        exported = getattr(module, name)
        if not isinstance(exported, type):
            continue
        is_protocol = getattr(exported, "_is_protocol", False)
        for attribute, value in vars(exported).items():
            function = value.fget if isinstance(value, property) else value
            function = getattr(function, "__func__", function)
            if attribute.startswith("_") or not callable(function):
                continue
            if attribute in implemented and not is_protocol:
                continue
            if not function.__doc__:
                missing.append(f"{name}.{attribute}")
    return missing


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=module_name)
def test_every_public_method_has_a_docstring(module: ModuleType) -> None:
    """The API reference shows no bare public method: each says what it does."""
    assert undocumented_methods(module) == []


def private_types_in_signatures(module: ModuleType) -> list[str]:
    """The private classes the public methods of ``module``'s exports take or return
    (constructors aside: the library builds those objects itself)."""
    exported = {getattr(public, name) for public in PUBLIC_MODULES for name in public.__all__}

    def named(hint: object) -> list[object]:
        return [hint, *(inner for arg in typing.get_args(hint) for inner in named(arg))]

    found = []
    for name in module.__all__:
        value = getattr(module, name)
        functions = (
            {f"{name}.{attribute}": member for attribute, member in vars(value).items()}
            if isinstance(value, type)
            else {name: value}
        )
        for where, member in functions.items():
            function = member.fget if isinstance(member, property) else member
            function = getattr(function, "__func__", function)
            if where.rpartition(".")[2].startswith("_") or not callable(function):
                continue
            for hint in typing.get_type_hints(function).values():
                found += [
                    f"{where}: {kind.__qualname__}"
                    for kind in named(hint)
                    if isinstance(kind, type)
                    and kind.__module__.startswith("mimi_reactive")
                    and kind not in exported
                ]
    return found


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=module_name)
def test_public_methods_take_and_return_public_types(module: ModuleType) -> None:
    """What a public method takes or returns has a public name the API reference shows and
    an app can annotate with (MimiCore.start returns a StartingCore)."""
    assert private_types_in_signatures(module) == []


def test_version_is_the_installed_distributions() -> None:
    """mimi_reactive.__version__ is the version pip installed."""
    assert mimi_reactive.__version__ == importlib.metadata.version("mimi-reactive")


def client_values() -> set[type]:
    """Every attrs class of the client library (the server's are left out)."""
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
    return {value for value in values if not value.__module__.startswith(server)}


def test_every_client_value_is_shown_by_value_repr() -> None:
    """Each attrs class of the client library uses the one shared repr (secrets masked
    through their fields' ``repr`` option), so attrs generates none at import."""
    client = client_values()
    assert len(client) > 40
    assert {value for value in client if vars(value).get("__repr__") is not value_repr} == set()


def test_every_frozen_client_value_shares_equality_and_hash() -> None:
    """Each frozen attrs class of the client library compares and hashes through the shared
    value_eq and value_hash, so attrs compiles neither at import; but for the two every
    publish compares (a state and its users), whose generated equality is faster."""
    compared_on_publish = {SessionState, MimiUser}
    frozen = {value for value in client_values() if "__setattr__" in vars(value)}
    assert compared_on_publish <= frozen
    frozen -= compared_on_publish
    assert len(frozen) > 40
    shared = (value_eq, value_hash)
    own = {value: (vars(value).get("__eq__"), vars(value).get("__hash__")) for value in frozen}
    assert {value for value, methods in own.items() if methods != shared} == set()


def public_errors() -> list[type[Exception]]:
    """Every exception type a public module exports (a new one is covered as it is added)."""
    modules: tuple[ModuleType, ...] = (mimi_reactive, mimi_reactive.verify, mimi_reactive.server)
    exported = [getattr(module, name) for module in modules for name in module.__all__]
    return [e for e in exported if isinstance(e, type) and issubclass(e, Exception)]


def an_error(kind: type[Exception]) -> Exception:
    """An instance of ``kind`` with every attribute set, built as the library builds it."""
    if issubclass(kind, mimi_reactive.RateLimitedError):
        return kind("rate_limited", "slow down", status=429, retry_after=2.5)
    if issubclass(kind, mimi_reactive.BackendError):
        return kind("invalid_grant", "the session was revoked", status=401)
    if issubclass(kind, mimi_reactive.RouteRefusedError | mimi_reactive.InvalidRouteError):
        return kind(Reason.NO_USER_LOGGED_IN)
    if issubclass(kind, mimi_reactive.verify.InvalidTokenError):
        return kind("expired", "the token has expired")
    if issubclass(kind, mimi_reactive.server.ServerStartError):
        return kind("port 1 is taken", refused=True)
    if issubclass(kind, OSError):  # StoredSessionLostError, SessionLockTimeoutError
        return kind(errno.ENOENT, "the session file was removed")
    return kind("what went wrong")


def looks_the_same(copied: BaseException, original: BaseException) -> None:
    """Same type, message, arguments and attributes (code, message, status, retry_after,
    reason, an OSError's errno, ...)."""
    assert type(copied) is type(original)
    assert str(copied) == str(original)
    assert copied.args == original.args
    assert vars(copied) == vars(original)
    assert getattr(copied, "errno", None) == getattr(original, "errno", None)


COPIES: dict[str, Callable[[object], object]] = {
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),  # noqa: S301 - our own bytes
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


def test_every_public_error_type_is_found() -> None:
    """The enumeration below covers the errors of the package, the verifier and the server."""
    names = {kind.__name__ for kind in public_errors()}
    assert {"BackendError", "NotLoggedInError", "InvalidTokenError", "ServerStartError"} <= names
    assert len(names) > 25


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("kind", public_errors(), ids=lambda kind: kind.__name__)
def test_every_public_error_survives_pickle_and_copy(kind: type[Exception], how: str) -> None:
    """An error pickled (to another process, say) or copied is an equal-looking error of the
    same type with the same code, message, status, retry_after and reason."""
    error = an_error(kind)
    copied = COPIES[how](error)
    assert isinstance(copied, BaseException)
    looks_the_same(copied, error)


@pytest.mark.parametrize("how", COPIES)
def test_a_state_and_a_reply_carrying_an_error_survive_pickle_and_copy(how: str) -> None:
    """A SessionState or a scripted Reply holding an error pickles and copies with it."""
    error = mimi_reactive.RateLimitedError("rate_limited", "slow", status=429, retry_after=2.5)
    state = SessionState(transition=Transition.FAILED, error=error)
    reply = Reply.fail(an_error(mimi_reactive.NotLoggedInError), only_for=("refresh",))
    copied_state, copied_reply = COPIES[how](state), COPIES[how](reply)
    assert isinstance(copied_state, SessionState)
    assert isinstance(copied_reply, Reply)
    assert copied_state.transition is Transition.FAILED
    assert copied_state.error is not None
    assert reply.error is not None
    assert copied_reply.error is not None
    looks_the_same(copied_state.error, error)
    looks_the_same(copied_reply.error, reply.error)
    assert copied_reply.only_for == frozenset({"refresh"})


def test_a_pickled_error_holds_no_secret() -> None:
    """What an error pickles to holds its message and attributes only: no secret rides
    along (messages never carry one), e.g. no token of the session it was about."""
    token = "a-refresh-token-that-must-not-leak"
    error = mimi_reactive.SessionRevokedError("invalid_grant", "the session was revoked")
    error.__cause__ = ValueError(token)  # a cause is not pickled, as for any exception
    assert token.encode() not in pickle.dumps(error)
