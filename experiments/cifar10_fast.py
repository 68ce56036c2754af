"""CIFAR-10 fast: our recipe under reference 004's 5M-parameter budget, in a fraction of its 200 epochs.

    python -m experiments.cifar10_fast --dtype bfloat16                   # fastnet_4m, 15 epochs (GPU/TPU)
    python -m experiments.cifar10_fast --variant small --dtype bfloat16   # fastnet_2m, 10 epochs
    python -m experiments.cifar10_fast --variant resnet_7x3 --dtype bfloat16   # the reference's ResNet, 40 epochs
    python -m experiments.cifar10_fast --seed 3                           # another seed

What it does (all of it public, after airbench: Jordan, arXiv:2404.00498 and
github.com/KellerJordan/cifar10-airbench; written here, not copied): the
whole dataset and its augmentation on the device (random 2-pixel translation
by a crop from a reflect-padded copy, flips that alternate across epochs);
``FastNet``, a VGG-like net whose first layer whitens 2x2 patches with
filters computed from 5,000 training images and then frozen (its 288 kernel
values are counted in the parameters, though never trained), BatchNorm
without scale (momentum 0.4, eps 1e-12) and GELU, identity (dirac) init of
the first filters of each conv, logits / 9; label smoothing 0.2; Nesterov
SGD at batch 1024 with momentum 0.85 and a triangular lr schedule (0.2x ->
1x over the first 23% of the steps, then down to 0.07x); an exponential
moving average of the weights for evaluation; airbench's test-time
augmentation over flips and 1-pixel (reflect-padded) shifts, weighted 1/4,
1/4 and 1/8 x 4.

Hyperparameters in our terms: airbench states lr 10 and weight decay 0.0153
per 1024 examples, decoupled from momentum (divided by 1024 * (1 + 1 / (1 -
momentum)) for PyTorch's SGD on a summed loss); for our mean loss that is a
peak lr of 1.30 and a coupled L2 weight decay of 1.5e-3. airbench's details
not reproduced: its 64x lr on BatchNorm shifts, its Lookahead (here a plain
EMA, decay 0.95 per step), the whitening bias frozen after 3 epochs, and
9.9 instead of 10 epochs. ``scripts/airbench_reference.py`` is an
independent PyTorch reference of airbench94 to set ours beside.

Targets: >= 95.0% mean test accuracy over >= 5 seeds in <= 15
epochs with < 5M parameters; the reference's ``resnet_7x3`` >= 95.5% in <= 50
epochs. Measured (a JPEG-q75 copy of CIFAR-10, 2-core CPU): ``--variant small``
89.91% with TTA (seed 0), PyTorch airbench94 on the same data 90.72%; see
docs/cifar10.md.
"""

import dataclasses
import sys

from tinyjax.cli import main
from tinyjax.config import AugmentConfig, Config, DataConfig, OptimConfig, ScheduleConfig

FAST = Config(
    experiment="cifar10_fast",
    model="fastnet_4m",                     # 4,604,728 parameters (288 of them frozen)
    max_params=5_000_000,                   # reference 004's budget
    data=DataConfig(name="cifar10"),
    epochs=15,                              # epochs; 49 steps each
    batch_size=1024,                        # images per step
    eval_batch_size=2000,
    label_smoothing=0.2,
    ema=0.95,                               # weight average, decay per step
    tta="flip_shift",                       # 6 views per test image
    augment=AugmentConfig(crop_padding=2, flip="alternate", crop_fill="reflect"),   # pixels
    optim=OptimConfig(name="sgd", momentum=0.85, nesterov=True, weight_decay=1.5e-3),
    schedule=ScheduleConfig(name="onecycle", max_lr=1.3, pct_start=0.23, div_factor=5.0,
                            final_div_factor=0.2 / 0.07, anneal_strategy="linear", cycle_momentum=False),
)

# The reference's own network with our recipe: larger batch, one-cycle, smoothing, EMA and TTA, 40 epochs.
RESNET = dataclasses.replace(
    FAST, model="resnet_7x3", epochs=40, batch_size=512, label_smoothing=0.1, ema=0.99,
    augment=AugmentConfig(crop_padding=4, flip="alternate"),
    optim=OptimConfig(name="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4),
    schedule=ScheduleConfig(name="onecycle", max_lr=0.4, pct_start=0.25, div_factor=8.0, final_div_factor=100.0,
                            anneal_strategy="linear", cycle_momentum=False))

VARIANTS = {
    "default": FAST,
    "small": dataclasses.replace(FAST, model="fastnet_2m", epochs=10),   # 1,971,640 parameters
    "resnet_7x3": RESNET,
}

if __name__ == "__main__":
    sys.exit(main(VARIANTS, description=__doc__))
