"""The MLP family: ``Flatten -> [Dense -> activation] x n -> Dense``."""

from __future__ import annotations

import jax
from flax import linen as nn

from tinyjax.models.cnn import ACTIVATIONS
from tinyjax.models.torch_init import bias_init, kernel_init


class MLP(nn.Module):
    """A multilayer perceptron, as ``nn.Sequential(nn.Flatten(), nn.Linear, act, ...)``.

    Call: ``apply(variables, x float32 [B, H, W, C], train, mask)`` returns
    logits ``float32 [B, num_classes]``; ``train`` and ``mask`` are accepted
    for the common model signature and unused (no BatchNorm, no dropout).
    Layers are named ``fc1 ... fc{n+1}``; initialisers are PyTorch's defaults.

    Attributes:
      hidden: widths of the hidden layers (units), e.g. ``(50, 50)``.
      activation: a key of ``tinyjax.models.cnn.ACTIVATIONS`` (relu, sigmoid, ...).
    """

    hidden: tuple[int, ...]
    activation: str = "relu"
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden + (self.num_classes,), start=1):
            x = nn.Dense(width, kernel_init=kernel_init, bias_init=bias_init(x.shape[-1]), name=f"fc{i}")(x)
            if i <= len(self.hidden):
                x = ACTIVATIONS[self.activation](x)
        return x
