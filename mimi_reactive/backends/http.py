"""The backend for mimi_reactive's own REST API (the reference server)."""

from .. import _exports
from ._http import HttpBackend

__all__ = ["HttpBackend"]

# Tracebacks and reprs name this public module, not the private one each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
