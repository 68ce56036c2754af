"""CIFAR-10 from local files: each layout written small here and read back, bad files, the cache."""

import hashlib
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from tinyjax import data
from tinyjax.data import DataError, DatasetNotFoundError, cifar, imagefolder

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment data dir; an empty private cache."""
    monkeypatch.delenv("TINYJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYJAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def make_split(n, seed):
    """``uint8 [n, 32, 32, 3]`` random images, ``int32 [n]`` labels covering all 10 classes."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.permutation(np.arange(n) % 10).astype(np.int32))


@pytest.fixture
def splits():
    return {"train": make_split(20, 0), "test": make_split(10, 1)}


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


def test_class_names_and_constants():
    assert cifar.CLASS_NAMES == tuple(sorted(cifar.CLASS_NAMES))  # Label order = ImageFolder's order.
    assert cifar.CLASS_NAMES[::3] == ("airplane", "cat", "frog", "truck") and len(cifar.CLASS_NAMES) == 10
    assert data.NUM_CLASSES["cifar10"] == 10 and data.IMAGE_SHAPES["cifar10"] == (32, 32, 3)
    assert data.NORMALIZATION["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


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


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar_gz"])
@pytest.mark.parametrize("corrupt,match", [
    (lambda path: path.write_bytes(b"not a png"), r"cannot decode the image \(UnidentifiedImageError"),
    (lambda path: Image.new("RGB", (31, 32)).save(path), r"image is 31x32 pixels, CIFAR-10's are 32x32"),
], ids=["undecodable", "wrong_size"])
def test_bad_image(isolated, splits, packed, corrupt, match):
    write_tree(isolated / "cifar10", splits)
    frog = sorted((isolated / "cifar10" / "test" / "frog").iterdir())[0]
    corrupt(frog)
    root, where = isolated, str(frog)
    if packed:
        root = isolated / "packed"
        tar = write_tar(root / "cifar10.tar.gz", isolated / "cifar10")
        where = f"{tar}:cifar10-jpeg/test/frog/{frog.name}"
    with pytest.raises(DataError, match=match) as err:
        load_local("train", root)
    assert one_line(err).startswith(f"{where}: ")
    assert not (isolated / "cache" / "datasets" / "cifar10").exists()  # Nothing cached.


@pytest.mark.parametrize("packed,change,where,match", [
    (False, "rename", "test", r"class folders must be exactly the 10 CIFAR-10 classes airplane, automobile, "
     r".* \(missing \['automobile'\], unexpected \['car'\]\); rebuild the ImageFolder tree"),
    (True, "rename", "cifar10-jpeg/test/car/",
     r"not at \{train,test\}/<class>/<file> with a class of airplane"),
    (True, "remove", "test/",
     r"class folders must be exactly .* \(missing \['automobile'\], unexpected \[\]\)"),
], ids=["folder", "tar_gz_unknown_class", "tar_gz_missing_class"])
def test_class_folders_must_be_the_ten_classes(isolated, splits, packed, change, where, match):
    tree = isolated / "cifar10"
    write_tree(tree, splits)
    if change == "rename":
        os.rename(tree / "test" / "automobile", tree / "test" / "car")
    else:
        shutil.rmtree(tree / "test" / "automobile")
    root, prefix = isolated, str(tree / where)
    if packed:
        root = isolated / "packed"
        prefix = f"{write_tar(root / 'cifar10.tar.gz', tree)}:{where}"
    with pytest.raises(DataError, match=match) as err:
        load_local("test", root)
    assert one_line(err).startswith(prefix)


def test_truncated_tarball(isolated, splits):
    write_tree(isolated / "tree", splits)
    tar = write_tar(isolated / "cifar10-jpeg.tar.gz", isolated / "tree")
    tar.write_bytes(tar.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"not a readable .tar.gz") as err:
        load_local("train", isolated)
    assert one_line(err).startswith(f"{tar}: ")


def cache_files(isolated):
    folder = isolated / "cache" / "datasets" / "cifar10"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def fail_on_decode(monkeypatch):
    monkeypatch.setattr(imagefolder, "_decode", lambda blob, where: pytest.fail(f"decoded {where} again"))


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar_gz"])
def test_decoded_once_then_cached_by_checksum(isolated, splits, monkeypatch, packed):
    tree = isolated / "data" / "cifar10"
    expected = write_tree(tree, splits)
    source = write_tar(isolated / "packed" / "cifar10.tar.gz", tree) if packed else tree
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if packed else None
    with monkeypatch.context() as m:
        assert_split(load_local("train", source.parent), expected["train"])
        (name,) = cache_files(isolated)
        assert name.startswith("imagefolder-v1-") and (digest is None or digest in name)
        fail_on_decode(m)  # Both splits were decoded in the first pass.
        assert_split(load_local("test", source.parent), expected["test"])
        assert_split(load_local("train", source.parent), expected["train"])
    splits["test"][0][0] ^= 1  # Other source bytes, another key: decoded again.
    shutil.rmtree(tree)
    expected = write_tree(tree, splits)
    source = write_tar(source, tree) if packed else tree
    assert_split(load_local("test", source.parent), expected["test"])
    assert len(cache_files(isolated)) == 2


def test_cache_write_is_atomic_and_an_unusable_cache_is_rebuilt(isolated, splits, monkeypatch):
    expected = write_tree(isolated / "cifar10", splits)

    def killed(f, **arrays):
        f.write(b"PK half an npz")
        raise OSError("No space left on device")

    with monkeypatch.context() as m:
        m.setattr(imagefolder.np, "savez", killed)
        assert_split(load_local("train", isolated), expected["train"])  # Loads; warns it cannot cache.
    assert cache_files(isolated) == []  # No partial file, no temporary left behind.
    load_local("train", isolated)
    (name,) = cache_files(isolated)
    cached = isolated / "cache" / "datasets" / "cifar10" / name
    cached.write_bytes(cached.read_bytes()[:1000])  # As a writer without os.replace could leave it.
    assert_split(load_local("test", isolated), expected["test"])  # Decoded again and rewritten.
    fail_on_decode(monkeypatch)
    assert_split(load_local("train", isolated), expected["train"])
    assert cache_files(isolated) == [name]


def test_real_cifar10_tarball():
    """The JPEG ImageFolder tarball of ../shared/data (decoded once, then cached in tinyjax's cache)."""
    root = os.environ.get("TINYJAX_DATA_DIR")
    if not root or not os.path.isfile(os.path.join(root, "cifar10-jpeg.tar.gz")):
        pytest.skip("needs $TINYJAX_DATA_DIR/cifar10-jpeg.tar.gz (set TINYJAX_DATA_DIR=../shared/data)")
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
