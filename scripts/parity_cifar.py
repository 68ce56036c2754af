"""CIFAR-10 accuracy parity: tinyjax against an independent PyTorch reference of the same recipe, n seeds each.

    python scripts/parity_cifar.py --seeds 3 --out ~/runs/parity-resnet20           # ResNet-20, 10 epochs
    python scripts/parity_cifar.py --recipe default --epochs 5 --train-limit 4000 --test-limit 2000 \\
        --seeds 3 --out ~/runs/parity-7x3                                          # reference 004's network
    python scripts/parity_cifar.py --out ~/runs/parity-resnet20 --report           # table + plot of what ran
    python scripts/parity_cifar.py --check-step                                    # one step, float64

Each seed trains the recipe (``experiments.cifar10_resnet --variant RECIPE``,
``--epochs`` shortening it with the milestones scaled as the CLI does;
reference 004's ``default`` with crop + flip only, as the reference has no
rotation or colour jitter) in
tinyjax (``train_and_evaluate``, a normal run directory under
``OUT/tinyjax/seed-K``) and in the PyTorch reference
(``scripts/torch_reference.py``: the same network, initialisation, SGD,
MultiStepLR, crop padding and per-example crop + flip, on the same decoded
images, ``OUT/torch/seed-K``), the two taking turns seed by seed. Run the same
command again to continue: finished runs are kept, cut-off ones resume
(tinyjax from its checkpoint, PyTorch from its last epoch). At the end (and
with ``--report``) it prints, per epoch, test and train accuracy as mean ±
sample std over the seeds for both, writes ``OUT/report.md`` and
``OUT/curves.png`` (means with min-max bands).

Ablations, one flag at a time, on both sides or on one (``--sides``):
``--init fan_in|fan_out`` (Kaiming-normal fan of every conv and dense kernel;
default: the tinyjax preset's), ``--fill black|mean`` (what the crop's padding
brings in; default: the recipe's ``crop_fill``).

``--check-step`` copies tinyjax's initial weights into the PyTorch twin and
compares one train-mode step in float64: loss, every gradient and the
BatchNorm running statistics (flax reduces batch statistics in float32, so
agreement is ~1e-7, not 1e-15; PyTorch's running variance is the unbiased one,
a relative 1/(n-1)).

PyTorch is only the reference: ``pip install torch==2.13.0`` (CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import time

import numpy as np

import repo  # noqa: F401  (scripts/repo.py: the clone's root on sys.path, for experiments)
from experiments.cifar10_resnet import VARIANTS
from tinyjax import data, models, runs
from tinyjax.grid import scale_milestones
from tinyjax.train.replicas import spread

SIDES = ("tinyjax", "torch")


def recipe_config(args) -> "Config":  # noqa: F821
    """The experiment's config for ``args.recipe`` shortened to ``args.epochs``, with the ablations."""
    base = VARIANTS[args.recipe]
    config = dataclasses.replace(base, variant=args.recipe, epochs=args.epochs, data=dataclasses.replace(
        base.data, train_limit=args.train_limit, test_limit=args.test_limit, data_dir=args.data_dir))
    if base.schedule.name == "piecewise" and args.epochs != base.epochs:
        config = dataclasses.replace(config, schedule=dataclasses.replace(
            base.schedule, milestones=scale_milestones(base.schedule.milestones, base.epochs, args.epochs)))
    if args.recipe == "default":  # The PyTorch reference has no rotation or colour jitter: both sides crop + flip.
        config = dataclasses.replace(config, augment=dataclasses.replace(
            config.augment, rotation=0.0, brightness=0.0, contrast=0.0, saturation=0.0))
    if args.fill:
        config = dataclasses.replace(config, augment=dataclasses.replace(config.augment, crop_fill=args.fill))
    if args.init and args.init != models.create(config.model).init_mode:
        name = f"{config.model}-{args.init}"  # A preset registered for this process (models.PRESETS).
        models.PRESETS[name] = lambda model=config.model: models.PRESETS[model]().clone(init_mode=args.init)
        config = dataclasses.replace(config, model=name)
    return config


def torch_model_name(config) -> str:
    """The PyTorch twin of ``config.model`` (``torch_reference.MODELS``): the preset, without the init
    mode that ``recipe_config`` appends to a variant it registers."""
    return config.model.rsplit("-", 1)[0]


def finished_tinyjax(out: str) -> list[dict]:
    """The per-epoch records of the finished tinyjax run under ``out``; [] when none has finished."""
    done = glob.glob(os.path.join(out, "*", "results.json"))
    return runs.read_metrics(os.path.dirname(done[0])) if done else []


def run_tinyjax(config, seed: int, out: str) -> list[dict]:
    from tinyjax.train import train_and_evaluate

    history = finished_tinyjax(out)
    if history:
        return history
    started = glob.glob(os.path.join(out, "*", "config.json"))
    resume = os.path.dirname(started[0]) if started else None
    checkpoints = resume and glob.glob(os.path.join(resume, "checkpoints", "*"))
    if resume and not checkpoints:  # Cut off before its first checkpoint: start again.
        os.rename(resume, resume + ".unfinished")
        resume = None
    config = dataclasses.replace(config, seed=seed, out=out)
    return train_and_evaluate(config, resume=resume)[1]


def run_torch(config, seed: int, out: str, splits, init: str, fill: str) -> list[dict]:
    import torch
    import torch_reference

    os.makedirs(out, exist_ok=True)
    history_path, state_path = os.path.join(out, "history.json"), os.path.join(out, "state.pt")
    history = json.load(open(history_path)) if os.path.exists(history_path) else []
    if len(history) == config.epochs:
        return history
    mean, std = data.NORMALIZATION["cifar10"]
    trainer = torch_reference.Trainer(dataclasses.replace(config, model=torch_model_name(config)),
                                      *splits["train"], mean, std, seed, init=init, fill=fill)
    if history:
        trainer.load_state_dict(torch.load(state_path, weights_only=False))
    x_test = torch_reference.to_tensor(splits["test"][0], mean, std)
    y_test = torch.from_numpy(splits["test"][1].astype(np.int64))
    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        train_acc, train_loss = trainer.epoch()
        test_acc, test_loss = trainer.evaluate(x_test, y_test)
        history.append({"epoch": epoch + 1, "train_acc": train_acc, "train_loss": train_loss,
                        "test_acc": test_acc, "test_loss": test_loss, "seconds": time.perf_counter() - start})
        torch.save(trainer.state_dict(), state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)
        runs.write_json(history_path, history)
        print(f"torch seed {seed}: epoch {epoch + 1}/{config.epochs} train {train_acc:.2f}% test "
              f"{test_acc:.2f}% ({history[-1]['seconds']:.0f} s)", flush=True)
    return history


def cell(mean: float, std: float, n: int) -> str:
    """``mean ± sample std``; the mean alone for one seed."""
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def report(out: str, plan: dict) -> str:
    """The markdown table of ``out`` (and ``curves.png``) from what has finished so far."""
    histories = {side: [] for side in SIDES}
    for side in SIDES:
        for seed in plan["seeds"]:
            path = os.path.join(out, side, f"seed-{seed}")
            if side == "torch" and os.path.exists(os.path.join(path, "history.json")):
                h = json.load(open(os.path.join(path, "history.json")))
            else:
                h = finished_tinyjax(path)
            if len(h) == plan["epochs"]:
                histories[side].append(h)
    lines = [f"# {plan['recipe']}, {plan['epochs']} epochs, train limit {plan['train_limit']}, test limit "
             f"{plan.get('test_limit')}, init "
             f"{plan['init']}, crop fill {plan['fill']}; seeds {plan['seeds']}", f"# {runs.describe()}", ""]
    for key, title in (("test_acc", "test accuracy %"), ("train_acc", "train accuracy % (augmented, train mode)")):
        lines += [f"| {title} after epoch | n | " + " | ".join(str(e) for e in range(1, plan["epochs"] + 1)) + " |",
                  "|---|---:|" + "---:|" * plan["epochs"]]
        for side, hs in histories.items():
            if hs:
                cells = [spread([h[e][key] for h in hs]) for e in range(plan["epochs"])]
                lines.append(f"| {side} | {len(hs)} | " + " | ".join(cell(m, s, len(hs)) for m, s in cells) + " |")
        lines.append("")
    for side, hs in histories.items():
        if hs:
            m, s = spread([h[-1]["test_acc"] for h in hs])
            lines.append(f"- {side}: final test {cell(m, s, len(hs))}% (n = {len(hs)}: "
                         + ", ".join(f"{h[-1]['test_acc']:.2f}" for h in hs) + ")")
    text = "\n".join(lines) + "\n"
    runs.write_text(os.path.join(out, "report.md"), text)
    plot(out, histories, plan)
    return text


def plot(out: str, histories: dict, plan: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.arange(1, plan["epochs"] + 1)
    for side, color in zip(SIDES, ("tab:blue", "tab:orange")):
        for key, style in (("test_acc", "-"), ("train_acc", "--")):
            if histories[side]:
                values = np.array([[e[key] for e in h] for h in histories[side]])
                ax.plot(epochs, values.mean(0), style, color=color,
                        label=f"{side} {key.split('_')[0]} (n = {len(values)})")
                ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.15)
    ax.set(xlabel="epoch", ylabel="accuracy %", title=f"CIFAR-10 {plan['recipe']}: tinyjax vs PyTorch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="resnet20", choices=["resnet20", "default"],
                        help="resnet20 (He et al.), default (reference 004's resnet_7x3)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-limit", type=int, default=None, help="train images (default: all 50,000)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate on a fixed random subset of N test images (default: all 10,000)")
    parser.add_argument("--init", choices=["fan_in", "fan_out"], default=None)
    parser.add_argument("--fill", choices=["black", "mean"], default=None)
    parser.add_argument("--sides", default="tinyjax,torch", help="tinyjax,torch or one of them")
    parser.add_argument("--data-dir", default=os.environ.get("TINYJAX_DATA_DIR"))
    parser.add_argument("--out", default=None, help="the runs and the report; the same --out continues")
    parser.add_argument("--report", action="store_true", help="only print the report of --out")
    parser.add_argument("--check-step", action="store_true", help="compare one step in float64 and exit")
    args = parser.parse_args()
    if args.check_step:
        import parity_step

        config = recipe_config(args)
        sys.exit(parity_step.main(config, torch_model_name(config)))
    if args.out is None:
        parser.error("--out DIR is needed (the runs are kept there, and the same --out continues them)")
    sides = args.sides.split(",")
    if not set(sides) <= set(SIDES):
        parser.error(f"--sides takes tinyjax, torch or both, got {args.sides}")
    config = recipe_config(args)
    plan = {"recipe": args.recipe, "epochs": args.epochs, "train_limit": args.train_limit,
            "test_limit": args.test_limit, "seeds": list(range(args.seeds)),
            "init": models.create(config.model).init_mode, "fill": config.augment.crop_fill, "sides": sides}
    plan_path = os.path.join(args.out, "plan.json")
    if os.path.exists(plan_path):
        saved = {"test_limit": None, **json.load(open(plan_path))}  # Plans written before --test-limit.
        if args.report:
            print(report(args.out, saved))
            return
        if {**saved, "seeds": None} != {**plan, "seeds": None}:  # More seeds may be added later.
            parser.error(f"{args.out} holds another plan ({saved}); use another --out, or the same flags")
        plan["seeds"] = sorted(set(saved["seeds"]) | set(plan["seeds"]))
    elif args.report:
        parser.error(f"{args.out} holds no parity runs (no plan.json)")
    os.makedirs(args.out, exist_ok=True)
    runs.write_json(plan_path, plan)
    from tinyjax.data.splits import load_splits

    splits = load_splits(config)
    for seed in range(args.seeds):
        for side in sides:
            path = os.path.join(args.out, side, f"seed-{seed}")
            if side == "tinyjax":
                history = run_tinyjax(config, seed, path)
            else:
                history = run_torch(config, seed, path, splits, plan["init"], plan["fill"])
            print(f"{side} seed {seed}: final test {history[-1]['test_acc']:.2f}%", flush=True)
    print(report(args.out, plan))


if __name__ == "__main__":
    main()
