"""Helpers for testing your app against mimi_reactive.

- ``StateRecorder(core)`` captures every state the core publishes, for assertions;
  ``BlockingStateRecorder(core)`` does for a ``BlockingMimiCore``, waiting without asyncio.
- ``ScriptedBackend`` is an in-process identity service: pass it as ``backend=`` and script
  latency, failures and faults with ``Reply`` to drive your UI flows without a server.
- ``FailingStorage`` is a session storage whose saves and clears fail on demand, as a full
  or read-only disk's: pass it as ``storage=`` to see what your app shows then.

See docs/testing.md for examples, including virtual time with reactivex's ``TestScheduler``.
"""

from . import _exports
from ._failing_storage import FailingStorage
from ._recorder import BlockingStateRecorder, StateRecorder
from ._scripted import Reply, ScriptedBackend

__all__ = ["BlockingStateRecorder", "FailingStorage", "Reply", "ScriptedBackend", "StateRecorder"]

# Tracebacks and reprs name this public module, not the private one each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
