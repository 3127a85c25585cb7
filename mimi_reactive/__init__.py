"""mimi_reactive: an app's user session, anonymous users first, as a reactive stream."""

from . import _exports
from ._auth import AuthController, AuthObserver, ObserverHandle
from ._backend import (
    AuthBackend,
    BackendCapabilities,
    ClientCredentials,
    DeletingBackend,
    OriginBackend,
)
from ._blocking import BlockingAnonymousAuthManager, BlockingAuthController, BlockingMimiCore
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
from ._manager import AnonymousAuthManager
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
from ._results import AnonymousLogInResult, Failure, Success
from ._session import AuthTokens, BackendSession, RefreshPolicy, Session
from ._state import SessionState, Transition
from ._storage import MemorySessionStorage, SessionStorage, SharedSessionStorage
from ._user import MimiUser

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

# Tracebacks and reprs name this public module, not the private one each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
