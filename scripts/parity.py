"""Accuracy parity and time to accuracy of the reference-000 recipe: tinyjax against PyTorch, n seeds each.

    python scripts/parity.py --seeds 5          # ~40 min on a 2-core CPU
    python scripts/parity.py --seeds 2 --epochs 3 --train-limit 5000   # a quick look

Trains ``experiments.mnist_onecycle``'s default config (the 7,784-param CNN,
SGD one-cycle to 0.05, label smoothing 0.02, batch 128, 20 epochs) on the
real MNIST for each seed, in tinyjax (``train_and_evaluate``, the path of
``python -m experiments.mnist_onecycle --seed k``) and in the PyTorch reference
(``scripts/torch_reference.py``), the two taking turns seed by seed. Prints
the final and best test accuracy as mean ± sample std over the seeds, and
the wall time (training and evaluation, compilation included) until the
test accuracy first reaches 99.0% and 99.4% (median over the seeds that
reach it).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments.mnist_onecycle import CONFIG
from tinyjax import data, runs
from tinyjax.train import train_and_evaluate
from tinyjax.train.replicas import spread

THRESHOLDS = (99.0, 99.4)


def time_to(history: list[dict], threshold: float) -> float | None:
    """Seconds from the start of training until the first epoch whose test accuracy is >= threshold."""
    elapsed = 0.0
    for h in history:
        elapsed += h["seconds"]
        if h["test_acc"] >= threshold:
            return elapsed
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=CONFIG.epochs)
    parser.add_argument("--train-limit", type=int, default=None, help="train images (default: all 60,000)")
    parser.add_argument("--out", default=None, help="where the tinyjax runs go (default: a temporary folder)")
    args = parser.parse_args()
    import torch_reference  # PyTorch: pip install torch==2.13.0 (CPU).

    config = dataclasses.replace(CONFIG, epochs=args.epochs, out=args.out or tempfile.mkdtemp(),
                                 data=dataclasses.replace(CONFIG.data, train_limit=args.train_limit))
    from tinyjax.data.splits import load_splits

    splits = load_splits(config)
    mean, std = data.NORMALIZATION["mnist"]
    histories = {"tinyjax": [], "PyTorch": []}
    for seed in range(args.seeds):
        _, history, _ = train_and_evaluate(dataclasses.replace(config, seed=seed), print_fn=lambda line: None)
        histories["tinyjax"].append(history)
        histories["PyTorch"].append(torch_reference.train(config, splits["train"], splits["test"], mean, std, seed))
        print(f"seed {seed}: tinyjax {history[-1]['test_acc']:.2f}%, PyTorch "
              f"{histories['PyTorch'][-1][-1]['test_acc']:.2f}%", flush=True)

    print(f"\n# {runs.describe()}")
    print(f"# reference-000 recipe, {args.epochs} epochs, {len(splits['train'][1])} train images, "
          f"seeds 0-{args.seeds - 1}; torch {torch_reference.torch.__version__}\n")
    print("| framework | seeds | final test % (mean ± std) | best test % (mean ± std) | "
          + " | ".join(f"time to {t}% (median)" for t in THRESHOLDS) + " | wall per run (median) |")
    print("|---|---:|---:|---:|" + "---:|" * len(THRESHOLDS) + "---:|")
    for name, runs_ in histories.items():
        final = spread([h[-1]["test_acc"] for h in runs_])
        best = spread([max(e["test_acc"] for e in h) for h in runs_])
        cells = []
        for t in THRESHOLDS:
            times = [x for x in (time_to(h, t) for h in runs_) if x is not None]
            cells.append(f"{statistics.median(times):.0f} s ({len(times)}/{len(runs_)} seeds)" if times
                         else f"never (0/{len(runs_)})")
        wall = statistics.median(sum(e["seconds"] for e in h) for h in runs_)
        print(f"| {name} | {len(runs_)} | {final[0]:.2f} ± {final[1]:.2f} | {best[0]:.2f} ± {best[1]:.2f} | "
              + " | ".join(cells) + f" | {wall:.0f} s |")


if __name__ == "__main__":
    main()
