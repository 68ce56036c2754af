"""CIFAR-10 training throughput of each recipe: ms per step, images/s, and an epoch's time.

    python scripts/bench_cifar.py                         # the three recipes, float32, 5 steps each
    python scripts/bench_cifar.py --dtype bfloat16 --steps 50 --repeats 5      # on a GPU/TPU
    python scripts/bench_cifar.py --recipes reference004 --batch-size 256

Each row runs a recipe's real training path -- ``make_epoch_fns``'s
``train_epoch``: the on-device batch plan, that recipe's augmentation inside
the compiled step, the train step with its non-finite check, the EMA when the
recipe keeps one -- on ``steps`` batches of random uint8 images (speed does not
depend on the pixels), after one warm-up epoch that compiles. The rows take
turns, ``repeats`` times; the median is reported. Evaluation is timed the same
way on ``--eval-images`` images (default 10,000, the test split's size; fewer
on a CPU, where one evaluation can take minutes) with the recipe's test-time
augmentation. "epoch" = 50,000 training images and 10,000 evaluated, at
those rates; it leaves out the host's per-epoch work (metrics, checkpoint).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform

import jax
import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments import cifar10_fast, cifar10_resnet
from tinyjax import data
from tinyjax.models.summary import layer_table
from tinyjax.models import create
from tinyjax.train.epochs import make_epoch_fns, resolve_loop
from tinyjax.train.state import init_state

from timing import interleaved_medians  # scripts/timing.py, beside this file

RECIPES = {"reference004": cifar10_resnet.REFERENCE_004, "resnet20": cifar10_resnet.VARIANTS["resnet20"],
           "fast": cifar10_fast.FAST, "fast_small": cifar10_fast.VARIANTS["small"],
           "fast_resnet_7x3": cifar10_fast.RESNET}
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000


def runners(name: str, config, steps: int, loop: str, eval_images: int):
    """(train runner, eval runner) of a recipe, compiled and warmed up."""
    rng = np.random.default_rng(0)
    n = steps * config.batch_size
    train = data.to_device(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.int32))
    test = data.to_device(rng.integers(0, 256, (eval_images, 32, 32, 3), dtype=np.uint8),
                          rng.integers(0, 10, eval_images, dtype=np.int32))
    _, state, _ = init_state(config, steps, np.asarray(train.images[:5000]))
    train_epoch, evaluate = make_epoch_fns(config, loop)
    holder = {"state": state}

    def run_train():
        holder["state"], totals, _ = train_epoch(holder["state"], train, jax.random.key(1))
        jax.block_until_ready(totals)

    def run_eval():
        jax.block_until_ready(evaluate(holder["state"], test))

    run_train(), run_eval()  # Compile.
    return run_train, run_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["reference004", "resnet20", "fast"], choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=None, help="override every recipe's batch size")
    parser.add_argument("--loop", default="auto", choices=["auto", "step", "scan"])
    parser.add_argument("--eval-images", type=int, default=TEST_IMAGES, help="images per timed evaluation")
    args = parser.parse_args()
    loop = resolve_loop(args.loop)
    configs = {}
    for name in args.recipes:
        # An evaluation batch larger than the images timed would pad them: time only real images.
        config = dataclasses.replace(RECIPES[name], dtype=args.dtype,
                                     eval_batch_size=min(RECIPES[name].eval_batch_size, args.eval_images))
        configs[name] = dataclasses.replace(config, batch_size=args.batch_size or config.batch_size)
    timers = {}
    for name, config in configs.items():
        timers[(name, "train")], timers[(name, "eval")] = runners(name, config, args.steps, loop, args.eval_images)
    medians = interleaved_medians(timers, args.repeats)
    device = jax.devices()[0]
    print(f"{device.platform} ({device.device_kind}), {platform.processor() or platform.machine()}, jax "
          f"{jax.__version__}, {args.dtype}, '{loop}' loop; median of {args.repeats}, {args.steps} steps and "
          f"{args.eval_images} evaluated images per run\n")
    print("| recipe | model | params | batch | augmentation | ms/step | train images/s | eval images/s (TTA views) "
          "| epoch (50k train + 10k eval) |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for name, config in configs.items():
        step = medians[(name, "train")] / args.steps
        train_rate, eval_rate = config.batch_size / step, args.eval_images / medians[(name, "eval")]
        epoch = TRAIN_IMAGES / train_rate + TEST_IMAGES / eval_rate
        params = layer_table(create(config.model), (32, 32, 3)).trainable_params
        a = config.augment
        aug = ", ".join(x for x, on in [(f"crop {a.crop_padding}", a.crop_padding), (f"flip {a.flip}", a.flip != "none"),
                                        (f"rotation {a.rotation:g}", a.rotation),
                                        ("jitter", a.brightness or a.contrast or a.saturation)] if on)
        print(f"| {name} | {config.model} | {params:,} | {config.batch_size} | {aug} | {1000 * step:.1f} | "
              f"{train_rate:,.0f} | {eval_rate:,.0f} ({config.tta}) | {epoch / 60:.1f} min |")


if __name__ == "__main__":
    main()
