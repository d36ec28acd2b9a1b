"""Errors a user can act on.

Every error repsim raises for bad input derives from :class:`RepsimError`, so the CLI can print
its message (what is wrong and what to do) without a traceback. They also derive from the
matching builtin (``ValueError``, ``FileNotFoundError``) so ordinary ``except`` clauses work.
"""

from __future__ import annotations


class RepsimError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class InputError(RepsimError, ValueError):
    """An argument has the wrong value, shape or content (NaN, mismatched sizes, ...)."""


class DataError(RepsimError):
    """A dataset cannot be used: missing (:class:`DataNotFoundError`) or unreadable
    (:class:`CorruptDataError`)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data folder or file is missing; the message says which files to put where."""


class CorruptDataError(DataError, ValueError):
    """A data file exists but cannot be read (truncated zip, bad image, ...)."""


class CheckpointError(RepsimError, ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not match the model."""
