"""The backend for mimi_reactive's own REST API (the reference server)."""

from ._http import HttpBackend

__all__ = ["HttpBackend"]
