"""Hypothesis strategies for the core's values."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from hypothesis import strategies as st

from mimi_reactive import (
    AuthRoute,
    AuthTokens,
    BackendCapabilities,
    LogOut,
    MimiConfiguration,
    MimiUser,
    RefreshPolicy,
    Session,
    SessionState,
    Transition,
)
from mimi_reactive._backend import ALL_ROUTES
from mimi_reactive._checks import LATEST_INSTANT, LONGEST_LIFETIME
from mimi_reactive._messages import Command, DeleteAccount, RefreshSession, SyncSession


def session_for(
    user: MimiUser, obtained_at: float = 0.0, expires_in: float | None = 3600.0
) -> Session:
    """A session of ``user`` whose tokens last ``expires_in`` seconds (an hour; None: they
    never expire)."""
    return Session(user, AuthTokens("access-token", "refresh-token", expires_in), obtained_at)


def session_of(user: MimiUser | None) -> Session | None:
    """The session behind a state whose user is ``user`` (None: nobody logged in)."""
    return None if user is None else session_for(user)


secrets_ = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=16,
    max_size=43,
)
# Every id the reference server's format allows (what the route must take).
issuable_anonymous_ids = st.from_regex(r"\A[A-Za-z0-9_.-]{1,2048}\Z")
# The ids backends issue: any the server's format allows, and the scripted backend's and the
# server's own (token_urlsafe) of any length.
issued_anonymous_ids = st.one_of(
    issuable_anonymous_ids, st.builds(secrets.token_urlsafe, st.integers(1, 1500))
)
# What an app may pass as an anonymous id: any text, and issuable ids read with a newline.
offered_anonymous_ids = st.text(min_size=1) | issuable_anonymous_ids.map(lambda id_: id_ + "\n")
# Ways to spoil an issued id so that no service would have issued it.
SPOILT_ANONYMOUS_IDS: dict[str, Callable[[str], str]] = {
    "a newline read with it": lambda id_: id_ + "\n",
    "a space before it": lambda id_: " " + id_,
    "a tab inside it": lambda id_: id_[:4] + "\t" + id_[4:],
    "over 2048 characters": lambda id_: (id_ * 2500)[:100_000],
    "an accented letter": lambda id_: id_[:-1] + "\u00e9",
    "a NUL": lambda id_: id_[:4] + "\x00" + id_[4:],
    "a slash": lambda id_: id_[:4] + "/" + id_[4:],
}
blank_ids = st.one_of(st.none(), st.text(alphabet=" \t\n\r", max_size=4))
emails = st.builds(
    lambda local, domain: f"{local}@{domain}.test",
    st.text(alphabet="abcdefghij", min_size=1, max_size=8),
    st.text(alphabet="klmnopqrst", min_size=1, max_size=8),
)
passwords = st.text(min_size=8, max_size=20)
# Emails at the edges of the rule: a local part of the dot-atom's alphabet of 0 to 80
# characters, as often as not 63 to 65 (64 at most is taken), or one with a character no
# email may hold; a domain of one to four labels, up to 254 characters in all.
_LOCAL_CHARACTERS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-"
_local_parts = st.one_of(
    (st.sampled_from([63, 64, 65]) | st.integers(0, 80)).flatmap(
        lambda n: st.text(alphabet=_LOCAL_CHARACTERS, min_size=n, max_size=n)
    ),
    st.text(alphabet=_LOCAL_CHARACTERS + " \u00e9@", max_size=70),
)
edge_emails = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    _local_parts,
    st.lists(st.text(alphabet="ab9-", min_size=1, max_size=63), min_size=1, max_size=4),
)

anonymous_users = st.builds(
    MimiUser,
    id=st.uuids().map(str),
    anonymous_id=secrets_,
    is_anonymous=st.just(True),
    email=st.none(),
)
credential_users = st.builds(
    MimiUser,
    id=st.uuids().map(str),
    anonymous_id=st.none(),
    is_anonymous=st.just(False),
    email=emails,
)
users = st.one_of(anonymous_users, credential_users)

logged_in_states = st.builds(
    SessionState,
    user=users,
    previous_user=st.one_of(st.none(), users),
    transition=st.sampled_from(
        [
            Transition.LOGGED_IN,
            Transition.ANONYMOUS_CREATED,
            Transition.SWITCHED_USER,
            Transition.PROMOTED,
        ]
    ),
)
states = st.one_of(
    st.just(SessionState()),
    st.builds(
        SessionState,
        user=st.none(),
        previous_user=st.one_of(st.none(), users),
        transition=st.sampled_from([Transition.LOGGED_OUT, Transition.FAILED]),
    ),
    logged_in_states,
)

routes = st.one_of(
    st.just(AuthRoute.sign_up_anonymously()),
    st.builds(AuthRoute.log_in_anonymously, st.one_of(secrets_, blank_ids)),
    st.builds(lambda e, p: AuthRoute.log_in(email=e, password=p), emails, passwords),
    st.builds(lambda e, p: AuthRoute.sign_up(email=e, password=p), emails, passwords),
    st.builds(lambda e, p: AuthRoute.promote(email=e, password=p), emails, passwords),
)
commands: st.SearchStrategy[AuthRoute | LogOut] = st.one_of(routes, st.just(LogOut()))
every_command: st.SearchStrategy[Command] = st.one_of(
    routes,
    st.builds(LogOut, everywhere=st.booleans()),
    st.just(DeleteAccount()),
    st.builds(RefreshSession, force=st.booleans()),
    st.just(SyncSession()),
)
configurations = st.builds(MimiConfiguration, allow_anonymous_user_only=st.booleans())
capabilities = st.builds(
    BackendCapabilities,
    routes=st.frozensets(st.sampled_from(sorted(ALL_ROUTES, key=lambda r: r.__name__))),
    refresh=st.booleans(),
    revoke=st.booleans(),
    revoke_everywhere=st.booleans(),
    delete=st.booleans(),
)

# Token lifetimes from none to years, sessions obtained at any time, and refresh policies.
lifetimes = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e8))
# Lifetimes of a second or more (up to four months): tokens that can be handed out.
lasting_lifetimes = st.floats(min_value=1.0, max_value=1e7)
# Wall-clock instants, from the epoch to past the year 2100.
instants = st.floats(min_value=0.0, max_value=5e9)
# How far a clock was set back: from a millisecond to decades.
clock_set_backs = st.floats(min_value=1e-3, max_value=1e9)
# Seconds since a session_for session came: up to twice its hour-long tokens.
session_ages = st.floats(min_value=0.0, max_value=7200.0)
timed_sessions = st.builds(
    lambda user, expires_in, obtained_at: Session(
        user, AuthTokens("access-token", "refresh-token", expires_in), obtained_at
    ),
    users,
    lifetimes,
    st.floats(min_value=0.0, max_value=4e9),
)
refresh_policies = st.builds(
    RefreshPolicy,
    ahead=st.floats(min_value=0.0, max_value=0.99),
    leeway=st.floats(min_value=0.0, max_value=3600.0),
    min_interval=st.floats(min_value=0.01, max_value=60.0),
)

# The fields of a session (user, tokens, obtained_at), as keyword arguments of the values.
SessionFields = tuple[dict[str, object], dict[str, object], object]


def session_fields(
    text: st.SearchStrategy[object],
    optional: st.SearchStrategy[object],
    flag: st.SearchStrategy[object],
    lifetime: st.SearchStrategy[object],
    instant: st.SearchStrategy[object],
) -> st.SearchStrategy[SessionFields]:
    """A session's fields, each drawn from the strategy for its kind."""
    return st.tuples(
        st.fixed_dictionaries(
            {"id": text, "anonymous_id": optional, "is_anonymous": flag, "email": optional}
        ),
        st.fixed_dictionaries(
            {"access_token": text, "refresh_token": optional, "expires_in": lifetime}
        ),
        instant,
    )


# Any text, lone surrogates included; lifetimes and times as ints or floats up to the bounds.
any_text = st.text(st.characters(exclude_categories=()))
valid_session_fields = session_fields(
    any_text,
    st.none() | any_text,
    st.booleans(),
    st.none() | st.integers(0, int(LONGEST_LIFETIME)) | st.floats(0.0, LONGEST_LIFETIME),
    st.integers(0, int(LATEST_INSTANT)) | st.floats(0.0, LATEST_INSTANT),
)
# What a backend copying the service's JSON as it came (or a clock gone wrong) may pass.
json_values = (
    st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.lists(st.integers())
)
json_session_fields = session_fields(
    json_values, json_values, json_values, json_values, json_values
)
