"""``--find-lr``: a learning-rate range test as one program.

    python -m experiments.mnist_onecycle --find-lr                   # 1e-5:1:16, 200 steps
    python -m experiments.mnist_onecycle --find-lr 1e-4:1:12 --find-lr-steps 300

K replicas of the config's model start from the same initialisation (its
``--seed``) and see the same batches, each at its own constant learning rate
(K values log-spaced from MIN to MAX; the config's schedule replaced by a
constant one; momentum, betas and weight decay as the config has them, a
one-cycle's momentum at its peak: ``member_configs``) for
``--find-lr-steps`` optimizer steps, as one vmapped program (one after another
where ``--replicas`` resolves to sequential: a convolutional model on CPU).
The run directory gets ``lr_find.json`` (every replica's loss at every step),
``lr_find.md`` (the table) and ``lr_find.png`` (the final loss against the
learning rate, and every replica's curve), and a suggested one-cycle peak.

The rule (``suggest``, in ``tinyjax.train.lr_rule``): a replica's final loss is its mean training loss over
the last ``TAIL`` of the steps; a replica with a non-finite step diverged. The
plateau (``flat_range``) is the rates whose final loss is within ``TOLERANCE``
of the lowest, and the suggested one-cycle peak is its geometric middle: the
rate farthest, on a log scale, from where training gets worse on either side
(after Smith's range test, which reads the peak off the top of the range where
the loss still falls: L. N. Smith, Cyclical Learning Rates, arXiv:1506.01186,
section 3.3; A disciplined approach..., arXiv:1803.09820, section 4.1). Two
rules were tried first and dropped on reference 000's CNN, whose plateau is
wide (docs/seeds-and-grids.md): the largest rate within 25% of the lowest
loss sat at the top of any range tested, and the rate of the lowest loss moved
from 0.1 to 0.215 between two compilations of the same steps (jitted steps or
one scan: float rounding), the plateau's losses being equal to 1%. A plateau
touching either end of the range is said: widen the range.

How it differs from fastai's and PyTorch Lightning's ``lr_find``: they train
one model while raising the rate every step (exponentially, ~100 steps), so
the loss at a step mixes the rate of that step with the history of the lower
ones, and suggest the steepest descent (Lightning) or a "valley" (fastai). Here
every rate is its own run from the same start, so the curves are independent
and the test costs K times the compute, as one program.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import runs, streams
from tinyjax.config import Config, ConfigError, ScheduleConfig
from tinyjax.data import Dataset, num_batches, to_device
from tinyjax.data.splits import load_splits
from tinyjax.train import replicas
from tinyjax.train.inputs import resolve_inputs
from tinyjax.train.prepare import with_inputs
from tinyjax.train.carry import TrainCarry
from tinyjax.train.epochs import batch_fns, epoch_driver, resolve_loop
from tinyjax.train.lr_rule import TAIL, TOLERANCE, final_losses, flat_range, suggest, table
from tinyjax.train.state import init_state
from tinyjax.validation import validate

DEFAULT_RANGE = "1e-5:1:16"
DEFAULT_STEPS = 200


def parse_range(text: str) -> np.ndarray:
    """``"MIN:MAX:K"`` -> ``float64 [K]`` learning rates log-spaced from MIN to MAX (both included).

    Raises:
      ConfigError: not three fields, MIN <= 0, MAX <= MIN, or K < 2.
    """
    parts = text.split(":")
    try:
        low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"--find-lr {text!r}: write MIN:MAX:K, e.g. {DEFAULT_RANGE} (K rates log-spaced "
                          "from MIN to MAX).") from None
    if not 0 < low < high or count < 2:
        raise ConfigError(f"--find-lr {text!r} needs 0 < MIN < MAX and K >= 2 rates, e.g. {DEFAULT_RANGE}.")
    return np.geomspace(low, high, count)


def member_configs(config: Config, lrs) -> list[Config]:
    """One config per rate: ``config`` at a constant ``--lr`` (one program: they differ in
    ``optim.lr`` only, a ``replicas.REPLICA_FIELDS`` field). A one-cycle config that cycles its
    momentum (SGD) or beta1 (Adam) gets the cycle's value at its peak, ``--base-momentum``: the
    suggestion is for the peak, where that is the momentum (the config's own ``--momentum`` is
    overwritten by the cycle, as PyTorch's OneCycleLR overwrites it)."""
    optim, schedule = config.optim, config.schedule
    if schedule.name == "onecycle" and schedule.cycle_momentum:
        optim = dataclasses.replace(optim, momentum=schedule.base_momentum)
    return [dataclasses.replace(config, seeds=(), schedule=ScheduleConfig(name="constant"),
                                optim=dataclasses.replace(optim, lr=float(lr))) for lr in lrs]


def range_test(config: Config, lrs, steps: int, *, print_fn: Callable[[str], None] = print,
               done: dict[int, np.ndarray] | None = None, on_group: Callable | None = None, model=None,
               data: Dataset | None = None, train: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Trains a replica per rate in ``lrs`` for ``steps`` optimizer steps from the same init and
    batches; returns ``float32 [steps, K]``, the mean training loss of each step (NaN from a
    non-finite step on: the replica diverged and its state is kept as it was before it).

    The steps run over as many shuffled epochs of the train split as they need (``--train-limit``
    and ``--val-split`` apply; the augmentation too): ``train`` (images, labels), else loaded.
    ``done`` maps rates already tested (a resumed test) to their curves, which are kept;
    ``on_group(indices, losses)`` is called after each program (all rates vmapped, or one rate)
    with the losses so far. ``model`` and ``data``: your own model and data, as
    ``train_and_evaluate`` takes them. A model without a ``mask`` argument trains on an epoch's
    full batches only (``--batch-size`` is at most the train split's size): no padding row reaches
    its batch statistics.

    Raises:
      ConfigError: a config whose optimizer or schedule cannot be built; as ``train_and_evaluate``
        for data.
    """
    done = done or {}
    configs = member_configs(dataclasses.replace(config, on_nan="stop"), lrs)
    source, info, net = resolve_inputs(config, model, data)
    mode = replicas.resolve(config.replicas, net, info.image_shape)
    images, labels = train if train is not None else load_splits(config, source)["train"]
    steps_per_epoch = num_batches(len(labels), config.batch_size)
    try:
        states = [init_state(c, steps_per_epoch, images, net=net, info=info).state for c in configs]
    except ValueError as e:
        raise ConfigError(str(e)) from e
    device_data = to_device(images, labels)
    todo = [k for k in range(len(configs)) if k not in done]
    groups = ([todo] if todo else []) if mode == "vmap" else [[k] for k in todo]
    print_fn(f"find-lr: {config.model}, {len(lrs)} rates {lrs[0]:.3g} .. {lrs[-1]:.3g}, {steps} steps of "
             f"{config.batch_size} ({steps / steps_per_epoch:.2f} epochs), "
             + ("one vmapped program" if mode == "vmap" else "one rate after another"))
    losses = np.full((steps, len(configs)), np.nan, np.float32)
    for k, curve in done.items():
        losses[:, k] = curve
    programs = {}  # One compiled program per member count: each rate after another reuses one.
    for group in groups:
        members = replicas.Members.of([configs[k] for k in group])
        if members.n not in programs:
            programs[members.n] = _program(configs[0], members, (info.mean, info.std))
        losses[:, group] = _run(programs[members.n], members, members.stack([states[k] for k in group]), device_data,
                                configs[0], steps, full_only=not net.takes_mask)
        if on_group is not None:
            on_group(group, losses)
    return losses


class RangeCarry(NamedTuple):
    """The range test's loop state: the epoch functions' ``TrainCarry``, every step's mean training
    loss so far (``float32 [steps]``, or ``[steps, K]`` for K replicas; NaN where a step is still to
    come or was not applied) and the number of steps done (int32)."""

    train: TrainCarry
    losses: jax.Array
    done: jax.Array


def _program(config: Config, members: replicas.Members, normalization=None):
    """The run's train steps (``epochs.batch_fns`` over the ``members``) that also
    write each step's mean loss into the carry, driven as the run's ``--loop`` drives them
    (``epochs.epoch_driver``: jitted steps called from Python on CPU, one ``lax.scan`` elsewhere):
    ``(RangeCarry, device_data, indices [S, (K,) B], mask) -> (RangeCarry, S)``."""
    train_batch = members.batch_fns(*batch_fns(config, normalization=normalization))[0]

    def step(c: RangeCarry, device_data, indices, mask) -> RangeCarry:
        new = train_batch(c.train, device_data, indices, mask)
        count = new.totals["count"] - c.train.totals["count"]  # 0 once a non-finite step stopped the replica.
        loss = (new.totals["loss_sum"] - c.train.totals["loss_sum"]) / jnp.maximum(count, 1)
        return RangeCarry(new, c.losses.at[c.done].set(jnp.where(count > 0, loss, jnp.nan)), c.done + 1)
    return epoch_driver(step, resolve_loop(config.loop), donate=True)


def _run(program, members: replicas.Members, state, device_data, config: Config, steps: int,
         full_only: bool) -> np.ndarray:
    """``program`` over ``steps`` steps of shuffled epochs (the plan and keys of the run's epochs:
    ``Members.plan``, ``streams.DATA_ORDER``), each epoch's last partial batch left out when
    ``full_only``; returns the losses ``float32 [steps, K]`` (K = 1 for one model)."""
    examples = int(device_data.labels.shape[0])
    epoch_steps = examples // config.batch_size if full_only else num_batches(examples, config.batch_size)
    plan = members.plan()
    carry = RangeCarry(TrainCarry(state, members.zeros(True), jnp.int32(0), jnp.asarray(members.carried_smoothing())),
                       jnp.full((steps,) + members.lead, jnp.nan, jnp.float32), jnp.int32(0))
    for epoch in range(math.ceil(steps / epoch_steps)):
        key = members.each(lambda rng: streams.key(rng, streams.DATA_ORDER, epoch), carry.train.state.rng)
        indices, mask = plan(key, examples, config.batch_size)
        take = min(epoch_steps, steps - epoch * epoch_steps)
        carry, _ = program(carry._replace(train=carry.train._replace(epoch=jnp.int32(epoch))), device_data,
                           indices[:take], mask[:take])
    return np.asarray(carry.losses).reshape(steps, -1)


def find_lr(config: Config, text: str | None = None, steps: int | None = None, *,
            print_fn: Callable[[str], None] = print, resume: str | None = None, model=None,
            data: Dataset | None = None) -> str:
    """``--find-lr``: the range test of ``config`` (``text``: ``"MIN:MAX:K"``, default
    ``DEFAULT_RANGE``; ``steps``: optimizer steps per rate, default ``DEFAULT_STEPS``) in a new run
    directory (``<out>/<experiment>-<variant>-find-lr-<timestamp>/``), or the unfinished one in
    ``resume`` (its rates, steps and the curves it finished are read from its ``lr_find.json``, which
    is written after each program: each rate when they run one after another); returns its path.
    ``model`` and ``data``: your own model and data, as ``train_and_evaluate`` takes them (passed
    again to resume).

    Raises:
      ConfigError: a bad range or step count, or ``--profile`` (before any data is loaded), or as
        ``range_test``.
    """
    if config.profile:
        raise ConfigError("--profile traces a run's training steps; a --find-lr range test has none: drop --profile.")
    started, done = time.perf_counter(), {}
    if resume is None:
        config = with_inputs(config, model, data)
        validate(config, model, data)
        lrs = parse_range(text or DEFAULT_RANGE)
        steps = DEFAULT_STEPS if steps is None else steps
        if steps < 5:
            raise ConfigError(f"--find-lr-steps must be >= 5 (optimizer steps), got {steps}.")
        runs.check_writable(config.out)
    source, info, net = resolve_inputs(config, model, data)  # Read once, for the table and the test.
    train = load_splits(config, source)["train"]  # Missing data: an error before the run directory exists.
    if resume is None:
        run_dir = runs.create(dataclasses.replace(config, variant=f"{config.variant}-find-lr"), net, info)
        progress = {"lrs": [float(x) for x in lrs], "steps": steps, "seed": config.seed,
                    "done": [False] * len(lrs), "losses": [None] * len(lrs)}
        runs.write_json(os.path.join(run_dir, "lr_find.json"), progress)
    else:
        run_dir = resume
        with open(os.path.join(run_dir, "lr_find.json")) as f:
            progress = json.load(f)
        lrs, steps = np.asarray(progress["lrs"]), progress["steps"]
        done = {k: np.asarray([np.nan if v is None else v for v in curve], np.float32)
                for k, (curve, finished) in enumerate(zip(progress["losses"], progress["done"])) if finished}
        print_fn(f"resumed: {len(done)} of {len(lrs)} rates already tested")
    print_fn(f"resume with: {runs.resume_command(run_dir, config.experiment)}")

    def save(group, losses):
        for k in group:
            progress["done"][k], progress["losses"][k] = True, _json_curve(losses[:, k])
        runs.write_json(os.path.join(run_dir, "lr_find.json"), progress)
    losses = range_test(config, lrs, steps, print_fn=print_fn, done=done, on_group=save, model=net, data=source,
                        train=train)
    finals = final_losses(losses)
    flat = flat_range(lrs, finals)
    suggestion, text_table = suggest(flat), table(lrs, losses, finals, flat)
    runs.write_json(os.path.join(run_dir, "lr_find.json"), {
        **progress, "final_losses": [float(x) for x in finals],
        "suggested_max_lr": suggestion, "flat_range": flat, "rule": "geometric middle of flat_range, the lrs "
        f"whose final loss <= {1 + TOLERANCE:g} x the lowest; final loss = mean training loss of the last "
        f"{TAIL:.0%} of steps", "wall_time_s": time.perf_counter() - started})
    with open(os.path.join(run_dir, "lr_find.md"), "w") as f:
        f.write(text_table + "\n")
    from tinyjax.runs import plots

    plots.lr_find(lrs, losses, finals, suggestion, flat, os.path.join(run_dir, "lr_find.png"),
                  f"{config.experiment} {config.variant} ({config.model}, seed {config.seed}): {steps} steps per rate")
    edge = flat is not None and (flat[0] == float(lrs[0]) or flat[1] == float(lrs[-1]))
    print_fn(f"{text_table}\n\nsuggested one-cycle peak lr: "
             + (f"{suggestion:.3g} (the middle of the plateau {flat[0]:.3g} .. {flat[1]:.3g}, final losses within "
                f"{TOLERANCE:.0%} of the lowest)" if suggestion is not None else "none (every rate diverged)")
             + (" -- the plateau reaches an end of the range: widen --find-lr MIN:MAX:K" if edge else "")
             + f" -> {run_dir}/lr_find.png")
    return run_dir


def resume(run_dir: str, flags: list[str], print_fn: Callable[[str], None] = print) -> str:
    """``--resume RUN_DIR`` of a range test: continues it with its saved config.

    Raises:
      ConfigError: other flags given (a range test resumes as it began).
    """
    from tinyjax.runs.checkpoint import load_config

    if flags:
        raise ConfigError(f"--resume {run_dir} continues a --find-lr range test as it began; drop {' '.join(flags)}.")
    return find_lr(load_config(run_dir), print_fn=print_fn, resume=run_dir)


def is_range_test(run_dir: str) -> bool:
    """Whether ``run_dir`` is a ``--find-lr`` run directory."""
    return os.path.exists(os.path.join(run_dir, "lr_find.json"))


def _json_curve(curve: np.ndarray) -> list:
    """A loss curve as JSON: a non-finite step as null."""
    return [None if not math.isfinite(v) else float(v) for v in curve]
