"""``train_and_evaluate(config)``: input, model and optimizer, state (fresh or
restored), the epoch loop with its checkpoints, and the end of the run."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import zlib
import signal
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import data, hosts, models, parallel, runs, streams
from tinyjax.checkpoint import Checkpoints
from tinyjax.config import Config, ConfigError
from tinyjax.validation import validate
from tinyjax.summary import layer_table
from tinyjax.train.epochs import make_epoch_fns, resolve_loop, summarize
from tinyjax.train import replicas
from tinyjax.train.splits import load_splits
from tinyjax.train.faults import Interrupted, Interrupts, NonFiniteError
from tinyjax.train.state import TrainState, init_state


def train_and_evaluate(config: Config, print_fn: Callable[[str], None] = functools.partial(print, flush=True),
                       resume: str | None = None) -> tuple[TrainState, list[dict], str]:
    """Trains ``config`` end to end in a new run directory, or continues the run
    in ``resume`` from its latest checkpoint, bit-identically.

    Order: validate the config and the output folder, load the data, build the
    model, optimizer and train state (or restore it), then per epoch train,
    evaluate (validation split, then test) and print one line (epoch, train
    acc, [val acc,] test acc, train loss, [val loss,] test loss, lr, seconds),
    append it to ``metrics.jsonl`` and save a checkpoint (``--save-every``).
    The end writes ``results.json`` and the plots (see ``tinyjax.runs``).
    A config with ``--seeds`` is trained by ``tinyjax.train.seeds.train_seeds``.

    Returns:
      ``(final_state, history, run_dir)``; ``history[e]`` has keys epoch,
      train_acc, [val_acc,] test_acc (%), train_loss, [val_loss,] test_loss, lr
      (of the epoch's last step), seconds (wall time of the epoch's training
      and evaluation), and with ``--on-nan skip`` skipped (steps not applied).

    Raises:
      ConfigError: a bad config field, a model over ``max_params``, an output
        folder that cannot be written (all before data is loaded), or data
        that does not fit the config (before anything is compiled).
      DatasetNotFoundError, DataError: data that cannot be loaded.
      Interrupted: SIGINT or SIGTERM; the state was saved when saving is on.
      NonFiniteError: a non-finite step with ``--on-nan stop``.
      CheckpointError: a checkpoint could not be written or restored.
    """
    if config.seeds:
        raise ConfigError("a config with --seeds trains with tinyjax.train.seeds.train_seeds.")
    state, histories, run_dirs = train_members([config], print_fn, None if resume is None else [resume])
    return state, histories[0], run_dirs[0]


def train_members(configs: Sequence[Config], print_fn: Callable[[str], None] = functools.partial(print, flush=True),
                  resume: Sequence[str] | None = None, run_dirs: Sequence[str] | None = None,
                  group_dir: str | None = None) -> tuple[TrainState, list[list[dict]], list[str]]:
    """Trains N >= 1 configs that differ only in ``replicas.REPLICA_FIELDS`` as
    one program (N > 1: a stacked train state, vmapped steps, see
    ``tinyjax.train.replicas``), each member in its own run directory, written
    as ``train_and_evaluate`` writes one: ``run_dirs`` (created; default
    ``<out>/<experiment>-<variant>-<timestamp>``), or the directories in
    ``resume``, continued from their latest checkpoints (all at the same step).
    Each epoch line is printed per member, labelled with what differs. An
    interrupted run of several members is resumed as ``group_dir`` (a
    ``--seeds`` run); without one there is no resume command. Inside a
    ``group_dir``, a signal during the last epoch still finishes the members,
    then raises ``Interrupted`` so that no further seed starts.

    Returns:
      ``(state, histories, run_dirs)``: the final state (stacked when N > 1),
      each member's history and run directory.

    Raises:
      as ``train_and_evaluate``; ConfigError too for configs that cannot share a program.
    """
    started, n = time.perf_counter(), len(configs)
    # ------------------------------------------------------------------ config, input, model, optimizer
    for c in configs:
        validate(c)
    if len(replicas.groups(configs)) > 1:
        raise ConfigError("these configs differ in more than " + ", ".join(replicas.REPLICA_FIELDS)
                          + " and cannot train as replicas of one program; train them one after another.")
    config = configs[0]
    table = layer_table(models.create(config.model), data.IMAGE_SHAPES[config.data.name])  # Shapes only.
    configs = [dataclasses.replace(c, loop=resolve_loop(c.loop)) for c in configs]
    config = configs[0]
    placement = parallel.Placement.create(config.parallel)
    parallel.check_batch(config, placement.devices)
    print_fn = hosts.printer(print_fn)  # Process 0 prints for all.

    def load():
        if resume is None:
            runs.check_writable(config.out)
        return load_splits(config)
    splits = hosts.together(load)  # One process failing here (its data missing) stops all.
    train_images, train_labels = splits["train"]
    device = {name: data.to_device(*arrays) for name, arrays in splits.items()}
    steps_per_epoch = data.num_batches(len(train_labels), config.batch_size)
    # Identifies the training data, so that a resume on other data is refused.
    fingerprint = {"train_examples": len(train_labels),
                   "train_crc32": zlib.crc32(train_labels.tobytes(), zlib.crc32(train_images.tobytes()))}
    text = json.dumps(fingerprint)
    if hosts.largest(int(hosts.agree(text) != text)):
        raise ConfigError(f"the processes of this run loaded different training data (this one: {fingerprint}); "
                          "give every process the same --data-dir contents.")
    try:  # One-cycle limits depend on the number of steps, known once the data is.
        inits = [init_state(c, steps_per_epoch, None if resume else train_images) for c in configs]
    except ValueError as e:
        raise ConfigError(str(e)) from e
    states, lr_fns = [s for _, s, _ in inits], [f for _, _, f in inits]
    train_epoch, evaluate, predict = make_epoch_fns(
        config, config.loop, [c.label_smoothing for c in configs] if n > 1 else None, placement)
    labels = [f"{label}: " if label else "" for label in replicas.differences(configs)]

    # ------------------------------------------------------------------ run directories, fresh or restored state
    run_dirs = list(resume or [runs.create(c, table.markdown(), d) for c, d in zip(configs, run_dirs or [None] * n)])
    checkpoints = [Checkpoints(d, c) for d, c in zip(run_dirs, configs)] if config.checkpoint.save_every else None
    start_epoch, start_position, totals, histories = 0, 0, None, [[] for _ in configs]
    if resume is not None:
        try:
            if checkpoints is None or any(c.latest() is None for c in checkpoints):
                raise ConfigError(f"--resume {resume[0]}: the run holds no checkpoint to resume from.")
            metas = []
            for k, c in enumerate(checkpoints):
                states[k], meta = c.restore(c.latest(), states[k])
                metas.append(meta)
                if meta["data"] != fingerprint or meta["steps_per_epoch"] != steps_per_epoch:
                    raise ConfigError(f"--resume {run_dirs[k]}: the training data differs from the run's "
                                      f"({meta['data']}, now {fingerprint}); point --data-dir at the data the "
                                      "run began with.")
            if len({(m["epoch"], m["position"]) for m in metas}) > 1:
                raise ConfigError(f"--resume: the members' latest checkpoints are at different steps "
                                  f"({[(m['epoch'], m['position']) for m in metas]}); resume each on its own.")
        except Exception:
            for c in checkpoints or []:
                c.close()
            raise
        for d, c in zip(run_dirs, configs):
            runs.write_json(os.path.join(d, "config.json"), dataclasses.asdict(c))  # Allowed changes.
        start_epoch, start_position = metas[0]["epoch"], metas[0]["position"]
        sums = [{k: jnp.asarray(v, jnp.float32 if k == "loss_sum" else jnp.int32) for k, v in m["totals"].items()}
                for m in metas]
        totals = replicas.stack(sums) if n > 1 else sums[0]
        histories = [runs.read_metrics(d, start_epoch) for d in run_dirs]
    state = replicas.stack(states) if n > 1 else states[0]
    del states, inits
    resumable = checkpoints and (n == 1 or group_dir)  # Not: no saves, or a grid's points.
    resume_command = runs.resume_command(group_dir or run_dirs[0], config.experiment) if resumable else None
    print_fn(table.markdown())
    sizes = " / ".join(f"{len(labels_)} {name}" for name, (_, labels_) in splits.items())
    print_fn(f"{config.experiment}: {config.model} ({table.trainable_params:,} params), {config.data.name} {sizes}, "
             f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size}, "
             f"{placement.describe()}, '{config.loop}' loop"
             + (f", {n} replicas vmapped as one program" if n > 1 else "") + f" -> {', '.join(run_dirs)}"
             + (f"\nresumed at epoch {start_epoch + 1}, step {start_position}" if resume else "")
             + (f"\nresume with: {resume_command}" if resume_command else ""))

    def member(tree, k):
        return replicas.take(tree, k) if n > 1 else tree

    def save(epoch: int, position: int, totals, rows: list[dict] | None = None) -> None:
        for k, c in enumerate(checkpoints):
            meta = {"epoch": epoch, "position": position, "steps_per_epoch": steps_per_epoch,
                    "totals": {key: v.item() for key, v in jax.device_get(member(totals, k)).items()},
                    "data": fingerprint, "config": dataclasses.asdict(configs[k])}
            c.save(epoch * steps_per_epoch + position, member(state, k), meta, rows and rows[k])

    # ------------------------------------------------------------------ epoch loop
    events = [runs.EventWriter(d, purge_step=start_epoch + 1 if resume else None) for d in run_dirs]
    try:
        with Interrupts() as interrupts:
            def interrupted(where: str) -> Interrupted:
                return Interrupted(f"{signal.Signals(interrupts.stop_signal).name} {where}: {_saved(checkpoints)}",
                                   interrupts.stop_signal, resume_command)

            for epoch in range(start_epoch, config.epochs):
                start = time.perf_counter()
                # From state.rng, not a copy of the root key: the state's buffers are donated.
                key = _order_key(state.rng, epoch)
                state, totals, done = train_epoch(state, device["train"], key, epoch, start_position, totals,
                                                  interrupts.agreed, f"epoch {epoch + 1}/{config.epochs}")
                start_position = 0
                nonfinite = [int(x) for x in np.atleast_1d(jax.device_get(totals["nonfinite"]))]
                steps = np.atleast_1d(jax.device_get(state.step))  # Per replica: skipped steps differ.
                if max(nonfinite) and config.on_nan == "stop":
                    for c in checkpoints or []:
                        c.wait()
                    last = checkpoints and checkpoints[0].latest()
                    position = int(min(steps[k] for k, x in enumerate(nonfinite) if x)) - epoch * steps_per_epoch + 1
                    which = "".join(f" of {labels[k][:-2]}" for k, x in enumerate(nonfinite) if x and labels[k])
                    raise NonFiniteError(
                        f"non-finite loss or gradient{which} at epoch {epoch + 1}, step {position}/{steps_per_epoch}; "
                        f"nothing after the last good checkpoint was saved ("
                        + (f"{checkpoints[0].directory}/{last}" if last is not None else "none yet")
                        + "). Lower the learning rate, or pass --on-nan skip to skip such steps.")
                if done < steps_per_epoch:  # Interrupted inside the epoch: save where it stopped.
                    if checkpoints:
                        save(epoch, done, totals)
                    raise interrupted(f"at epoch {epoch + 1}, step {done}/{steps_per_epoch}")
                evals = {name: evaluate(state, device[name]) for name in ("val", "test") if name in device}
                seconds = time.perf_counter() - start
                rows = []
                for k in range(n):
                    row = _row(epoch, member(totals, k), {s: member(t, k) for s, t in evals.items()},
                               lr_fns[k](int(steps[k]) - 1), seconds)
                    if config.on_nan == "skip":
                        row["skipped"] = nonfinite[k]
                    rows.append(row)
                    histories[k].append(row)
                    runs.append_metrics(run_dirs[k], histories[k])
                    events[k].epoch(row)
                    print_fn(labels[k] + _line(row, config.epochs)
                             + (f"  skipped {nonfinite[k]} non-finite steps" if nonfinite[k] else ""))
                last_epoch, stop = epoch + 1 == config.epochs, interrupts.agreed()
                if checkpoints and (last_epoch or stop or (epoch + 1) % config.checkpoint.save_every == 0):
                    save(epoch + 1, 0, jax.tree.map(jnp.zeros_like, totals),
                         [{k: v for k, v in row.items() if k != "seconds"} for row in rows])
                totals = None
                if stop and not last_epoch:
                    raise interrupted(f"after epoch {epoch + 1}")
            # ---------------------------------------------------------- end of run (a signal now: finish anyway)
            bests = [runs.best_epoch(c, h) for c, h in zip(configs, histories)]
            for k, c in enumerate(checkpoints or []):
                c.wait()
                best_id = c.best()
                bests[k] = histories[k][c.meta(best_id)["epoch"] - 1] if best_id is not None else bests[k]
            signum = interrupts.stop_signal if interrupts.agreed() else None
    finally:
        for e in events:
            e.close()
        if checkpoints and not isinstance(sys.exc_info()[1], KeyboardInterrupt):  # An abort does not wait.
            for c in checkpoints:
                c.close()
    test_images, test_labels = splits["test"]
    for k, c in enumerate(configs):
        runs.write_plots(run_dirs[k], c, histories[k], test_images, test_labels,
                         predict(member(state, k), device["test"]))
        runs.write_results(run_dirs[k], c, table.trainable_params, histories[k], bests[k],
                           time.perf_counter() - started)
    hosts.sync("tinyjax: run written")  # Others may read what process 0 wrote (a --seeds summary, a table).
    if signum is not None and group_dir:  # Finished, but the seeds after this one must not start.
        raise Interrupted(f"{signal.Signals(signum).name} in the last epoch: finished {', '.join(run_dirs)}",
                          signum, resume_command)
    return state, histories, run_dirs


def _order_key(rng: jax.Array, epoch: int) -> jax.Array:
    """The key that shuffles ``epoch``: ``streams.key(rng, DATA_ORDER, epoch)``, per replica for stacked keys."""
    def one(r):
        return streams.key(r, streams.DATA_ORDER, epoch)
    return jax.vmap(one)(rng) if rng.ndim else one(rng)


def _row(epoch: int, totals, evals: dict, lr, seconds: float) -> dict:
    """An epoch's record: epoch, train_acc, [val_acc,] test_acc, train_loss, [val_loss,] test_loss, lr, seconds."""
    train_acc, train_loss = summarize(totals)
    summaries = {name: summarize(t) for name, t in evals.items()}
    row = {"epoch": epoch + 1, "train_acc": train_acc}
    row.update({f"{name}_acc": acc for name, (acc, _) in summaries.items()})
    row["train_loss"] = train_loss
    row.update({f"{name}_loss": loss for name, (_, loss) in summaries.items()})
    return {**row, "lr": float(lr), "seconds": seconds}


def _line(row: dict, epochs: int) -> str:
    """The printed line of an epoch's record."""
    return (f"epoch {row['epoch']:3d}/{epochs}  "
            + "  ".join(f"{k.replace('_', ' ')} {v:6.2f}%" for k, v in row.items() if k.endswith("_acc"))
            + "  " + "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in row.items() if k.endswith("_loss"))
            + f"  lr {row['lr']:.3e}  {row['seconds']:5.1f}s")


def _saved(checkpoints: list[Checkpoints] | None) -> str:
    """Waits for the last saves and says where they are."""
    if not checkpoints:
        return "nothing saved (--save-every 0)"
    for c in checkpoints:
        c.wait()
    return "saved " + ", ".join(f"{c.directory}/{c.latest()}" for c in checkpoints)
