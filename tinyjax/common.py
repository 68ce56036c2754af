"""What every layer of tinyjax shares: the one-line error text and the atomic file write."""

from __future__ import annotations

import os
from typing import Callable


def one_line(e: BaseException, limit: int = 300) -> str:
    """``TypeName: message`` of an exception on one line (whitespace collapsed), at most ``limit``
    characters: what an error message quotes of a library's exception."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp)`` to write a file at a temporary path beside ``path``, then renames it into
    place (``os.replace``, atomic on POSIX): a reader, or a run killed meanwhile, never sees half a
    file. The temporary file is removed if ``write`` fails.

    Raises:
      whatever ``write`` raises, and OSError from the rename.
    """
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".tmp{os.getpid()}-{os.path.basename(path)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
