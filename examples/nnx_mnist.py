"""Your own flax NNX model on the command line, trained on real MNIST:

    tinyjax-train --model examples/nnx_mnist.py:Net --dataset mnist --epochs 5 --batch-size 128 \\
        --optimizer adam --max-lr 0.01 --seeds 3

``Net`` takes ``rngs`` (and ``num_classes``, set from the data), as flax's NNX examples write a
model; tinyjax calls it with ``nnx.Rngs(<each seed's init key>)``, switches it with
``.train()`` / ``.eval()`` and reseeds its dropout stream every step.

Measured with that command (2026-12-04, 2-core Intel Xeon CPU with AVX-512, jax 0.10.2, partly
beside the test suite): test accuracy after 5 epochs 99.18 ± 0.04% [99.07, 99.29] (mean ± sample
std [95% CI], n = 3, seeds 0-2: 99.21, 99.20, 99.13), 20,538 parameters, 10.5 min for the three
seeds one after another (30-53 s per epoch).
"""

from flax import nnx


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, num_classes: int = 10):
        self.conv1 = nnx.Conv(1, 16, (3, 3), use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(16, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(32, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.fc = nnx.Linear(32 * 7 * 7, num_classes, rngs=rngs)

    def __call__(self, x):  # [B, 28, 28, 1] -> [B, num_classes]
        x = nnx.max_pool(nnx.relu(self.bn1(self.conv1(x))), (2, 2), (2, 2))
        x = nnx.max_pool(nnx.relu(self.bn2(self.conv2(x))), (2, 2), (2, 2))
        return self.fc(self.dropout(x.reshape(x.shape[0], -1)))
