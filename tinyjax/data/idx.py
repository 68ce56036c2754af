"""The IDX file format of MNIST-style datasets: read, write, check.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):
a 4-byte magic number ``00 00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in C order. MNIST uses dtype 0x08 (unsigned byte):
images are magic 2051 (ndim 3) and labels magic 2049 (ndim 1). Files may be
gzip-compressed (``.gz``), as they are distributed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from tinyjax.common import atomic_write
from tinyjax.data.errors import DataError

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


class IDXFormatError(DataError):
    """An IDX file is malformed: bad gzip data, wrong magic number, wrong rank,
    or truncated."""


def _open(path: str | os.PathLike, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Reads an IDX file (optionally ``.gz``) into a numpy array.

    Args:
      path: the file; gzip-compressed when its name ends in ``.gz``.
      ndim: expected rank (3 for MNIST images, 1 for labels); checked against
        the magic number when given.

    Returns:
      The array in native byte order, e.g. ``uint8 [60000, 28, 28]`` for
      MNIST train images.

    Raises:
      IDXFormatError: a ``.gz`` file is not gzip data or its stream ends early
        (``gzip.BadGzipFile``, ``EOFError`` and ``zlib.error`` become this);
        the magic number is not ``00 00 <known dtype> <ndim>``; the rank
        differs from ``ndim``; or the file holds fewer bytes than its header
        promises (truncated download) or more (not an IDX file).
      OSError: the file cannot be opened or read (missing, no permission).
    """
    try:
        with _open(path, "rb") as f:
            raw = f.read()
    except EOFError as e:
        raise IDXFormatError(
            f"{path}: the gzip stream ends early (truncated download?); "
            "re-download the file.") from e
    except (gzip.BadGzipFile, zlib.error) as e:
        raise IDXFormatError(
            f"{path}: not valid gzip data ({' '.join(str(e).split())}); "
            "re-download the file.") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IDXFormatError(
            f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}; "
            "expected 0000<dtype><ndim>, e.g. 00000803 for MNIST images. "
            "Re-download the file.")
    dtype, rank = _DTYPES[raw[2]], raw[3]
    if ndim is not None and rank != ndim:
        raise IDXFormatError(
            f"{path}: IDX rank {rank}, expected {ndim} "
            "(images are rank 3, labels rank 1); is it the right file?")
    header = 4 + 4 * rank
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated IDX header; re-download the file.")
    shape = struct.unpack(f">{rank}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise IDXFormatError(
            f"{path}: IDX file {what}: header {shape} needs {expected} data "
            f"bytes, found {got}; re-download the file.")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file (gzip-compressed if ``path`` ends in ``.gz``).

    The write goes to a temporary file renamed into place, so a reader never
    sees a half-written file.

    Raises:
      ValueError: the dtype has no IDX code (use uint8, int8, int16, int32,
        float32 or float64).
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"dtype {array.dtype} has no IDX code; cast to uint8 first.")
    path = os.fspath(path)

    def write(tmp: str) -> None:  # gzip or not by the final name, not the temporary one.
        with gzip.open(tmp, "wb") if path.endswith(".gz") else open(tmp, "wb") as f:
            f.write(bytes([0, 0, code, array.ndim]))
            f.write(struct.pack(f">{array.ndim}I", *array.shape))
            f.write(array.astype(_DTYPES[code], copy=False).tobytes())
    atomic_write(path, write)
