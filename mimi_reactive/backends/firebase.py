"""The backend for Firebase Auth (and its emulator), over its REST APIs."""

from ._firebase import EMULATOR_HOST_VARIABLE, FirebaseBackend

__all__ = ["EMULATOR_HOST_VARIABLE", "FirebaseBackend"]
