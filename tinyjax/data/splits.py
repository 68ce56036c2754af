"""The splits a run trains and evaluates on: ``load_splits(config)``."""

from __future__ import annotations

import jax
import numpy as np

from tinyjax import streams
from tinyjax.data import pipeline
from tinyjax.data.sources import load
from tinyjax.config import Config, ConfigError


def load_splits(config: Config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The host arrays of ``train``, ``test`` and, with ``--val-split N``, ``val``
    (N train images held out, the same subset for every seed). ``--train-limit N``
    first keeps a fixed subset of N train images, ``--test-limit N`` of N test
    images (each the same for every seed, in stored order).

    Raises:
      ConfigError: ``--val-split`` or ``--batch-size`` does not fit the train split.
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    images, labels = _limited(load(config.data.name, "train", config.data.data_dir), config.data.train_limit,
                              streams.SUBSET)
    test = test_split(config)
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


def test_split(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The test images and labels a run with ``config`` evaluates on: the whole test split, or its
    ``--test-limit`` subset (the same for every seed and run).

    Raises:
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    return _limited(load(config.data.name, "test", config.data.data_dir), config.data.test_limit,
                    streams.TEST_SUBSET)


def _limited(split: tuple[np.ndarray, np.ndarray], limit: int | None, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``limit`` examples of ``split`` (in stored order), the same for every seed;
    all of it when ``limit`` is None or not smaller. Not the first N: ImageFolder sources are sorted by class."""
    images, labels = split
    if limit is None or limit >= len(labels):
        return images, labels
    keep = pipeline.subset(streams.key(jax.random.key(0), stream), len(labels), limit)
    return images[keep], labels[keep]
