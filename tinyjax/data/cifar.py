"""CIFAR-10 on local disk. Layouts looked for in each data root, in this order
(a root may also be the dataset folder, or the tarball, itself):

1. ``cifar-10-batches-py/``: the official pickles ``data_batch_1..5``,
   ``test_batch``; unpickled only when their md5 is pinned in ``PINNED_MD5``.
2. ``cifar-10-batches-bin/``: the official ``data_batch_1..5.bin``,
   ``test_batch.bin``: 3073-byte records, 1 label byte and 3072 pixel bytes.
3. An ImageFolder tree ``<name>/{train,test}/<class>/*.png|jpg|jpeg``
   (``FOLDER_NAMES``), or the same tree packed as one of ``TARBALL_NAMES``,
   read without extracting it. Decoded once, then cached as ``.npz``
   (``tinyjax.data.imagefolder``).

Both official formats store pixels channel-first (1024 R, 1024 G, 1024 B bytes,
each 32x32 row-major); every reader returns ``uint8 [N, 32, 32, 3]`` images and
``int32 [N]`` labels.
"""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np

from tinyjax.common import one_line
from tinyjax.data.errors import DataError
from tinyjax.data.imagefolder import CLASS_NAMES, SPLITS, read_image_folder

# md5 of each official python batch; only files with these checksums are ever unpickled.
PINNED_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
PYTHON_DIR, BINARY_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
FOLDER_NAMES = ("cifar10", "cifar10-jpeg", "CIFAR-10-images")
TARBALL_NAMES = ("cifar10-jpeg.tar.gz", "cifar10.tar.gz")
# What find_local looks for in each root, in order: name -> layout.
_LAYOUT_OF = {PYTHON_DIR: "py", BINARY_DIR: "bin", **dict.fromkeys(FOLDER_NAMES, "folder"),
              **dict.fromkeys(TARBALL_NAMES, "tar")}
LAYOUTS = ", ".join(n + ("/" if kind != "tar" else "") for n, kind in _LAYOUT_OF.items())
# How to get data that loads, ending "not found" messages.
FIX = ("set TINYJAX_DATA_DIR (or --data-dir) to a folder holding cifar-10-batches-py/ (the official "
       "python version) or cifar10-jpeg.tar.gz (an ImageFolder tree), or run where TFDS can download cifar10")
_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_OFFICIAL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_PY_FIX = (f"re-download the official cifar-10-python.tar.gz ({_OFFICIAL}), or convert the data to "
           "an ImageFolder tree cifar10/{train,test}/<class>/*.png")
_BIN_FIX = f"re-download the official cifar-10-binary.tar.gz ({_OFFICIAL})"
_RECORD = 1 + 32 * 32 * 3  # Bytes per record of the binary version.


def find_local(roots: list[str]) -> tuple[str, str] | None:
    """The first CIFAR-10 found in ``roots``, searched in order, layouts in the module's order.

    Returns:
      ``(layout, path)``, layout one of ``"py"``, ``"bin"``, ``"folder"``,
      ``"tar"``; ``None`` when no root holds any layout.
    """
    batches = _BATCHES["train"] + _BATCHES["test"]
    for root in roots:
        base = os.path.basename(os.path.normpath(root))
        candidates = [(_LAYOUT_OF[base], root)] if base in _LAYOUT_OF else []
        for layout, path in candidates + [(kind, os.path.join(root, n)) for n, kind in _LAYOUT_OF.items()]:
            suffix = ".bin" if layout == "bin" else ""
            if ((layout == "tar" and os.path.isfile(path))
                    or (layout == "folder" and any(os.path.isdir(os.path.join(path, s)) for s in SPLITS))
                    or (layout in ("py", "bin") and any(os.path.isfile(os.path.join(path, b + suffix))
                                                        for b in batches))):
                return layout, path
    return None


def read_local(layout: str, path: str, split: str, cache: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads ``split`` from what ``find_local`` found; ``cache`` is the folder of decoded ``.npz``.

    Returns ``uint8 [N, 32, 32, 3]`` images and ``int32 [N]`` labels; raises
    ``DataError`` as the reader of that layout does.
    """
    if layout == "py":
        return read_python_batches(path, split)
    if layout == "bin":
        return read_binary_batches(path, split)
    return read_image_folder(path, split, cache)


def read_python_batches(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads the official python version: ``uint8 [N, 32, 32, 3]``, ``int32 [N]``
    (``"train"``: 50000, ``data_batch_1..5`` in order; ``"test"``: 10000).

    Raises:
      DataError: a batch file is missing; its md5 is not ``PINNED_MD5[name]``
        (the file is then never unpickled); it does not hold uint8 ``[n, 3072]``
        data and ``n`` integer labels; or a label is outside ``[0, 10)``.
    """
    return _read_batches(folder, split, ".py")


def read_binary_batches(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads the official binary version: ``uint8 [N, 32, 32, 3]``, ``int32 [N]``.

    Raises:
      DataError: a ``.bin`` file is missing, empty, of a size that is not a
        multiple of 3073 bytes, or holds a label above 9.
    """
    return _read_batches(folder, split, ".bin")


def _read_batches(folder: str, split: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    fix, images, labels = _BIN_FIX if kind == ".bin" else _PY_FIX, [], []
    for name in _BATCHES[split]:
        path = os.path.join(folder, name + (kind if kind == ".bin" else ""))
        if not os.path.isfile(path):
            raise DataError(f"{path}: missing, a batch of CIFAR-10 {split} is needed there; {fix}.")
        with open(path, "rb") as f:
            blob = f.read()
        if kind == ".bin":
            if not blob or len(blob) % _RECORD:
                raise DataError(f"{path}: {len(blob)} bytes is not a whole number of {_RECORD}-byte records "
                                f"(1 label byte + 3072 pixel bytes); {fix}.")
            records = np.frombuffer(blob, np.uint8).reshape(-1, _RECORD)
            data, y = records[:, 1:], records[:, 0]
        else:
            digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
            if digest != PINNED_MD5.get(name):  # Never unpickle bytes we have not verified.
                raise DataError(f"{path}: md5 {digest} is not the official md5 {PINNED_MD5.get(name)} of "
                                f"{name}, so it is not unpickled; {fix}.")
            try:
                batch = pickle.loads(blob, encoding="bytes")
                data, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
            except Exception as e:
                raise DataError(f"{path}: not a CIFAR-10 batch ({one_line(e)}); {fix}.") from e
            if (data.dtype != np.uint8 or data.shape[1:] != (3072,) or y.shape != data.shape[:1]
                    or y.dtype.kind not in "iu"):
                raise DataError(f"{path}: data {data.dtype} {list(data.shape)} with labels {y.dtype} "
                                f"{list(y.shape)}, expected uint8 [n, 3072] and n integers; {fix}.")
        bad = np.flatnonzero((y < 0) | (y >= len(CLASS_NAMES)))
        if bad.size:
            raise DataError(f"{path}: label {y[bad[0]]} at index {bad[0]} is outside [0, 10) "
                            f"({bad.size} of {len(y)} bad); {fix}.")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # Channel-first rows to HWC.
        labels.append(y.astype(np.int32))
    return np.concatenate(images), np.concatenate(labels)
