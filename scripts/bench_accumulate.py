"""Why ``--accumulate`` keeps its micro-batch loop: time and memory of the train step, loop vs unrolled.

    python scripts/bench_accumulate.py                                   # reference 001's CNN, batch 128 and 512
    python scripts/bench_accumulate.py --model mnist_cnn_7k --accumulate 2,4 --batch-sizes 128

``tinyjax.train.steps.train_step`` runs the K micro-batches of ``--accumulate K``
in a ``lax.scan``. This script compiles that step three ways for each batch:
K = 1, K as the loop it is, and K with the scan unrolled (``unroll=True``,
patched in for this script only: tinyjax has no such option), and prints
per row the median wall time of a step (rows take turns, ``--repeats`` x
``--steps`` steps on random images, state carried) and the compiled step's
temporary memory from XLA's ``memory_analysis()`` (activations and other
scratch, not the arguments). On XLA:CPU a loop's convolutions run several
times slower (jax-ml/jax#12868), which unrolling avoids; the memory column
shows what unrolling gives up.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments import mnist_onecycle, mnist_optimizers
from tinyjax import runs
from tinyjax.data.pipeline import Batch
from tinyjax.train.state import init_state
from tinyjax.train.steps import train_step

from timing import interleaved_medians  # scripts/timing.py, beside this file

CONFIGS = {"mnist_cnn_7k": mnist_onecycle.CONFIG, "mnist_cnn_18k": mnist_optimizers.VARIANTS["adam_onecycle"]}


def compiled_step(state, batch: Batch, accumulate: int, unroll: bool):
    """The train step compiled for ``batch``; with ``unroll`` its micro-batch scan is unrolled."""
    scan = jax.lax.scan
    if unroll:
        jax.lax.scan = lambda *args, **kwargs: scan(*args, unroll=True, **kwargs)
    try:
        return jax.jit(lambda s, b: train_step(s, b, accumulate=accumulate)).lower(state, batch).compile()
    finally:
        jax.lax.scan = scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist_cnn_18k", choices=list(CONFIGS))
    parser.add_argument("--accumulate", default="4", help="comma-separated micro-batch counts K > 1")
    parser.add_argument("--batch-sizes", default="128,512", help="comma-separated global batches")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median reported)")
    args = parser.parse_args()
    try:
        ks = [int(k) for k in args.accumulate.split(",") if k]
        batches = [int(b) for b in args.batch_sizes.split(",") if b]
    except ValueError:
        parser.error("--accumulate and --batch-sizes take comma-separated integers, e.g. 2,4")
    bad = [(b, k) for b in batches for k in ks if k < 2 or b % k]
    if bad:
        parser.error(f"--accumulate {bad[0][1]} must be > 1 and divide --batch-sizes {bad[0][0]}: pick a divisor")

    rng = np.random.default_rng(0)
    runners, memory = {}, {}
    for size in batches:
        config = dataclasses.replace(CONFIGS[args.model], batch_size=size)
        state = init_state(config, 100, rng.integers(0, 256, (size, 28, 28, 1), dtype=np.uint8))[1]
        batch = Batch(jnp.asarray(rng.normal(size=(size, 28, 28, 1)), jnp.float32),
                      jnp.asarray(rng.integers(0, 10, size), jnp.int32), jnp.ones(size, bool))
        for k, unroll in [(1, False)] + [(k, u) for k in ks for u in (False, True)]:
            step = compiled_step(state, batch, k, unroll)
            memory[(size, k, unroll)] = step.memory_analysis().temp_size_in_bytes

            def run(step=step, state=state, batch=batch):
                s = state
                for _ in range(args.steps):
                    s, _ = step(s, batch)
                jax.block_until_ready(s)
            run()
            runners[(size, k, unroll)] = run
    medians = interleaved_medians(runners, args.repeats)

    print(f"# {runs.describe()}")
    print(f"# {args.model}, {args.steps} steps x {args.repeats} repeats, rows interleaved, median; "
          f"jax backend {jax.default_backend()}\n")
    print("| batch | K | micro-batch loop | ms / step | time / K = 1 | temporary memory | memory / K = 1 |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for (size, k, unroll), seconds in medians.items():
        single, base = medians[(size, 1, False)], memory[(size, 1, False)]
        form = "-" if k == 1 else ("unrolled" if unroll else "lax.scan (tinyjax)")
        print(f"| {size} | {k} | {form} | {1000 * seconds / args.steps:.1f} | {seconds / single:.2f} | "
              f"{memory[(size, k, unroll)] / 2**20:.1f} MiB | {memory[(size, k, unroll)] / base:.2f} |")


if __name__ == "__main__":
    jnp.zeros(())  # Start the backend before timing anything.
    main()
