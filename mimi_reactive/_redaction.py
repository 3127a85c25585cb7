"""How secrets are shown in reprs: never whole."""

from __future__ import annotations

__all__ = ["mask", "mask_email"]

_VISIBLE = 4


def mask(secret: str | None) -> str:
    """Show a secret's first few characters only, enough to tell two apart in a debugger."""
    if secret is None:
        return "None"
    if len(secret) <= _VISIBLE * 2:
        return "'***'"
    return f"'{secret[:_VISIBLE]}***'"


def mask_email(email: str | None) -> str:
    """Show an email's domain and first letter: it says who the user is."""
    if email is None:
        return "None"
    local, _, domain = email.partition("@")
    return f"'{local[:1]}***@{domain}'"
