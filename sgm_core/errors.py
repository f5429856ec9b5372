"""Typed errors raised at the edges of the core: one clear sentence each.

The CLI maps every `SGMError` to exit code 2 and prints its message; the GUI shows it in a dialog.
"""


class SGMError(Exception):
    """Base class for user-facing errors (bad input, bad config, diverged training)."""


class DataError(SGMError):
    """The data cannot be used: unreadable file, wrong shape, NaN/Inf, too few points."""


class ConfigError(SGMError):
    """A setting is unknown or out of range."""


class TrainingDiverged(SGMError):
    """The loss became NaN/Inf; the trainer has restored the last good weights."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class SessionError(SGMError):
    """A session or run directory is missing, corrupt, or of a foreign/unknown format."""
