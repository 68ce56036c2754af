"""The epoch functions' loop state, one model's or N members' (a leading axis on every field but the
epoch): ``TrainCarry``, ``EvalCarry`` and the zero metric sums they start from."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainCarry(NamedTuple):
    """The loop state of a train epoch: the train state, the metric sums of the epoch so far
    (``zero_metrics(train=True)``), the 0-based epoch (int32, for the augmentation's flips) and the
    label smoothing (float32; per replica when replicated)."""

    state: Any
    totals: dict
    epoch: jax.Array
    smoothing: jax.Array


class EvalCarry(NamedTuple):
    """The loop state of an evaluation: the train state, the metric sums and the label smoothing."""

    state: Any
    totals: dict
    smoothing: jax.Array


def zero_metrics(train: bool = False, replicas: int | None = None) -> dict[str, jax.Array]:
    """Zero sums: ``loss_sum`` (float32), ``correct`` and ``count`` (int32), and
    for training ``nonfinite`` (int32: steps with a non-finite loss, gradient or parameter);
    scalars, or ``[replicas]`` (one per replica) when given."""
    shape = () if replicas is None else (replicas,)
    totals = {"loss_sum": jnp.zeros(shape, jnp.float32), "correct": jnp.zeros(shape, jnp.int32),
              "count": jnp.zeros(shape, jnp.int32)}
    return {**totals, "nonfinite": jnp.zeros(shape, jnp.int32)} if train else totals
