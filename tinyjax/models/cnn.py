"""The CNN family: a network described by a short spec of conv layers (NHWC).

``CNN(layers=(ConvSpec(...), ...))`` applies, per spec, a convolution
(standard, depthwise or pointwise 1x1), optional BatchNorm, activation,
dropout and a 2x2 max-pool; then global average pooling and a dense head.
The reference networks are presets of this one module (``tinyjax.models.PRESETS``).
Layers are named ``conv1, bn1, ..., fc`` as in the reference experiments' PyTorch code.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from tinyjax.models.dropout import Dropout
from tinyjax.models.torch_init import bias_init, kernel_init

# "gelu" is flax's default, the tanh approximation (PyTorch's nn.GELU(approximate="tanh")); FastNet uses
# the exact erf GELU, PyTorch's nn.GELU() default.
ACTIVATIONS = {"relu": nn.relu, "sigmoid": nn.sigmoid, "tanh": jnp.tanh, "gelu": nn.gelu,
               "none": lambda x: x}


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One conv block: conv -> [BatchNorm] -> activation -> [dropout] -> [2x2 max-pool].

    Attributes:
      features: output channels (``depthwise``: a multiple of the input channels).
      kernel: square kernel size (pixels); 1 makes a pointwise conv.
      padding: zero padding on each side (pixels), as ``nn.Conv2d(padding=p)``.
      stride: stride (pixels).
      bias: conv bias (PyTorch's ``bias=``).
      depthwise: one filter per input channel (``groups = in_channels``).
      batch_norm: BatchNorm after the conv (PyTorch defaults).
      bn_scale: BatchNorm's learned scale (gamma). Before a ReLU and a linear
        layer it is redundant (that layer can absorb it), so turning it off
        saves ``features`` parameters at no loss of what the network can
        express, as in Keras's ``BatchNormalization(scale=False)``.
      activation: a key of ``ACTIVATIONS``.
      dropout: dropout rate after the activation (0: none).
      pool: 2x2 max-pool, stride 2, after the block.
    """

    features: int
    kernel: int = 3
    padding: int = 0
    stride: int = 1
    bias: bool = False
    depthwise: bool = False
    batch_norm: bool = True
    bn_scale: bool = True
    activation: str = "relu"
    dropout: float = 0.0
    pool: bool = False


def batch_norm(x: jax.Array, train: bool, mask: jax.Array | None, name: str | None = None,
               scale: bool = True, momentum: float = 0.1, eps: float = 1e-5, dtype=None,
               axis_name: str | None = None) -> jax.Array:
    """``torch.nn.BatchNorm2d`` defaults: momentum 0.1 (PyTorch's convention, the
    weight of the new batch; flax: 0.9), eps 1e-5; ``scale=False`` leaves out the
    learned scale (gamma), keeping the shift. ``dtype`` is the output dtype
    (mixed precision: bfloat16); parameters and running statistics are float32,
    and flax computes the statistics in float32 whatever ``dtype`` is.

    ``mask bool [B]`` leaves padded rows out of the batch statistics. One
    documented difference to PyTorch: the running variance is updated with the
    biased batch variance (PyTorch uses the unbiased one, a factor n/(n-1),
    n = B*H*W, i.e. 1.0009 at batch 128 on a 3x3 map).

    ``axis_name``: under ``jax.pmap`` (``tinyjax.distributed.parallel``), the device axis
    whose shards' statistics are averaged (``lax.pmean``), as
    ``torch.nn.SyncBatchNorm``; None: this batch alone (``jit`` with sharding
    needs none: its batch is the global one).
    """
    if mask is not None:
        mask = mask.reshape((-1,) + (1,) * (x.ndim - 1))
    return nn.BatchNorm(use_running_average=not train, momentum=1.0 - momentum, epsilon=eps, use_scale=scale,
                        dtype=dtype, param_dtype=jnp.float32, axis_name=axis_name, name=name)(x, mask=mask)


def max_pool(x: jax.Array, size: int = 2) -> jax.Array:
    """``torch.nn.MaxPool2d(size, size)``: stride ``size``, no padding, floor mode.

    ``x float32 [B, H, W, C]`` -> ``[B, H // size, W // size, C]``. Written as
    reshape + max rather than ``nn.max_pool``: XLA:CPU runs the latter's
    gradient (select_and_scatter) slowly, and this form made a training step
    of reference 000's CNN ~30% faster on a 2-core CPU (60 -> 42 ms at batch 128).
    Same values; the gradient is the same except on exact ties inside a
    window, which it shares where PyTorch gives it to the first maximum (ties
    are in practice ReLU zeros, whose gradient ReLU stops anyway).
    """
    b, h, w, c = x.shape
    h, w = h // size, w // size
    x = x[:, :h * size, :w * size].reshape(b, h, size, w, size, c)
    return x.max(axis=(2, 4))


class DepthwiseConv(nn.Module):
    """``torch.nn.Conv2d(c, features, kernel, stride, padding, groups=c)`` as a sum of shifted products.

    ``x float32 [B, H, W, C]`` -> ``[B, H', W', features]`` with
    ``H' = (H + 2 * padding - kernel) // stride + 1``; ``features`` must be a
    multiple of ``C`` (output channel ``o`` filters input channel
    ``o // (features // C)``, as grouped convolution does). Same parameters
    (``kernel [k, k, 1, features]``, ``bias [features]``) and values as
    ``nn.Conv(..., feature_group_count=C)``, but XLA:CPU runs a grouped
    convolution's gradient slowly: ``scripts/bench_depthwise.py`` measures
    this form several times faster there.

    Raises:
      ValueError: ``features`` is not a multiple of the input channels.
    """

    features: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    use_bias: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, k, s, p = x.shape[-1], self.kernel, self.stride, self.padding
        if self.features % c:
            raise ValueError(f"a depthwise conv needs features a multiple of its {c} input channels, "
                             f"got {self.features}; use depthwise=False or change features.")
        w = self.param("kernel", kernel_init, (k, k, 1, self.features))
        x = jnp.repeat(x, self.features // c, axis=-1) if self.features != c else x
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
        h, wd = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
        y = sum(x[:, i:i + (h - 1) * s + 1:s, j:j + (wd - 1) * s + 1:s] * w[i, j, 0]
                for i in range(k) for j in range(k))
        if self.use_bias:
            y = y + self.param("bias", bias_init(k * k), (self.features,))
        return y


class CNN(nn.Module):
    """A CNN given by ``layers``, then global average pool and ``Dense(num_classes)``.

    Call: ``apply(variables, x float32 [B, H, W, C], train, mask bool [B] | None)``
    returns logits ``float32 [B, num_classes]``. With ``train=True`` pass
    ``mutable=["batch_stats"]`` and, if any layer has dropout,
    ``rngs={"dropout": key}``. Initialisers are PyTorch's defaults.
    """

    layers: tuple[ConvSpec, ...]
    num_classes: int = 10
    bn_axis_name: str | None = None  # pmap's device axis for BatchNorm statistics (``batch_norm``).

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        for i, spec in enumerate(self.layers, start=1):
            if spec.depthwise:
                x = DepthwiseConv(spec.features, spec.kernel, spec.stride, spec.padding, spec.bias,
                                  name=f"conv{i}")(x)
            else:
                x = nn.Conv(spec.features, (spec.kernel, spec.kernel), strides=spec.stride,
                            padding=spec.padding, use_bias=spec.bias, kernel_init=kernel_init,
                            bias_init=bias_init(x.shape[-1] * spec.kernel ** 2), name=f"conv{i}")(x)
            if spec.batch_norm:
                x = batch_norm(x, train, mask, name=f"bn{i}", scale=spec.bn_scale, axis_name=self.bn_axis_name)
            x = ACTIVATIONS[spec.activation](x)
            if spec.dropout:
                x = Dropout(spec.dropout, deterministic=not train)(x)
            if spec.pool:
                x = max_pool(x, 2)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=kernel_init, bias_init=bias_init(x.shape[-1]),
                        name="fc")(x)
