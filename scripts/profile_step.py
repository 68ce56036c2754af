"""Where a training step's time goes: its compiled ops, and its parts timed side by side.

    python scripts/profile_step.py                         # seed-000 CNN, batch 128
    python scripts/profile_step.py --model mnist_cnn_18k --steps 50

Compiles the forward pass, the forward and backward pass (``value_and_grad``)
and the whole train step (``train_step``: plus the optimizer update, the
batch statistics and the non-finite check) of ``--model`` at ``--batch-size``,
counts the ops of each optimized XLA program by kind (convolutions, fusions,
dots, copies, ...), and times each part (rows interleaved, median of
``--repeats``). The difference between rows is what each stage adds.
"""

from __future__ import annotations

import argparse
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np

from experiments.mnist_onecycle import CONFIG
from tinyjax import data, models, runs
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state, cross_entropy_loss, train_step

from timing import interleaved_medians  # scripts/timing.py, beside this file

KINDS = ("convolution", "fusion", "dot", "copy", "transpose", "reduce", "select-and-scatter", "custom-call")


def op_counts(compiled) -> collections.Counter:
    """Instructions of the entry computation of an optimized HLO module, by opcode."""
    text = compiled.as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[:entry.index("\n}\n")] if "\n}\n" in entry else entry
    ops = re.findall(r"=\s*[\w\[\]{}, :.()]*?\s([a-z][\w-]*)\(", entry)
    return collections.Counter(ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist_cnn_7k")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, 10_000)
    state = create_train_state(models.create(args.model), tx, jax.random.key(0), (1, 28, 28, 1))
    rng = np.random.default_rng(0)
    batch = data.Batch(jnp.asarray(rng.random((args.batch_size, 28, 28, 1), np.float32)),
                       jnp.asarray(rng.integers(0, 10, args.batch_size).astype(np.int32)),
                       jnp.ones(args.batch_size, bool))
    variables = {"params": state.params, "batch_stats": state.batch_stats}

    def forward(params):
        logits, _ = state.apply_fn({**variables, "params": params}, batch.image, train=True, mask=batch.mask,
                                   mutable=["batch_stats"])
        return cross_entropy_loss(logits, batch.label, CONFIG.label_smoothing, batch.mask)

    parts = {"forward (train mode, loss)": (jax.jit(forward), (state.params,)),
             "forward + backward": (jax.jit(jax.value_and_grad(forward)), (state.params,)),
             "train step (+ update, statistics, checks)":
                 (jax.jit(lambda s: train_step(s, batch, CONFIG.label_smoothing)), (state,))}
    counts, runners = {}, {}
    for name, (fn, fn_args) in parts.items():
        counts[name] = op_counts(fn.lower(*fn_args).compile())
        jax.block_until_ready(fn(*fn_args))

        def run(fn=fn, fn_args=fn_args):
            for _ in range(args.steps):
                out = fn(*fn_args)
            jax.block_until_ready(out)
        runners[name] = run
    medians = interleaved_medians(runners, args.repeats)
    print(f"# {runs.describe()}")
    print(f"# {args.model}, batch {args.batch_size}, {args.steps} calls x {args.repeats} repeats (median)\n")
    print("| part | ms per call | ops in the program | " + " | ".join(KINDS) + " |")
    print("|---|---:|---:|" + "---:|" * len(KINDS))
    for name, seconds in medians.items():
        c = counts[name]
        print(f"| {name} | {1000 * seconds / args.steps:.2f} | {sum(c.values())} | "
              + " | ".join(str(c.get(k, 0)) for k in KINDS) + " |")


if __name__ == "__main__":
    main()
