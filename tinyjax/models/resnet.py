"""The ResNet family: CIFAR-style residual networks described by a spec (NHWC).

``ResNet(stage_blocks, stage_widths, stem_width, shortcut, dropout)`` is a
3x3 stem conv (stride 1, padding 1, no bias) + BatchNorm + ReLU, then stages
of BasicBlocks (He et al., "Deep Residual Learning for Image Recognition",
arXiv:1512.03385, section 4.2 for CIFAR-10), global average pooling,
optional dropout and ``Dense(num_classes)``. The first block of every stage
but the first has stride 2. A block is

    relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

with 3x3 convs (padding 1, no bias; conv1 carries the stride) and the
shortcut the identity when the shape is unchanged, else option "A" (the
paper's CIFAR choice: subsample by the stride, zero-pad the new channels, no
parameters) or option "B" (1x1 conv with the stride, no bias, + BatchNorm).

Layers are named ``stem_conv, stem_bn, stage{s}_block{b}/{conv1, bn1, conv2,
bn2, shortcut_conv, shortcut_bn}, fc`` (stages and blocks count from 1).

Initialisers: Kaiming-normal with the ReLU gain, not truncated, for every
conv kernel and the dense kernel (``torch.nn.init.kaiming_normal_(mode=...,
nonlinearity="relu")``, std ``sqrt(2 / fan)``), where ``init_mode`` picks the
fan: ``"fan_in"`` (``kh * kw * in``; the common PyTorch CIFAR-ResNet code's
``_weights_init``, the He et al. presets) or ``"fan_out"`` (``kh * kw * out``;
torchvision's ResNet). The dense head's fan_out is its 10 classes, so fan_out
gives it std 0.45 on a 64-wide head against fan_in's 0.18. PyTorch's default
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` dense bias; BatchNorm scale 1, bias 0,
with PyTorch's momentum and epsilon.

Mixed precision: ``dtype`` is the computation dtype. With ``jnp.bfloat16``
the input is cast to bfloat16 and convs and the dense layer compute in it,
while parameters stay float32; BatchNorm (flax 0.12) computes its batch mean
and variance and the normalisation in float32 and keeps its running
statistics in float32, returning ``dtype``; the logits come back as float32.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.typing import Dtype

from tinyjax.models.cnn import batch_norm
from tinyjax.models.dropout import Dropout
from tinyjax.models.torch_init import bias_init, variance_scaling

SHORTCUTS = ("A", "B")

INIT_MODES = ("fan_in", "fan_out")


def kaiming_normal(mode: str) -> Callable:
    """``torch.nn.init.kaiming_normal_(mode=mode, nonlinearity="relu")``: N(0, 2 / fan).

    flax's fan_in / fan_out of a ``[kh, kw, in, out]`` kernel are ``kh*kw*in`` /
    ``kh*kw*out``, as PyTorch's of ``[out, in, kh, kw]``; of a Dense ``[in, out]``
    kernel ``in`` / ``out``.
    """
    return variance_scaling(2.0, mode, "normal")


@dataclasses.dataclass(frozen=True)
class Block:
    """One BasicBlock of the plan: its layer-name prefix, channels in and out, stride (pixels)."""

    name: str
    in_features: int
    features: int
    stride: int


def pad_shortcut(x: jax.Array, features: int, stride: int) -> jax.Array:
    """Option A shortcut: ``x[:, ::stride, ::stride, :]``, then zero channels appended up to ``features``.

    ``x [B, H, W, C]`` -> ``[B, ceil(H / stride), ceil(W / stride), features]``
    (the shape of a 3x3 conv with padding 1 and that stride). The new channels
    are appended after the old ones (some implementations pad both sides: the
    same network up to a permutation of channels). No parameters.

    Raises:
      ValueError: ``features`` is below ``C`` (zero padding cannot shrink).
    """
    c = x.shape[-1]
    if features < c:
        raise ValueError(f"shortcut 'A' cannot reduce {c} channels to {features}; use shortcut='B'.")
    x = x[:, ::stride, ::stride, :]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, features - c))) if features > c else x


def _conv(features: int, kernel: int, stride: int, dtype: Dtype, init_mode: str, name: str) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), strides=stride, padding=kernel // 2, use_bias=False,
                   kernel_init=kaiming_normal(init_mode), dtype=dtype, param_dtype=jnp.float32, name=name)


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, see the module docstring.

    ``x [B, H, W, C]`` -> ``[B, ceil(H / stride), ceil(W / stride), features]`` in ``dtype``.
    """

    features: int
    stride: int = 1
    shortcut: str = "A"
    dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None  # pmap's device axis for BatchNorm statistics (``cnn.batch_norm``).
    init_mode: str = "fan_out"  # Kaiming-normal fan of the conv kernels (``INIT_MODES``).

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        bn = functools.partial(batch_norm, train=train, mask=mask, dtype=self.dtype, axis_name=self.bn_axis_name)
        y = _conv(self.features, 3, self.stride, self.dtype, self.init_mode, "conv1")(x)
        y = nn.relu(bn(y, name="bn1"))
        y = bn(_conv(self.features, 3, 1, self.dtype, self.init_mode, "conv2")(y), name="bn2")
        if self.stride == 1 and x.shape[-1] == self.features:
            shortcut = x
        elif self.shortcut == "A":
            shortcut = pad_shortcut(x, self.features, self.stride)
        else:
            shortcut = bn(_conv(self.features, 1, self.stride, self.dtype, self.init_mode, "shortcut_conv")(x),
                          name="shortcut_bn")
        return nn.relu(y + shortcut)


class ResNet(nn.Module):
    """A CIFAR-style ResNet given by its stages; see the module docstring.

    Call: ``apply(variables, x float [B, H, W, C], train, mask bool [B] | None)``
    returns logits ``float32 [B, num_classes]``, as ``CNN`` does. With
    ``train=True`` pass ``mutable=["batch_stats"]`` and, if ``dropout > 0``,
    ``rngs={"dropout": key}``. ``mask`` leaves padded rows out of the
    BatchNorm statistics.

    Attributes:
      stage_blocks: BasicBlocks per stage, e.g. ``(3, 3, 3)`` for ResNet-20.
      stage_widths: channels of each stage, e.g. ``(16, 32, 64)``.
      stem_width: channels of the stem conv.
      shortcut: ``"A"`` (subsample + zero-pad channels, no parameters) or
        ``"B"`` (1x1 conv + BatchNorm) where a block changes shape.
      dropout: dropout rate before the dense head (0: none).
      num_classes: logits.
      dtype: computation dtype (``jnp.float32``, or ``jnp.bfloat16`` for mixed
        precision); parameters and BatchNorm statistics stay float32.
      init_mode: ``"fan_in"`` or ``"fan_out"``, the Kaiming-normal fan of every
        conv and dense kernel (see the module docstring).

    Raises (at construction):
      ValueError: an invalid spec; the message says how to fix it.
    """

    stage_blocks: tuple[int, ...]
    stage_widths: tuple[int, ...]
    stem_width: int = 16
    shortcut: str = "A"
    dropout: float = 0.0
    num_classes: int = 10
    dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None  # pmap's device axis for BatchNorm statistics (``cnn.batch_norm``).
    init_mode: str = "fan_out"

    def __post_init__(self):
        blocks, widths = tuple(self.stage_blocks), tuple(self.stage_widths)
        if not blocks or len(blocks) != len(widths):
            raise ValueError(f"stage_blocks {blocks} and stage_widths {widths} need the same non-zero "
                             f"length; give one width per stage.")
        if min(blocks) < 1 or min(widths + (self.stem_width,)) < 1:
            raise ValueError(f"blocks per stage and widths must be >= 1, got {blocks}, {widths}, "
                             f"stem {self.stem_width}; drop empty stages.")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {self.shortcut!r}; use 'A' (zero-pad) or 'B' (1x1 conv).")
        if self.shortcut == "A" and any(b < a for a, b in zip((self.stem_width,) + widths, widths)):
            raise ValueError(f"shortcut 'A' needs non-decreasing widths from stem {self.stem_width}, got "
                             f"{widths}; use shortcut='B'.")
        if self.init_mode not in INIT_MODES:
            raise ValueError(f"unknown init_mode {self.init_mode!r}; use 'fan_in' or 'fan_out'.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a rate in [0, 1), got {self.dropout}.")
        super().__post_init__()

    def block_plan(self) -> list[Block]:
        """The BasicBlocks in order, with names, channels and strides (stride 2
        opens every stage but the first)."""
        plan, c = [], self.stem_width
        for s, (n, width) in enumerate(zip(self.stage_blocks, self.stage_widths), start=1):
            for b in range(1, n + 1):
                plan.append(Block(f"stage{s}_block{b}", c, width, 2 if s > 1 and b == 1 else 1))
                c = width
        return plan

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        x = x.astype(self.dtype)
        x = _conv(self.stem_width, 3, 1, self.dtype, self.init_mode, "stem_conv")(x)
        x = nn.relu(batch_norm(x, train, mask, "stem_bn", dtype=self.dtype, axis_name=self.bn_axis_name))
        for block in self.block_plan():
            x = BasicBlock(block.features, block.stride, self.shortcut, self.dtype, self.bn_axis_name,
                           self.init_mode, name=block.name)(
                x, train, mask)
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout:
            x = Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, kernel_init=kaiming_normal(self.init_mode), bias_init=bias_init(x.shape[-1]),
                     dtype=self.dtype, param_dtype=jnp.float32, name="fc")(x)
        return x.astype(jnp.float32)
