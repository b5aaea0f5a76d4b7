"""Writing files so that a crash, a kill or a full disk never leaves half of one behind."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path


def atomic_write(path: str | os.PathLike, write) -> None:
    """write(f) into a temp file in the same folder, fsync, rename over `path`: readers see the old
    file or the new one, never half. Missing parent folders are made. Raises OSError naming `path`
    (and removes the temp file) when it fails."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # mkdir's word for "a folder on the way is a file"
            raise NotADirectoryError(errno.ENOTDIR, "a folder on its path is a file", str(path)) from None
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as err:  # named by the file asked for, not by its temp file
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from None
    finally:
        with contextlib.suppress(OSError):  # a read-only folder refuses even this: the real error stands
            temp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
