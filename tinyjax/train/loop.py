"""``train_and_evaluate(config)``: input, model and optimizer, state (fresh or
restored), the epoch loop with its checkpoints, and the end of the run."""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
import signal
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import data, models, runs, streams
from tinyjax.checkpoint import Checkpoints
from tinyjax.config import Config, ConfigError, validate
from tinyjax.summary import layer_table
from tinyjax.train.epochs import make_epoch_fns, resolve_loop, summarize
from tinyjax.train.faults import Interrupted, Interrupts, NonFiniteError
from tinyjax.train.state import TrainState, init_state


def load_splits(config: Config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The host arrays of ``train``, ``test`` and, with ``--val-split N``, ``val``
    (N train images held out, the same subset for every seed). ``--train-limit N``
    first keeps a fixed subset of N train images (the same for every seed, in
    stored order).

    Raises:
      ConfigError: ``--val-split`` or ``--batch-size`` does not fit the train split.
      DatasetNotFoundError, DataError: data that cannot be loaded.
    """
    images, labels = data.load(config.data.name, "train", config.data.data_dir)
    limit = config.data.train_limit
    if limit is not None and limit < len(labels):  # Not the first N: ImageFolder sources are sorted by class.
        key = jax.random.fold_in(jax.random.key(0), streams.SUBSET)
        keep = data.pipeline.subset(key, len(labels), limit)
        images, labels = images[keep], labels[keep]
    test = data.load(config.data.name, "test", config.data.data_dir)
    n, val = config.data.val_split, None
    if n:
        if n >= len(labels):
            raise ConfigError(f"--val-split {n} leaves no training images (the train split has {len(labels)}); "
                              "choose a smaller --val-split.")
        key = jax.random.fold_in(jax.random.key(0), streams.VALIDATION)
        (images, labels), val = data.pipeline.hold_out(images, labels, n, key)
    if config.batch_size > len(labels):
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the training set ({len(labels)} images "
                          "after --train-limit and --val-split); choose --batch-size <= that.")
    return {"train": (images, labels), **({"val": val} if n else {}), "test": test}


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
    started = time.perf_counter()
    # ------------------------------------------------------------------ config, input, model, optimizer
    validate(config)
    table = layer_table(models.create(config.model), data.IMAGE_SHAPES[config.data.name])  # Shapes only.
    config = dataclasses.replace(config, loop=resolve_loop(config.loop))
    if resume is None:
        runs.check_writable(config.out)
    splits = load_splits(config)
    train_images, train_labels = splits["train"]
    device = {name: data.to_device(*arrays) for name, arrays in splits.items()}
    steps_per_epoch = data.num_batches(len(train_labels), config.batch_size)
    # Identifies the training data, so that a resume on other data is refused.
    fingerprint = {"train_examples": len(train_labels),
                   "train_crc32": zlib.crc32(train_labels.tobytes(), zlib.crc32(train_images.tobytes()))}
    try:  # One-cycle limits depend on the number of steps, known once the data is.
        _, state, lr_fn = init_state(config, steps_per_epoch, None if resume else train_images)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    train_epoch, evaluate, predict = make_epoch_fns(config, config.loop)

    # ------------------------------------------------------------------ run directory, fresh or restored state
    run_dir = resume or runs.create(config, table.markdown())
    checkpoints = Checkpoints(run_dir, config) if config.checkpoint.save_every else None
    start_epoch, start_position, totals, history = 0, 0, None, []
    if resume is not None:
        try:
            if checkpoints is None or checkpoints.latest() is None:
                raise ConfigError(f"--resume {run_dir}: the run holds no checkpoint to resume from.")
            state, meta = checkpoints.restore(checkpoints.latest(), state)
            if meta.get("data", fingerprint) != fingerprint or meta["steps_per_epoch"] != steps_per_epoch:
                raise ConfigError(f"--resume {run_dir}: the training data differs from the run's ({meta.get('data')}, "
                                  f"now {fingerprint}); point --data-dir at the data the run began with.")
        except Exception:
            if checkpoints:
                checkpoints.close()
            raise
        runs.write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))  # Allowed changes.
        start_epoch, start_position = meta["epoch"], meta["position"]
        totals = {k: jnp.asarray(v, jnp.float32 if k == "loss_sum" else jnp.int32) for k, v in meta["totals"].items()}
        history = runs.read_metrics(run_dir, start_epoch)
    resume_command = runs.resume_command(run_dir, config.experiment) if checkpoints else None  # None: no saves.
    print_fn(table.markdown())
    sizes = " / ".join(f"{len(labels)} {name}" for name, (_, labels) in splits.items())
    print_fn(f"{config.experiment}: {config.model} ({table.trainable_params:,} params), {config.data.name} {sizes}, "
             f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size}, "
             f"{jax.default_backend()} '{config.loop}' loop -> {run_dir}"
             + (f"\nresumed at epoch {start_epoch + 1}, step {start_position}" if resume else "")
             + (f"\nresume with: {resume_command}" if resume_command else ""))

    def save(epoch: int, position: int, totals, metrics: dict | None = None) -> None:
        meta = {"epoch": epoch, "position": position, "steps_per_epoch": steps_per_epoch,
                "totals": {k: v.item() for k, v in jax.device_get(totals).items()},
                "data": fingerprint, "config": dataclasses.asdict(config)}
        checkpoints.save(epoch * steps_per_epoch + position, state, meta, metrics)

    # ------------------------------------------------------------------ epoch loop
    events = runs.EventWriter(run_dir, purge_step=start_epoch + 1 if resume else None)
    try:
        with Interrupts() as interrupts:
            def interrupted(where: str) -> Interrupted:
                return Interrupted(f"{signal.Signals(interrupts.signal).name} {where}: {_saved(checkpoints)}",
                                   interrupts.signal, resume_command)

            for epoch in range(start_epoch, config.epochs):
                start = time.perf_counter()
                # From state.rng, not a copy of the root key: the state's buffers are donated.
                key = jax.random.fold_in(jax.random.fold_in(state.rng, streams.DATA_ORDER), epoch)
                state, totals, done = train_epoch(state, device["train"], key, epoch, start_position, totals,
                                                  interrupts.requested, f"epoch {epoch + 1}/{config.epochs}")
                start_position, nonfinite = 0, int(totals["nonfinite"])
                if nonfinite and config.on_nan == "stop":
                    if checkpoints:
                        checkpoints.wait()
                    last = checkpoints and checkpoints.latest()
                    position = int(state.step) - epoch * steps_per_epoch + 1
                    raise NonFiniteError(
                        f"non-finite loss or gradient at epoch {epoch + 1}, step {position}/{steps_per_epoch}; "
                        f"nothing after the last good checkpoint was saved ("
                        + (f"{checkpoints.directory}/{last}" if last is not None else "none yet")
                        + "). Lower the learning rate, or pass --on-nan skip to skip such steps.")
                if done < steps_per_epoch:  # Interrupted inside the epoch: save where it stopped.
                    if checkpoints:
                        save(epoch, done, totals)
                    raise interrupted(f"at epoch {epoch + 1}, step {done}/{steps_per_epoch}")
                train_acc, train_loss = summarize(totals)
                row = {"epoch": epoch + 1, "train_acc": train_acc}
                evals = {name: summarize(evaluate(state, device[name])) for name in ("val", "test") if name in device}
                row.update({f"{name}_acc": acc for name, (acc, _) in evals.items()})
                row["train_loss"] = train_loss
                row.update({f"{name}_loss": loss for name, (_, loss) in evals.items()})
                row.update(lr=float(lr_fn(int(state.step) - 1)), seconds=time.perf_counter() - start)
                if config.on_nan == "skip":
                    row["skipped"] = nonfinite
                history.append(row)
                runs.append_metrics(run_dir, history)
                events.epoch(row)
                print_fn(f"epoch {row['epoch']:3d}/{config.epochs}  "
                         + "  ".join(f"{k.replace('_', ' ')} {v:6.2f}%" for k, v in row.items() if k.endswith("_acc"))
                         + "  " + "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in row.items()
                                            if k.endswith("_loss"))
                         + f"  lr {row['lr']:.3e}  {row['seconds']:5.1f}s"
                         + (f"  skipped {nonfinite} non-finite steps" if nonfinite else ""))
                last_epoch = epoch + 1 == config.epochs
                if checkpoints and (last_epoch or interrupts.requested()
                                    or (epoch + 1) % config.checkpoint.save_every == 0):
                    save(epoch + 1, 0, jax.tree.map(jnp.zeros_like, totals),
                         {k: v for k, v in row.items() if k != "seconds"})
                totals = None
                if interrupts.requested() and not last_epoch:
                    raise interrupted(f"after epoch {epoch + 1}")
            # ---------------------------------------------------------- end of run (a signal now: finish anyway)
            best = runs.best_epoch(config, history)
            if checkpoints:
                checkpoints.wait()
                best_id = checkpoints.best()
                best = history[checkpoints.meta(best_id)["epoch"] - 1] if best_id is not None else best
    finally:
        events.close()
        if checkpoints and not isinstance(sys.exc_info()[1], KeyboardInterrupt):  # An abort does not wait.
            checkpoints.close()
    test_images, test_labels = splits["test"]
    runs.write_plots(run_dir, config, history, test_images, test_labels, predict(state, device["test"]))
    runs.write_results(run_dir, config, table.trainable_params, history, best, time.perf_counter() - started)
    return state, history, run_dir


def _saved(checkpoints: Checkpoints | None) -> str:
    """Waits for the last save and says where it is."""
    if not checkpoints:
        return "nothing saved (--save-every 0)"
    checkpoints.wait()
    return f"saved {checkpoints.directory}/{checkpoints.latest()}"
