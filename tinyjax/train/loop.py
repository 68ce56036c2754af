"""A run in four named stages: ``prepare``, ``restore`` (or a fresh start),
``train_epochs``, ``finish``; ``train_and_evaluate(config)`` runs them.

    run, states = prepare(configs, ...)        # configs, data on the devices, model, state, run directories
    position = restore(run, states, resume)    # or Position.fresh(run, states); then announce(run, position)
    state, histories, bests, signal = train_epochs(run, position)   # train, evaluate, record, save, stop
    finish(run, state, histories, bests)       # results.json and plots

``train_members`` runs all four; ``pause_members`` stops after a given epoch, saved and
unfinished, and ``finish_paused`` finishes paused members where they stand (successive halving).
The helpers of an epoch's end live beside what they serve: ``records.record_epoch`` and
``records.best_records``, ``stopping.early_stops`` and ``stopping.restore_best``,
``faults.nonfinite_error``.

One model or N replicas: ``run.members`` (``tinyjax.train.replicas.Members``)
is the one object that knows N (a leading axis of the train state and a
``jax.vmap`` inside the epoch functions when N > 1); the stages only meet it
where each member has its own record (``run.member``): metrics, checkpoints,
results. Devices are the epoch functions' placement
(``tinyjax.distributed.parallel``).
"""

from __future__ import annotations

import functools
import signal
import sys
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import runs
from tinyjax.config import Config, ConfigError, best_metric
from tinyjax.data.dataset import Dataset
from tinyjax.distributed import hosts
from tinyjax.runs.inference import predict
from tinyjax.train.faults import Interrupted, Interrupts, nonfinite_error
from tinyjax.train.prepare import Position, Run, announce, prepare, restore, with_inputs
from tinyjax.train.profile import StepTrace, traced
from tinyjax.train import flops, stopping
from tinyjax.train.records import best_records, ranked, record_epoch
from tinyjax.train.state import TrainState
from tinyjax.validation import validate

PRINT = functools.partial(print, flush=True)


def train_and_evaluate(config: Config, print_fn: Callable[[str], None] = PRINT,
                       resume: str | None = None, *, model=None,
                       data: Dataset | None = None) -> tuple[TrainState, list[dict], str]:
    """Trains ``config`` end to end in a new run directory, or continues the run
    in ``resume`` from its latest checkpoint, bit-identically.

    ``model``: your own model instead of ``config.model``: a ``flax.linen.Module``, an
    ``nnx.Module``, or a class or function returning one (``tinyjax.models.door.resolve``; the
    contract is in ``docs/your-model-and-data.md``). ``data``: your own data
    (``tinyjax.data.from_arrays``) instead of ``config.data.name``. A resumed run needs the same
    ``data`` (and a model that cannot be imported again) passed again.

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
    config = with_inputs(config, model, data)
    validate(config, model, data)
    state, histories, run_dirs = train_members([config], print_fn, resume=None if resume is None else [resume],
                                               model=model, dataset=data)
    return state, histories[0], run_dirs[0]


class Trained(NamedTuple):
    """What ``train_members`` returns (unpacks as ``state, histories, run_dirs``): the final state
    (stacked when N > 1), each member's history and run directory."""

    state: TrainState
    histories: list[list[dict]]
    run_dirs: list[str]


def train_members(configs: Sequence[Config], print_fn: Callable[[str], None] = PRINT, *,
                  resume: Sequence[str] | None = None, run_dirs: Sequence[str] | None = None,
                  group_dir: str | None = None, model=None, dataset: Dataset | None = None) -> Trained:
    """Trains N >= 1 validated configs that differ only in ``replicas.REPLICA_FIELDS`` as one program
    (N > 1: a stacked train state, vmapped steps) to their last epoch and finishes them, each member
    in its own run directory, written as ``train_and_evaluate`` writes one: ``run_dirs`` (created;
    default ``<out>/<experiment>-<variant>-<timestamp>``), or the directories in ``resume``,
    continued from their latest checkpoints (all at the same step). Each epoch line is printed per
    member, labelled with what differs. An interrupted run of several members is resumed as
    ``group_dir`` (a ``--seeds`` run, a halving search); without one there is no resume command.
    Inside a ``group_dir``, a signal during the last epoch still finishes the members, then raises
    ``Interrupted`` so that no further member starts. ``model`` and ``dataset``: objects passed in
    (``train_and_evaluate``). ``pause_members`` and ``finish_paused`` are the same stages stopped
    after an epoch, and finished where they stopped.

    Returns:
      ``Trained(state, histories, run_dirs)``.

    Raises:
      as ``train_and_evaluate``; ConfigError too for configs that cannot share a program.
    """
    started = time.perf_counter()
    run, position = _start(configs, print_fn, resume, run_dirs, group_dir, model, dataset)
    state, histories, bests, signum = train_epochs(run, position)
    finish(run, state, histories, bests, started)
    if signum is not None and group_dir:  # Finished: what comes after must not start.
        raise Interrupted(f"{signal.Signals(signum).name} in the last epoch: finished {', '.join(run.run_dirs)}",
                          signum, run.resume_command)
    return Trained(state, histories, run.run_dirs)


def pause_members(configs: Sequence[Config], epoch: int, print_fn: Callable[[str], None] = PRINT, *,
                  resume: Sequence[str] | None = None, run_dirs: Sequence[str] | None = None,
                  group_dir: str | None = None, model=None, dataset: Dataset | None = None) -> Trained:
    """``train_members``' stages up to the end of (1-based) ``epoch``: the members are saved there
    and left unfinished (no ``results.json`` or plots), to be continued by ``train_members`` or
    ``pause_members`` with ``resume``, or finished there by ``finish_paused`` (successive halving,
    ``tinyjax.train.halving``, pauses every point at a rung). A paused run paused again at the same
    epoch trains nothing. A signal in the pause's last epoch saves, then raises ``Interrupted``;
    ``--early-stop``'s best weights are restored only at the end of a run.

    Returns:
      ``Trained(state, histories, run_dirs)`` where they paused.

    Raises:
      as ``train_members``.
    """
    run, position = _start(configs, print_fn, resume, run_dirs, group_dir, model, dataset)
    state, histories, _, signum = train_epochs(run, position, until=epoch)
    if signum is not None:
        raise Interrupted(f"{signal.Signals(signum).name} in the last epoch: paused {', '.join(run.run_dirs)}",
                          signum, run.resume_command)
    return Trained(state, histories, run.run_dirs)


def finish_paused(configs: Sequence[Config], run_dirs: Sequence[str], print_fn: Callable[[str], None] = PRINT, *,
                  group_dir: str | None = None, model=None, dataset: Dataset | None = None) -> None:
    """Finishes paused members (``pause_members``) where they stand, as ``train_members`` finishes
    a run (plots, ``results.json``; best epochs from their checkpoints); nothing trains.

    Raises:
      as ``train_members``.
    """
    started = time.perf_counter()
    run, position = _start(configs, print_fn, run_dirs, None, group_dir, model, dataset)
    try:
        bests = best_records(run, position.histories)
    finally:
        for c in run.checkpoints or []:
            c.close()
    finish(run, position.state, position.histories, bests, started)


def _start(configs, print_fn, resume, run_dirs, group_dir, model, dataset) -> tuple[Run, Position]:
    """The stages before the epoch loop: ``prepare``, ``restore`` (or a fresh start), ``announce``."""
    run, states = prepare(configs, print_fn, resume=resume, run_dirs=run_dirs, group_dir=group_dir, model=model,
                          dataset=dataset)
    position = restore(run, states, resume) if resume is not None else Position.fresh(run, states)
    del states
    announce(run, position)
    return run, position


def train_epochs(run: Run, position: Position,
                 until: int | None = None) -> tuple[TrainState, list[list[dict]], list[dict], int | None]:
    """The epoch loop, from ``position`` to ``config.epochs`` (or ``until``, saved there): train,
    evaluate, record, save; a signal saves and raises ``Interrupted`` (except in the last epoch),
    a non-finite step raises ``NonFiniteError``. Returns ``(state, histories, bests, signal)``: each member's best epoch
    record (the best checkpoint's when saving) and the signal received in the last epoch or None."""
    config, checkpoints = run.config, run.checkpoints
    state, totals, histories = position.state, position.totals, position.histories
    events = [runs.EventWriter(d, purge_step=position.epoch + 1 if run.resumed else None) for d in run.run_dirs]
    trace = StepTrace.create(config, run.run_dirs[0], config.epochs * run.steps_per_epoch, run.print_fn)
    if trace:
        trace.skipped(position.epoch * run.steps_per_epoch + position.step)
    try:
        with Interrupts() as interrupts:
            def interrupted(where: str) -> Interrupted:
                return Interrupted(f"{signal.Signals(interrupts.stop_signal).name} {where}: {run.saved()}",
                                   interrupts.stop_signal, run.resume_command)

            start_step, stops = position.step, stopping.Stops.start(run.configs, histories, state)
            stop_at = config.epochs if until is None else min(until, config.epochs)
            for epoch in range(position.epoch, stop_at):
                if all(stops.stopped):  # Resumed after every member had stopped early.
                    break
                started = time.perf_counter()
                # From state.rng, not a copy of the root key: the state's buffers are donated.
                hook = traced(trace, epoch, run.steps_per_epoch, config.loop) if trace else None
                state, totals, done = run.train_epoch(
                    state, run.device["train"], run.order_key(state.rng, epoch), epoch=epoch, start=start_step,
                    totals=totals, should_stop=interrupts.agreed, description=f"epoch {epoch + 1}/{config.epochs}",
                    active=run.members.active(stops.active), hook=hook)
                state, trained, start_step = stops.hold(state), done - start_step, 0  # Stopped members keep their weights.
                nonfinite = [int(x) * active for x, active in
                             zip(np.atleast_1d(jax.device_get(totals["nonfinite"])), stops.active)]
                train_seconds = time.perf_counter() - started  # The sums are in: the steps are done.
                steps = np.atleast_1d(jax.device_get(state.step))  # Per member: skipped steps differ.
                if max(nonfinite) and config.on_nan == "stop":
                    raise nonfinite_error(run, epoch, steps, nonfinite)
                if done < run.steps_per_epoch:  # Interrupted inside the epoch: save where it stopped.
                    if checkpoints:
                        run.save(state, epoch, done, totals)
                    raise interrupted(f"at epoch {epoch + 1}, step {done}/{run.steps_per_epoch}")
                evals = {name: run.evaluate(state, run.device[name]) for name in ("val", "test") if name in run.device}
                compute = {"train_seconds": train_seconds,
                           **flops.rates(run.flops, trained, train_seconds, run.peak[0], run.placement.devices)}
                rows = record_epoch(run, epoch, state, totals, evals, steps, nonfinite, histories, events,
                               time.perf_counter() - started, stops.active, compute)
                improved = stopping.early_stops(run, stops, epoch, histories, state)
                last_epoch, stop = epoch + 1 == stop_at or all(stops.stopped), interrupts.agreed()
                if checkpoints and (last_epoch or stop or (epoch + 1) % config.checkpoint.save_every == 0
                                    or stops.on and any(improved)):  # --early-stop restores the best: save it.
                    run.save(state, epoch + 1, 0, jax.tree.map(jnp.zeros_like, totals),
                             [ranked(row, improved[k], best_metric(run.configs[k])) for k, row in enumerate(rows)])
                totals = None
                if stop and not last_epoch:
                    raise interrupted(f"after epoch {epoch + 1}")
                if last_epoch:
                    break
            if trace:
                trace.close()
            # A signal from here on: finish anyway.
            bests = best_records(run, histories)
            if stops.on and stop_at == config.epochs:  # Keras's restore_best_weights, at the end (not a pause).
                state = stopping.restore_best(run, state, bests)
            signum = interrupts.stop_signal if interrupts.agreed() else None
    finally:
        for e in events:
            e.close()
        if checkpoints and not isinstance(sys.exc_info()[1], KeyboardInterrupt):  # An abort does not wait.
            for c in checkpoints:
                c.close()
        if trace:  # Last: it only observes (and warns instead of raising).
            trace.close()
    return state, histories, bests, signum


def finish(run: Run, state, histories: list[list[dict]], bests: list[dict], started: float) -> None:
    """The end of a run: each member's plots (with the test predictions) and ``results.json`` (its
    wall time from ``started``, a ``time.perf_counter()``)."""
    test_images, test_labels = run.splits["test"]
    for k, c in enumerate(run.configs):
        variables = run.member(state, k).eval_variables()
        probabilities = predict(run.model, variables, test_images, run.info, c.eval_batch_size, c.tta)
        runs.write_plots(run.run_dirs[k], c, histories[k], test_images, test_labels,
                         probabilities.argmax(-1).astype(np.int32), run.info.class_names)
        runs.write_results(run.run_dirs[k], c, run.table.trainable_params, histories[k], bests[k],
                           time.perf_counter() - started,
                           flops.results(run.flops, run.n * c.batch_size, histories[k], run.peak, run.placement.devices),
                           # Early stopping's decision, replayed: a stop at the last epoch counts.
                           stopping.decide(c, histories[k]).stopped_epoch if c.early_stop else None)
    hosts.sync("tinyjax: run written")  # Others may read what process 0 wrote (a --seeds summary, a table).
