"""PyTorch's default initialisers, so results are comparable with PyTorch runs.

``torch.nn.Conv2d`` and ``torch.nn.Linear`` call ``reset_parameters``:
``kaiming_uniform_(weight, a=sqrt(5))`` gives ``U(-b, b)`` with
``b = gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a**2)) = sqrt(1/3)``,
i.e. ``b = 1 / sqrt(fan_in)``; the bias is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
``fan_in = in_channels / groups * kernel_h * kernel_w`` (``in_features`` for
Linear), which is what flax's ``variance_scaling(..., "fan_in")`` computes from
its ``[kh, kw, in / groups, out]`` kernels. ``BatchNorm2d`` starts at scale 1,
bias 0, as flax does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

# U(-sqrt(3 * scale / fan_in), +...) with scale 1/3 is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def bias_init(fan_in: int):
    """PyTorch's default bias initialiser: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / fan_in ** 0.5 if fan_in > 0 else 0.0

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
