"""One dataset type for every source: ``Dataset`` (uint8 images, int32 labels, class names,
normalisation) from a built-in name, a ``.npz`` file, a folder of class folders, or the user's
arrays (``from_arrays``); ``DataInfo``, what a later process needs without the images.

``--dataset`` (``DataConfig.name``) is resolved in this order: a built-in name (``BUILTIN``), an
existing path (a ``.npz`` or a class-folder tree), a TFDS image-classification name (read with
``tfds.data_source``), else one error line listing the forms.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple, Sequence

import numpy as np

from tinyjax.data.errors import DataError, DatasetNotFoundError
from tinyjax.data.pipeline import IMAGE_SHAPES, NORMALIZATION

BUILTIN = tuple(IMAGE_SHAPES)  # mnist, fashion_mnist, cifar10
BUILTIN_CLASSES = {"mnist": tuple(str(d) for d in range(10)),
                   # Fashion-MNIST's label order (Xiao et al. 2017, arXiv:1708.07747).
                   "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                     "Sneaker", "Bag", "Ankle boot"),
                   "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                               "truck")}
FORMS = ("a built-in name (mnist, fashion_mnist, cifar10), a .npz file with x_train, y_train [, x_test, y_test, "
         "class_names], a folder with one subfolder of images per class, or a TFDS image-classification name "
         "(kmnist, emnist/balanced, cifar100, svhn_cropped, ...)")


class DataInfo(NamedTuple):
    """What a model and a later process need of a dataset, without its images: ``image_shape``
    ``(H, W, C)`` in pixels, ``class_names`` (``K`` of them; label k is ``class_names[k]``), and the
    per-channel ``mean`` and ``std`` of the train split's pixels in [0, 1] units (scalars for the
    built-in grey sets, as torchvision's MNIST examples use them). Saved as a run's ``data.json``."""

    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict:
        return {"image_shape": list(self.image_shape), "class_names": list(self.class_names),
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, d: dict) -> "DataInfo":
        tup = (lambda v: tuple(v) if isinstance(v, list) else v)
        return cls(tuple(d["image_shape"]), tuple(d["class_names"]), tup(d["mean"]), tup(d["std"]))


def builtin_info(name: str) -> DataInfo:
    """The ``DataInfo`` of a built-in dataset, known before its files are read."""
    mean, std = NORMALIZATION[name]
    return DataInfo(IMAGE_SHAPES[name], BUILTIN_CLASSES[name], mean, std)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset in host memory: ``train`` and ``test`` as ``(uint8 [N, H, W, C],
    int32 [N])`` (``test`` None when the source has none: a run then holds out part of train), its
    ``info`` and ``name`` (a built-in name, the source's path, or ``"arrays"``)."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None
    info: DataInfo


def from_arrays(x_train, y_train, x_test=None, y_test=None, class_names: Sequence[str] | None = None,
                name: str = "arrays") -> Dataset:
    """A ``Dataset`` from the user's arrays, for ``train_and_evaluate(config, model=m, data=d)``.

    Args:
      x_train, x_test: images ``[N, H, W, C]`` or ``[N, H, W]`` (one channel), ``uint8`` (0..255) or
        float in [0, 1] (``pixel / 255``; stored as the nearest uint8, the on-device pipeline's type).
      y_train, y_test: integer labels ``[N]`` in ``[0, K)``.
      class_names: ``K`` names; default ``"0" .. str(K - 1)`` with ``K`` the largest train label + 1.

    The normalisation is the train split's per-channel mean and std. Without a test split, a run
    holds out 10% of train as its test split (said in its header).

    Raises:
      DataError: images of the wrong rank or dtype or outside [0, 1], labels that are not integers
        or outside ``[0, K)``, lengths that differ, train and test images of different shapes.
    """
    train = _checked(x_train, y_train, "x_train", "y_train")
    test = None if x_test is None and y_test is None else _checked(x_test, y_test, "x_test", "y_test")
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise DataError(f"x_test images are {_shape(test[0])} but x_train's are {_shape(train[0])} (HxWxC); "
                        "give both splits images of one shape.")
    k = len(class_names) if class_names is not None else int(train[1].max()) + 1
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(str(i) for i in range(k))
    for split, what in ((train, "y_train"), (test, "y_test")):
        if split is None:
            continue
        labels = split[1]
        bad = np.flatnonzero((labels < 0) | (labels >= k))
        if bad.size:
            raise DataError(f"{what}[{bad[0]}] = {labels[bad[0]]} is outside [0, {k}) ({len(names)} class names); "
                            "give labels 0..K-1 or as many class_names as classes.")
    pixels = train[0].reshape(-1, train[0].shape[-1]).astype(np.float64) / 255.0
    mean, std = tuple(float(v) for v in pixels.mean(0)), tuple(float(max(v, 1e-8)) for v in pixels.std(0))
    return Dataset(name, train, test, DataInfo(tuple(train[0].shape[1:]), names, mean, std))


def _shape(images: np.ndarray) -> str:
    return "x".join(map(str, images.shape[1:]))


def _checked(x, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [N, H, W, C], int32 [N])`` of one split, or a DataError naming the array."""
    if x is None or y is None:
        raise DataError(f"{x_name if x is None else y_name} is missing; give images and labels together.")
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{x_name} has shape {x.shape}; images must be [N, H, W, C] or [N, H, W].")
    if x.dtype != np.uint8:
        if x.dtype.kind != "f":
            raise DataError(f"{x_name} is {x.dtype}; give uint8 pixels (0..255) or floats in [0, 1].")
        low, high = float(x.min(initial=0.0)), float(x.max(initial=0.0))
        if low < 0 or high > 1 or not np.isfinite(x).all():
            raise DataError(f"{x_name} is {x.dtype} with values in [{low:g}, {high:g}]; float images must lie in "
                            "[0, 1] (divide by the largest pixel value), or give uint8 pixels.")
        x = np.rint(x * 255.0).astype(np.uint8)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{y_name} is {y.dtype} {y.shape}; labels must be integers [N].")
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f"{x_name} has {len(x)} images and {y_name} {len(y)} labels; give one label per image "
                        "(at least one).")
    return x, y.astype(np.int32)


def from_npz(path: str) -> Dataset:
    """A ``Dataset`` from a ``.npz`` holding ``x_train, y_train`` and optionally ``x_test, y_test,
    class_names`` (arrays as ``from_arrays`` takes them).

    Raises:
      DataError: a missing key, an unreadable file, or arrays ``from_arrays`` refuses; a file larger
        than the memory available (its size named).
    """
    _check_memory(path, os.path.getsize(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"{path}: cannot read it as a .npz ({type(e).__name__}: {e}); write it with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...).") from None
    if "x_train" not in arrays or "y_train" not in arrays:
        raise DataError(f"{path} holds {sorted(arrays)}; a dataset .npz needs x_train and y_train "
                        "(and optionally x_test, y_test, class_names).")
    names = arrays.get("class_names")
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"),
                       None if names is None else [str(n) for n in names], name=os.path.abspath(path))


def _check_memory(path: str, size: int) -> None:
    """A DataError when ``size`` bytes would not fit in the memory available now (Linux)."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if size > 0.8 * free:
        raise DataError(f"{path} holds {size / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB of memory "
                        "free here; tinyjax keeps a dataset in memory: use a subset, or a machine with more memory.")


def from_folder(root: str, image_size: tuple[int, int] | None = None) -> Dataset:
    """A ``Dataset`` from a folder of class folders, ``root/<class>/*.png|jpg|jpeg`` (classes in
    sorted order, as torchvision's ``ImageFolder``), or ``root/{train,test}/<class>/...``. Images of
    any size, decoded with Pillow (grey images stay one channel, others RGB); ``image_size (H, W)``
    resizes every image (bilinear), without it they must share one size.

    Raises:
      DataError: no class folders or images, an image that cannot be decoded, mixed sizes without
        ``image_size``, or train and test with different classes.
    """
    splits = [s for s in ("train", "test") if os.path.isdir(os.path.join(root, s))]
    roots = {s: os.path.join(root, s) for s in splits} if "train" in splits else {"train": root}
    classes = {s: sorted(d for d in os.listdir(r) if os.path.isdir(os.path.join(r, d))) for s, r in roots.items()}
    names = classes["train"]
    if not names:
        raise DataError(f"{roots['train']} has no class folders; lay it out as <root>/<class>/<image>.png.")
    if "test" in classes and classes["test"] != names:
        raise DataError(f"{root}: test classes {classes['test']} differ from train classes {names}.")
    decoded = {s: _read_classes(r, names, image_size) for s, r in roots.items()}
    shapes = {x.shape[1:] for x, _ in decoded.values()}
    if len(shapes) > 1:
        raise DataError(f"{root}: train and test images differ in size {sorted(shapes)}; pass --image-size H,W.")
    x, y = decoded["train"]
    test = decoded.get("test")
    return from_arrays(x, y, *(test if test else (None, None)), class_names=names, name=os.path.abspath(root))


def _read_classes(root: str, names: list[str], image_size) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            if not f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif")):
                continue
            try:
                with Image.open(os.path.join(folder, f)) as img:
                    img = img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB")
                    if image_size is not None:
                        img = img.resize((image_size[1], image_size[0]), Image.BILINEAR)
                    images.append(np.asarray(img, np.uint8))
            except Exception as e:
                raise DataError(f"{os.path.join(folder, f)}: cannot decode it ({type(e).__name__}: {e}); "
                                "remove or replace it.") from None
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no .png/.jpg images in its class folders {names}.")
    sizes = sorted({im.shape for im in images})
    if len(sizes) > 1:
        raise DataError(f"{root}: images of {len(sizes)} sizes ({', '.join('x'.join(map(str, s)) for s in sizes[:3])}"
                        f"{', ...' if len(sizes) > 3 else ''}); pass --image-size H,W to resize them.")
    x = np.stack(images)
    return (x[..., None] if x.ndim == 3 else x), np.asarray(labels, np.int32)


def resolve(name: str, image_size: tuple[int, int] | None = None, data_dir: str | None = None) -> Dataset | None:
    """The ``Dataset`` of a ``--dataset`` that is not built in, in this order: an existing path (a
    ``.npz`` or a class-folder tree), else a TFDS name (``from_tfds``, under ``data_dir``); None for
    a built-in name (loaded split by split by ``tinyjax.data.load``).

    Raises:
      DatasetNotFoundError: none of these (the forms listed), or TFDS data not prepared.
      DataError: the file, folder or TFDS dataset cannot be used.
    """
    if name in BUILTIN:
        return None
    if os.path.isfile(name) and name.endswith(".npz"):
        return from_npz(name)
    if os.path.isdir(name):
        return from_folder(name, image_size)
    return from_tfds(name, data_dir)


def is_tfds_name(name: str) -> bool:
    """Whether TFDS knows ``name`` (``kmnist``, ``emnist/balanced``, ``cifar100:3.0.2``); imports TFDS."""
    import tensorflow_datasets as tfds

    try:
        tfds.builder(name)
    except Exception:  # tfds' DatasetNotFoundError; a malformed name.
        return False
    return True


def from_tfds(name: str, data_dir: str | None = None) -> Dataset:
    """A ``Dataset`` of a TFDS image-classification dataset, read with ``tfds.data_source`` (prepared
    array_record data, no TensorFlow): the image and label keys from the builder's
    ``supervised_keys``, the class names from its label feature; the ``train`` split and, when
    there is one, ``test``.

    Raises:
      DatasetNotFoundError: TFDS does not know ``name`` (the forms listed), or its data is not
        prepared as array_record under ``data_dir`` (TFDS's default folder when None).
      DataError: not an image-classification dataset (no image and class-label pair).
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception:
        raise DatasetNotFoundError(f"--dataset {name!r} is no built-in name, file, folder or TFDS dataset; "
                                   f"give {FORMS}, or a TFDS image-classification name such as kmnist.") from None
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    features = builder.info.features
    if not (image_key in features and label_key in features and isinstance(features[image_key], tfds.features.Image)
            and isinstance(features[label_key], tfds.features.ClassLabel)):
        raise DataError(f"--dataset {name}: TFDS's {name} has no image and class-label pair ({features}); "
                        "tinyjax trains image classifiers.")
    splits = list(builder.info.splits) or ["train", "test"]

    def read(split):
        try:
            source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        except Exception as e:
            raise DatasetNotFoundError(
                f"--dataset {name}: no prepared array_record data for its {split!r} split ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:160]}); prepare it where there is a network (tfds build {name} "
                "--file_format=array_record) and point --data-dir at it.") from None
        records = [source[i] for i in range(len(source))]
        return np.stack([np.asarray(r[image_key]) for r in records]), np.array([r[label_key] for r in records])

    x, y = read("train")
    test = read("test") if "test" in splits else (None, None)
    return from_arrays(x, y, *test, class_names=features[label_key].names, name=name)
