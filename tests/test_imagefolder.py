"""CIFAR-10 as an ImageFolder tree or tarball: bad images and folders, the decode cache."""

import hashlib
import os
import shutil

import pytest
from PIL import Image

from tinyjax.data import DataError, imagefolder

from cifar_files import assert_split, load_local, one_line, write_tar, write_tree


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
