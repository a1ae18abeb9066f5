"""One exception hierarchy for the whole library (librosa style).

Every error a user can cause is an :class:`XaiError`; the UI catches that base class and
shows its message, so messages name the bad value and what would be accepted.
"""

from __future__ import annotations


class XaiError(Exception):
    """Base class of every error raised on purpose by ``xai_core``."""


class ParameterError(XaiError, ValueError):
    """A bad argument or input: an impossible hyper-parameter, unreadable audio, ...

    The message always names the offending value (and the file, for file input).
    """


class CheckpointError(XaiError, ValueError):
    """A malformed, incompatible or unsafe checkpoint / bundle."""


class DataError(XaiError, ValueError):
    """A dataset that does not follow the expected layout."""


class CancelledError(XaiError):
    """A long computation was cancelled through its callback."""


class StoreError(XaiError):
    """A run store that cannot be used as asked: an unreadable or damaged database, a missing or
    damaged run file, a run folder that cannot be written, an unknown run id."""


class OutputError(XaiError):
    """An output path that is refused or cannot be written: a symbolic link, a folder that cannot be
    created or written to. (Overwriting an existing file without ``--force`` is a usage error,
    :class:`ParameterError`.)"""
