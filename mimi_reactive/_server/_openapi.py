"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they use.

``OPERATIONS`` is the one list of routes: the app registers exactly these, and the document
describes exactly these, so neither can drift from the other.
"""

from __future__ import annotations

from typing import Any

import attrs
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from . import _models as models

__all__ = ["OPERATIONS", "Operation", "openapi_document"]

_BODY_ERRORS = {
    "400": "the body is not valid JSON, not an object, or a field is missing or refused"
    " (code invalid_request; weak_password, unsupported_grant_type where noted)",
    "408": "the body did not arrive within 10 s of the headers (request_timeout); the"
    " connection is closed",
    "413": "the body is larger than 64 KiB (request_too_large)",
    "415": "the body is not application/json in UTF-8, or comes compressed or in a transfer"
    " coding other than chunked (unsupported_media_type)",
}
_ALWAYS = {
    "405": "the path has no such method (method_not_allowed); Allow lists those it has",
    "500": "the server failed (internal_error); nothing about the request is told",
}


@attrs.frozen
class Operation:
    """One route: what it takes, what it answers, and where its answer leads."""

    name: str
    method: str
    path: str
    summary: str
    answer: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    errors: dict[str, str] = attrs.field(factory=dict)
    links: dict[str, Any] = attrs.field(factory=dict)
    public: bool = False


def _links_from_session() -> dict[str, Any]:
    """Where a fresh session leads: the stateful sequences schemathesis follows."""
    refresh = "$response.body#/session/refresh_token"
    access = "$response.body#/session/access_token"
    return {
        "RefreshSession": {
            "operationId": "refreshSession",
            "requestBody": {"grant_type": "refresh_token", "refresh_token": refresh},
        },
        "IntrospectToken": {"operationId": "introspectToken", "requestBody": {"token": access}},
        "RevokeSession": {"operationId": "revokeSession", "requestBody": {"token": refresh}},
        "RevokeAllSessions": {
            "operationId": "revokeAllSessions",
            "requestBody": {"access_token": access},
        },
        "DeleteUser": {"operationId": "deleteUser", "requestBody": {"access_token": access}},
    }


_STORAGE_FAILED = (
    "the rate-limit storage or the database does not answer in time or fails"
    " (temporarily_unavailable); Retry-After says when to try again"
)
_CLIENT = {
    "401": "the client id or secret is missing or wrong (invalid_client; WWW-Authenticate: Basic)",
    "429": "this client IP sent too many wrong client secrets, anonymous ids or passwords, or"
    " emails already taken (rate_limited); Retry-After says when to try again",
    "503": _STORAGE_FAILED,
}
_CREDENTIAL_ROUTE = {
    "403": "this client is anonymous-only: it may not use credentials (route_not_allowed,"
    " reason anonymous_only_client)",
    "503": "every password-hashing worker is busy (server_busy), or " + _STORAGE_FAILED,
}
_BAD_BEARER = (
    "invalid_client, or the access token is forged, has expired, belongs to a session that"
    " ended or to another client (invalid_token; WWW-Authenticate: Bearer"
    ' error="invalid_token"); the one a refresh replaced is valid until it expires'
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "health",
        "GET",
        "/health",
        "Liveness probe: the process answers (it touches no database, so an outage of the"
        " database does not get the process restarted)",
        models.Health,
        public=True,
    ),
    Operation(
        "ready",
        "GET",
        "/ready",
        "Readiness probe: the database answers a trivial query within storage_timeout and is"
        " the one the server opened (a SQLite file removed or replaced is not), and while any"
        " rate limit is on the rate-limit storage takes a write within it too",
        models.Readiness,
        errors={
            "503": "the database does not answer, fails, or is not the one opened, or the"
            " rate-limit storage does not answer or fails (temporarily_unavailable);"
            " Retry-After says when to try again"
        },
        public=True,
    ),
    Operation("openapi", "GET", "/openapi.json", "This document", models.Document, public=True),
    Operation(
        "jwks",
        "GET",
        "/.well-known/jwks.json",
        "The public keys that verify access tokens (ES256 JWTs): the signing key, and during a"
        " rotation the one before it",
        models.Jwks,
        errors={
            "503": "the database, read for keys added since, does not answer in time or"
            " fails (temporarily_unavailable); Retry-After says when to try again"
        },
        public=True,
    ),
    Operation(
        "createAnonymousUser",
        "POST",
        "/v1/anonymous-users",
        "Create an anonymous user and a session for it. The answer is the only time its"
        " anonymous_id is sent.",
        models.SignedIn,
        status=201,
        body=models.AnonymousSignUp,
        errors={
            "429": "this client IP created too many anonymous users this hour, or sent too"
            " many wrong secrets (rate_limited); Retry-After says when to try again"
        },
        links={
            **_links_from_session(),
            "LogInAnonymously": {
                "operationId": "logInAnonymously",
                "requestBody": {"anonymous_id": "$response.body#/user/anonymous_id"},
            },
        },
    ),
    Operation(
        "logInAnonymously",
        "POST",
        "/v1/sessions/anonymous",
        "Log in the anonymous user an anonymous_id belongs to",
        models.SignedIn,
        body=models.AnonymousLogIn,
        errors={"400": _BODY_ERRORS["400"] + ", or no anonymous user has this id (invalid_grant)"},
        links=_links_from_session(),
    ),
    Operation(
        "signUp",
        "POST",
        "/v1/users",
        "Create a credential user and a session for it",
        models.SignedIn,
        status=201,
        body=models.Credentials,
        errors={
            "409": "the email is registered already (email_taken; counted as a failed log-in)",
            "429": "this client IP asked for too many credential sign-ups this hour, or sent too"
            " many wrong secrets, passwords or taken emails (rate_limited); Retry-After says"
            " when to try again",
            **_CREDENTIAL_ROUTE,
        },
        links=_links_from_session(),
    ),
    Operation(
        "logIn",
        "POST",
        "/v1/sessions",
        "Log in a credential user",
        models.SignedIn,
        body=models.LogIn,
        errors={
            "400": _BODY_ERRORS["400"] + ", or the email or password is wrong (invalid_grant)",
            **_CREDENTIAL_ROUTE,
        },
        links=_links_from_session(),
    ),
    Operation(
        "promote",
        "POST",
        "/v1/users/promote",
        "Give the anonymous user of a session an email and password; the user id stays the"
        " same and the anonymous id stops working. The answer holds a new access token of the"
        " same session (is_anonymous false); the refresh token goes on",
        models.Promoted,
        body=models.Promotion,
        errors={
            "401": _BAD_BEARER,
            "409": "the user is not anonymous (not_anonymous) or the email is taken"
            " (email_taken; counted as a failed log-in)",
            **_CREDENTIAL_ROUTE,
        },
    ),
    Operation(
        "deleteUser",
        "POST",
        "/v1/users/delete",
        "Delete the user the access token belongs to (anonymous or not), with every session"
        " and token: its anonymous id and refresh tokens stop working at once. Signed access"
        " tokens already issued verify offline until they expire; introspection sees the"
        " deletion at once.",
        models.Empty,
        body=models.Deletion,
        errors={"401": _BAD_BEARER},
    ),
    Operation(
        "revokeAllSessions",
        "POST",
        "/v1/sessions/revoke-all",
        "Log out everywhere: revoke every session of the user the access token belongs to,"
        " this one included. Their refresh tokens are refused from now on (invalid_grant).",
        models.RevokedEverywhere,
        body=models.RevocationEverywhere,
        errors={"401": _BAD_BEARER},
    ),
    Operation(
        "revokeSession",
        "POST",
        "/v1/sessions/revoke",
        "Revoke the session a refresh token (current or spent) or a valid access token (the"
        " one a refresh replaced included) belongs to. As RFC 7009, the same answer for a"
        " token it does not act on: forged, expired, of an ended session, or unknown",
        models.Empty,
        body=models.Revocation,
        errors={
            "400": _BODY_ERRORS["400"] + ", or the token was issued to another client, whose"
            " session it does not end (unauthorized_client, RFC 7009 section 2.1)"
        },
    ),
    Operation(
        "refreshSession",
        "POST",
        "/v1/token",
        "Exchange a refresh token for a new pair. Every use rotates the refresh token;"
        " presenting a spent one again within the reuse interval (a retry after a lost"
        " answer) gets a new pair of the same session, and after it revokes the whole session"
        " (OAuth 2.0 Security BCP). A session unused for longer than the idle timeout cannot"
        " be refreshed.",
        models.SignedIn,
        body=models.RefreshGrant,
        errors={
            "400": "invalid_request, unsupported_grant_type, or invalid_grant (its reason:"
            " unknown, revoked, reused or idle)"
        },
        links=_links_from_session(),
    ),
    Operation(
        "introspectToken",
        "POST",
        "/v1/token/introspect",
        "Whether an access token is valid now (as RFC 7662); counts as use of its session. A"
        " token issued to another client is inactive to this one",
        models.Introspection,
        body=models.TokenQuery,
    ),
)


class _EcmaPatterns(GenerateJsonSchema):
    """Patterns in JSON Schema's dialect (ECMA-262): the models' Python ``\\Z`` (the true
    end) is ``$`` there."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        generated = super().str_schema(schema)
        pattern = generated.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("\\Z"):
            generated["pattern"] = pattern.removesuffix("\\Z") + "$"
        return generated


def openapi_document() -> dict[str, Any]:
    """The document ``GET /openapi.json`` serves."""
    entries = [(op.answer, "serialization") for op in OPERATIONS]
    entries += [(op.body, "validation") for op in OPERATIONS if op.body is not None]
    entries.append((models.ErrorAnswer, "serialization"))
    refs, definitions = models_json_schema(
        entries,  # type: ignore[arg-type]
        ref_template="#/components/schemas/{model}",
        schema_generator=_EcmaPatterns,
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mimi_reactive reference identity service",
            "version": "1",
            "description": "Anonymous-first identity service. Every operation but /health,"
            " /ready, /openapi.json and /.well-known/jwks.json (which also answer HEAD)"
            " authenticates"
            " the app's client with HTTP Basic (client id and client secret); an unknown path"
            " is 404 and an unknown method 405 without it. User tokens travel in JSON bodies"
            " so the Authorization header stays the client's. The server stores digests of"
            " anonymous ids and tokens. Access tokens are ES256 JWTs that"
            " /.well-known/jwks.json verifies.",
        },
        "security": [{"client": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "client": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client id and client secret",
                }
            },
            "schemas": definitions["$defs"],
        },
    }


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    error_ref = refs[(models.ErrorAnswer, "serialization")]
    answer: dict[str, Any] = {
        "description": op.answer.__doc__ or "",
        "content": {"application/json": {"schema": refs[(op.answer, "serialization")]}},
    }
    if op.links:
        answer["links"] = op.links
    responses: dict[str, Any] = {str(op.status): answer}
    errors = dict(_ALWAYS)
    if not op.public:
        errors |= _CLIENT | _BODY_ERRORS
    errors |= op.errors
    for status, description in sorted(errors.items()):
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": error_ref}},
        }
        if status == "405":
            response["headers"] = {"Allow": {"required": True, "schema": {"type": "string"}}}
        if status == "401":
            response["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
            }
        if status in ("429", "503"):
            response["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string"}}}
        responses[status] = response
    operation: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "responses": responses,
    }
    if op.public:
        operation["security"] = []
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    return operation
