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
