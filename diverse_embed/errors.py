"""The errors a user can meet, each saying what is wrong in one line. Torch-free, so the command
line can catch them all before anything heavy is loaded: every one of them is exit code 2."""

from __future__ import annotations

import os


class AudioLoadError(ValueError):
    """An audio file or array that cannot be embedded. `source` names the file (or "array")."""

    def __init__(self, source: str | os.PathLike, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # crosses process boundaries (the training cache's decoding processes) intact
        return type(self), (self.source, self.reason)


class CheckpointError(ValueError):
    """A model that cannot be loaded as named: missing, not found, or weights that do not fit its config."""


class AudioIndexError(RuntimeError):
    """An index folder that cannot be used as asked (missing, foreign, damaged, another model)."""


class DataError(ValueError):
    """Training or evaluation data that cannot be used as asked (a missing setting, an empty split)."""


class TableError(ValueError):
    """A Parquet table that cannot be read as embed's rows (not Parquet, a column missing)."""


class CommandError(Exception):
    """What the user asked cannot be done; the message says why."""


USER_ERRORS = (AudioLoadError, CheckpointError, AudioIndexError, DataError, TableError, CommandError, FileNotFoundError)
