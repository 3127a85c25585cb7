"""Every error mimi_reactive raises (``verify.`` and ``server.`` name those exported by
``mimi_reactive.verify`` and ``mimi_reactive.server``, the others by ``mimi_reactive``).

Messages never carry a secret (anonymous id, token, password, client secret): they are
safe to log and to show. Every error pickles and copies (to another process, say) as an
error of its type with the same message and attributes.

```text
MimiCoreError                      base of every error the library raises
├── RouteRefusedError              a guard refused the route; nothing changed
│   ├── UnsupportedRouteError      the backend cannot perform this route or command at all
│   └── NotLoggedInError           the command needs a logged-in user
├── InvalidRouteError (ValueError) the route cannot run as given (a blank or malformed id)
├── ConfigurationError (ValueError) a client or server setting is wrong: a bad URL, a weak secret, …
├── CoreClosedError                the core (or a verifier) was closed before or while the call ran
├── ReentrantCallError             waiting on a command where it can never finish
├── WrongEventLoopError (RuntimeError)     the core awaited on a loop it does not run on
├── TransportError                 the identity service could not be reached in time
├── SessionFilePathError (ValueError)       the session file's path is a directory
├── SessionLockTimeoutError (TimeoutError)  another process held the session lock too long
├── StoredSessionLostError (OSError)  a storage's load: the session it held is gone, not logged out
├── OtherOriginSessionError (OSError) a storage's load: another service or client's session
├── SessionStorageError            the storage could not load, save or clear the session
├── verify.InvalidTokenError       an access token did not verify (its reason says why)
├── server.ServerStartError        the server could not start, or open its database
└── BackendError                   the identity service answered with an error code
    ├── ClientAuthenticationError  the app's client id, secret or API key was rejected
    ├── InvalidCredentialsError    unknown anonymous id, or wrong email or password
    ├── SessionRevokedError        the session was revoked, expired or reused
    │   ├── AccessTokenRefusedError  the access token was refused even after a renewal
    │   ├── SessionEndedError      the service ended it on purpose: no log-in by id
    │   └── AccountDisabledError   the user's account is disabled at the service
    ├── ConflictError              e.g. an email already registered
    ├── RateLimitedError           too many requests, or the service is busy: retry later
    ├── WeakPasswordError          the service finds the password too weak
    └── SignInMethodDisabledError  the app turned this way of signing in off
```
"""

from __future__ import annotations

from ._reasons import Reason

__all__ = [
    "AccessTokenRefusedError",
    "AccountDisabledError",
    "BackendError",
    "ClientAuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "CoreClosedError",
    "InvalidCredentialsError",
    "InvalidRouteError",
    "MimiCoreError",
    "NotLoggedInError",
    "OtherOriginSessionError",
    "RateLimitedError",
    "ReentrantCallError",
    "RouteRefusedError",
    "SessionEndedError",
    "SessionFilePathError",
    "SessionLockTimeoutError",
    "SessionRevokedError",
    "SessionStorageError",
    "SignInMethodDisabledError",
    "StoredSessionLostError",
    "TransportError",
    "UnsupportedRouteError",
    "WeakPasswordError",
    "WrongEventLoopError",
]


class MimiCoreError(Exception):
    """Base of every error mimi_reactive raises."""

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled and copied as its message and attributes (code, status, reason, ...), not
        # by calling __init__ again with the message: most subclasses take other arguments.
        # Neither holds a secret (see above), so a pickle or a copy holds none either.
        return (_rebuilt, (type(self), self.args), self.__dict__ or None)


def _rebuilt(cls: type[MimiCoreError], args: tuple[object, ...]) -> MimiCoreError:
    """An error of type ``cls`` with ``args``, its ``__init__`` not run (``__reduce__``
    restores the attributes it set)."""
    return cls.__new__(cls, *args)


class RouteRefusedError(MimiCoreError):
    """A guard refused the route before anything ran; the session is unchanged."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.describe())
        self.reason = reason


class UnsupportedRouteError(RouteRefusedError):
    """The backend declared that it cannot perform this route, or this command (log out
    everywhere, delete an account, refresh); ``reason`` says which."""


class NotLoggedInError(RouteRefusedError):
    """The command needs a logged-in user and there is none."""


class InvalidRouteError(MimiCoreError, ValueError):
    """The route cannot run as given: its anonymous id is blank, or no service issues it."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.describe())
        self.reason = reason


class ConfigurationError(MimiCoreError, ValueError):
    """A value given to configure the core or its backend is wrong: a negative duration, a
    URL that is not http(s) or holds credentials, a missing API key or client credentials."""


class CoreClosedError(MimiCoreError):
    """The core was closed: queued and later calls fail with this instead of hanging. A
    closed ``AccessTokenVerifier`` raises it too."""


class ReentrantCallError(MimiCoreError):
    """A command was waited for from inside the command runner: it could never finish.

    Commands run one at a time; awaiting one from a running command's effect, or blocking on
    ``dispatch(...).result()`` on the core's event-loop thread, would wait forever. Queue it
    with ``dispatch`` and do not wait, or wait from another task or thread.
    """


class WrongEventLoopError(MimiCoreError, RuntimeError):
    """The core was awaited on an event loop other than the one it was started on.

    Refused before anything is queued: nothing ran. From another thread or loop, queue the
    command with the thread-safe ``core.auth.dispatch(...)`` and await (or ``result()``) the
    future it returns, or run the call on the core's loop with
    ``asyncio.run_coroutine_threadsafe``.
    """

    def __init__(
        self,
        message: str = "this core runs on another event loop (the one it was started on); "
        "from here, queue the command with the thread-safe core.auth.dispatch(...) and await "
        "the future it returns",
    ) -> None:
        super().__init__(message)


class TransportError(MimiCoreError):
    """The identity service could not be reached, or did not answer in time.

    The underlying network error is chained as ``__cause__``.
    """


class SessionFilePathError(MimiCoreError, ValueError):
    """The path given to ``FileSessionStorage`` cannot hold the session file (a directory, or a
    path under a file)."""


class SessionLockTimeoutError(MimiCoreError, TimeoutError):
    """Another process held the session file's lock longer than the storage waits."""


class StoredSessionLostError(MimiCoreError, OSError):
    """What a storage's ``load`` raises when the session it held is gone without a log-out (a
    file removed, or found unreadable): the core writes back the session it holds. An
    ``OSError`` too, as every failure of ``load`` is: a custom ``SessionStorage`` raises it
    with the OS's ``errno`` and reason, or a message."""


class OtherOriginSessionError(MimiCoreError, OSError):
    """What a storage's ``load`` raises when the stored session (or log-out) was issued by
    another service or client than the core's (its file shared with an app on another
    server, or the app's base URL or client id changed): the core neither restores nor
    adopts it, never sends its tokens, and leaves it stored."""


class SessionStorageError(MimiCoreError):
    """The session storage could not save or clear the session (the OS error is chained as
    ``__cause__``): what the core holds in memory and what a restart would restore differ.
    ``MimiCore.start`` raises it too for a storage that cannot load the session."""


class BackendError(MimiCoreError):
    """The identity service answered with an error.

    ``code`` is the service's stable error code and ``status`` the HTTP status, when the
    backend speaks HTTP.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ClientAuthenticationError(BackendError):
    """The identity service rejected the app's client id or client secret (Firebase: its
    API key). The user is not at fault: a refresh refused so leaves the session ``DEGRADED``
    and is not retried in the background until the session changes."""


class InvalidCredentialsError(BackendError):
    """The anonymous id is unknown, or the email and password do not match."""


class SessionRevokedError(BackendError):
    """The session's token was revoked, expired, or its user deleted."""


class AccessTokenRefusedError(SessionRevokedError):
    """The service did not take the session's access token (expired by its clock, or signed
    with a key it no longer has). The core renews the session and calls once more before it
    gives up: an app sees this only when the renewed token was refused too."""


class SessionEndedError(SessionRevokedError):
    """The service ended the session on purpose: a log-out, here or everywhere (the reference
    server's refusal with reason ``revoked``). Unlike a session that expired unused, or one
    revoked for a reused refresh token (a plain ``SessionRevokedError``: a lost answer looks
    the same as a theft), its anonymous user is not logged back in by id."""


class ConflictError(BackendError):
    """The request conflicts with existing data, e.g. an email already registered."""


class AccountDisabledError(SessionRevokedError):
    """The user's account is disabled at the service: it cannot log in or renew a session."""


class RateLimitedError(BackendError):
    """The identity service refused for now: too many requests (429) or too busy (503).

    ``retry_after`` is how many seconds it asked the client to wait, when it said.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, status=status)
        self.retry_after = retry_after


class WeakPasswordError(BackendError):
    """The service refused the password as too weak (Firebase: shorter than six characters)."""


class SignInMethodDisabledError(BackendError):
    """The app's identity service has this way of signing in (anonymous, email and password)
    turned off."""
