"""A run in four named stages: ``prepare``, ``restore`` (or a fresh start),
``train_epochs``, ``finish``; ``train_and_evaluate(config)`` runs them.

    run, states = prepare(configs, ...)        # configs, data on the devices, model, state, run directories
    position = restore(run, states, resume)    # or Position.fresh(run, states); then announce(run, position)
    state, histories, bests, signal = train_epochs(run, position)   # train, evaluate, record, save, stop
    finish(run, state, histories, bests)       # results.json and plots

One model or N replicas: N members (``tinyjax.train.replicas``) are a leading
axis of the train state and a ``jax.vmap`` inside the epoch functions; the
stages only meet it where each member has its own record (``run.member``):
metrics, checkpoints, results. Devices are the epoch functions' placement
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
from tinyjax.train.faults import Interrupted, Interrupts, NonFiniteError
from tinyjax.train.prepare import Position, Run, announce, prepare, restore, with_inputs
from tinyjax.train.profile import StepTrace, traced
from tinyjax.train import replicas, stopping
from tinyjax.train import flops
from tinyjax.train.records import epoch_line, epoch_record, ranked
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
                  group_dir: str | None = None, until: int | None = None,
                  end: bool = True, model=None, dataset: Dataset | None = None) -> Trained:
    """Trains N >= 1 validated configs that differ only in ``replicas.REPLICA_FIELDS`` as one program
    (N > 1: a stacked train state, vmapped steps), each member in its own run directory, written
    as ``train_and_evaluate`` writes one: ``run_dirs`` (created; default
    ``<out>/<experiment>-<variant>-<timestamp>``), or the directories in ``resume``, continued from
    their latest checkpoints (all at the same step). Each epoch line is printed per member,
    labelled with what differs. An interrupted run of several members is resumed as
    ``group_dir`` (a ``--seeds`` run); without one there is no resume command. Inside a
    ``group_dir``, a signal during the last epoch still finishes the members, then raises
    ``Interrupted`` so that no further seed starts.

    ``until`` (epochs, 1-based) pauses the members after that epoch, saved there, instead of
    training to ``config.epochs``; ``end=False`` leaves them unfinished (no ``results.json`` or
    plots), to be continued by another call with ``resume``; a paused run resumed with the same
    ``until`` trains nothing and, with ``end``, is finished where it paused (successive halving,
    ``tinyjax.train.halving``, pauses every point at a rung and finishes the pruned ones there). A
    signal in a pause's last epoch saves, then raises ``Interrupted``; ``--early-stop``'s best weights
    are restored only at the end.

    ``model`` and ``dataset``: objects passed in (``train_and_evaluate``).

    Returns:
      ``Trained(state, histories, run_dirs)``.

    Raises:
      as ``train_and_evaluate``; ConfigError too for configs that cannot share a program.
    """
    started = time.perf_counter()
    run, states = prepare(configs, print_fn, resume=resume, run_dirs=run_dirs, group_dir=group_dir, model=model,
                          dataset=dataset)
    position = restore(run, states, resume) if resume is not None else Position.fresh(run, states)
    del states
    announce(run, position)
    state, histories, bests, signum = train_epochs(run, position, until)
    if end:
        finish(run, state, histories, bests, started)
    if signum is not None and (group_dir or not end):  # Finished or paused: what comes after must not start.
        raise Interrupted(f"{signal.Signals(signum).name} in the last epoch: {'finished' if end else 'paused'} "
                          f"{', '.join(run.run_dirs)}", signum, run.resume_command)
    return Trained(state, histories, run.run_dirs)


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
                    active=stops.active if run.n > 1 else None, hook=hook)
                state, trained, start_step = stops.hold(state), done - start_step, 0  # Stopped members keep their weights.
                nonfinite = [int(x) * active for x, active in
                             zip(np.atleast_1d(jax.device_get(totals["nonfinite"])), stops.active)]
                train_seconds = time.perf_counter() - started  # The sums are in: the steps are done.
                steps = np.atleast_1d(jax.device_get(state.step))  # Per member: skipped steps differ.
                if max(nonfinite) and config.on_nan == "stop":
                    raise _nonfinite(run, epoch, steps, nonfinite)
                if done < run.steps_per_epoch:  # Interrupted inside the epoch: save where it stopped.
                    if checkpoints:
                        run.save(state, epoch, done, totals)
                    raise interrupted(f"at epoch {epoch + 1}, step {done}/{run.steps_per_epoch}")
                evals = {name: run.evaluate(state, run.device[name]) for name in ("val", "test") if name in run.device}
                compute = {"train_seconds": train_seconds,
                           **flops.rates(run.flops, trained, train_seconds, run.peak[0], run.placement.devices)}
                rows = _record(run, epoch, state, totals, evals, steps, nonfinite, histories, events,
                               time.perf_counter() - started, stops.active, compute)
                improved = _early_stops(run, stops, epoch, histories, state)
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
            bests = [runs.best_epoch(c, h) for c, h in zip(run.configs, histories)]
            for k, c in enumerate(checkpoints or []):
                c.wait()
                best_id = c.best()
                bests[k] = histories[k][c.meta(best_id)["epoch"] - 1] if best_id is not None else bests[k]
            if stops.on and stop_at == config.epochs:  # Keras's restore_best_weights, at the end (not a pause).
                state = _restore_best(run, state, bests)
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


def _record(run: Run, epoch: int, state, totals, evals: dict, steps, nonfinite: list[int],
            histories: list[list[dict]], events: list, seconds: float, active: list[bool],
            compute: dict) -> list[dict | None]:
    """Each active member's epoch record: appended to its history, ``metrics.jsonl`` and
    TensorBoard, printed; None for a member that stopped early. ``compute``: the epoch's training
    seconds and FLOP/s, the program's (all members together)."""
    rows = []
    for k in range(run.n):
        if not active[k]:
            rows.append(None)
            continue
        row = epoch_record(epoch, run.member(totals, k), {s: run.member(t, k) for s, t in evals.items()},
                           run.lr_fns[k](int(steps[k]) - 1), seconds, compute)
        if run.config.on_nan == "skip":
            row["skipped"] = nonfinite[k]
        rows.append(row)
        histories[k].append(row)
        runs.append_metrics(run.run_dirs[k], histories[k])
        events[k].epoch(row)
        run.print_fn(run.labels[k] + epoch_line(row, run.config.epochs)
                     + (f"  skipped {nonfinite[k]} non-finite steps" if nonfinite[k] else ""))
    return rows


def _early_stops(run: Run, stops: stopping.Stops, epoch: int, histories: list[list[dict]], state) -> list[bool]:
    """``--early-stop``'s decisions after ``epoch`` (``stopping.Stops.after_epoch``), the stops
    printed; returns which members improved (all members without ``--early-stop``)."""
    if not stops.on:
        return [True] * run.n
    improved, newly = stops.after_epoch(epoch, histories, state)
    for k in newly:
        c, best = run.configs[k], stopping.decide(run.configs[k], histories[k])
        run.print_fn(f"{run.labels[k]}stopped early after epoch {epoch + 1}: {best_metric(c)} did not improve "
                     f"by more than {c.early_stop_min_delta:g} in {c.early_stop} epochs (best {best.best:.4f} "
                     f"at epoch {best.best_epoch})")
    return improved


def _restore_best(run: Run, state, bests: list[dict]):
    """Each member's best checkpoint's train state, stacked like ``state``, announced."""
    members = []
    for k, c in enumerate(run.checkpoints):
        members.append(c.restore(c.best(), run.member(state, k))[0])
        run.print_fn(f"{run.labels[k]}restored the best checkpoint, epoch {bests[k]['epoch']} "
                     f"({best_metric(run.configs[k])} {bests[k][best_metric(run.configs[k])]:.4f}), "
                     "for the final evaluation")
    return replicas.stack(members) if run.n > 1 else members[0]


def _nonfinite(run: Run, epoch: int, steps, nonfinite: list[int]) -> NonFiniteError:
    """The error of a non-finite step with ``--on-nan stop``: where, and the last good checkpoint."""
    for c in run.checkpoints or []:
        c.wait()
    last = run.checkpoints and run.checkpoints[0].latest()
    position = int(min(steps[k] for k, x in enumerate(nonfinite) if x)) - epoch * run.steps_per_epoch + 1
    which = "".join(f" of {run.labels[k][:-2]}" for k, x in enumerate(nonfinite) if x and run.labels[k])
    return NonFiniteError(
        f"non-finite loss or gradient{which} at epoch {epoch + 1}, step {position}/{run.steps_per_epoch}; "
        "nothing after the last good checkpoint was saved ("
        + (f"{run.checkpoints[0].directory}/{last}" if last is not None else "none yet")
        + "). Lower the learning rate, or pass --on-nan skip to skip such steps.")


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
