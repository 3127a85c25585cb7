"""``ScriptedBackend``: an in-process identity service for testing apps without a server."""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

from ._backend import BackendCapabilities, ClientCredentials
from ._checks import (
    check_seconds,
    flag,
    seconds,
    str_set,
)
from ._credential_rules import MIN_PASSWORD_LENGTH, PASSWORD_MAX_LENGTH, check_email
from ._exceptions import (
    BackendError,
    ConfigurationError,
    ConflictError,
    InvalidCredentialsError,
    SessionEndedError,
    SessionRevokedError,
    UnsupportedRouteError,
    WeakPasswordError,
)
from ._messages import AuthRoute, LogIn, LogInAnonymously, Promote, SignUp, SignUpAnonymously
from ._reasons import Reason
from ._session import AuthTokens, BackendSession, Session
from ._user import MimiUser
from ._values import value_eq, value_hash, value_repr

__all__ = ["Reply", "ScriptedBackend"]


# The name each route's call goes by in ``calls`` and ``Reply.only_for``.
_METHODS: dict[type[AuthRoute], str] = {
    SignUpAnonymously: "sign_up_anonymously",
    LogInAnonymously: "log_in_anonymously",
    LogIn: "log_in",
    SignUp: "sign_up",
    Promote: "promote",
}
_CALLS = (*_METHODS.values(), "refresh", "revoke", "delete")
"""Every name a call goes by: a ``Reply.only_for`` naming another would never answer."""

_REUSED = "a refresh token of this session was already used; the session is revoked"


def _methods(names: Iterable[str] | None) -> frozenset[str] | None:
    """``only_for`` as a set of call names; a bare string, an unknown name (a typo would
    leave the reply waiting for a call that never comes) or no name at all is refused."""
    if names is None:
        return None
    chosen = str_set("only_for", names, "('log_in',)")
    if not chosen or not chosen <= set(_CALLS):
        unknown = ", ".join(sorted(chosen - set(_CALLS))) or "none"
        raise ConfigurationError(
            f"only_for must name calls among {', '.join(_CALLS)}; unknown: {unknown}"
        )
    return chosen


def _exception(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is None or an exception instance (something ``raise`` can raise)."""
    if value is not None and not isinstance(value, BaseException):
        raise TypeError(
            f"{attribute.name} must be an exception, such as TransportError('down'), "
            f"not {type(value).__name__}"
        )


@attrs.frozen
class Reply:
    """How the backend answers one call: after ``delay`` seconds, with its normal result,
    by raising ``error`` (a ``MimiCoreError`` for a failure, anything else for a fault), or
    never (``hang``, until the caller gives up).

    A negative or infinite ``delay``, an ``error`` that is no exception, and an ``only_for``
    that is a bare string or names no call (see ``ScriptedBackend.calls``) are refused.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    delay: float = attrs.field(default=0.0, validator=seconds)
    error: BaseException | None = attrs.field(default=None, validator=_exception)
    hang: bool = attrs.field(default=False, validator=flag)
    only_for: frozenset[str] | None = attrs.field(default=None, converter=_methods)
    """Call names this reply answers (None: any); other calls pass it by."""

    @classmethod
    def succeed(cls, *, delay: float = 0.0, only_for: Iterable[str] | None = None) -> Reply:
        """Answer normally, after ``delay`` seconds."""
        return cls(delay=delay, only_for=only_for)

    @classmethod
    def fail(
        cls, error: BaseException, *, delay: float = 0.0, only_for: Iterable[str] | None = None
    ) -> Reply:
        """Raise ``error`` after ``delay`` seconds."""
        if error is None:
            raise TypeError("Reply.fail needs the error to raise (Reply.succeed answers normally)")
        return cls(delay=delay, error=error, only_for=only_for)

    @classmethod
    def never(cls, *, only_for: Iterable[str] | None = None) -> Reply:
        """Never answer: the call waits until it is cancelled."""
        return cls(hang=True, only_for=only_for)

    def answers(self, method: str) -> bool:
        """Whether this reply is for a call of ``method``."""
        return self.only_for is None or method in self.only_for


@attrs.define
class _StoredUser:
    """A user as the backend keeps them: the ``MimiUser`` it hands out (replaced, never
    changed, when the user is promoted) and their password."""

    __repr__ = value_repr

    user: MimiUser
    password: str | None = attrs.field(default=None, repr=False)


class ScriptedBackend:
    """An ``AuthBackend`` that keeps users in memory and plays back scripted replies.

    Unscripted calls behave like the reference server: anonymous sign-up creates a user,
    an unknown anonymous id or a wrong password raises ``InvalidCredentialsError``, a taken
    email ``ConflictError``. ``script(...)`` queues replies for the next calls, in order, to
    add latency, failures or faults. Refresh tokens rotate, and reusing a spent one revokes
    its session. ``calls`` lists the calls made, in order, by name: the route's
    (``"sign_up_anonymously"``, ``"log_in_anonymously"``, ``"log_in"``, ``"sign_up"``,
    ``"promote"``), ``"refresh"``, ``"revoke"`` or ``"delete"``. It can delete accounts
    unless ``capabilities`` say otherwise. Emails and passwords meet the reference server's
    rules: a malformed email raises ``InvalidRouteError`` (as ``HttpBackend`` does before
    sending), a new password under 8 characters ``WeakPasswordError``.

    Where it differs from the reference server: a spent refresh token presented again always
    revokes its session (reason reused: ``SessionRevokedError``), whereas the server takes one
    presented within its ``refresh_reuse_interval`` (while no newer token of the session was
    spent) as the retry of a lost answer and reissues a pair (the first unspent token presented
    next supersedes the others, and presenting one of those later is reuse). And it serves a
    single client with no registration of its own, so no user is anonymous-only: the server's
    refusal to promote, for any client, a user an ``anonymous_only`` client created or logged
    in by id is not played, and a promotion through the backend itself (a test playing another
    client) succeeds. Test those against the reference server.
    """

    def __init__(
        self,
        *,
        capabilities: BackendCapabilities | None = None,
        latency: float = 0.0,
        token_ttl: float | None = 3600.0,
    ) -> None:
        check_seconds("latency", latency)
        if token_ttl is not None:
            check_seconds("token_ttl", token_ttl)
        self.capabilities = capabilities or BackendCapabilities(delete=True, revoke_everywhere=True)
        self.latency = latency
        """Seconds every unscripted call takes."""
        self.token_ttl = token_ttl
        """Seconds the access tokens it issues say they live (None: no lifetime given)."""
        self.calls: list[str] = []
        self._replies: deque[Reply] = deque()
        self._families = itertools.count(1)
        self._users: dict[str, _StoredUser] = {}
        # Each session is a family of tokens; a spent refresh token used again revokes it.
        self._family_of: dict[str, str] = {}  # access or refresh token -> family
        self._user_of_family: dict[str, str] = {}
        self._spent: set[str] = set()
        self._revoked: set[str] = set()
        self._reused: set[str] = set()  # revoked for a reused token: not ended on purpose
        self.client: ClientCredentials | None = None

    def script(self, *replies: Reply) -> None:
        """Answer the next calls with ``replies``, one each, in order (a reply limited with
        ``only_for`` waits for a call of one of its methods)."""
        self._replies.extend(replies)

    def add_anonymous_user(self) -> MimiUser:
        """Create an anonymous user directly (as another device would) and return it."""
        return self._new_user().user

    def origin(self, client: ClientCredentials) -> str:
        """The same for every scripted backend: they all play one service."""
        return "scripted"

    async def open(self, client: ClientCredentials) -> None:
        self.client = client

    async def close(self) -> None:
        pass

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        method = _METHODS[type(route)]
        if self._called(method):
            await self._answer(method)
        match route:
            case SignUpAnonymously():
                return self._session_for(self._new_user())
            case LogInAnonymously(anonymous_id=anonymous_id):
                return self._log_in_anonymously(anonymous_id)
            case LogIn(email=email, password=password):
                return self._log_in(email, password)
            case SignUp(email=email, password=password):
                return self._sign_up(email, password)
            case Promote(email=email, password=password) if session is not None:
                return self._promote(session, email, password)
        raise UnsupportedRouteError(Reason.BACKEND_CANNOT)

    async def refresh(self, session: Session) -> BackendSession:
        if self._called("refresh"):
            await self._answer("refresh")
        token = session.tokens.refresh_token or ""
        family = self._live_family(token)
        if token in self._spent:
            self._revoked.add(family)
            self._reused.add(family)
            raise SessionRevokedError("invalid_grant", _REUSED)
        self._spent.add(token)
        user = self._users[self._user_of_family[family]]
        return self._session_for(user, family)

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        if self._called("revoke"):
            await self._answer("revoke")
        family = self._family_of.get(session.tokens.access_token)
        if family is None:
            return
        if everywhere:
            user_id = self._user_of_family[family]
            self._revoked.update(f for f, u in self._user_of_family.items() if u == user_id)
        else:
            self._revoked.add(family)

    async def delete(self, session: Session) -> None:
        if self._called("delete"):
            await self._answer("delete")
        family = self._live_family(session.tokens.access_token)
        user_id = self._user_of_family[family]
        del self._users[user_id]
        self._revoked.update(f for f, u in self._user_of_family.items() if u == user_id)

    def _log_in_anonymously(self, anonymous_id: str | None) -> BackendSession:
        for stored in self._users.values():
            if anonymous_id is not None and stored.user.anonymous_id == anonymous_id:
                return self._session_for(stored)
        raise InvalidCredentialsError("invalid_anonymous_id", "no anonymous user has this id")

    def _log_in(self, email: str, password: str) -> BackendSession:
        _check_credentials(email, password, new=False)
        user = self._by_email(email)
        if user is None or not secrets.compare_digest(user.password or "", password):
            raise InvalidCredentialsError("invalid_credentials", "the email or password is wrong")
        return self._session_for(user)

    def _sign_up(self, email: str, password: str) -> BackendSession:
        _check_credentials(email, password, new=True)
        self._ensure_email_free(email)
        user = self._new_user(email=email.strip().lower())
        user.password = password
        return self._session_for(user)

    def _promote(self, session: Session, email: str, password: str) -> BackendSession:
        _check_credentials(email, password, new=True)
        family = self._live_family(session.tokens.access_token)
        stored = self._users[self._user_of_family[family]]
        if not stored.user.is_anonymous:
            raise ConflictError("not_anonymous", "only an anonymous user can be promoted")
        self._ensure_email_free(email)
        stored.user = MimiUser(stored.user.id, None, False, email.strip().lower())
        stored.password = password
        return BackendSession(stored.user, session.tokens)

    def _called(self, method: str) -> bool:
        """Record a call of ``method``; whether it waits or fails as scripted (``_answer``):
        most calls find no reply scripted and no latency, and answer at once."""
        self.calls.append(method)
        return bool(self._replies or self.latency)

    async def _answer(self, method: str) -> None:
        replies = self._replies
        reply = next((r for r in replies if r.answers(method)), None) if replies else None
        if reply is None:  # answered as scripted by default: after ``latency``, normally
            if self.latency:
                await asyncio.sleep(self.latency)
            return
        self._replies.remove(reply)
        if reply.hang:
            await asyncio.Event().wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            raise reply.error

    def _new_user(self, *, email: str | None = None) -> _StoredUser:
        """A new user: anonymous, or signed up with ``email``."""
        user_id = str(uuid.uuid4())
        if email is None:
            user = MimiUser(user_id, secrets.token_urlsafe(32))
        else:
            user = MimiUser(user_id, None, False, email)
        self._users[user_id] = stored = _StoredUser(user)
        return stored

    def _by_email(self, email: str) -> _StoredUser | None:
        wanted = email.strip().lower()
        return next((u for u in self._users.values() if u.user.email == wanted), None)

    def _ensure_email_free(self, email: str) -> None:
        if self._by_email(email) is not None:
            raise ConflictError("email_taken", "this email is already registered")

    def _live_family(self, token: str) -> str:
        family = self._family_of.get(token)
        if family is None:
            raise SessionRevokedError("invalid_grant", "the session is not valid")
        if family in self._reused:  # as the reference server: its reason is reused, not revoked
            raise SessionRevokedError("invalid_grant", _REUSED)
        if family in self._revoked:  # ended on purpose, as the reference server says
            raise SessionEndedError("invalid_grant", "the session was revoked")
        return family

    def _session_for(self, user: _StoredUser, family: str | None = None) -> BackendSession:
        family = family or f"family-{next(self._families)}"  # opaque, never sent
        access_token, refresh_token = _token_pair()
        tokens = AuthTokens(access_token, refresh_token, self.token_ttl)
        self._user_of_family[family] = user.user.id
        self._family_of[tokens.access_token] = family
        self._family_of[tokens.refresh_token or ""] = family
        return BackendSession(user.user, tokens)


def _token_pair() -> tuple[str, str]:
    """An access token and a refresh token: 43 URL-safe characters each, as
    ``secrets.token_urlsafe(32)`` makes, cut from one draw of 64 random bytes (a draw and an
    encoding each cost more than the cut)."""
    drawn = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode("ascii")
    return drawn[:43], drawn[43:86]


def _check_credentials(email: str, password: str, *, new: bool) -> None:
    """Refuse what the reference server refuses: a malformed email (the guards refuse it
    before any backend is called), a password it cannot take, and a new one that is too
    short."""
    check_email(email)
    if new and len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            "weak_password", f"'password' must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if not 1 <= len(password) <= PASSWORD_MAX_LENGTH:
        raise BackendError(
            "invalid_request", f"'password' must have 1 to {PASSWORD_MAX_LENGTH} characters"
        )
