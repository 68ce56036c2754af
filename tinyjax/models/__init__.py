"""Models, found by name (``create(name)``), and parameter counting."""

from __future__ import annotations

import jax
import numpy as np
from flax import linen as nn

from tinyjax.models.cnn import MnistCNN7k

MODELS = {"mnist_cnn_7k": MnistCNN7k}


def create(name: str) -> nn.Module:
    """The model registered as ``name``.

    Raises:
      ValueError: unknown name; the message lists the known ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
    return MODELS[name]()


def count_params(params) -> int:
    """Number of trainable parameters (scalars) in a params pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


__all__ = ["MODELS", "MnistCNN7k", "create", "count_params"]
