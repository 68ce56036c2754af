"""Model families and the named presets of the seeds; ``create(name)``.

Presets (trainable parameters in brackets, as in the reference experiments):

- ``mnist_cnn_7k`` (7,784): reference 000 "Model 1", 7 convs 3x3 without bias,
  BatchNorm + ReLU, pools after conv3 and conv5, padding 1 on conv6-7.
- ``mnist_cnn_7k_dropout`` (7,784): reference 000 "Model 2", the same with
  dropout 0.1 after every conv block but the last (the reference gives no rate or
  place; 0.1 per block is the course's usual choice).
- ``mnist_cnn_18k`` (18,662): reference 001, conv bias on, channels 14-14-16 |
  18-20 | 22-22, conv6 padding 1, conv7 3x3 on the 3x3 map (-> 1x1).
- ``mnist_dsconv_2k`` (1,986): reference 002, conv 1->16, depthwise 16,
  pointwise 16->58, BatchNorm after each, no conv bias, dense 58->10 (the
  seed does not give padding and pooling; we use padding 1 on the 3x3 convs
  and 2x2 pools after conv1 and the pointwise conv, as its baseline network).
- ``mnist_tiny_2k`` (2,031): ours for reference 002's challenge (``tiny_2k``).
- ``mlp_<n>hl_<width>[_sigmoid]``: reference 003's MLPs, e.g. ``mlp_2hl_50``
  (42,310) and ``mlp_3hl_1000`` (2,797,010).
- ``resnet_7x3`` (4,985,390): reference 004, CIFAR-10: stem 32, 7+7+7
  BasicBlocks at 32/64/190 channels, 1x1-conv shortcuts (option B),
  dropout 0.3 before the head.
- ``resnet20``, ``resnet32``, ``resnet44``, ``resnet56``, ``resnet110``
  (269,722 / 464,154 / 658,586 / 853,018 / 1,727,962): He et al. 2015's
  CIFAR ResNets, 3 stages of n = 3/5/7/9/18 blocks at 16/32/64 channels,
  stem 16, zero-padding shortcuts (option A), Kaiming-normal fan_in init (the
  other ResNets: fan_out, torchvision's).
- ``resnet18`` (11,173,962): the common CIFAR variant of ResNet-18: 3x3
  stem 64 without max-pool, 4 stages of 2 blocks at 64/128/256/512, option B.
- ``fastnet_2m`` (1,971,640) and ``fastnet_4m`` (4,604,728): our fast CIFAR-10
  recipe's network (``FastNet``, after airbench): a frozen 2x2
  patch-whitening conv, then 3 blocks of two 3x3 convs at 64/256/256 or
  128/384/384 channels with BatchNorm without scale and GELU (exact, erf).

``create(name, dtype=jnp.bfloat16)`` builds a ResNet or FastNet preset for mixed
precision (computation in bfloat16, parameters and BatchNorm statistics in
float32); the CNN and MLP families compute in float32 only.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from tinyjax.models.cnn import CNN, ConvSpec
from tinyjax.models.mlp import MLP
from tinyjax.models.fastnet import FastNet
from tinyjax.models.resnet import ResNet


def seed000_cnn(dropout: float = 0.0) -> CNN:
    channels = (7, 7, 10, 10, 12, 16, 18)
    return CNN(tuple(ConvSpec(c, padding=1 if i >= 5 else 0, pool=i in (2, 4),
                              dropout=dropout if i < len(channels) - 1 else 0.0)
                     for i, c in enumerate(channels)))


def seed001_cnn() -> CNN:
    channels = (14, 14, 16, 18, 20, 22, 22)
    return CNN(tuple(ConvSpec(c, bias=True, padding=1 if i == 5 else 0, pool=i in (2, 4))
                     for i, c in enumerate(channels)))


def tiny_2k() -> CNN:
    """Ours for reference 002's challenge (2,031 params). Conv 1->12 at full
    resolution, then depthwise-separable blocks (depthwise 3x3 + pointwise
    1x1) widening 12 -> 16 -> 24 with a 2x2 pool after each pointwise, a
    pointwise 24->17 on the 3x3 map and a last depthwise 3x3 that reads it
    whole (3x3 -> 1x1, so the head still sees where a stroke is), then the
    17->10 head. Each conv is followed by BatchNorm without its scale and by
    GELU (flax's default, the tanh approximation): the 138 parameters gamma
    would take went into width (with GELU, unlike ReLU, dropping gamma fixes
    each pre-activation's scale at 1; the
    two changes together measured better than ReLU with gamma, see
    ``experiments/mnist_tiny.py``)."""
    layers = (ConvSpec(12), ConvSpec(12, depthwise=True), ConvSpec(16, kernel=1, pool=True),
              ConvSpec(16, depthwise=True), ConvSpec(24, kernel=1, pool=True),
              ConvSpec(24, depthwise=True), ConvSpec(17, kernel=1), ConvSpec(17, depthwise=True))
    return CNN(tuple(dataclasses.replace(spec, bn_scale=False, activation="gelu") for spec in layers))


def seed002_dsconv() -> CNN:
    return CNN((ConvSpec(16, padding=1, pool=True),
                ConvSpec(16, padding=1, depthwise=True),
                ConvSpec(58, kernel=1, pool=True)))


def he_resnet(n: int) -> ResNet:
    """He et al. 2015's CIFAR ResNet-(6n+2): n blocks per stage at 16/32/64, option A, initialised as
    the common PyTorch CIFAR-ResNet code does (``kaiming_normal_`` fan_in on conv and linear weights)."""
    return ResNet((n, n, n), (16, 32, 64), stem_width=16, shortcut="A", init_mode="fan_in")


PRESETS: dict[str, Callable[[], nn.Module]] = {
    "mnist_cnn_7k": seed000_cnn,
    "mnist_cnn_7k_dropout": lambda: seed000_cnn(dropout=0.1),
    "mnist_cnn_18k": seed001_cnn,
    "mnist_dsconv_2k": seed002_dsconv,
    "mnist_tiny_2k": tiny_2k,
    "mlp_1hl_50": lambda: MLP((50,)),
    "mlp_2hl_50": lambda: MLP((50, 50)),
    "mlp_3hl_10": lambda: MLP((10, 10, 10)),
    "mlp_3hl_50": lambda: MLP((50, 50, 50)),
    "mlp_3hl_50_sigmoid": lambda: MLP((50, 50, 50), activation="sigmoid"),
    "mlp_3hl_100": lambda: MLP((100, 100, 100)),
    "mlp_3hl_1000": lambda: MLP((1000, 1000, 1000)),
    "resnet_7x3": lambda: ResNet((7, 7, 7), (32, 64, 190), stem_width=32, shortcut="B", dropout=0.3),
    "resnet20": lambda: he_resnet(3),
    "resnet32": lambda: he_resnet(5),
    "resnet44": lambda: he_resnet(7),
    "resnet56": lambda: he_resnet(9),
    "resnet110": lambda: he_resnet(18),
    "resnet18": lambda: ResNet((2, 2, 2, 2), (64, 128, 256, 512), stem_width=64, shortcut="B"),
    "fastnet_2m": lambda: FastNet((64, 256, 256)),
    "fastnet_4m": lambda: FastNet((128, 384, 384)),
}


def create(name: str, dtype=jnp.float32) -> nn.Module:
    """The preset registered as ``name``, computing in ``dtype``.

    ``dtype`` (anything ``jnp.dtype`` accepts: ``jnp.bfloat16``, ``"bfloat16"``)
    is the computation dtype of the families that have one (``ResNet``);
    parameters stay float32 in every family.

    Raises:
      ValueError: unknown name (the message lists the known ones), or a dtype
        other than float32 for a family without a ``dtype`` field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(PRESETS)}.")
    model, dtype = PRESETS[name](), jnp.dtype(dtype)
    if dtype == jnp.float32:
        return model
    if not hasattr(model, "dtype"):
        raise ValueError(f"{name} ({type(model).__name__}) supports only float32; use dtype=jnp.float32 "
                         f"or a ResNet or FastNet preset for {dtype}.")
    return model.clone(dtype=dtype)


def count_params(params) -> int:
    """Number of scalars in a pytree (trainable params, or batch statistics)."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


__all__ = ["CNN", "ConvSpec", "FastNet", "MLP", "PRESETS", "ResNet", "create", "count_params"]
