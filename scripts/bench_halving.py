"""Successive halving: hold the pruned points in the program, or rebuild it smaller? Measured side by side.

    python scripts/bench_halving.py                  # the docs' 27-point grid of reference 003's small MLP
    python scripts/bench_halving.py --eta 3 --epochs 27

When a rung prunes points of a vmapped program, two ways go on: hold them (the
program keeps all N replicas and throws the pruned ones' updates away, as
``--early-stop`` holds a stopped replica) or rebuild it with the n survivors
(``tinyjax.train.halving`` does: a new program, restored from the survivors'
checkpoints, compiled again). Holding costs every later epoch at N; rebuilding
costs one restore and compilation per rung and every later epoch at n.

On real MNIST (``TINYJAX_DATA_DIR`` or the normal sources), this trains the
first N points of the grid as one vmapped program (``train_members``) for two
epochs, for each N the search uses (27, 9, 3, 1 for 27 points and ETA 3), and
takes the second epoch's seconds as the program's steady epoch time ``t(N)``;
then resumes the N points from their checkpoints for one more epoch, and
takes that call's time beyond ``t(N)`` as the rebuild cost ``r(N)``
(preparation, restore, compilation). One process, one after another.
It prints per segment of the search (rung to rung) what holding and rebuilding
cost: ``epochs * t(N)`` against ``r(n) + epochs * t(n)``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments import mnist_mlp
from tinyjax import grid as grids
from tinyjax.cli import parse
from tinyjax.runs import cpu_model
from tinyjax.train import halving
from tinyjax.train.loop import pause_members

GRID = ["lr=3e-4,1e-3,3e-3", "weight_decay=0,1e-4,1e-3", "label_smoothing=0,0.1,0.2"]


def quiet(_: str) -> None:
    pass


def measure(configs, folder: str) -> tuple[float, float]:
    """``(t, r)``: the steady epoch seconds of the configs as one program, and the cost of rebuilding it."""
    dirs = [os.path.join(folder, f"point-{k}") for k in range(len(configs))]
    histories = pause_members(configs, 2, quiet, run_dirs=dirs).histories
    steady = histories[0][1]["seconds"]
    started = time.perf_counter()
    pause_members(configs, 3, quiet, resume=dirs)
    return steady, time.perf_counter() - started - steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="2hl_50_v2")
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--val-split", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        base = ["--variant", args.variant, "--epochs", str(args.epochs), "--val-split", str(args.val_split),
                "--replicas", "vmap", "--out", out]
        configs = [parse(mnist_mlp.VARIANTS, base + point) for point in grids.points(grids.parse(GRID, None))]
        rungs, alive = halving.rungs(args.epochs, len(configs), args.eta), [len(configs)]
        for _ in rungs[:-1]:
            alive.append(halving.keep(alive[-1], args.eta))
        costs = {}
        for n in sorted(set(alive), reverse=True):
            costs[n] = measure(configs[:n], os.path.join(out, f"n{n}"))
            print(f"{n} points: {costs[n][0]:.2f} s per epoch, rebuild {costs[n][1]:.2f} s", flush=True)
    print(f"\n{len(configs)} points of mnist_mlp {args.variant}, {args.epochs} epochs, ETA {args.eta}, "
          f"rungs {rungs}; {cpu_model()}, one vmapped program\n")
    print("| segment (epochs) | points training | held: epochs x t(N) | rebuilt: r(n) + epochs x t(n) |")
    print("|---|---|---|---|")
    held_total = rebuilt_total = 0.0
    for i, (start, stop) in enumerate(zip([0] + rungs[:-1], rungs)):
        n, epochs = alive[i], stop - start
        held = epochs * costs[len(configs)][0]
        rebuilt = (costs[n][1] if i else 0.0) + epochs * costs[n][0]
        held_total, rebuilt_total = held_total + held, rebuilt_total + rebuilt
        print(f"| {start + 1}-{stop} | {n} | {held:.1f} s | {rebuilt:.1f} s |")
    print(f"| all | | {held_total:.1f} s | {rebuilt_total:.1f} s ({held_total / rebuilt_total:.1f}x faster) |")


if __name__ == "__main__":
    main()
