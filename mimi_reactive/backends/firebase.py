"""The backend for Firebase Auth (and its emulator), over its REST APIs."""

from .. import _exports
from ._firebase import EMULATOR_HOST_VARIABLE, FirebaseBackend

__all__ = ["EMULATOR_HOST_VARIABLE", "FirebaseBackend"]

# Tracebacks and reprs name this public module, not the private one each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
