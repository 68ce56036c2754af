"""What every layer of tinyjax shares: its version, the one-line error text, the "did you mean" of a
name, and the atomic file write."""

from __future__ import annotations

import os
from typing import Callable

VERSION = "0.1.0"  # tinyjax.__version__; pyproject.toml's version (tests/test_package.py holds them equal).


def one_line(e: BaseException, limit: int = 300) -> str:
    """``TypeName: message`` of an exception on one line (whitespace collapsed), at most ``limit``
    characters: what an error message quotes of a library's exception."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]


def closest(name: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to ``name``, or ``""``."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


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
