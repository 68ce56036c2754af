import gzip

import numpy as np
import pytest

from tinyjax.data import IDXFormatError, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) * 7 % 251).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / f"x-idx3-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path, ndim=3)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)


def test_header_is_the_mnist_one(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.array([3, 1, 4], np.uint8))
    assert path.read_bytes() == bytes.fromhex("00000801" "00000003") + bytes([3, 1, 4])


def test_wrong_magic_raises(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes.fromhex("1f000803") + bytes(12))
    with pytest.raises(IDXFormatError, match="bad IDX magic number 1f000803") as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ") and "Re-download the file." in str(err.value)


def _gzip_cut_short(path):
    write_idx(path, np.ones((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:20])


def _gzip_bad_deflate(path):  # A valid gzip header, then an invalid deflate block type.
    path.write_bytes(gzip.compress(b"")[:10] + b"\xff" * 20)


@pytest.mark.parametrize("corrupt,match", [
    (_gzip_cut_short, r"the gzip stream ends early \(truncated download\?\); re-download the file\.$"),
    (lambda path: path.write_bytes(b"not gzip"),
     r"not valid gzip data \(Not a gzipped file \(b'no'\)\); re-download the file\.$"),
    (_gzip_bad_deflate, r"not valid gzip data \(Error -3 .*invalid block type\); re-download the file\.$"),
], ids=["truncated", "not_gzip", "bad_deflate"])
def test_bad_gzip_is_one_line_idx_format_error(tmp_path, corrupt, match):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    corrupt(path)
    with pytest.raises(IDXFormatError, match=match) as err:
        read_idx(path, ndim=3)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_wrong_rank_raises(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(4, np.uint8))
    with pytest.raises(IDXFormatError, match="rank 1, expected 3"):
        read_idx(path, ndim=3)


def test_truncated_file_raises(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.ones((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IDXFormatError, match="truncated.*needs 3136 data bytes, found 3126"):
        read_idx(path, ndim=3)


def test_truncated_header_raises(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(bytes.fromhex("00000803") + bytes(5))
    with pytest.raises(IDXFormatError, match="truncated IDX header"):
        read_idx(path)
