"""Small CIFAR-10 files in each layout, written by the tests that read them back."""

import hashlib
import pickle
import tarfile

import numpy as np
from PIL import Image

from tinyjax import data
from tinyjax.data import cifar

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def make_split(n, seed):
    """``uint8 [n, 32, 32, 3]`` random images, ``int32 [n]`` labels covering all 10 classes."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.permutation(np.arange(n) % 10).astype(np.int32))


def chw_rows(images):
    """The official pixel order: ``[n, 3072]``, 1024 R then G then B bytes per image."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def batches(splits):
    """``{batch name: (images, labels)}``: train cut into 5 batches, as the official files are."""
    (x, y), (xt, yt) = splits["train"], splits["test"]
    cut = np.array_split(np.arange(len(y)), 5)
    return {**{name: (x[i], y[i]) for name, i in zip(TRAIN_BATCHES, cut)}, "test_batch": (xt, yt)}


def pin(monkeypatch, path):
    monkeypatch.setitem(cifar.PINNED_MD5, path.name, hashlib.md5(path.read_bytes()).hexdigest())


def write_python(folder, splits, monkeypatch):
    folder.mkdir(parents=True)
    for name, (x, y) in batches(splits).items():
        (folder / name).write_bytes(pickle.dumps({b"data": chw_rows(x), b"labels": y.tolist()}))
        pin(monkeypatch, folder / name)
    return folder


def write_binary(folder, splits):
    folder.mkdir(parents=True)
    for name, (x, y) in batches(splits).items():
        records = np.concatenate([y[:, None].astype(np.uint8), chw_rows(x)], 1)  # Label byte, then pixels.
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    return folder


def write_tree(folder, splits):
    """``folder/{train,test}/<class>/NNNN.png``; returns the expected order (by class, then name)."""
    expected = {}
    for split, (x, y) in splits.items():
        for name in cifar.CLASS_NAMES:
            (folder / split / name).mkdir(parents=True)
        for i, (image, label) in enumerate(zip(x, y)):
            Image.fromarray(image).save(folder / split / cifar.CLASS_NAMES[label] / f"{i:04d}.png")
        order = np.argsort(y, kind="stable")
        expected[split] = (x[order], y[order])
    return expected


def write_tar(tar_path, tree):
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(tree, arcname="cifar10-jpeg")
    return tar_path


def load_local(split, data_dir):
    return data.load("cifar10", split, data_dir=str(data_dir), sources=("local",))


def assert_split(got, expected):
    (x, y), (ex, ey) = got, expected
    assert x.dtype == np.uint8 and x.shape == ex.shape and x.shape[1:] == (32, 32, 3)
    assert y.dtype == np.int32 and y.shape == (len(x),)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message
