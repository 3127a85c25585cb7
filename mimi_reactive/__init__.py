"""mimi_reactive: an app's user session, anonymous users first, as a reactive stream."""

import importlib as _importlib
import typing as _typing

from . import _exports
from ._auth import AuthController, AuthObserver, ObserverHandle
from ._backend import (
    AuthBackend,
    BackendCapabilities,
    ClientCredentials,
    DeletingBackend,
    OriginBackend,
)
from ._config import MimiConfiguration, RetryPolicy
from ._core import MimiCore, StartingCore
from ._exceptions import (
    AccessTokenRefusedError,
    AccountDisabledError,
    BackendError,
    ClientAuthenticationError,
    ConfigurationError,
    ConflictError,
    CoreClosedError,
    InvalidCredentialsError,
    InvalidRouteError,
    MimiCoreError,
    NotLoggedInError,
    OtherOriginSessionError,
    RateLimitedError,
    ReentrantCallError,
    RouteRefusedError,
    SessionEndedError,
    SessionFilePathError,
    SessionLockTimeoutError,
    SessionRevokedError,
    SessionStorageError,
    SignInMethodDisabledError,
    StoredSessionLostError,
    TransportError,
    UnsupportedRouteError,
    WeakPasswordError,
    WrongEventLoopError,
)
from ._file_storage import FileSessionStorage
from ._future import CommandFuture
from ._messages import (
    AuthRoute,
    DeleteAccount,
    LogIn,
    LogInAnonymously,
    LogOut,
    Outcome,
    Promote,
    SignUp,
    SignUpAnonymously,
    Skipped,
)
from ._reasons import Reason
from ._session import AuthTokens, BackendSession, RefreshPolicy, Session
from ._state import SessionState, Transition
from ._storage import MemorySessionStorage, SessionStorage, SharedSessionStorage
from ._user import MimiUser

if _typing.TYPE_CHECKING:  # imported when first used (``__getattr__``)
    from ._blocking import BlockingAnonymousAuthManager, BlockingAuthController, BlockingMimiCore
    from ._manager import AnonymousAuthManager
    from ._results import AnonymousLogInResult, Failure, Success

__version__ = "0.1.0"
"""This release's version (pyproject.toml reads it from here)."""

__all__ = [
    "AccessTokenRefusedError",
    "AccountDisabledError",
    "AnonymousAuthManager",
    "AnonymousLogInResult",
    "AuthBackend",
    "AuthController",
    "AuthObserver",
    "AuthRoute",
    "AuthTokens",
    "BackendCapabilities",
    "BackendError",
    "BackendSession",
    "BlockingAnonymousAuthManager",
    "BlockingAuthController",
    "BlockingMimiCore",
    "ClientAuthenticationError",
    "ClientCredentials",
    "CommandFuture",
    "ConfigurationError",
    "ConflictError",
    "CoreClosedError",
    "DeleteAccount",
    "DeletingBackend",
    "Failure",
    "FileSessionStorage",
    "InvalidCredentialsError",
    "InvalidRouteError",
    "LogIn",
    "LogInAnonymously",
    "LogOut",
    "MemorySessionStorage",
    "MimiConfiguration",
    "MimiCore",
    "MimiCoreError",
    "MimiUser",
    "NotLoggedInError",
    "ObserverHandle",
    "OriginBackend",
    "OtherOriginSessionError",
    "Outcome",
    "Promote",
    "RateLimitedError",
    "Reason",
    "ReentrantCallError",
    "RefreshPolicy",
    "RetryPolicy",
    "RouteRefusedError",
    "Session",
    "SessionEndedError",
    "SessionFilePathError",
    "SessionLockTimeoutError",
    "SessionRevokedError",
    "SessionState",
    "SessionStorage",
    "SessionStorageError",
    "SharedSessionStorage",
    "SignInMethodDisabledError",
    "SignUp",
    "SignUpAnonymously",
    "Skipped",
    "StartingCore",
    "StoredSessionLostError",
    "Success",
    "Transition",
    "TransportError",
    "UnsupportedRouteError",
    "WeakPasswordError",
    "WrongEventLoopError",
]

# The blocking API and the manager, by the module each is in: loaded when first used, as most
# apps use neither (their modules were a twentieth of ``import mimi_reactive``).
_LATER = {
    "._blocking": ("BlockingAnonymousAuthManager", "BlockingAuthController", "BlockingMimiCore"),
    "._manager": ("AnonymousAuthManager",),
    "._results": ("AnonymousLogInResult", "Failure", "Success"),
}
_LATER_MODULE = {name: module for module, names in _LATER.items() for name in names}

# Tracebacks and reprs name this public module, not the private one each is defined in.
_exports.name_public_module(__name__, globals(), sorted(set(__all__) - set(_LATER_MODULE)))


def __getattr__(name: str) -> object:
    """A name of the blocking API or the manager: its module is imported now, and its names
    join the others."""
    module = _LATER_MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = vars(_importlib.import_module(module, __name__))
    names = _LATER[module]
    _exports.name_public_module(__name__, loaded, names)
    globals().update({later: loaded[later] for later in names})
    return loaded[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LATER_MODULE})
