"""``Dropout``: flax's ``nn.Dropout`` with its mask drawn on the flat shape.

XLA:CPU compiles a random draw of a rank-2 or rank-4 shape slowly (a ``[4, 26, 26, 7]`` mask:
1.6 s; the 7k CNN's dropout train program 6.5 s, 0.7 s with flat draws; jax 0.10.2, 2-core
Xeon). jax's threefry numbers each element by its flat index (``jax_threefry_partitionable``, the
default since jax 0.5), so a mask drawn flat and reshaped is the same mask, bit for bit
(``tests/test_models.py`` holds it equal to flax's).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import linen as nn
from jax import lax, random


class Dropout(nn.Module):
    """``flax.linen.Dropout(rate, deterministic)`` (flax 0.12.8's ``__call__``, without
    ``broadcast_dims``): in training, each element of ``x`` (any shape, float) is kept with
    probability ``1 - rate`` and scaled by ``1 / (1 - rate)``, else zeroed; the mask is drawn from
    the ``dropout`` rng. The class is named as flax's so that its auto-names (``Dropout_0``, ...) and
    so its rng streams are flax's too.

    Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks from overfitting"
    (inverted dropout, as ``torch.nn.Dropout``).
    """

    rate: float
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, x, deterministic: bool | None = None):
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return x
        if self.rate == 1.0:  # As flax: no NaN gradient.
            return jnp.zeros_like(x)
        keep_prob = 1.0 - self.rate
        mask = random.bernoulli(self.make_rng("dropout"), p=keep_prob, shape=(math.prod(x.shape),)).reshape(x.shape)
        return lax.select(mask, x / keep_prob, jnp.zeros_like(x))
