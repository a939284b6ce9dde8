# SPDX-License-Identifier: MIT
"""Errors of libshmkeeper as OSError subclasses.

Every failure of the library comes back as an instance of Error, with
``errno`` (positive, as in OSError) and ``strerror`` the library's own
sentence naming the object and the cause (shmk_last_error()).  Where Python
has a builtin OSError subclass for the errno, the exception is also an
instance of it: an existing name is both ``shmkeeper.Error`` and
``FileExistsError``, a missing one ``FileNotFoundError``, and so on.
"""
import builtins
import os

from . import _lib


class Error(OSError):
    """An error of libshmkeeper: .errno and the library's sentence as
    .strerror."""


def _subclass(builtin):
    return type(builtin.__name__, (Error, builtin), {
        "__module__": __name__,
        "__doc__": "Error whose errno Python maps to %s." % builtin.__name__,
    })


# Python's own errno -> subclass mapping (PEP 3151), asked of OSError itself
# so that it is the interpreter's, not a copy.
_BUILTINS = (builtins.BlockingIOError, builtins.ChildProcessError,
             builtins.ConnectionError, builtins.BrokenPipeError,
             builtins.ConnectionAbortedError, builtins.ConnectionRefusedError,
             builtins.ConnectionResetError, builtins.FileExistsError,
             builtins.FileNotFoundError, builtins.InterruptedError,
             builtins.IsADirectoryError, builtins.NotADirectoryError,
             builtins.PermissionError, builtins.ProcessLookupError,
             builtins.TimeoutError)
_CLASSES = {b: _subclass(b) for b in _BUILTINS}
# shmkeeper.errors.FileExistsError etc., for whoever wants to name them;
# not in __all__, so that "import *" cannot shadow the builtins.
globals().update({b.__name__: c for b, c in _CLASSES.items()})
__all__ = ["Error"]


def error(code, sentence=None):
    """The exception for a negative (or positive) errno and a sentence
    (default: the calling thread's shmk_last_error())."""
    code = abs(code)
    if sentence is None:
        sentence = _lib.last_error() or os.strerror(code)
    cls = _CLASSES.get(type(OSError(code, "")), Error)
    return cls(code, sentence)


def check(rc):
    """rc if it is not negative, else raises error(rc).  Must be called on
    the thread that made the call, before any other library call."""
    if rc < 0:
        raise error(rc)
    return rc
