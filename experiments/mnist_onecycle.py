"""MNIST one-cycle: the 7,784-parameter CNN of reference 000, with the reference's recipe.

    python -m experiments.mnist_onecycle              # 20 epochs, batch 128
    python -m experiments.mnist_onecycle --epochs 3 --batch-size 256 --seed 1
    python -m experiments.mnist_onecycle --variant dropout    # reference 000 "Model 2"
    python -m experiments.mnist_onecycle --variant baseline   # reference 000 "Model 3"
    python -m experiments.mnist_onecycle --variant ours --seeds 5       # our recipe, same network
    python -m experiments.mnist_onecycle --variant ours_fast --seeds 5  # our recipe in 8 epochs

Recipe (reference 000): SGD, OneCycleLR(max_lr=0.05, pct_start=0.2, div_factor=10,
final_div_factor=100, cos), label smoothing 0.02, batch 128, 20 epochs. The
seed builds ``SGD(lr=0.001)`` without momentum, but OneCycleLR overwrites both
lr and momentum, so the run it really trains -- and our default -- is SGD with
lr 0.005 -> 0.05 -> 5e-5 and momentum cycling 0.95 -> 0.85 -> 0.95.
Variants: ``dropout`` ("Model 2", ~98.5-99% in the reference) adds dropout 0.1
after every conv block but the last; ``baseline`` ("Model 3", 94.47%) trains
without the scheduler, i.e. what the reference's optimizer is without OneCycleLR:
SGD at a constant lr 0.001, no momentum.
``ours`` (issue 20, docs/mnist-recipes.md): the same network, optimizer and
schedule, trained on images shifted by up to 2 pixels and turned by up to 10
degrees on the device, evaluated with the 3-view shift TTA; ``ours_fast``:
the shift alone, one-cycle over 8 epochs. Both chosen on a 5,000-image
validation split, never on the test set. ``ours`` measured over seeds 0-4:
99.53 +- 0.08% (99.50, 99.64, 99.45, 99.48, 99.56), +0.15 [+0.09, +0.21]
points over the reproduction on the same seeds; ``ours_fast`` over seeds 0-4:
99.41 +- 0.06% after its 8 epochs (99.44, 99.32, 99.40, 99.43, 99.47), +0.25
[+0.17, +0.33] points over the reproduction after its epoch 8, 217-255 s per seed.

Measured (2-core AMD EPYC CPU, jax 0.10.2, loop=step): 99.38 +- 0.08% test
accuracy after 20 epochs over seeds 0-4 (99.29, 99.50, 99.35, 99.36, 99.38;
sample std), 4 min 24 s wall per seed (~13 s per epoch, eval included).
Reference 000 reports 99.48%; the PyTorch reference of the same recipe on this
machine reached 99.33 +- 0.04% over the same seeds (``scripts/parity.py``).
"""

import dataclasses
import sys

from tinyjax.cli import main
from tinyjax.config import AugmentConfig, Config, OptimConfig, ScheduleConfig

CONFIG = Config(
    experiment="mnist_onecycle",
    model="mnist_cnn_7k",
    epochs=20,                      # epochs
    batch_size=128,                 # images per step; 469 steps per epoch
    label_smoothing=0.02,
    optim=OptimConfig(name="sgd", lr=0.001, momentum=0.0, weight_decay=0.0),  # lr, momentum: overwritten
    schedule=ScheduleConfig(name="onecycle", max_lr=0.05, pct_start=0.2, div_factor=10.0,
                            final_div_factor=100.0, anneal_strategy="cos", cycle_momentum=True,
                            base_momentum=0.85, max_momentum=0.95),
)

# Ours (issue 20; docs/mnist-recipes.md): the same network and optimizer, tuned on --val-split 5000 only.
OURS = dataclasses.replace(
    CONFIG,
    augment=AugmentConfig(crop_padding=2, rotation=10.0),   # shift by up to 2 pixels, turn by up to 10 degrees
    tta="shift",                                            # the image and its 1-pixel shifts, 1/2, 1/4, 1/4
)

VARIANTS = {
    "default": CONFIG,
    "ours": OURS,
    "ours_fast": dataclasses.replace(OURS, epochs=8, augment=AugmentConfig(crop_padding=2)),
    "dropout": dataclasses.replace(CONFIG, model="mnist_cnn_7k_dropout"),
    "baseline": dataclasses.replace(CONFIG, schedule=ScheduleConfig(name="constant")),
}

if __name__ == "__main__":
    sys.exit(main(VARIANTS, description=__doc__))
