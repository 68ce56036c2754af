"""The train state: one pytree with everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state

from tinyjax import streams


class TrainState(train_state.TrainState):
    """flax's ``TrainState`` (step, apply_fn, params, tx, opt_state) plus the
    model's ``batch_stats`` collection and ``rng``, the run's root PRNG key.

    Random draws inside a step use ``fold_in(rng, step)``, never consumed
    generator state, so a state can be vmapped over seeds, sharded or
    restored and continue bit-identically.
    """

    batch_stats: Any
    rng: jax.Array


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
                       input_shape: tuple[int, ...]) -> TrainState:
    """Initialises the model on zeros of ``input_shape`` (``[1, H, W, C]``).

    Args:
      rng: the run's root key (``jax.random.key(seed)``); parameters are drawn
        from ``fold_in(rng, streams.INIT)`` and the state keeps ``rng`` for later draws.
    """
    variables = model.init(jax.random.fold_in(rng, streams.INIT), jnp.zeros(input_shape, jnp.float32))
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                              batch_stats=variables.get("batch_stats", {}), rng=rng)
    # flax starts `step` as a Python int, whose weak type differs from the int32
    # the first update returns: the second call would compile again.
    return state.replace(step=jnp.zeros((), jnp.int32))
