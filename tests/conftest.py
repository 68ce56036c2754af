"""Shared fixtures. Real MNIST comes from tinyjax.data.load: CI points
TINYJAX_DATA_DIR at ../shared/data; elsewhere the normal sources apply."""

import pytest

from tinyjax import data


@pytest.fixture(scope="session")
def mnist_train():
    return data.load("mnist", "train")


@pytest.fixture(scope="session")
def mnist_test():
    return data.load("mnist", "test")


TINY_RUN = ["--epochs", "3", "--train-limit", "512", "--batch-size", "32"]  # 16 steps per epoch.


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 3-epoch run of the seed-000 CNN on 512 real images: its run directory."""
    from experiments import mnist_onecycle
    from tinyjax.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    assert main(mnist_onecycle.VARIANTS, TINY_RUN + ["--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return str(run_dir)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No environment data dir; an empty private cache."""
    monkeypatch.delenv("TINYJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYJAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def splits():
    from cifar_files import make_split

    return {"train": make_split(20, 0), "test": make_split(10, 1)}
