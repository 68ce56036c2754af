"""CIFAR-10 as an ImageFolder tree ``<root>/{train,test}/<class>/*.png|jpg|jpeg``,
a folder or the same tree packed as a ``.tar.gz`` (read without extracting it).

Class folders must be exactly ``CLASS_NAMES``; a class's index in that tuple is
its label. Every image must be 32x32; it is decoded with Pillow to RGB. Both
splits are decoded on first use and cached as one ``.npz`` keyed by the
source's sha256, so later reads of the same bytes skip decoding.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import tarfile
import time
import zlib

import numpy as np

from tinyjax.common import atomic_write, one_line
from tinyjax.data.errors import DataError

log = logging.getLogger(__name__)

# CIFAR-10's label order (https://www.cs.toronto.edu/~kriz/cifar.html), which is alphabetical.
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_TREE_FIX = ("rebuild the ImageFolder tree <name>/{train,test}/<class>/*.png|jpg of 32x32 images, "
             "or re-download the archive")
_CACHE_VERSION = 1  # Part of the cache file's name: bump it when decoding changes.
_CHUNK = 1 << 20  # Bytes read at a time when hashing a tarball.


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
    log.warning("decoded %d CIFAR-10 images in %.1f s", sum(len(arrays[f"{s}_labels"]) for s in SPLITS),
                time.perf_counter() - start)
    _save_cache(path, arrays)
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def _check_classes(found: list[str], where: str) -> None:
    if sorted(found) != list(CLASS_NAMES):
        missing, extra = sorted(set(CLASS_NAMES) - set(found)), sorted(set(found) - set(CLASS_NAMES))
        raise DataError(f"{where}: class folders must be exactly the 10 CIFAR-10 classes "
                        f"{', '.join(CLASS_NAMES)} (missing {missing}, unexpected {extra}); {_TREE_FIX}.")


def _list_tree(root: str) -> dict[str, list[tuple[int, str]]]:
    """``{split: [(label, relative path)]}`` in label order, files sorted by name."""
    files = {}
    for split in SPLITS:
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
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
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
        raise DataError(f"{where}: cannot decode the image ({one_line(e)}); {_TREE_FIX}.") from e
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
    found = {split: [] for split in SPLITS}
    with _progress(sum(map(len, files.values())), "img") as bar:
        for split, entries in files.items():
            for label, rel in entries:
                path = os.path.join(root, rel)
                with open(path, "rb") as f:
                    found[split].append((label, os.path.basename(rel), _decode(f.read(), path)))
                bar.update()
    return _arrays(found)


def _decode_tar(path: str) -> dict[str, np.ndarray]:
    found = {split: [] for split in SPLITS}
    with open(path, "rb") as raw, _progress(os.path.getsize(path), "B") as bar:
        try:
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                for member in tar:
                    bar.update(raw.tell() - bar.n)
                    if not (member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS)):
                        continue
                    where, parts = f"{path}:{member.name}", member.name.split("/")
                    if len(parts) < 3 or parts[-3] not in SPLITS or parts[-2] not in CLASS_NAMES:
                        raise DataError(f"{where}: not at {{train,test}}/<class>/<file> with a class of "
                                        f"{', '.join(CLASS_NAMES)}; {_TREE_FIX}.")
                    blob = tar.extractfile(member).read()
                    found[parts[-3]].append((CLASS_NAMES.index(parts[-2]), parts[-1], _decode(blob, where)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: not a readable .tar.gz ({one_line(e)}); {_TREE_FIX}.") from e
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
        log.warning("ignoring the unusable cache %s (%s); decoding again", path, one_line(e))
        return None
    return images, labels.astype(np.int32)


def _save_cache(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes the cache atomically, so a killed run leaves no broken cache."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, write)
    except OSError as e:  # A read-only cache costs time, not correctness.
        log.warning("could not write the CIFAR-10 cache %s (%s); images will be decoded again next time",
                    path, one_line(e))
