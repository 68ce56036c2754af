"""MNIST under 2,048 parameters, with the challenge's fixed training (seed 002).

    python -m experiments.mnist_tiny                  # our network, see below
    python -m experiments.mnist_tiny --variant seed   # the seed's 1,986-param network

Fixed recipe (seed 002, the Deep-ML lab): Adam (PyTorch defaults, lr 1e-3,
constant), batch 128, 10 epochs, no label smoothing; only the network may
change, under ``--max-params 2048`` (checked before anything compiles).
``seed`` is the seed's depthwise-separable network (1,986 params; 76.6% in
the seed). The default, ``mnist_tiny_2k`` (2,026 params), is ours: conv 1->16
at full resolution, then depthwise-separable blocks (depthwise 3x3 +
pointwise 1x1, BatchNorm + ReLU after each) widening to 24 channels with two
2x2 pools, a last pointwise 24->14, global average pooling and a 14->10 head.

Measured (seed 0, 2-core CPU, jax 0.10.2): default 98.24% test accuracy
after the 10 epochs (98.0% train: the network still underfits; the 98.5%
target is not reached yet); ``--variant seed`` 92.71%, where the seed
reports 76.6% (the seed leaves padding and pooling open; ours are above).
"""

import dataclasses
import sys

from tinyjax.cli import main
from tinyjax.config import Config, OptimConfig, ScheduleConfig

CONFIG = Config(experiment="mnist_tiny", model="mnist_tiny_2k", max_params=2048, epochs=10, batch_size=128,
                optim=OptimConfig(name="adam", lr=1e-3, momentum=0.9, beta2=0.999),
                schedule=ScheduleConfig(name="constant"))

VARIANTS = {"default": CONFIG, "seed": dataclasses.replace(CONFIG, model="mnist_dsconv_2k")}

if __name__ == "__main__":
    sys.exit(main(VARIANTS, description=__doc__))
