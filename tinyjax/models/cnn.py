"""Small MNIST convolutional networks (NHWC, flax.linen)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from tinyjax.models.torch_init import bias_init, kernel_init


def batch_norm(x: jax.Array, train: bool, mask: jax.Array | None) -> jax.Array:
    """``torch.nn.BatchNorm2d`` defaults: momentum 0.1 (flax: 0.9), eps 1e-5.

    ``mask bool [B]`` leaves padded rows out of the batch statistics. One
    documented difference to PyTorch: the running variance is updated with the
    biased batch variance (PyTorch uses the unbiased one, a factor n/(n-1),
    n = B*H*W, i.e. 1.0009 at batch 128 on a 3x3 map).
    """
    if mask is not None:
        mask = mask.reshape((-1,) + (1,) * (x.ndim - 1))
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x, mask=mask)


def max_pool(x: jax.Array, size: int = 2) -> jax.Array:
    """``torch.nn.MaxPool2d(size, size)``: stride ``size``, no padding, floor mode.

    ``x float32 [B, H, W, C]`` -> ``[B, H // size, W // size, C]``. Written as
    reshape + max rather than ``nn.max_pool``: XLA:CPU runs the latter's
    gradient (select_and_scatter) slowly, and this form made a training step
    of the seed-000 CNN ~30% faster on a 2-core CPU (60 -> 42 ms at batch 128).
    Same values; the gradient is the same except on exact ties inside a
    window, which it shares where PyTorch gives it to the first maximum (ties
    are in practice ReLU zeros, whose gradient ReLU stops anyway).
    """
    b, h, w, c = x.shape
    h, w = h // size, w // size
    x = x[:, :h * size, :w * size].reshape(b, h, size, w, size, c)
    return x.max(axis=(2, 4))


class MnistCNN7k(nn.Module):
    """The 7,784-parameter MNIST CNN of seed 000 ("Model 1"), layer for layer.

    Seven 3x3 convolutions without bias, each followed by BatchNorm and ReLU,
    2x2 max-pools after conv3 and conv5, padding 1 on conv6 and conv7, global
    average pool and ``Dense(18 -> 10)``. Spatial sizes: 28 -> 26 -> 24 -> 22
    -> pool 11 -> 9 -> 7 -> pool 3 -> 3 -> 3 -> GAP.

    Call: ``apply(variables, x float32 [B, 28, 28, 1], train, mask bool [B] | None)``
    returns logits ``float32 [B, 10]``; with ``train=True`` pass
    ``mutable=["batch_stats"]``.
    """

    channels: tuple[int, ...] = (7, 7, 10, 10, 12, 16, 18)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        for i, features in enumerate(self.channels):
            padding = 1 if i >= 5 else 0
            x = nn.Conv(features, (3, 3), padding=padding, use_bias=False, kernel_init=kernel_init)(x)
            x = nn.relu(batch_norm(x, train, mask))
            if i in (2, 4):
                x = max_pool(x, 2)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=kernel_init, bias_init=bias_init(x.shape[-1]))(x)
