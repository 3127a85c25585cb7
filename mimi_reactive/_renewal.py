"""How a session is renewed: by its refresh token or, for an anonymous user whose session
expired unused, by logging the user back in by id (the id is the user's long-lived
credential, the session only a lease). One rule, for a refresh and for a call that needs a
live access token (a deletion, a promotion, a log-out everywhere) alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from ._backend import AuthBackend
from ._exceptions import (
    AccessTokenRefusedError,
    InvalidCredentialsError,
    MimiCoreError,
    SessionEndedError,
    SessionRevokedError,
)
from ._log import Log
from ._messages import LogInAnonymously
from ._session import RefreshPolicy, Session
from ._values import value_eq, value_hash, value_repr

__all__ = ["CallFailed", "NotRenewedError", "Renewal", "as_failure"]

_log = Log("mimi_reactive.session")

T = TypeVar("T")


class NotRenewedError(Exception):
    """A renewal left to a later try (network trouble, a backend's bug): why, and the
    session to hold meanwhile."""

    def __init__(self, failure: MimiCoreError, held: Session) -> None:
        super().__init__(failure)
        self.failure = failure
        self.held = held


@attrs.frozen
class CallFailed:
    """A call on a live session failed: what it raised, the session it acted on last
    (renewed, if renewing spent the one before), and the error again as ``ended`` if it
    says the session is over."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: Exception
    live: Session
    ended: SessionRevokedError | None = None


class Renewal:
    """Renews sessions through a backend; keeps nothing (the caller decides what to keep)."""

    def __init__(
        self, backend: AuthBackend, policy: RefreshPolicy, clock: Callable[[], float]
    ) -> None:
        self._backend = backend
        self._policy = policy
        self._clock = clock

    async def renew(self, session: Session) -> Session:
        """New tokens for ``session``'s user, not yet kept: its refresh token renewed or, for
        an anonymous user whose session expired unused (the service refused the refresh
        token but did not end the session) or whose refused refresh token was dropped
        before, a log-in by id. Raises ``SessionRevokedError`` when the session is over and
        ``NotRenewedError`` when it is left to a later try."""
        anonymous_id = self._anonymous_id_to_log_in(session)
        if anonymous_id is None:
            return await self._refreshed(session)
        if session.tokens.refresh_token is not None:
            try:
                return await self._refreshed(session)
            except SessionRevokedError as error:
                if isinstance(error, SessionEndedError):
                    raise
                _log.info("session.expired_unused", error=type(error).__name__)
            # Dropped, so the next try (after a restart too) logs in by id at once instead
            # of presenting the refused token again.
            session = attrs.evolve(session, tokens=attrs.evolve(session.tokens, refresh_token=None))
        now = self._clock()  # before the call: a clock gone wrong spends no credential
        try:
            issued = await self._backend.authenticate(LogInAnonymously(anonymous_id), None)
            renewed = Session.issued(issued, now)
        except (InvalidCredentialsError, SessionRevokedError) as error:  # the user is gone
            raise _id_refused(error) from error
        except Exception as error:  # network trouble, a bad answer: keep the id, try later
            raise NotRenewedError(as_failure(error), session) from error
        _log.info("session.logged_back_in")
        return renewed

    async def call_live(
        self,
        session: Session,
        call: Callable[[Session], Awaitable[T]],
        renew: Callable[[Session], Awaitable[Session]],
        *,
        renew_first: bool = False,
    ) -> tuple[T, Session] | CallFailed:
        """Run ``call``, which needs an access token the service accepts (a deletion, a
        promotion, a log-out everywhere), on ``session``: renewed by ``renew`` (``renew``'s
        rule, raising as it does) first if its token is no longer handed out, and once more
        if the service refused the token all the same (a clock that was wrong, a key the
        service dropped), so the call acts on the user instead of ending the session and
        losing the id. Gives the answer and the session it acted on, or what failed and the
        session to hold (the caller keeps renewed tokens only if the call failed: otherwise
        the call changed the session). Only a renewal refused ends the session: a token the
        service has just issued and then refuses fails the call alone. ``renew_first``
        renews even a usable token, so the call acts on the user as the service has it now."""
        live = session
        renewed = False
        try:
            if renew_first or not self._policy.is_usable(session, self._clock()):
                live, renewed = await renew(session), True
            try:
                return await call(live), live
            except AccessTokenRefusedError:
                if renewed:
                    raise
                _log.info("session.access_token_refused")
                live, renewed = await renew(live), True
                return await call(live), live
        except NotRenewedError as not_renewed:
            return CallFailed(not_renewed.failure, not_renewed.held)
        except Exception as error:
            refused_fresh = renewed and isinstance(error, AccessTokenRefusedError)
            over = error if isinstance(error, SessionRevokedError) and not refused_fresh else None
            return CallFailed(error, live, over)

    async def _refreshed(self, session: Session) -> Session:
        """``session`` renewed by its refresh token (raises as ``renew`` does)."""
        now = self._clock()  # before the call: one gone wrong must not spend the token
        try:
            return Session.issued(await self._backend.refresh(session), now)
        except SessionRevokedError:
            raise
        except Exception as error:
            raise NotRenewedError(as_failure(error), session) from error

    def _anonymous_id_to_log_in(self, session: Session) -> str | None:
        """The id that logs ``session``'s user back in when the session expires unused: an
        anonymous user's, if the backend can log in by id (whatever the configuration: it is
        the core's own user coming back, not an id the app brings)."""
        user = session.user
        if not user.is_anonymous or not user.anonymous_id:
            return None
        route = LogInAnonymously(user.anonymous_id)
        return user.anonymous_id if self._backend.capabilities.supports(route) else None


def as_failure(error: Exception) -> MimiCoreError:
    """``error`` as the core reports it: a backend's own error as raised, anything else
    wrapped as the backend's bug (its cause chained)."""
    if isinstance(error, MimiCoreError):
        return error
    wrapped = MimiCoreError(f"the backend raised {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped


def _id_refused(error: MimiCoreError) -> SessionRevokedError:
    """Why a session whose anonymous id no longer logs in (the user is gone) is over."""
    ended = SessionRevokedError(
        "invalid_grant", "the session expired and its anonymous id no longer logs in"
    )
    ended.__cause__ = error
    return ended
