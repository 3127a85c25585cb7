"""Why a guard decided a command is skipped, refused or satisfied (what it wants holds)."""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.Enum):
    """The reason a guard gives for its decision; ``describe()`` is safe to show."""

    BLANK_ANONYMOUS_ID = "blank_anonymous_id"
    ANONYMOUS_ID_SURROUNDED_BY_WHITESPACE = "anonymous_id_surrounded_by_whitespace"
    ANONYMOUS_ID_TOO_LONG = "anonymous_id_too_long"
    ANONYMOUS_ID_MALFORMED = "anonymous_id_malformed"
    EMAIL_MALFORMED = "email_malformed"
    PASSWORD_EMPTY = "password_empty"  # noqa: S105 (a reason, not a password)
    ALREADY_LOGGED_IN = "already_logged_in"
    NO_USER_LOGGED_IN = "no_user_logged_in"
    ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY = "anonymous_log_in_needs_anonymous_only"
    ANONYMOUS_ONLY_FORBIDS_CREDENTIALS = "anonymous_only_forbids_credentials"
    SERVICE_ALLOWS_ONLY_ANONYMOUS = "service_allows_only_anonymous"
    SERVICE_KEEPS_USER_ANONYMOUS = "service_keeps_user_anonymous"
    PROMOTE_NEEDS_ANONYMOUS_USER = "promote_needs_anonymous_user"
    BACKEND_CANNOT = "backend_cannot"
    BACKEND_CANNOT_LOG_OUT_EVERYWHERE = "backend_cannot_log_out_everywhere"
    BACKEND_CANNOT_DELETE_ACCOUNTS = "backend_cannot_delete_accounts"
    BACKEND_CANNOT_REFRESH = "backend_cannot_refresh"
    TOKENS_FRESH = "tokens_fresh"

    def describe(self) -> str:
        """A one-line human explanation, free of secrets."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Reason.BLANK_ANONYMOUS_ID: "the anonymous id is blank; there is no user to log in",
    Reason.ANONYMOUS_ID_SURROUNDED_BY_WHITESPACE: (
        "the anonymous id has whitespace around it (a newline read with it from a file?): "
        "read it without, as it was issued"
    ),
    Reason.ANONYMOUS_ID_TOO_LONG: (
        "the anonymous id is longer than 2048 characters: no service issues such an id"
    ),
    Reason.ANONYMOUS_ID_MALFORMED: (
        "the anonymous id holds characters no service issues: only letters A-Z and a-z, "
        "digits, '_', '.' and '-'"
    ),
    Reason.EMAIL_MALFORMED: (
        "the email is not an address the identity service takes: name@domain.example, "
        "at most 254 characters and at most 64 before the @, without spaces"
    ),
    Reason.PASSWORD_EMPTY: "the password is empty: no identity service takes one",
    Reason.ALREADY_LOGGED_IN: "this user is already logged in",
    Reason.NO_USER_LOGGED_IN: "no user is logged in",
    Reason.ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY: (
        "logging in by anonymous id needs MimiConfiguration(allow_anonymous_user_only=True)"
    ),
    Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS: (
        "allow_anonymous_user_only forbids credential log-in, sign-up and promotion: "
        "an anonymous user must never become a non-anonymous one"
    ),
    Reason.SERVICE_ALLOWS_ONLY_ANONYMOUS: (
        "the identity service registers this client as anonymous-only: it refuses credential "
        "log-in, sign-up and promotion"
    ),
    Reason.SERVICE_KEEPS_USER_ANONYMOUS: (
        "the identity service keeps this user anonymous: an anonymous-only client made it or "
        "logged it in by its anonymous id, so no client may promote it"
    ),
    Reason.PROMOTE_NEEDS_ANONYMOUS_USER: "only a logged-in anonymous user can be promoted",
    Reason.BACKEND_CANNOT: "the configured backend does not support this route",
    Reason.BACKEND_CANNOT_LOG_OUT_EVERYWHERE: (
        "the configured backend cannot end every session of a user: "
        "log_out(everywhere=True) is not supported"
    ),
    Reason.BACKEND_CANNOT_DELETE_ACCOUNTS: (
        "the configured backend cannot delete accounts: delete_account() is not supported"
    ),
    Reason.BACKEND_CANNOT_REFRESH: (
        "the configured backend cannot renew a session: refresh() is not supported"
    ),
    Reason.TOKENS_FRESH: "the session's tokens do not need renewing yet",
}
