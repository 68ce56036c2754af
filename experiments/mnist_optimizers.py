"""MNIST optimizers: reference 001's 18,662-parameter CNN under four optimizers, 20 epochs.

    python -m experiments.mnist_optimizers --variant sgd_onecycle
    python -m experiments.mnist_optimizers --variant sgd_fixed
    python -m experiments.mnist_optimizers --variant adam_onecycle      # the default
    python -m experiments.mnist_optimizers --variant adamw_onecycle
    python -m experiments.mnist_optimizers --variant ours --seeds 0,1,2,3,4   # our recipe, same network

Recipes (reference 001): label smoothing 0.05, 20 epochs, batch 128 (the reference does
not state its batch size; 128 is the course's). ``sgd_onecycle``: SGD, weight
decay 1e-6, OneCycleLR(max_lr=0.02). ``sgd_fixed``: SGD at a constant lr
0.06, weight decay 1e-4, no momentum (PyTorch's default; the reference names
none). ``adam_onecycle``: Adam (coupled L2 1e-4), OneCycleLR with max_lr 0.01,
the lr the reference lists. ``adamw_onecycle``: AdamW (decoupled 1e-4),
OneCycleLR(max_lr=0.02). OneCycleLR's other settings are PyTorch's defaults
(pct_start 0.3, div_factor 25, final_div_factor 1e4, cos, momentum / beta1
cycled 0.95 -> 0.85 -> 0.95), which overwrite the optimizers' own lr and
momentum. Seed figures: 99.56 / 99.10 / 99.61 / 99.60%.
``ours`` (issue 20, docs/mnist-recipes.md): ``adam_onecycle`` trained on images
shifted by up to 2 pixels and turned by up to 10 degrees on the device,
evaluated with the 3-view shift TTA (reference 000's ``ours``, carried over);
99.78% on a 5,000-image validation split (seed 0), never chosen on the test set.
Measured over seeds 0-4: 99.63 +- 0.06% (99.68, 99.56, 99.69, 99.65, 99.56),
16.5-24 min per seed here; ``adam_onecycle`` on the same seeds 99.58 +- 0.08%
(99.63, 99.61, 99.55, 99.46, 99.65), paired +0.05 [-0.10, +0.20] points, p = 0.42:
not told apart on five seeds (docs/mnist-recipes.md).

Measured (seed 0, 2-core CPU, jax 0.10.2), test accuracy after 20 epochs:
``adam_onecycle`` 99.58% (99.95% train), 16 min wall (~45 s per epoch), with
the code of 2026-11-21 (99.63% on seed 0 with that of 2026-12-02); the
reference reports 99.61%. ``sgd_onecycle`` 99.50% and ``adamw_onecycle`` 99.53%
(seed: 99.56 and 99.60%), 26 min each, run side by side. ``sgd_fixed``
99.44% (99.84% train), ~45 s per epoch alone; the reference reports 99.10%, but
its train accuracy (64% after epoch 1, 98.5% after 20, below its test
accuracy) suggests it trained on harder, probably augmented, images it does
not describe; we train on plain MNIST.
"""

import dataclasses
import sys

from tinyjax.cli import main
from tinyjax.config import AugmentConfig, Config, OptimConfig, ScheduleConfig

ONECYCLE = ScheduleConfig(name="onecycle", pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
BASE = Config(experiment="mnist_optimizers", model="mnist_cnn_18k", epochs=20, batch_size=128,
              label_smoothing=0.05)

VARIANTS = {
    "adam_onecycle": dataclasses.replace(
        BASE, optim=OptimConfig(name="adam", lr=0.01, momentum=0.9, weight_decay=1e-4),
        schedule=dataclasses.replace(ONECYCLE, max_lr=0.01)),
    "sgd_onecycle": dataclasses.replace(
        BASE, optim=OptimConfig(name="sgd", lr=0.006, weight_decay=1e-6),
        schedule=dataclasses.replace(ONECYCLE, max_lr=0.02)),
    "sgd_fixed": dataclasses.replace(
        BASE, optim=OptimConfig(name="sgd", lr=0.06, weight_decay=1e-4), schedule=ScheduleConfig(name="constant")),
    "adamw_onecycle": dataclasses.replace(
        BASE, optim=OptimConfig(name="adamw", lr=0.02, momentum=0.9, weight_decay=1e-4),
        schedule=dataclasses.replace(ONECYCLE, max_lr=0.02)),
}
# Ours (issue 20; docs/mnist-recipes.md): adam_onecycle on images shifted by up to 2 pixels and turned by up to
# 10 degrees, with the shift TTA: reference 000's ours, carried over to this network.
VARIANTS["ours"] = dataclasses.replace(VARIANTS["adam_onecycle"], augment=AugmentConfig(crop_padding=2, rotation=10.0),
                                       tta="shift")

if __name__ == "__main__":
    sys.exit(main(VARIANTS, description=__doc__))
