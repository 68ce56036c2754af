"""The PRNG streams of a run, in one place.

Every random draw derives from the run's root key ``jax.random.key(seed)``
as ``fold_in(root, STREAM)``, then ``fold_in(.., step or epoch)``, never from
consumed generator state, so a draw depends only on (seed, stream, counter):
a run restored from a checkpoint, vmapped over seeds or sharded draws the
same numbers.
"""

INIT = 0        # parameter init: fold_in(root, INIT)
DROPOUT = 1     # dropout masks: fold_in(fold_in(root, DROPOUT), step)
DATA_ORDER = 2  # the epoch's shuffle: fold_in(fold_in(root, DATA_ORDER), epoch)
VALIDATION = 3  # the held-out validation subset: fold_in(key(0), VALIDATION), the same for every seed
AUGMENT = 4     # augmentation draws: fold_in(fold_in(root, AUGMENT), step), then per example
FLIP = 5        # --flip alternate's first-epoch choice: fold_in(fold_in(root, FLIP), example index)
SUBSET = 6      # --train-limit's subset of the train split: fold_in(key(0), SUBSET), the same for every seed
WHITEN = 7      # the train images that set a FastNet's whitening layer: fold_in(root, WHITEN)
