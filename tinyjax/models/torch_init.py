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

import math
from typing import Callable

import jax
import jax.numpy as jnp


def variance_scaling(scale: float, mode: str, distribution: str) -> Callable:
    """``jax.nn.initializers.variance_scaling(scale, mode, distribution)`` (``mode`` ``"fan_in"`` or
    ``"fan_out"``, ``distribution`` ``"uniform"`` or ``"normal"``) for kernels ``[..., in, out]``:
    the same values, bit for bit, drawn on the flat shape and reshaped.

    Why: a model's init runs op by op, and XLA:CPU compiles a random draw of a rank-4 kernel shape in
    0.3-1.4 s (once per shape) against ~0.01 s for its flat shape: 2-9 s of every fresh run's
    start-up for the presets (jax 0.10.2, 2-core Xeon). The values are the same because jax's
    threefry numbers each element by its flat index (``jax_threefry_partitionable``, the default
    since jax 0.5); ``tests/test_models.py`` holds both initialisers equal.

    Raises:
      ValueError: another mode or distribution.
    """
    if mode not in ("fan_in", "fan_out") or distribution not in ("uniform", "normal"):
        raise ValueError(f"variance_scaling: mode {mode!r}, distribution {distribution!r} not supported")

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        shape = tuple(shape)
        receptive_field_size = math.prod(shape) / shape[-2] / shape[-1]  # As jax's _compute_fans.
        fan = (shape[-2] if mode == "fan_in" else shape[-1]) * receptive_field_size
        variance = jnp.array(scale / fan, dtype=dtype)
        flat = (math.prod(shape),)
        if distribution == "uniform":
            return (jax.random.uniform(key, flat, dtype, -1) * jnp.sqrt(3 * variance)).reshape(shape)
        return (jax.random.normal(key, flat, dtype) * jnp.sqrt(variance)).reshape(shape)
    return init


# U(-sqrt(3 * scale / fan_in), +...) with scale 1/3 is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
kernel_init = variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def bias_init(fan_in: int):
    """PyTorch's default bias initialiser: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / fan_in ** 0.5 if fan_in > 0 else 0.0

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
