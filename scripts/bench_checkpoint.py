"""The time a checkpoint adds per epoch, side by side in one run.

    python scripts/bench_checkpoint.py                # both models, 3 repeats
    python scripts/bench_checkpoint.py --repeats 5 --models mnist_onecycle

For reference 000's CNN (7,784 params, 469 steps of 128) and reference 003's MLP
784-1000-1000-1000-10 (2,797,010 params, 1,200 steps of 50), on real MNIST
with each experiment's recipe, two runners take turns: one training epoch
alone, and one epoch as a run does it with saving on: ``Checkpoints.save`` of
the whole train state (training goes on once the state is on the host), the
epoch while orbax writes in the background, then ``wait`` for the write.
Their median difference is what saving costs an epoch. Also: the blocking
part of one save (the host copy and orbax's dispatch), one save until it is
on disk, and the checkpoint's size. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import jax
import orbax.checkpoint

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments import mnist_mlp, mnist_onecycle
from tinyjax import data, models
from tinyjax.runs.checkpoint import Checkpoints
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state
from tinyjax.train.epochs import make_epoch_fns, resolve_loop

from timing import interleaved_medians  # scripts/timing.py, beside this file

CONFIGS = {"mnist_onecycle": mnist_onecycle.CONFIG, "mnist_mlp_3hl_1000": mnist_mlp.VARIANTS["3hl_1000"]}


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def bench(name: str, repeats: int, saves: int) -> list[str]:
    config = CONFIGS[name]
    images, labels = data.load("mnist", "train")
    device_data = data.to_device(images, labels)
    steps = data.num_batches(len(labels), config.batch_size)
    tx, _ = make_optimizer(config.optim, config.schedule, config.epochs * steps)
    state = create_train_state(models.create(config.model), tx, jax.random.key(0), (1, 28, 28, 1))
    train_epoch, _ = make_epoch_fns(config, resolve_loop("auto"))
    holder = {"state": state, "epoch": 0}
    workdir = tempfile.mkdtemp(prefix="bench_checkpoint-")
    checkpoints = Checkpoints(workdir, config)

    def epoch():
        holder["epoch"] += 1
        key = jax.random.key(holder["epoch"])
        holder["state"], totals, _ = train_epoch(holder["state"], device_data, key)
        jax.block_until_ready(totals)

    def epoch_with_save():
        checkpoints.save(holder["epoch"], holder["state"], {"epoch": holder["epoch"]}, {"test_acc": 0.0})
        epoch()
        checkpoints.wait()

    epoch()  # Compile and warm up.
    medians = interleaved_medians({"plain": epoch, "saving": epoch_with_save}, repeats)
    blocking, total = [], []
    for i in range(saves):
        start = time.perf_counter()
        checkpoints.save(10_000 + i, holder["state"], {"epoch": i}, {"test_acc": 0.0})
        blocking.append(time.perf_counter() - start)
        checkpoints.wait()
        total.append(time.perf_counter() - start)
    size = folder_bytes(os.path.join(checkpoints.directory, str(checkpoints.latest())))
    checkpoints.close()
    params = sum(x.size for x in jax.tree.leaves(state.params))
    added = medians["saving"] - medians["plain"]
    return [name, f"{params:,}", f"{steps} x {config.batch_size}", f"{medians['plain']:.2f}",
            f"{medians['saving']:.2f}", f"{added:+.2f} ({100 * added / medians['plain']:+.1f}%)",
            f"{1e3 * statistics.median(blocking):.1f}", f"{1e3 * statistics.median(total):.1f}",
            f"{size / 1e6:.2f} MB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="epochs per runner (median)")
    parser.add_argument("--saves", type=int, default=10, help="saves timed alone (median)")
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    rows = [bench(name, args.repeats, args.saves) for name in args.models]
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), "
          f"orbax-checkpoint {orbax.checkpoint.__version__}, median of {args.repeats} interleaved epochs\n")
    header = ["model", "params", "steps x batch", "epoch (s)", "epoch + save (s)", "added per epoch (s)",
              "save blocks (ms)", "save to disk (ms)", "checkpoint size"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
