"""CIFAR-10 on local disk. Layouts looked for in each data root, in this order
(a root may also be the dataset folder, or the tarball, itself):

1. ``cifar-10-batches-py/``: the official pickles ``data_batch_1..5``,
   ``test_batch``; unpickled only when their md5 is pinned in ``PINNED_MD5``.
2. ``cifar-10-batches-bin/``: the official ``data_batch_1..5.bin``,
   ``test_batch.bin``: 3073-byte records, 1 label byte and 3072 pixel bytes.
3. An ImageFolder tree ``<name>/{train,test}/<class>/*.png|jpg|jpeg``
   (``FOLDER_NAMES``), or the same tree packed as one of ``TARBALL_NAMES``,
   read without extracting it. Decoded once, then cached as ``.npz``.

Both official formats store pixels channel-first (1024 R, 1024 G, 1024 B bytes,
each 32x32 row-major); every reader returns ``uint8 [N, 32, 32, 3]`` images and
``int32 [N]`` labels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import sys
import tarfile
import time
import zlib

import numpy as np

from tinyjax.data.idx import DataError

log = logging.getLogger(__name__)

# CIFAR-10's label order (https://www.cs.toronto.edu/~kriz/cifar.html), which is alphabetical.
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
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
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# What find_local looks for in each root, in order: name -> layout.
_LAYOUT_OF = {PYTHON_DIR: "py", BINARY_DIR: "bin", **dict.fromkeys(FOLDER_NAMES, "folder"),
              **dict.fromkeys(TARBALL_NAMES, "tar")}
LAYOUTS = ", ".join(n + ("/" if kind != "tar" else "") for n, kind in _LAYOUT_OF.items())
# How to get data that loads, ending "not found" messages.
FIX = ("set TINYJAX_DATA_DIR (or --data-dir) to a folder holding cifar-10-batches-py/ (the official "
       "python version) or cifar10-jpeg.tar.gz (an ImageFolder tree), or run where TFDS can download cifar10")
_SPLITS = ("train", "test")
_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_OFFICIAL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_PY_FIX = (f"re-download the official cifar-10-python.tar.gz ({_OFFICIAL}), or convert the data to "
           "an ImageFolder tree cifar10/{train,test}/<class>/*.png")
_BIN_FIX = f"re-download the official cifar-10-binary.tar.gz ({_OFFICIAL})"
_TREE_FIX = ("rebuild the ImageFolder tree <name>/{train,test}/<class>/*.png|jpg of 32x32 images, "
             "or re-download the archive")
_RECORD = 1 + 32 * 32 * 3  # Bytes per record of the binary version.
_CACHE_VERSION = 1  # Part of the cache file's name: bump it when decoding changes.


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
                    or (layout == "folder" and any(os.path.isdir(os.path.join(path, s)) for s in _SPLITS))
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
                raise DataError(f"{path}: not a CIFAR-10 batch ({_one_line(e)}); {fix}.") from e
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


def read_image_folder(source: str, split: str, cache: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads an ImageFolder tree, a folder or a ``.tar.gz``: ``uint8 [N, 32, 32, 3]``, ``int32 [N]``.

    The first call decodes both splits (Pillow, ``convert("RGB")``) and writes
    them atomically to ``<cache>/imagefolder-v1-<sha256>.npz``; later calls with
    the same source bytes load that file. The key is the sha256 of the tarball,
    or of a folder's sorted relative image paths and their bytes. A cache file
    that cannot be loaded is ignored and rebuilt.

    Raises:
      DataError: no ``train/`` or ``test/``; class folders other than exactly
        ``CLASS_NAMES``; an image that cannot be decoded or is not 32x32; a
        tarball that cannot be read. The message names the file or member.
    """
    is_dir = os.path.isdir(source)
    files = _list_tree(source) if is_dir else None
    digest = _sha256(source, files)
    path = os.path.join(cache, f"imagefolder-v{_CACHE_VERSION}-{digest}.npz")
    cached = _load_cache(path, split)
    if cached is not None:
        return cached
    log.warning("decoding the CIFAR-10 images of %s once (both splits); they are cached in %s", source, path)
    start = time.perf_counter()
    arrays = _decode_tree(source, files) if is_dir else _decode_tar(source)
    log.warning("decoded %d CIFAR-10 images in %.1f s", sum(len(arrays[f"{s}_labels"]) for s in _SPLITS),
                time.perf_counter() - start)
    _save_cache(path, arrays)
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def _check_classes(found: list[str], where: str) -> None:
    if sorted(found) != list(CLASS_NAMES):
        missing, extra = sorted(set(CLASS_NAMES) - set(found)), sorted(set(found) - set(CLASS_NAMES))
        raise DataError(f"{where}: class folders must be exactly the 10 CIFAR-10 classes "
                        f"{', '.join(CLASS_NAMES)} (missing {missing}, unexpected {extra}); {_TREE_FIX}.")


def _list_tree(root: str) -> dict[str, list[tuple[int, str]]]:
    """``{split: [(label, relative path)]}`` in label order, files sorted by name."""
    files = {}
    for split in _SPLITS:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: missing; an ImageFolder tree needs train/ and test/; {_TREE_FIX}.")
        _check_classes([e.name for e in os.scandir(folder) if e.is_dir() and e.name[0] != "."], folder)
        files[split] = [(label, f"{split}/{name}/{f}") for label, name in enumerate(CLASS_NAMES)
                        for f in sorted(os.listdir(os.path.join(folder, name)))
                        if f.lower().endswith(IMAGE_EXTENSIONS)
                        and os.path.isfile(os.path.join(folder, name, f))]
    return files


def _sha256(source: str, files: dict[str, list[tuple[int, str]]] | None) -> str:
    """Of a file's bytes (``files`` None), or of a tree's sorted relative image paths and their bytes."""
    digest = hashlib.sha256()
    if files is None:
        with open(source, "rb") as f:
            digest.update(f.read())
    for rel in sorted(rel for entries in (files or {}).values() for _, rel in entries):
        with open(os.path.join(source, rel), "rb") as f:
            blob = f.read()
        digest.update(b"%s\0%d\0" % (rel.encode(), len(blob)) + blob)
    return digest.hexdigest()


def _decode(blob: bytes, where: str) -> np.ndarray:
    """One image file's bytes to ``uint8 [32, 32, 3]``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as image:
            size = image.size
            pixels = np.asarray(image.convert("RGB")) if size == (32, 32) else None
    except Exception as e:
        raise DataError(f"{where}: cannot decode the image ({_one_line(e)}); {_TREE_FIX}.") from e
    if pixels is None:
        raise DataError(f"{where}: image is {size[0]}x{size[1]} pixels, CIFAR-10's are 32x32; {_TREE_FIX}.")
    return pixels


def _progress(total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc="decoding CIFAR-10", leave=False,
                disable=not getattr(sys.stderr, "isatty", lambda: False)())


def _arrays(found: dict[str, list[tuple[int, str, np.ndarray]]]) -> dict[str, np.ndarray]:
    out = {}
    for split, entries in found.items():
        entries.sort(key=lambda e: e[:2])
        out[f"{split}_images"] = np.stack([e[2] for e in entries])
        out[f"{split}_labels"] = np.array([e[0] for e in entries], np.int32)
    return out


def _decode_tree(root: str, files: dict[str, list[tuple[int, str]]]) -> dict[str, np.ndarray]:
    found = {split: [] for split in _SPLITS}
    with _progress(sum(map(len, files.values())), "img") as bar:
        for split, entries in files.items():
            for label, rel in entries:
                path = os.path.join(root, rel)
                with open(path, "rb") as f:
                    found[split].append((label, os.path.basename(rel), _decode(f.read(), path)))
                bar.update()
    return _arrays(found)


def _decode_tar(path: str) -> dict[str, np.ndarray]:
    found = {split: [] for split in _SPLITS}
    with open(path, "rb") as raw, _progress(os.path.getsize(path), "B") as bar:
        try:
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                for member in tar:
                    bar.update(raw.tell() - bar.n)
                    if not (member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS)):
                        continue
                    where, parts = f"{path}:{member.name}", member.name.split("/")
                    if len(parts) < 3 or parts[-3] not in _SPLITS or parts[-2] not in CLASS_NAMES:
                        raise DataError(f"{where}: not at {{train,test}}/<class>/<file> with a class of "
                                        f"{', '.join(CLASS_NAMES)}; {_TREE_FIX}.")
                    blob = tar.extractfile(member).read()
                    found[parts[-3]].append((CLASS_NAMES.index(parts[-2]), parts[-1], _decode(blob, where)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: not a readable .tar.gz ({_one_line(e)}); {_TREE_FIX}.") from e
    for split, entries in found.items():
        _check_classes(sorted({CLASS_NAMES[e[0]] for e in entries}), f"{path}:{split}/")
    return _arrays(found)


def _load_cache(path: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path) as arrays:  # allow_pickle=False: a cache file is never unpickled.
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or labels.shape != images.shape[:1]:
            raise ValueError(f"images {images.dtype} {list(images.shape)}, labels {list(labels.shape)}")
    except Exception as e:
        log.warning("ignoring the unusable cache %s (%s); decoding again", path, _one_line(e))
        return None
    return images, labels.astype(np.int32)


def _save_cache(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes a temporary file and renames it, so a killed run leaves no broken cache."""
    tmp = os.path.join(os.path.dirname(path), f".tmp{os.getpid()}-{os.path.basename(path)}")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:  # A read-only cache costs time, not correctness.
        log.warning("could not write the CIFAR-10 cache %s (%s); images will be decoded again next time",
                    path, _one_line(e))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
