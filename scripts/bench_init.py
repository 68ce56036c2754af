"""Start-up cost of a model's init (op by op, as a run builds its state): seconds and XLA compile
seconds per preset, in one fresh process (the first preset also pays the ops every model shares).

    python scripts/bench_init.py

Random draws of rank-2 and rank-4 shapes compile slowly on XLA:CPU; tinyjax's initialisers and
dropout draw on the flat shape (``tinyjax.models.torch_init``, ``tinyjax.models.dropout``), the
same values bit for bit. docs/performance.md has the table before and after.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path)
from tinyjax.models.door import resolve

SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3)}
PRESETS = [("mnist_cnn_7k", "mnist"), ("mnist_cnn_18k", "mnist"), ("mnist_dsconv_2k", "mnist"),
           ("mnist_tiny_2k", "mnist"), ("mlp_2hl_50", "mnist"), ("resnet20", "cifar"), ("resnet_7x3", "cifar"),
           ("fastnet_2m", "cifar"), ("resnet18", "cifar")]


def main() -> None:
    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **_: compiles.append(seconds)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}\n")
    print("| preset | init (s) | of which XLA compile (s) |\n|---|---|---|")
    for name, data in PRESETS:
        net = resolve(name, num_classes=10)
        started, before = time.perf_counter(), len(compiles)
        jax.block_until_ready(net.init(jax.random.key(0), jnp.zeros((1,) + SHAPES[data])))
        print(f"| {name} | {time.perf_counter() - started:.2f} | {sum(compiles[before:]):.2f} |")


if __name__ == "__main__":
    main()
