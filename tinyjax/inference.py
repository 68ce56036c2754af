"""Inference on raw images: ``tinyjax.predict(model, variables, images, dataset)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax.data.pipeline import NORMALIZATION


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

    @jax.jit
    def probabilities(batch):
        x = (batch.astype(jnp.float32) / 255.0 - mean) / std
        return jax.nn.softmax(model.apply(variables, x, train=False), axis=-1)

    out = [np.asarray(probabilities(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
