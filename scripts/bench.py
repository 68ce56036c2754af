"""tinyjax against PyTorch, side by side in one run: training throughput, and N seeds at once.

    python scripts/bench.py                              # all models, 30 steps x 3 repeats
    python scripts/bench.py --models mnist_cnn_7k --steps 100 --seeds 1,4,8

For each model, the training path a run takes (``make_epoch_fns``' ``train_epoch``
on the experiment's config: augmentation, the non-finite guard, metric sums)
against the PyTorch reference of the same network and recipe
(``scripts/torch_reference.py``: a DataLoader-free tensor loop, same batch,
same optimizer and schedule, same augmentation); parameter counts are
checked equal. Each runs ``--steps`` steps on random data of the dataset's
shape after a warm-up call that compiles; the rows take turns and the
median of ``--repeats`` is reported. Epoch time is the train split (60,000
MNIST or 50,000 CIFAR-10 images) at that rate, evaluation not included.
The FLOP columns are what a run's header and ``results.json`` record: FLOPs
per image from XLA's cost analysis of the train step
(``tinyjax.train.flops``), the achieved GFLOP/s at the measured rate, and MFU
where the device's peak is known (not on a CPU).

The second table trains N replicas of reference 000's CNN and of reference
003's MLPs as one vmapped program (``tinyjax.train.replicas``), in seeds x
images/s; one after another (``--replicas sequential``, and PyTorch) N seeds
run at the rate of one.

``--accumulate 4`` adds a third table: each model's step with its batch cut
into K micro-batches (``--accumulate K``, one optimizer update per batch),
timed beside the same step at K = 1, so the table shows what accumulation
costs in time where memory does not force it.

Without PyTorch installed (it is no dependency of tinyjax) its rows are left out.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments import cifar10_resnet, mnist_mlp, mnist_onecycle, mnist_optimizers
from tinyjax import data, models, runs
from tinyjax.distributed import parallel
from tinyjax.models.summary import layer_table
from tinyjax.train import flops, make_epoch_fns, replicas
from tinyjax.train.state import init_state

from timing import interleaved_medians  # scripts/timing.py, beside this file

RECIPES = {  # model -> (its experiment's config, what it is)
    "mnist_cnn_7k": (mnist_onecycle.CONFIG, "reference 000 CNN, SGD one-cycle"),
    "mnist_cnn_18k": (mnist_optimizers.VARIANTS["adam_onecycle"], "reference 001 CNN, Adam one-cycle"),
    "mlp_2hl_50": (mnist_mlp.VARIANTS["2hl_50"], "reference 003 MLP 784-50-50-10, Adam"),
    "mlp_3hl_1000": (mnist_mlp.VARIANTS["3hl_1000"], "reference 003 MLP 784-1000-1000-1000-10, Adam"),
    "resnet20": (cifar10_resnet.VARIANTS["resnet20"], "ResNet-20, SGD piecewise, crop+flip"),
}
VMAPPED = ("mnist_cnn_7k", "mlp_2hl_50", "mlp_3hl_1000")  # the models of the N-seed table, where listed in --models
TRAIN_SIZE = {"mnist": 60_000, "cifar10": 50_000}


def random_split(config, n: int):
    rng = np.random.default_rng(0)
    shape = data.IMAGE_SHAPES[config.data.name]
    return rng.integers(0, 256, (n,) + shape, dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


def tinyjax_runner(config, steps: int, n_replicas: int = 0, placement: parallel.Placement = parallel.Placement()):
    """A warmed-up ``run()`` of ``steps`` train steps through ``train_epoch``, and FLOPs per step
    (``tinyjax.train.flops.step_flops``, as a run's header prints them; None for replicas);
    ``n_replicas`` > 0: that many seeds as one vmapped program; ``placement``: over which devices."""
    n = steps * config.batch_size
    images, labels = random_split(config, n)
    device_data = placement.replicated(data.to_device(images, labels))  # On the devices once, as a run places it.
    members = [dataclasses.replace(config, seed=k) for k in range(max(n_replicas, 1))]
    states = [init_state(c, steps, images)[1] for c in members]
    program = replicas.Members.of(members)  # One model (N = 1) is not stacked.
    state = [program.stack(states)]
    train_epoch = make_epoch_fns(config, "step", program, placement)[0]
    keys = program.stack(list(jax.random.split(jax.random.key(1), n_replicas))) if n_replicas else jax.random.key(1)

    def run():
        state[0], totals, _ = train_epoch(state[0], device_data, keys)
        jax.block_until_ready(totals)
    run()
    return run, None if n_replicas else flops.step_flops(config, states[0], images)


def torch_runner(config, steps: int):
    """The PyTorch reference's warmed-up ``run()`` of ``steps`` steps; None without PyTorch."""
    try:
        import torch_reference
    except ImportError:
        return None
    images, labels = random_split(config, steps * config.batch_size)
    mean, std = data.NORMALIZATION[config.data.name]
    trainer = torch_reference.Trainer(dataclasses.replace(config, epochs=1000), images, labels, mean, std)
    params = layer_table(models.create(config.model), data.IMAGE_SHAPES[config.data.name]).trainable_params
    assert torch_reference.params(trainer.model) == params, (config.model, torch_reference.params(trainer.model))

    def run():
        trainer.epoch(steps)
    run()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(RECIPES), help="comma-separated presets of RECIPES")
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median reported)")
    parser.add_argument("--seeds", default="1,4,8", help="replica counts of the N-seed table ('' to skip)")
    parser.add_argument("--accumulate", default="", help="micro-batch counts K of the accumulation table, e.g. 2,4")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in RECIPES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r} in --models: choose from {', '.join(RECIPES)}")
    try:
        ks = [int(k) for k in args.accumulate.split(",") if k]
    except ValueError:
        parser.error(f"--accumulate {args.accumulate!r} is not a comma-separated list of integers, e.g. 2,4")
    for model, k in [(m, k) for m in models for k in ks]:
        if k < 1 or RECIPES[model][0].batch_size % k:
            parser.error(f"--accumulate {k} must be >= 1 and divide {model}'s batch "
                         f"{RECIPES[model][0].batch_size}: pick a divisor")
    runners, configs, step_flops = {}, {}, {}
    for model in models:
        config = RECIPES[model][0]
        configs[model] = config
        runners[(model, "tinyjax")], step_flops[model] = tinyjax_runner(config, args.steps)
        reference = torch_runner(config, args.steps)
        if reference is not None:
            runners[(model, "PyTorch")] = reference
    counts = [int(n) for n in args.seeds.split(",") if n]
    for model in [m for m in VMAPPED if m in models]:
        for n in counts:
            if n > 1:
                runners[(model, f"vmap {n}")] = tinyjax_runner(configs[model], args.steps, n)[0]
    for model, k in [(m, k) for m in models for k in ks if k > 1]:
        runners[(model, f"accumulate {k}")] = tinyjax_runner(
            dataclasses.replace(configs[model], accumulate=k), args.steps)[0]
    medians = interleaved_medians(runners, args.repeats)
    rate = {k: args.steps * configs[k[0]].batch_size / s * (int(k[1].split()[1]) if k[1].startswith("vmap") else 1)
            for k, s in medians.items()}

    print(f"# {runs.describe()}")
    print(f"# {args.steps} steps x {args.repeats} repeats, rows interleaved, median; jax backend "
          f"{jax.default_backend()}\n")
    peak, source = flops.peak_flops(jax.devices()[0].device_kind, "float32")
    print(f"# FLOPs: XLA's cost analysis of the train step (tinyjax.train.flops); MFU against: {source}\n")
    print("| model | recipe | batch | tinyjax img/s | PyTorch img/s | tinyjax / PyTorch | tinyjax epoch | PyTorch epoch |"
          " MFLOP/image | tinyjax GFLOP/s | MFU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        config, what = RECIPES[model]
        ours, theirs = rate[(model, "tinyjax")], rate.get((model, "PyTorch"))
        size, per_image = TRAIN_SIZE[config.data.name], (step_flops[model] or 0) / config.batch_size
        achieved = per_image * ours
        print(f"| {model} | {what} | {config.batch_size} | {ours:,.0f} | "
              + (f"{theirs:,.0f} | {ours / theirs:.2f} | " if theirs else "- | - | ")
              + f"{size / ours:.1f} s | " + (f"{size / theirs:.1f} s |" if theirs else "- |")
              + (f" {per_image / 1e6:.2f} | {achieved / 1e9:.1f} | " if per_image else " - | - | ")
              + (f"{100 * achieved / peak:.1f}% |" if peak and per_image else "- |"))
    if counts:
        print("\n| model | seeds N | vmapped: seeds x img/s | sequential: seeds x img/s | vmapped / sequential |"
              " PyTorch sequential |")
        print("|---|---:|---:|---:|---:|---:|")
        for model in [m for m in VMAPPED if m in models]:
            single = rate[(model, "tinyjax")]
            for n in counts:
                vmapped = rate[(model, f"vmap {n}")] if n > 1 else single
                torch_rate = rate.get((model, "PyTorch"))
                print(f"| {model} | {n} | {vmapped:,.0f} | {single:,.0f} | {vmapped / single:.2f} | "
                      + (f"{torch_rate:,.0f} |" if torch_rate else "- |"))
    if [k for k in ks if k > 1]:
        print("\n| model | batch | micro-batches K | micro-batch | img/s | epoch | time / K = 1 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for model in models:
            batch, single = configs[model].batch_size, rate[(model, "tinyjax")]
            for k in sorted({1, *ks}):
                ours = rate[(model, f"accumulate {k}")] if k > 1 else single
                print(f"| {model} | {batch} | {k} | {batch // k} | {ours:,.0f} | "
                      f"{TRAIN_SIZE[configs[model].data.name] / ours:.1f} s | {single / ours:.2f} |")


if __name__ == "__main__":
    jnp.zeros(())  # Start the backend before timing anything.
    main()
