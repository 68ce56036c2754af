"""The first stages of a run: ``prepare`` (everything the epochs need, once) and ``restore``."""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from tinyjax import data, runs, streams
from tinyjax.config import Config, ConfigError
from tinyjax.data.splits import load_splits
from tinyjax.distributed import hosts, parallel
from tinyjax.models.door import ModelError, resolve
from tinyjax.models.summary import LayerTable, layer_table
from tinyjax.runs.checkpoint import Checkpoints
from tinyjax.train import flops, profile, replicas
from tinyjax.train.epochs import make_epoch_fns, resolve_loop
from tinyjax.train.inputs import resolve_inputs
from tinyjax.train.state import TrainState, init_state
from tinyjax.validation import check_elastic, check_model


@dataclasses.dataclass(kw_only=True)
class Run:
    """What a run's stages share: its member ``configs`` (N >= 1; ``config`` is the first), the
    model (a ``Net``), the data's ``info`` (shape, classes, normalisation) and the layer ``table``, the ``placement`` on devices, the host ``splits`` and their
    copies on the devices (``device``), the compiled ``train_epoch`` and ``evaluate``, each
    member's learning-rate function, label, run directory and checkpoints (None with
    ``--save-every 0``), how to print and resume, and the cost of a step (``tinyjax.train.flops``)."""

    configs: list[Config]
    members: replicas.Members
    model: Any  # The tinyjax.models.door.Net.
    info: data.DataInfo
    table: LayerTable
    placement: parallel.Placement
    splits: dict
    device: dict
    steps_per_epoch: int
    fingerprint: dict
    train_epoch: Callable
    evaluate: Callable
    lr_fns: list[Callable]
    labels: list[str]
    run_dirs: list[str]
    checkpoints: list[Checkpoints] | None
    print_fn: Callable[[str], None]
    resumed: bool
    resume_command: str | None
    flops: float | None = None  # Of one optimizer step, all members (tinyjax.train.flops.step_flops).
    peak: tuple[float | None, str] = (None, "")  # One device's peak FLOP/s and its source, or why none.
    held_out: bool = False  # The data has no test split: 10% of train is held out as one.

    @property
    def config(self) -> Config:
        return self.configs[0]

    @property
    def n(self) -> int:
        """The number of members (replicas of one program)."""
        return self.members.n

    def member(self, tree, k: int):
        """Member ``k``'s part of a tree the program holds (``Members.take``)."""
        return self.members.take(tree, k)

    def order_key(self, rng: jax.Array, epoch: int) -> jax.Array:
        """The key that shuffles ``epoch``: ``streams.key(rng, DATA_ORDER, epoch)``, per member."""
        return self.members.each(lambda r: streams.key(r, streams.DATA_ORDER, epoch), rng)

    def save(self, state, epoch: int, position: int, totals, rows: list[dict] | None = None) -> None:
        """Starts saving each member's checkpoint at ``position`` steps into (0-based) ``epoch``, with
        the partial epoch's metric sums and, at an epoch's end, its records (for the best checkpoint)."""
        for k, c in enumerate(self.checkpoints):
            meta = {"epoch": epoch, "position": position, "steps_per_epoch": self.steps_per_epoch,
                    "totals": {key: v.item() for key, v in jax.device_get(self.member(totals, k)).items()},
                    "data": self.fingerprint, "config": dataclasses.asdict(self.configs[k])}
            c.save(epoch * self.steps_per_epoch + position, self.member(state, k), meta, rows and rows[k])

    def saved(self) -> str:
        """Waits for the last saves and says where they are."""
        if not self.checkpoints:
            return "nothing saved (--save-every 0)"
        for c in self.checkpoints:
            c.wait()
        return "saved " + ", ".join(f"{c.directory}/{c.latest()}" for c in self.checkpoints)


@dataclasses.dataclass
class Position:
    """Where the epoch loop starts: the train state (stacked when N > 1), the 0-based ``epoch``, the
    ``step`` inside it, the partial epoch's metric sums (None at an epoch's start) and each
    member's epoch records so far."""

    state: TrainState
    epoch: int
    step: int
    totals: dict | None
    histories: list[list[dict]]

    @classmethod
    def fresh(cls, run: Run, states: list[TrainState]) -> "Position":
        return cls(run.members.stack(states), 0, 0, None, [[] for _ in states])


def prepare(configs: Sequence[Config], print_fn: Callable[[str], None], *, resume: Sequence[str] | None = None,
            run_dirs: Sequence[str] | None = None, group_dir: str | None = None, model=None,
            dataset: data.Dataset | None = None) -> tuple[Run, list[TrainState]]:
    """Checks that the configs can share a program, places the run on its devices, loads the data
    (every process, or none), puts the model through the door (``tinyjax.models.door``; ``model``, an
    object passed in, else ``config.model``) and checks it on the data, builds each member's fresh
    train state and the epoch functions, and creates the run directories (or takes ``resume``'s)
    with the data's ``data.json``. Arguments as ``train_members``.

    Raises:
      ConfigError: configs that cannot share a program, a batch smaller than the device count, an
        output folder that cannot be written, data that differs between processes, a schedule
        that cannot be built, or a ``--profile`` range past the run's end (all before anything
        is compiled).
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    if len(replicas.groups(configs)) > 1:
        raise ConfigError("these configs differ in more than " + ", ".join(replicas.REPLICA_FIELDS)
                          + " and cannot train as replicas of one program; train them one after another.")
    configs = [dataclasses.replace(c, loop=resolve_loop(c.loop)) for c in configs]
    config, n = configs[0], len(configs)
    placement = parallel.Placement.create(config.parallel)
    parallel.check_batch(config, placement.devices)

    def load():
        if resume is None:
            runs.check_writable(config.out)
        found = resolve_inputs(config, model, dataset)
        return found, load_splits(config, found.source)
    (source, info, net), splits = hosts.together(load)  # One process failing here (its data missing) stops all.
    check_model(config, net, info)  # Its output width and budget on these images, from shapes only.
    check_elastic(config, info.image_shape)
    table = layer_table(net, info.image_shape)
    steps_per_epoch = data.num_batches(len(splits["train"][1]), config.batch_size)
    _check_last_batch(config, net, len(splits["train"][1]), placement.devices)
    fingerprint = _fingerprint(*splits["train"])
    if config.profile:  # Its range against the run's steps, before anything is created or compiled.
        profile.check(config, config.epochs * steps_per_epoch)
    try:  # One-cycle limits depend on the number of steps, known once the data is.
        inits = [init_state(c, steps_per_epoch, None if resume else splits["train"][0], net=net, info=info)
                 for c in configs]
    except ValueError as e:
        raise ConfigError(str(e)) from e
    members = replicas.Members.of(configs)
    train_epoch, evaluate = make_epoch_fns(config, config.loop, members, placement, net=net, info=info)
    run_dirs = list(resume or [runs.create(c, net, info, d)
                               for c, d in zip(configs, run_dirs or [None] * n)])
    checkpoints = [Checkpoints(d, c) for d, c in zip(run_dirs, configs)] if config.checkpoint.save_every else None
    resumable = checkpoints and (not members.stacked or group_dir)  # Not: no saves, or a grid's points.
    run = Run(configs=configs, members=members, model=net, info=info, table=table, placement=placement, splits=splits,
              device={name: placement.replicated(data.to_device(*arrays)) for name, arrays in splits.items()},
              steps_per_epoch=steps_per_epoch, fingerprint=fingerprint, train_epoch=train_epoch, evaluate=evaluate,
              lr_fns=[init.lr_fn for init in inits],
              labels=[f"{label}: " if label else "" for label in replicas.differences(configs)], run_dirs=run_dirs,
              checkpoints=checkpoints, print_fn=hosts.printer(print_fn),  # Process 0 prints for all.
              resumed=resume is not None,
              resume_command=runs.resume_command(group_dir or run_dirs[0], config.experiment) if resumable else None,
              flops=flops.step_flops(config, inits[0].state, splits["train"][0], members, (info.mean, info.std)),
              peak=flops.peak_flops(jax.devices()[0].device_kind, config.dtype),
              held_out=source is not None and source.test is None)
    return run, [init.state for init in inits]


def with_inputs(config: Config, model=None, data: data.Dataset | None = None) -> Config:
    """``config`` naming a model and data passed as objects: ``model`` its import reference (or, for
    an object that has none, ``python:<type>``), ``data.name`` the dataset's name (``"arrays"``); a
    file reference in ``--model`` and a path in ``--dataset`` made absolute, so that a resume, an
    evaluation or an export finds them from any folder."""
    where, colon, attr = config.model.rpartition(":")
    if colon and where.endswith(".py"):
        config = dataclasses.replace(config, model=f"{os.path.abspath(where)}:{attr}")
    if data is None and os.path.exists(config.data.name):
        absolute = os.path.abspath(config.data.name)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, name=absolute))
    if model is not None:
        try:
            net = resolve(model)
        except ModelError as e:
            raise ConfigError(str(e)) from None
        config = dataclasses.replace(config, model=net.reference or f"python:{net.name}")
    if data is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, name=data.name))
    return config


def _check_last_batch(config: Config, net, examples: int, devices: int) -> None:
    """A model without ``mask`` trains an epoch's last partial batch at its true size: ``--accumulate``
    and the device count must divide it.

    Raises:
      ConfigError: one line naming the sizes and the fix.
    """
    size = examples % config.batch_size
    if net.takes_mask or not size or (size % config.accumulate == 0 and size % devices == 0):
        return
    raise ConfigError(f"--model {net.name} takes no mask, so the last batch of each epoch trains at its true size, "
                      f"{size} images ({examples} % --batch-size {config.batch_size}), which --accumulate "
                      f"{config.accumulate} x {devices} devices does not divide; choose a --batch-size that divides "
                      f"{examples}, or give the model a mask argument.")


def _fingerprint(images, labels) -> dict:
    """What identifies the training data (its size and CRC-32), so that a resume on other data is
    refused; the same on every process of the run, or a ConfigError."""
    fingerprint = {"train_examples": len(labels), "train_crc32": zlib.crc32(labels.tobytes(), zlib.crc32(images.tobytes()))}
    text = json.dumps(fingerprint)
    if hosts.largest(int(hosts.agree(text) != text)):
        raise ConfigError(f"the processes of this run loaded different training data (this one: {fingerprint}); "
                          "give every process the same --data-dir contents.")
    return fingerprint


def restore(run: Run, states: list[TrainState], resume: Sequence[str]) -> Position:
    """Each member's latest checkpoint, restored over its fresh state (the template), with its
    position, partial sums and records (``metrics.jsonl`` cut back to the checkpoint).

    Raises:
      ConfigError: a member holds no checkpoint, was trained on other data, or the members'
        checkpoints are at different steps.
      CheckpointError: a checkpoint cannot be read.
    """
    checkpoints, metas = run.checkpoints, []
    try:
        if checkpoints is None or any(c.latest() is None for c in checkpoints):
            raise ConfigError(f"--resume {resume[0]}: the run holds no checkpoint to resume from.")
        for k, c in enumerate(checkpoints):
            states[k], meta = c.restore(c.latest(), states[k])
            metas.append(meta)
            if meta["data"] != run.fingerprint or meta["steps_per_epoch"] != run.steps_per_epoch:
                raise ConfigError(f"--resume {run.run_dirs[k]}: the training data differs from the run's "
                                  f"({meta['data']}, now {run.fingerprint}); point --data-dir at the data the "
                                  "run began with.")
        if len({(m["epoch"], m["position"]) for m in metas}) > 1:
            raise ConfigError(f"--resume: the members' latest checkpoints are at different steps "
                              f"({[(m['epoch'], m['position']) for m in metas]}); resume each on its own.")
    except Exception:
        for c in checkpoints or []:
            c.close()
        raise
    for d, c in zip(run.run_dirs, run.configs):
        runs.write_json(os.path.join(d, "config.json"), dataclasses.asdict(c))  # Allowed changes.
    epoch = metas[0]["epoch"]
    sums = [{k: jnp.asarray(v, jnp.float32 if k == "loss_sum" else jnp.int32) for k, v in m["totals"].items()}
            for m in metas]
    return Position(run.members.stack(states), epoch, metas[0]["position"], run.members.stack(sums),
                    [runs.read_metrics(d, epoch) for d in run.run_dirs])


def announce(run: Run, position: Position) -> None:
    """Prints the layer table and the run's header line (and where a resumed run continues)."""
    config, sizes = run.config, " / ".join(f"{len(labels)} {name}" for name, (_, labels) in run.splits.items())
    run.print_fn(run.table.markdown())
    run.print_fn(f"{config.experiment}: {run.model.name} ({run.table.trainable_params:,} params), {config.data.name} "
                 f"{sizes}{' (test: 10% of train held out, the data has no test split)' if run.held_out else ''}, "
                 f"{config.epochs} epochs x {run.steps_per_epoch} steps of {config.batch_size}, "
                 f"{run.placement.describe()}, '{config.loop}' loop"
                 + (", the nnx object's own init for every member" if run.model.instance is not None else "")
                 + ("" if run.model.reference else " (a Python object: load it with tinyjax.load(run_dir, model=...))")
                 + run.members.describe()
                 + f" -> {', '.join(run.run_dirs)}"
                 + "\n" + flops.describe(run.flops, run.n * config.batch_size, run.peak, run.placement.devices)
                 + (f"\nresumed at epoch {position.epoch + 1}, step {position.step}" if run.resumed else "")
                 + (f"\nresume with: {run.resume_command}" if run.resume_command else ""))
