"""CIFAR-10 from local files: each layout written small here and read back, the official formats' bad files,
the source order, the real tarball, TFDS."""

import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from tinyjax import data
from tinyjax.data import DataError, DatasetNotFoundError, cifar

from cifar_files import assert_split, load_local, make_split, one_line, pin, write_binary, write_python, write_tar, write_tree


def real_tarball():
    root = os.environ.get("TINYJAX_DATA_DIR")
    path = os.path.join(root or "", "cifar10-jpeg.tar.gz")
    if not root or not os.path.isfile(path):
        pytest.skip("needs $TINYJAX_DATA_DIR/cifar10-jpeg.tar.gz (set TINYJAX_DATA_DIR=../shared/data)")
    return path


def test_class_names_are_the_official_label_order():
    # label_names of the official cifar-10-batches-py/batches.meta, label 0 first; being alphabetical, they
    # are also an ImageFolder's order of the class folders.
    assert cifar.CLASS_NAMES == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                 "ship", "truck")
    assert data.NUM_CLASSES["cifar10"] == len(cifar.CLASS_NAMES)


def test_constants_match_the_real_data():
    """Class folders, image shape, class count and normalisation against the real training images."""
    path = real_tarball()
    with tarfile.open(path) as tar:
        folders = {tuple(m.name.split("/")[1:]) for m in tar.getmembers() if m.isdir() and m.name.count("/") == 2}
    assert folders == {(split, name) for split in ("train", "test") for name in cifar.CLASS_NAMES}
    x, y = data.load("cifar10", "train", sources=("local",))
    assert x.shape[1:] == data.IMAGE_SHAPES["cifar10"] and len(np.unique(y)) == data.NUM_CLASSES["cifar10"]
    # Per channel over all pixels, from the histogram of the 256 levels (no float copy of 150M pixels).
    counts = np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(3)]) / (x.size / 3)
    levels = np.arange(256) / 255
    pixel_mean = counts @ levels
    pixel_std = np.sqrt((counts * (levels - pixel_mean[:, None]) ** 2).sum(1))
    mean, std = data.NORMALIZATION["cifar10"]
    # The constants are the official images' per-channel mean and std over all pixels (not the mean of the
    # per-image stds, ~0.20, often quoted by mistake). This copy is JPEG q75: its means agree to 2e-4; the
    # lossy re-encoding smooths detail, so its stds are lower, by up to 0.0018 (0.2452, 0.2428, 0.2606).
    np.testing.assert_allclose(pixel_mean, mean, atol=5e-4)
    np.testing.assert_allclose(pixel_std, std, atol=3e-3)


@pytest.mark.parametrize("own_folder", [False, True], ids=["root", "dataset_folder"])
def test_python_batches(isolated, splits, monkeypatch, own_folder):
    folder = write_python(isolated / "data" / "cifar-10-batches-py", splits, monkeypatch)
    for split in ("train", "test"):
        assert_split(load_local(split, folder if own_folder else folder.parent), splits[split])


def test_binary_batches_through_the_environment(isolated, splits, monkeypatch):
    write_binary(isolated / "data" / "cifar-10-batches-bin", splits)
    monkeypatch.setenv("TINYJAX_DATA_DIR", str(isolated / "data"))
    for split in ("train", "test"):
        assert_split(data.load("cifar10", split, sources=("local",)), splits[split])


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar_gz"])
def test_image_folder_png(isolated, splits, packed):
    expected = write_tree(isolated / "data" / "cifar10", splits)
    if packed:
        write_tar(isolated / "packed" / "cifar10-jpeg.tar.gz", isolated / "data" / "cifar10")
    for split in ("test", "train"):
        assert_split(load_local(split, isolated / ("packed" if packed else "data")), expected[split])
    if packed:  # The tarball itself as the data folder.
        assert_split(load_local("test", isolated / "packed" / "cifar10-jpeg.tar.gz"), expected["test"])


def test_files_within_a_class_are_taken_sorted_by_name(isolated, splits):
    x = splits["train"][0][:3]
    tree = isolated / "cifar10"
    write_tree(tree, splits)
    for name, image in zip(["b.png", "a.png", "c.png"], x):  # Written out of name order.
        Image.fromarray(image).save(tree / "train" / "ship" / name)
    images, labels = load_local("train", isolated)
    ships = images[labels == cifar.CLASS_NAMES.index("ship")]
    np.testing.assert_array_equal(ships[-3:], x[[1, 0, 2]])


def test_first_layout_found_wins(isolated, splits, monkeypatch):
    write_python(isolated / "first" / "cifar-10-batches-py", splits, monkeypatch)
    other = {split: make_split(10, 7) for split in ("train", "test")}
    write_tree(isolated / "tree", other)
    write_tar(isolated / "first" / "cifar10.tar.gz", isolated / "tree")
    write_binary(isolated / "env" / "cifar-10-batches-bin", other)
    monkeypatch.setenv("TINYJAX_DATA_DIR", str(isolated / "env"))
    assert_split(load_local("test", isolated / "first"), splits["test"])  # data_dir, then python batches.
    assert_split(data.load("cifar10", "test", sources=("local",)), other["test"])


def test_nothing_found_is_one_line_with_what_was_tried_and_the_fix(isolated):
    with pytest.raises(DatasetNotFoundError) as err:
        load_local("train", isolated / "nowhere")
    message = one_line(err)
    assert f"Tried: local {cifar.LAYOUTS} in [" in message and str(isolated / "nowhere") in message
    assert "Fix: set TINYJAX_DATA_DIR (or --data-dir) to a folder holding cifar-10-batches-py/" in message


FLAGS = []


def flag(what):
    FLAGS.append(what)


class Payload:
    """Unpickling this calls ``flag``: the proof that a file was unpickled."""
    __reduce__ = lambda self: (flag, ("unpickled",))  # noqa: E731


def test_unpinned_pickle_is_refused_unread(isolated, splits, monkeypatch):
    folder = write_python(isolated / "cifar-10-batches-py", splits, monkeypatch)
    blob = pickle.dumps({b"data": Payload(), b"labels": []})
    pickle.loads(blob)
    assert FLAGS == ["unpickled"]  # The payload does flag when unpickled.
    (folder / "data_batch_3").write_bytes(blob)
    with pytest.raises(DataError, match=r"is not the official md5 [0-9a-f]{32} of data_batch_3, so it "
                       r"is not unpickled; re-download the official cifar-10-python.tar.gz .* or convert "
                       r"the data to an ImageFolder tree") as err:
        load_local("train", isolated)
    assert one_line(err).startswith(f"{folder / 'data_batch_3'}: md5 {hashlib.md5(blob).hexdigest()} ")
    assert FLAGS == ["unpickled"]
    FLAGS.clear()


@pytest.mark.parametrize("content,match", [
    ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]},
     r"data uint8 \[2, 3071\] with labels int64 \[2\], expected uint8 \[n, 3072\] and n integers"),
    ({b"pixels": np.zeros((2, 3072), np.uint8)}, r"not a CIFAR-10 batch \(KeyError: b'data'\)"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
     r"label 10 at index 1 is outside \[0, 10\)"),
    (None, "missing, a batch of CIFAR-10 test is needed there"),
], ids=["bad_shape", "no_data", "bad_label", "missing"])
def test_pinned_but_malformed_or_missing_pickle(isolated, splits, monkeypatch, content, match):
    path = write_python(isolated / "cifar-10-batches-py", splits, monkeypatch) / "test_batch"
    path.unlink()
    if content is not None:
        path.write_bytes(pickle.dumps(content))
        pin(monkeypatch, path)
    with pytest.raises(DataError, match=match + r".*; re-download the official cifar-10-python") as err:
        load_local("test", isolated)
    assert one_line(err).startswith(f"{path}: ")


@pytest.mark.parametrize("corrupt,match", [
    (lambda raw: raw[:-1], r"12291 bytes is not a whole number of 3073-byte records"),
    (lambda raw: bytes([10]) + raw[1:], r"label 10 at index 0 is outside \[0, 10\)"),
], ids=["truncated", "bad_label"])
def test_malformed_binary_batch(isolated, splits, corrupt, match):
    folder = write_binary(isolated / "cifar-10-batches-bin", splits)
    path = folder / "data_batch_2.bin"
    path.write_bytes(corrupt(path.read_bytes()))  # 4 records of 3073 bytes.
    with pytest.raises(DataError, match=match + r".*; re-download the official cifar-10-binary") as err:
        load_local("train", isolated)
    assert one_line(err).startswith(f"{path}: ")


def test_real_cifar10_tarball():
    """The JPEG ImageFolder tarball of ../shared/data (decoded once, then cached in tinyjax's cache)."""
    real_tarball()
    for split, n in (("train", 50000), ("test", 10000)):
        x, y = data.load("cifar10", split, sources=("local",))
        assert x.dtype == np.uint8 and x.shape == (n, 32, 32, 3)
        assert y.dtype == np.int32 and np.bincount(y, minlength=10).tolist() == [n // 10] * 10


def test_tfds_route(isolated):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        x, y = data.load("cifar10", "test", data_dir=str(isolated / "empty"), sources=("local", "tfds"))
    assert x.dtype == np.uint8 and x.shape == (6, 32, 32, 3)
    assert y.dtype == np.int32 and y.shape == (6,)
