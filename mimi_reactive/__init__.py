"""mimi_reactive: an app's user session, anonymous users first, as a reactive stream."""

from ._auth import AuthController, AuthObserver, ObserverHandle
from ._backend import (
    AuthBackend,
    AuthTokens,
    BackendCapabilities,
    BackendSession,
    ClientCredentials,
)
from ._config import MimiConfiguration, RetryPolicy
from ._core import MimiCore
from ._exceptions import (
    BackendError,
    ClientAuthenticationError,
    ConflictError,
    CoreClosedError,
    InvalidCredentialsError,
    InvalidRouteError,
    MimiCoreError,
    NotLoggedInError,
    ReentrantCallError,
    RouteRefusedError,
    SessionRevokedError,
    TransportError,
    UnsupportedRouteError,
)
from ._file_storage import FileSessionStorage
from ._manager import AnonymousAuthManager
from ._reasons import Reason
from ._results import AnonymousLoginResult, Failure, Skipped, Success
from ._routes import (
    AuthRoute,
    LogIn,
    LogInAnonymously,
    LogOut,
    Promote,
    SignUp,
    SignUpAnonymously,
)
from ._state import SessionState, Transition
from ._storage import MemorySessionStorage, SessionStorage, SharedSessionStorage, StoredSession
from ._store import CommandFuture, Outcome
from ._user import MimiUser

__all__ = [
    "AnonymousAuthManager",
    "AnonymousLoginResult",
    "AuthBackend",
    "AuthController",
    "AuthObserver",
    "AuthRoute",
    "AuthTokens",
    "BackendCapabilities",
    "BackendError",
    "BackendSession",
    "ClientAuthenticationError",
    "ClientCredentials",
    "CommandFuture",
    "ConflictError",
    "CoreClosedError",
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
    "Outcome",
    "Promote",
    "Reason",
    "ReentrantCallError",
    "RetryPolicy",
    "RouteRefusedError",
    "SessionRevokedError",
    "SessionState",
    "SessionStorage",
    "SharedSessionStorage",
    "SignUp",
    "SignUpAnonymously",
    "Skipped",
    "StoredSession",
    "Success",
    "Transition",
    "TransportError",
    "UnsupportedRouteError",
]
