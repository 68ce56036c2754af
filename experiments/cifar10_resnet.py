"""CIFAR-10 ResNets: reference 004's 4,985,390-parameter ResNet with its recipe, and He et al.'s ResNet-20..110.

    python -m experiments.cifar10_resnet                       # reference 004: 200 epochs, batch 64
    python -m experiments.cifar10_resnet --dtype bfloat16      # the same in mixed precision (GPU/TPU)
    python -m experiments.cifar10_resnet --variant resnet20    # He et al. 2015, 164 epochs, batch 128
    python -m experiments.cifar10_resnet --grid                # reference 004's Table 2 grid, 256 runs
    python -m experiments.cifar10_resnet --grid batch_size=64,256 weight_decay=1e-4,5e-4 --epochs 20

Recipe (reference 004): ``resnet_7x3`` (7+7+7 BasicBlocks at 32/64/190 channels,
1x1-conv shortcuts, dropout 0.3), SGD lr 0.1, momentum 0.9, coupled weight
decay 1e-4 (PyTorch's SGD), batch 64, MultiStepLR milestones [80, 120] gamma
0.1, 200 epochs, the checkpoint with the best test accuracy kept (the reference's
"validation" set is the test set; ``--val-split 5000`` selects on held-out
train images instead). Augmentation: random crop 32 from 4-pixel padding,
horizontal flip, rotation and colour jitter; the reference names these without
their strengths, so we use the usual course values RandomRotation(15) and
ColorJitter(0.2, 0.2, 0.2). Seed figure: 94.80% test accuracy.
Kaiming-normal fan_out init (torchvision's ResNet) and black crop padding
(the report normalises after augmenting, torchvision's order).
``resnet20/32/44/56/110``: He et al.'s CIFAR recipe (arXiv:1512.03385, sec.
4.2): batch 128, lr 0.1, momentum 0.9, weight decay 1e-4, lr / 10 at 50% and
75% of 164 epochs (their 32k and 48k of 64k iterations), crop + flip; the
paper reports 91.25 / 92.49 / 92.83 / 93.03 / 93.39% test accuracy. The
paper leaves two choices open; we take those of the code its CIFAR figures
are usually reproduced with: Kaiming-normal fan_in init of every conv and
linear weight (the common PyTorch CIFAR-ResNet code's ``kaiming_normal_``),
and crop padding in the mean colour (``--crop-fill mean``: fb.resnet.torch
crops after ``ColorNormalize``). What each costs, measured against a PyTorch
reference (``scripts/parity_cifar.py``): see the README's CIFAR-10 section.
``--epochs N`` shortens any of them, the milestones scaled with it.

Measured on a JPEG-q75 copy of CIFAR-10 (expect 0.5-1.5 points below
published CIFAR-10 figures): see the README's results table and docs/cifar10.md.
"""

import dataclasses
import sys

from tinyjax.cli import main
from tinyjax.config import AugmentConfig, Config, DataConfig, OptimConfig, ScheduleConfig

REFERENCE_004 = Config(
    experiment="cifar10_resnet",
    model="resnet_7x3",                                     # 4,985,390 trainable parameters
    max_params=5_000_000,                                   # the reference's budget
    data=DataConfig(name="cifar10"),
    epochs=200,                                             # epochs
    batch_size=64,                                          # images per step; 782 steps per epoch
    eval_batch_size=500,
    augment=AugmentConfig(crop_padding=4, flip="random", rotation=15.0,   # pixels, degrees
                          brightness=0.2, contrast=0.2, saturation=0.2),
    optim=OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4),
    schedule=ScheduleConfig(name="piecewise", milestones=(80, 120), gamma=0.1),   # epochs
)


def he_et_al(model: str) -> Config:
    """He et al.'s CIFAR-10 recipe for ``model``."""
    return dataclasses.replace(
        REFERENCE_004, model=model, max_params=None, epochs=164, batch_size=128,
        augment=AugmentConfig(crop_padding=4, flip="random", crop_fill="mean"),
        schedule=ScheduleConfig(name="piecewise", milestones=(82, 123), gamma=0.1))


VARIANTS = {"default": REFERENCE_004, **{m: he_et_al(m) for m in
                                     ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")}}

# Reference 004's Table 2: 4 x 4 x 4 x 4 = 256 points; milestones in epochs of the 200-epoch run.
GRID = {"batch_size": "32,64,256,512", "gamma": "0.1,0.2,0.3,0.5", "weight_decay": "1e-5,1e-4,5e-4,1e-3",
        "milestones": "[50,100],[75,125],[100,150],[125,175]"}

if __name__ == "__main__":
    sys.exit(main(VARIANTS, description=__doc__, grid=GRID))
