"""Inference on raw images: ``tinyjax.predict(model, variables, images, dataset)``."""

from __future__ import annotations

import functools

import jax
import numpy as np

from tinyjax.data.pipeline import NORMALIZATION, normalize


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _probabilities(model, variables, images, mean, std):
    return jax.nn.softmax(model.apply(variables, normalize(images, mean, std), train=False), axis=-1)


def predict(model, variables: dict, images: np.ndarray, dataset: str = "mnist",
            batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of ``images`` under a trained model, in eval mode
    (BatchNorm uses its running statistics).

    Args:
      model: the flax module (``tinyjax.checkpoint.load(...).model``).
      variables: ``{"params": ..., "batch_stats": ...}``.
      images: ``uint8 [N, H, W, C]`` raw pixels (0..255); the dataset's
        normalisation, ``(pixel / 255 - mean) / std``, is applied here.
      dataset: whose normalisation (``tinyjax.data.NORMALIZATION``), e.g. the
        run's ``config.data.name``.
      batch_size: images per forward pass (does not change the result).

    Returns:
      ``float32 [N, K]`` softmax probabilities, each row summing to 1.

    Raises:
      ValueError: images are not ``uint8 [N, H, W, C]``, or the dataset is unknown.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"predict needs uint8 images [N, H, W, C], got {images.dtype} {images.shape}.")
    if dataset not in NORMALIZATION:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(NORMALIZATION)}.")
    mean, std = NORMALIZATION[dataset]
    # Compiled once per model and batch shape (a last partial batch once more), not per call.
    out = [np.asarray(_probabilities(model, variables, images[i:i + batch_size], mean, std))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
