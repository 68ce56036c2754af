"""Eval-mode logits over test-time augmentation views, and inference on raw images:
``tinyjax.predict(model, variables, images, dataset, tta=...)``.

``view_logits`` is the one forward pass of evaluation: the train loop's
``evaluate`` (``tinyjax.train.epochs``), ``tinyjax.evaluate`` and ``predict``
all compute a run's test figures through it, so a checkpoint's predictions
reproduce the accuracy its run recorded, test-time augmentation included.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax.data.pipeline import NORMALIZATION, check_tta, standardize, tta_views


def view_logits(apply_fn: Callable, variables: dict, pixels: jax.Array, mean, std, tta: str = "none") -> jax.Array:
    """Eval-mode logits ``float32 [B, K]`` (BatchNorm on its running statistics) of ``pixels``, float32
    ``[B, H, W, C]`` in [0, 1] (``pixel / 255``): each test-time augmentation view
    (``tinyjax.data.pipeline.tta_views``: ``"none"``, ``"flip"``, ``"shift"``, ``"flip_shift"``) standardised with
    ``mean`` and ``std`` and passed through ``apply_fn(variables, x, train=False)``, the logits averaged
    with the views' weights.

    Raises:
      ValueError: an unknown ``tta``.
    """
    return sum(weight * apply_fn(variables, standardize(view, mean, std), train=False)
               for weight, view in tta_views(pixels, tta))


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _probabilities(model, variables, images, mean, std, tta):
    pixels = images.astype(jnp.float32) / 255.0
    return jax.nn.softmax(view_logits(model.apply, variables, pixels, mean, std, tta), axis=-1)


def predict(model, variables: dict, images: np.ndarray, dataset="mnist", batch_size: int = 1000,
            tta: str = "none") -> np.ndarray:
    """Class probabilities of ``images`` under a trained model, in eval mode
    (BatchNorm uses its running statistics), computed as the run's evaluation
    computes them (``view_logits``). ``tinyjax.load(run_dir).predict(images)``
    fills in ``dataset`` and ``tta`` from the run.

    Args:
      model: the model (``tinyjax.load(...).model``, a ``tinyjax.models.door.Net``, or a linen module).
      variables: ``{"params": ..., "batch_stats": ...}``.
      images: ``uint8 [N, H, W, C]`` raw pixels (0..255); the dataset's
        normalisation, ``(pixel / 255 - mean) / std``, is applied here.
      dataset: whose normalisation: a built-in name (``tinyjax.data.NORMALIZATION``, e.g. the
        run's ``config.data.name``) or a ``tinyjax.data.DataInfo`` (``tinyjax.load(...).info``).
      batch_size: images per forward pass (does not change the result).
      tta: test-time augmentation, the run's ``config.tta``: ``"none"`` (one
        view), ``"flip"``, ``"shift"`` (3 views, no mirror) or ``"flip_shift"`` (airbench's 6 views).

    Returns:
      ``float32 [N, K]`` softmax probabilities (of the TTA-averaged logits), each row summing to 1.

    Raises:
      ValueError: images are not ``uint8 [N, H, W, C]``, or the dataset or ``tta`` is unknown.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"predict needs uint8 images [N, H, W, C], got {images.dtype} {images.shape}.")
    if isinstance(dataset, str) and dataset not in NORMALIZATION:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(NORMALIZATION)}, or pass the run's "
                         "DataInfo (tinyjax.load(run_dir).info).")
    check_tta(tta)  # Before anything compiles.
    mean, std = NORMALIZATION[dataset] if isinstance(dataset, str) else (dataset.mean, dataset.std)
    mean, std = (tuple(mean) if isinstance(mean, list) else mean), (tuple(std) if isinstance(std, list) else std)
    # Compiled once per model and batch shape (a last partial batch once more), not per call.
    out = [np.asarray(_probabilities(model, variables, images[i:i + batch_size], mean, std, tta))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
