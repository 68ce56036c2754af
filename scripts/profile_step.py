"""Where a training step's time goes: its compiled ops, and its parts timed side by side.

    python scripts/profile_step.py                         # reference-000 CNN, batch 128
    python scripts/profile_step.py --model mnist_cnn_18k --steps 50

Compiles the forward pass, the forward and backward pass (``value_and_grad``)
and the whole train step (``train_step``: plus the optimizer update, the
batch statistics and the non-finite check) of ``--model`` at ``--batch-size``,
counts the ops of each optimized XLA program by kind (convolutions, fusions,
dots, copies, ...), and times each part (rows interleaved, median of
``--repeats``). The difference between rows is what each stage adds.

``--convs`` then times each conv layer of the model alone, forward, input
gradient and weight gradient, in XLA (``lax.conv_general_dilated`` and its
VJPs, one jit each) and in PyTorch (``conv2d`` and
``aten.convolution_backward``, oneDNN on CPU; ``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments.mnist_onecycle import CONFIG
from flax import linen as nn

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


def conv_layers(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], nn.Conv]]:
    """(input shape, module) of every ``nn.Conv`` call of ``model`` on an input of ``shape``."""
    found = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.Conv) and context.method_name == "__call__":
            found.append((args[0].shape, context.module))
        return next_fun(*args, **kwargs)
    with nn.intercept_methods(record):
        model.init(jax.random.key(0), jnp.zeros(shape))
    return found


def conv_parts(shape: tuple[int, ...], conv: nn.Conv, torch) -> dict[tuple[str, str], object]:
    """Runners of one stride-1 conv layer: (library, part) -> () -> result."""
    pad, k = conv.padding, conv.kernel_size[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, np.float32)
    w = rng.standard_normal((k, k, shape[-1], conv.features), np.float32) * 0.1

    def lax_conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = np.asarray(lax_conv(x, w))
    xj, wj, gj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
    # Arguments, not closures: XLA would fold a conv of constants at compile time.
    forward = jax.jit(lax_conv)
    input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: lax_conv(x, w), x)[1](g)[0])
    weight_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: lax_conv(x, w), w)[1](g)[0])
    xla = {"forward": lambda: forward(xj, wj), "input gradient": lambda: input_grad(xj, wj, gj),
           "weight gradient": lambda: weight_grad(xj, wj, gj)}
    xt, wt, gt = (torch.tensor(np.ascontiguousarray(a.transpose(order)))
                  for a, order in ((x, (0, 3, 1, 2)), (w, (3, 2, 0, 1)), (g, (0, 3, 1, 2))))

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(gt, xt, wt, None, [1, 1], [pad, pad], [1, 1], False,
                                                           [0, 0], 1, mask)
    pytorch = {"forward": lambda: torch.nn.functional.conv2d(xt, wt, padding=pad),
               "input gradient": backward([True, False, False]), "weight gradient": backward([False, True, False])}
    return {**{("XLA", part): fn for part, fn in xla.items()}, **{("PyTorch", part): fn for part, fn in pytorch.items()}}


def conv_table(model: nn.Module, batch_size: int, steps: int, repeats: int) -> None:
    """Prints each stride-1 conv layer's forward / input-gradient / weight-gradient ms, XLA against PyTorch."""
    import torch  # the reference only, never a dependency of tinyjax

    parts = ("forward", "input gradient", "weight gradient")
    runners, layers = {}, []
    for shape, conv in conv_layers(model, (batch_size, 28, 28, 1)):
        if conv.feature_group_count != 1 or conv.strides not in (1, (1, 1)):
            continue
        layer = f"{conv.name} {shape[1]}x{shape[2]}x{shape[3]} -> {conv.features} channels"
        layers.append(layer)
        for key, fn in conv_parts(shape, conv, torch).items():
            jax.block_until_ready(fn())
            runners[(layer, *key)] = lambda fn=fn: jax.block_until_ready([fn() for _ in range(steps)])
    with torch.no_grad():
        medians = {key: 1000 * s / steps for key, s in interleaved_medians(runners, repeats).items()}
    for lib in ("XLA", "PyTorch"):
        for part in parts:
            medians[("all", lib, part)] = sum(medians[(layer, lib, part)] for layer in layers)
    print("\n| conv layer (input HxWxC) | " + " | ".join(f"{part}: XLA / PyTorch ms" for part in parts) + " |")
    print("|---|" + "---:|" * len(parts))
    for layer in layers + ["all"]:
        print(f"| {layer} | " + " | ".join(f"{medians[(layer, 'XLA', p)]:.2f} / {medians[(layer, 'PyTorch', p)]:.2f}"
                                           for p in parts) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist_cnn_7k")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--convs", action="store_true", help="also time each conv layer against PyTorch's")
    args = parser.parse_args()
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, 10_000)
    model = models.create(args.model)
    state = create_train_state(model, tx, jax.random.key(0), (1, 28, 28, 1))
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
    if args.convs:
        conv_table(model, args.batch_size, args.steps, args.repeats)


if __name__ == "__main__":
    main()
