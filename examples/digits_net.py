"""A small linen CNN in its own file, as a user writes one: ``--model examples/digits_net.py:DigitsCNN``.

It follows the contract of docs/your-model-and-data.md: normalised ``float32 [B, H, W, C]`` in,
``[B, num_classes]`` logits out, BatchNorm statistics in ``batch_stats``, a ``train`` keyword, no
``mask`` (tinyjax then trains each epoch's last partial batch at its true size).
"""

from flax import linen as nn


class DigitsCNN(nn.Module):
    num_classes: int = 10  # Set from the data by tinyjax.

    @nn.compact
    def __call__(self, x, train: bool = False):
        for width in (32, 64):  # 8x8 -> 4x4 -> 2x2
            x = nn.Conv(width, (3, 3), use_bias=False)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.Dropout(0.2, deterministic=not train)(x.reshape(x.shape[0], -1))
        return nn.Dense(self.num_classes)(x)
