"""Training throughput of the epoch loops, side by side in one run.

    python scripts/bench_loop.py                      # reference-000 CNN, batch 128
    python scripts/bench_loop.py --steps 200 --repeats 5

Times ``--steps`` training steps of the 7,784-param CNN on random MNIST-shaped
data, per loop: a jitted step per batch called from Python (``step``) and the
same steps as one ``jax.lax.scan`` (``scan``), after a compile-and-warm-up
call; then the same steps through ``make_epoch_fns``' ``train_epoch``, the
path a run takes, whose step also checks for non-finite values and drops a
bad step, with a host sync every 25 steps. The rows' repeats are interleaved
and the median of ``--repeats`` is reported. If PyTorch is installed (it is no dependency of tinyjax), the same
network and update in PyTorch eager is timed too, as the reference. Prints a markdown table of images/s and the ratio to
the fastest row.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform

import jax
import jax.numpy as jnp
import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments.mnist_onecycle import CONFIG
from tinyjax import data, models
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state, epoch_driver, make_epoch_fns, train_step

from timing import interleaved_medians  # scripts/timing.py, beside this file


def jax_epoch(loop: str, steps: int, batch: int):
    """A compiled, warmed-up ``run()`` of ``steps`` training steps with ``loop``."""
    mean, std = data.NORMALIZATION["mnist"]
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, 1000 * steps)
    state = create_train_state(models.create("mnist_cnn_7k"), tx, jax.random.key(0), (1, 28, 28, 1))
    rng = np.random.default_rng(0)
    n = steps * batch
    device_data = data.to_device(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                                 rng.integers(0, 10, n).astype(np.int32))

    def batch_fn(carry, d, indices, mask):
        state, count = carry
        state, metrics = train_step(state, data.make_batch(d, indices, mask, mean, std), 0.02)
        return state, count + metrics["count"]

    run = epoch_driver(batch_fn, loop, donate=True)
    indices, mask = data.batch_plan(jax.random.key(1), n, batch)
    carry = [(state, jnp.zeros((), jnp.int32))]

    def epoch():
        carry[0] = jax.block_until_ready(run(carry[0], device_data, indices, mask)[0])

    epoch()  # Compile and warm up.
    return epoch


def guarded_epoch(loop: str, steps: int, batch: int):
    """The same steps through ``make_epoch_fns``' ``train_epoch``, as a run trains:
    plus the non-finite guard (checks, and the select that drops a bad step)
    and its host sync every ``SYNC_EVERY`` steps (``tinyjax.train.progress``)."""
    config = dataclasses.replace(CONFIG, batch_size=batch)
    tx, _ = make_optimizer(config.optim, config.schedule, 1000 * steps)
    holder = [create_train_state(models.create("mnist_cnn_7k"), tx, jax.random.key(0), (1, 28, 28, 1))]
    rng = np.random.default_rng(0)
    n = steps * batch
    device_data = data.to_device(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                                 rng.integers(0, 10, n).astype(np.int32))
    train_epoch = make_epoch_fns(config, loop)[0]

    def epoch():
        holder[0], totals, _ = train_epoch(holder[0], device_data, jax.random.key(1))
        jax.block_until_ready(totals)

    epoch()  # Compile and warm up.
    return epoch


def torch_epoch(steps: int, batch: int):
    """The same network and SGD step in PyTorch eager, warmed up; None without torch."""
    try:
        import torch
        from torch import nn

        import torch_reference  # scripts/torch_reference.py, beside this file
    except ImportError:
        return None
    torch.manual_seed(0)
    model = torch_reference.MODELS["mnist_cnn_7k"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.02)
    x = torch.randn(steps, batch, 1, 28, 28)
    y = torch.randint(0, 10, (steps, batch))

    def epoch():
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[i]), y[i]).backward()
            opt.step()

    epoch()
    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed run")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median reported)")
    args = parser.parse_args()
    backend = jax.default_backend()
    runners = {f"tinyjax loop=step ({backend})": jax_epoch("step", args.steps, args.batch_size),
               f"tinyjax loop=scan ({backend})": jax_epoch("scan", args.steps, args.batch_size),
               f"tinyjax train_epoch, loop=step, non-finite guard ({backend})":
                   guarded_epoch("step", args.steps, args.batch_size)}
    reference = torch_epoch(args.steps, args.batch_size)
    if reference is not None:
        import torch
        runners[f"PyTorch {torch.__version__} eager (reference)"] = reference
    medians = interleaved_medians(runners, args.repeats)
    rates = {k: args.steps * args.batch_size / seconds for k, seconds in medians.items()}
    best = max(rates.values())
    print(f"# Training throughput, reference-000 CNN (7,784 params), batch {args.batch_size}, "
          f"{args.steps} steps x {args.repeats} repeats (median)")
    print(f"# {platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} "
          f"device(s), jax {jax.__version__}\n")
    print("| loop | images/s | ms/step | vs fastest |")
    print("|---|---:|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {1000 * args.batch_size / rate:.2f} | {rate / best:.2f}x |")


if __name__ == "__main__":
    main()
