"""The GPU targets measured in one run, as one table (for a machine with a GPU).

    python scripts/gpu_targets.py                       # reference-000 recipe, 20 epochs, real MNIST
    python scripts/gpu_targets.py --epochs 1 --train-limit 2048 --seeds 2    # a quick look (also on CPU)

Rows, each measured in this process one after another (never two at once):

1. ``python -m experiments.mnist_onecycle`` in-process: wall time of
   ``train_and_evaluate`` (data to the device, compilation, 20 epochs with
   evaluation, checkpoints, plots), and its test accuracy (target: <= 10 s);
2. the PyTorch reference of the same recipe on the same device
   (``scripts/torch_reference.py``, eager; target: tinyjax >= 5x faster);
3. ``--seeds N`` as one vmapped program (``--replicas vmap``) against one seed
   (target: N = 8 in <= 1.5x the wall time of one);
4. ``--loop step`` against ``--loop scan``: one epoch each after compilation
   (what ``--loop auto`` should pick on this backend).

Hardware and versions head the table (``tinyjax.runs.describe``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import jax

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments.mnist_onecycle import CONFIG
from tinyjax import data, runs
from tinyjax.train import make_epoch_fns, train_and_evaluate
from tinyjax.train.seeds import train_seeds
from tinyjax.data.splits import load_splits
from tinyjax.train.state import init_state


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def loop_epoch_seconds(config, loop: str, device_data) -> float:
    """Seconds of one training epoch with ``loop``, after a compiling epoch."""
    steps = data.num_batches(len(device_data.labels), config.batch_size)
    _, state, _ = init_state(config, steps)
    train_epoch = make_epoch_fns(config, loop)[0]
    state, totals, _ = train_epoch(state, device_data, jax.random.key(0))
    jax.block_until_ready(totals)
    def epoch():
        jax.block_until_ready(train_epoch(state, device_data, jax.random.key(1), epoch=1)[1])
    return timed(epoch)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=CONFIG.epochs)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    out = tempfile.mkdtemp()
    config = dataclasses.replace(CONFIG, epochs=args.epochs, out=out,
                                 data=dataclasses.replace(CONFIG.data, train_limit=args.train_limit))
    quiet = dict(print_fn=lambda line: None)
    rows = []
    (_, history, _), one = timed(lambda: train_and_evaluate(config, **quiet))
    rows.append(("tinyjax, 1 seed (train_and_evaluate)", one, f"{history[-1]['test_acc']:.2f}%", "<= 10 s"))
    if not args.skip_torch:
        import torch
        import torch_reference

        splits = load_splits(config)
        mean, std = data.NORMALIZATION["mnist"]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        reference, seconds = timed(lambda: torch_reference.train(config, splits["train"], splits["test"], mean,
                                                                 std, 0, device))
        rows.append((f"PyTorch {torch.__version__} eager on {device}", seconds,
                     f"{reference[-1]['test_acc']:.2f}%", f"tinyjax at {seconds / one:.2f}x its speed (>= 5x)"))
    seeded = dataclasses.replace(config, seeds=tuple(range(args.seeds)), replicas="vmap")
    (histories, _), many = timed(lambda: train_seeds(seeded, **quiet))
    finals = [h[-1]["test_acc"] for h in histories]
    rows.append((f"tinyjax, {args.seeds} seeds vmapped (--seeds {args.seeds})", many,
                 f"{sum(finals) / len(finals):.2f}% mean", f"{many / one:.2f}x one seed (<= 1.5x)"))
    train = load_splits(config)["train"]
    device_data = data.to_device(*train)
    for loop in ("step", "scan"):
        rows.append((f"one epoch, --loop {loop} (compiled)", loop_epoch_seconds(config, loop, device_data), "",
                     "auto picks " + ("step" if jax.default_backend() == "cpu" else "scan")))

    print(f"# {runs.describe()}")
    print(f"# reference-000 recipe, {args.epochs} epochs, {len(train[1])} train images\n")
    print("| what | wall s | test accuracy | against the target |")
    print("|---|---:|---:|---|")
    for what, seconds, accuracy, note in rows:
        print(f"| {what} | {seconds:.2f} | {accuracy} | {note} |")


if __name__ == "__main__":
    main()
