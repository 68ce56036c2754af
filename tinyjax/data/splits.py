"""The splits a run trains and evaluates on: ``load_splits(config)``, and the ``DataInfo`` of its data."""

from __future__ import annotations

import jax
import numpy as np

from tinyjax import streams
from tinyjax.data import pipeline
from tinyjax.data.dataset import Dataset, DataInfo, builtin_info, resolve
from tinyjax.data.sources import load
from tinyjax.config import Config, ConfigError

HELD_OUT_TEST = 0.1  # The fraction of train held out as the test split of a dataset that has none.


def dataset_of(config: Config, dataset: Dataset | None = None) -> Dataset | None:
    """The run's ``Dataset``: ``dataset`` when given (the user's arrays), else the ``--dataset`` file or
    folder read once; None for a built-in name (read split by split).

    Raises:
      DatasetNotFoundError, DataError: data that cannot be found or used.
    """
    if dataset is not None:
        return dataset
    size = None if config.data.image_size is None else tuple(int(n) for n in config.data.image_size.split(","))
    return resolve(config.data.name, size, config.data.data_dir)


def data_info(config: Config, dataset: Dataset | None = None) -> DataInfo:
    """Image shape, class names and normalisation of the run's data (``dataset_of``'s)."""
    return builtin_info(config.data.name) if dataset is None else dataset.info


def load_splits(config: Config, dataset: Dataset | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The host arrays of ``train``, ``test`` and, with ``--val-split N``, ``val``
    (N train images held out, the same subset for every seed). ``--train-limit N``
    first keeps a fixed subset of N train images, ``--test-limit N`` of N test
    images (each the same for every seed, in stored order). ``dataset``: the run's data when it is
    not a built-in name (``dataset_of``); one without a test split gives 10% of its train images,
    a fixed subset, as the test split.

    Raises:
      ConfigError: ``--val-split`` or ``--batch-size`` does not fit the train split.
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    train, test = _source(config, dataset)
    images, labels = _limited(train, config.data.train_limit, streams.SUBSET)
    test = _limited(test, config.data.test_limit, streams.TEST_SUBSET)
    n, val = config.data.val_split, None
    if n:
        if n >= len(labels):
            raise ConfigError(f"--val-split {n} leaves no training images (the train split has {len(labels)}); "
                              "choose a smaller --val-split.")
        key = streams.key(jax.random.key(0), streams.VALIDATION)
        (images, labels), val = pipeline.hold_out(images, labels, n, key)
    if config.batch_size > len(labels):
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the training set ({len(labels)} images "
                          "after --train-limit and --val-split); choose --batch-size <= that.")
    return {"train": (images, labels), **({"val": val} if n else {}), "test": test}


def test_split(config: Config, dataset: Dataset | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test images and labels a run with ``config`` evaluates on: the whole test split, or its
    ``--test-limit`` subset (the same for every seed and run).

    Raises:
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    return _limited(_source(config, dataset, train=False)[1], config.data.test_limit, streams.TEST_SUBSET)


def _source(config: Config, dataset: Dataset | None, train: bool = True):
    """``(train, test)`` of the run's data before limits (``train`` None when not asked for and built in)."""
    if dataset is None:
        return (load(config.data.name, "train", config.data.data_dir) if train else None,
                load(config.data.name, "test", config.data.data_dir))
    if dataset.test is not None:
        return dataset.train, dataset.test
    images, labels = dataset.train
    n = max(1, int(round(HELD_OUT_TEST * len(labels))))
    if n >= len(labels):
        from tinyjax.data.errors import DataError

        raise DataError(f"{dataset.name}: {len(labels)} train images and no test split; give a test split "
                        "(x_test, y_test) or more images.")
    return pipeline.hold_out(images, labels, n, streams.key(jax.random.key(0), streams.HELD_OUT_TEST))


def _limited(split: tuple[np.ndarray, np.ndarray], limit: int | None, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``limit`` examples of ``split`` (in stored order), the same for every seed;
    all of it when ``limit`` is None or not smaller. Not the first N: ImageFolder sources are sorted by class."""
    images, labels = split
    if limit is None or limit >= len(labels):
        return images, labels
    keep = pipeline.subset(streams.key(jax.random.key(0), stream), len(labels), limit)
    return images[keep], labels[keep]
