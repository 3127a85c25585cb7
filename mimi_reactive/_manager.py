"""Logging in the anonymous user an app stored beside its own account."""

from __future__ import annotations

from ._checks import core_of_the_other_kind
from ._core import MimiCore
from ._exceptions import MimiCoreError, SessionStorageError
from ._messages import AuthRoute, Skipped
from ._results import AnonymousLogInResult, Failure, Success

__all__ = ["AnonymousAuthManager"]


class AnonymousAuthManager:
    """Restores the anonymous user an app associated with its own user.

    Call it at launch with the id the app stored (or None) before showing anything that
    needs the user.
    """

    def __init__(self, core: MimiCore) -> None:
        if not isinstance(core, MimiCore):
            from ._blocking import BlockingMimiCore  # here: _blocking builds on this module

            raise TypeError(
                core_of_the_other_kind(
                    core, MimiCore, BlockingMimiCore, "BlockingAnonymousAuthManager"
                )
            )
        self._core = core

    async def authenticate_anonymous_user(self, anonymous_id: str | None) -> AnonymousLogInResult:
        """Log in ``anonymous_id`` if it is set; never raises a ``MimiCoreError``.

        ``Success`` if it is logged in now (or already was), with ``storage_error`` set if
        the storage could not keep the session; ``Skipped`` if the id is blank (None, empty,
        whitespace); ``Failure`` with the error if the route was refused or the service
        failed, or if the storage could not forget the user it replaced (nobody is logged in
        then); and ``Failure(InvalidRouteError)`` before anything changes for an id no
        service issues (whitespace around it, say). A core that cannot log in by id (made
        without ``allow_anonymous_user_only=True``, or on a backend without that route)
        refuses every id, a blank one too: ``Failure(RouteRefusedError)``, at the first
        launch rather than after a sign-up. An id that is not a ``str`` raises
        ``TypeError``.
        """
        try:
            outcome = await self._core.auth.run(AuthRoute.log_in_anonymously(anonymous_id))
        except MimiCoreError as error:  # the core is closed
            return Failure(error)
        if outcome.skipped:
            assert outcome.reason is not None  # a skip always carries the guard's reason
            return Skipped(outcome.reason)
        failed, user = outcome.error, outcome.state.user
        if isinstance(failed, SessionStorageError) and (
            anonymous_id is not None and user is not None and user.anonymous_id == anonymous_id
        ):
            return Success(anonymous_id, storage_error=failed)  # logged in, not kept
        if failed is not None:
            return Failure(failed)  # refused (a blank id too, if the core cannot log in by id)
        if anonymous_id is None:  # not reached: the guards skip or refuse None, with an error
            return Skipped()
        return Success(anonymous_id)
