"""The PRNG streams of a run, in one place, and the one way to draw a key from them.

Every random draw derives from the run's root key ``jax.random.key(seed)``
as ``key(root, STREAM, counter)`` = ``fold_in(fold_in(root, STREAM),
counter)`` (the counter a step, an epoch or an example index), never from
consumed generator state, so a draw depends only on (seed, stream, counter):
a run restored from a checkpoint, vmapped over seeds or sharded draws the
same numbers.
"""

from __future__ import annotations

import jax

INIT = 0        # parameter init: key(root, INIT)
DROPOUT = 1     # dropout masks: key(root, DROPOUT, step)
DATA_ORDER = 2  # the epoch's shuffle: key(root, DATA_ORDER, epoch)
VALIDATION = 3  # the held-out validation subset: key(key(0), VALIDATION), the same for every seed
AUGMENT = 4     # augmentation draws: key(root, AUGMENT, step), then per transform and example
FLIP = 5        # --flip alternate's first-epoch choice: key(root, FLIP, example index)
SUBSET = 6      # --train-limit's subset of the train split: key(key(0), SUBSET), the same for every seed
WHITEN = 7      # the train images that set a FastNet's whitening layer: key(root, WHITEN)
TEST_SUBSET = 8  # --test-limit's subset of the test split: key(key(0), TEST_SUBSET), the same for every seed
HELD_OUT_TEST = 9  # a dataset without a test split: the train images held out as one, key(key(0), HELD_OUT_TEST)


def key(root: jax.Array, stream: int, counter: int | jax.Array | None = None) -> jax.Array:
    """``fold_in(root, stream)``, then ``fold_in(.., counter)`` when a counter is given (an int or an
    int32 scalar array; traced values work inside jit and vmap).

    Args:
      root: a typed key (``jax.random.key(seed)``) or a key derived from one.
      stream: one of this module's stream tags.
    """
    k = jax.random.fold_in(root, stream)
    return k if counter is None else jax.random.fold_in(k, counter)
