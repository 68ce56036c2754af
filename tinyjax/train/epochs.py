"""Epoch drivers: one epoch of train or eval steps, all on the device.

``make_epoch_fns(config, loop)`` gives ``train_epoch``, ``evaluate`` and
``predict``. A train epoch can start at any batch (a resumed run skips the
batches already trained) and stop after any step (SIGINT, SIGTERM, a
non-finite step): the plan of the epoch depends only on (seed, epoch), so
the batches a run trains are the same whether or not it was interrupted.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from tinyjax import data, hosts, models, parallel
from tinyjax.config import Config
from tinyjax.data import augment
from tinyjax.train.steps import batch_metrics, eval_logits, train_step

BatchFn = Callable  # (carry, data, indices int32 [B], mask bool [B]) -> carry
SYNC_EVERY = 25  # Steps between host syncs of the step loop (progress bar, non-finite check).


def resolve_loop(loop: str) -> str:
    """``"auto"`` -> ``"step"`` on CPU, where XLA:CPU ran this kind of model
    about 2x faster per jitted step than as one scan (scripts/bench_loop.py),
    and ``"scan"`` on GPU/TPU, where per-step dispatch costs more than the
    small steps themselves."""
    if loop == "auto":
        return "step" if jax.default_backend() == "cpu" else "scan"
    return loop


def epoch_driver(batch_fn: BatchFn, loop: str, donate: bool, pmapped: bool = False) -> Callable:
    """Runs ``batch_fn`` over an epoch's ``[S, B]`` index plan, all on the device.

    ``loop="step"`` jits one batch and calls it from Python (the host only
    dispatches); ``loop="scan"`` jits the steps as one ``jax.lax.scan``. Both
    compile once per shape and give the same result. With ``donate`` the
    carry's buffers are donated to the update.

    Returns:
      ``run(carry, data, indices, mask, start=0, on_step=None) -> (carry, done)``
      that runs steps ``start .. S-1``. ``on_step(done, carry)`` is called after
      every step (``step``) or once at the end (``scan``, which compiles once
      more for a resumed epoch's shorter plan); when it returns True the epoch
      stops there. ``done`` is the number of steps of the epoch done.

    ``pmapped``: ``jax.pmap`` over ``parallel.AXIS`` instead of ``jax.jit``;
    every argument then has a leading device axis ``[D, ...]`` (the plan
    ``[D, S, B / D]``, see ``parallel.Placement``) and ``batch_fn`` sees one
    device's part.
    """
    donate_argnums = (0,) if donate else ()
    if pmapped:
        def compile_(fn, in_axes=0):
            return jax.pmap(fn, parallel.AXIS, in_axes=in_axes, donate_argnums=donate_argnums)
    else:
        def compile_(fn, in_axes=None):
            return jax.jit(fn, donate_argnums=donate_argnums)
    step_axis = 1 if pmapped else 0
    if loop == "scan":
        @compile_
        def scan_epoch(carry, device_data, indices, mask):
            def body(c, xs):
                return batch_fn(c, device_data, *xs), None
            return jax.lax.scan(body, carry, (indices, mask))[0]

        def run_scan(carry, device_data, indices, mask, start=0, on_step=None):
            steps = indices.shape[step_axis]
            rest = (slice(None),) * step_axis + (slice(start, None),)
            carry = scan_epoch(carry, device_data, indices[rest], mask[rest])
            if on_step is not None:
                on_step(steps, carry)
            return carry, steps
        return run_scan

    def one_batch(carry, device_data, indices, mask, i):
        return batch_fn(carry, device_data, indices[i], mask[i])
    one_batch = compile_(one_batch, in_axes=(0, 0, 0, 0, None))

    def run_steps(carry, device_data, indices, mask, start=0, on_step=None):
        for i in range(start, indices.shape[step_axis]):
            carry = one_batch(carry, device_data, indices, mask, i)
            if on_step is not None and on_step(i + 1, carry):
                return carry, i + 1
        return carry, indices.shape[step_axis]
    return run_steps


def zero_metrics(train: bool = False) -> dict[str, jax.Array]:
    """Zero sums: ``loss_sum`` (float32), ``correct`` and ``count`` (int32), and
    for training ``nonfinite`` (int32: steps with a non-finite loss, gradient or parameter)."""
    totals = {"loss_sum": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.int32),
              "count": jnp.zeros((), jnp.int32)}
    return {**totals, "nonfinite": jnp.zeros((), jnp.int32)} if train else totals


def summarize(totals: dict[str, jax.Array]) -> tuple[float, float]:
    """(accuracy in %, mean loss) from summed metrics (of all replicas together, when they have a replica axis)."""
    totals = jax.device_get(totals)
    count = max(int(np.sum(totals["count"])), 1)
    return 100.0 * float(np.sum(totals["correct"])) / count, float(np.sum(totals["loss_sum"])) / count


def make_epoch_fns(config: Config, loop: str, label_smoothing: Sequence[float] | None = None,
                   placement: parallel.Placement = parallel.Placement()) -> tuple[Callable, Callable, Callable]:
    """``(train_epoch, evaluate, predict)`` for a config.

    ``label_smoothing=None`` trains one model with ``config.label_smoothing``.
    A sequence of N values trains N replicas as one program, replica k with
    ``label_smoothing[k]`` (``tinyjax.train.replicas``): ``state`` and the
    metric sums then have a leading replica axis ``[N]``, every batch function
    is ``jax.vmap``-ped over it, and each replica shuffles by its own
    ``fold_in(state.rng[k], ...)`` key (``key`` is then ``[N]`` keys);
    ``predict`` stays per model (pass one replica's state).

    ``placement`` (``tinyjax.parallel``) splits every batch over devices:
    ``train_epoch`` and ``evaluate`` place the state, data and plans on the
    devices themselves (and return a ``pmap`` state as one copy); metric sums
    come back as sums over all devices; ``predict`` runs on one device.

    ``train_epoch(state, device_data, key, epoch=0, start=0, totals=None, should_stop=None,
    description="train") -> (state, totals, done)`` trains the (0-based) ``epoch``
    shuffled by ``key`` from batch ``start``, augmenting each batch on the
    device (``tinyjax.data.augment``, ``config.augment``), adding to ``totals`` (a resumed epoch's
    sums); it stops early after a step where ``should_stop()`` is true (asked
    after every step of the ``step`` loop, with several processes at host syncs
    only; at the end of a ``scan``) or, with
    ``--on-nan stop``, at a host sync (every ``SYNC_EVERY`` steps, and at the
    end) that finds a non-finite step. With ``--on-nan stop`` no step after the
    first non-finite one is applied; with ``skip`` only non-finite steps are
    not, and their metrics are left out of the sums. A tqdm progress bar (live
    loss and accuracy) shows when stderr is a terminal.
    ``evaluate(state, device_data) -> totals`` runs the split in order with
    running batch statistics (the weights' moving average with ``--ema``; logits
    averaged over ``--tta`` views); ``predict(state, device_data) -> int32 [N]`` (host)
    the predicted classes.
    """
    mean, std = data.NORMALIZATION[config.data.name]
    replicated = label_smoothing is not None
    # A new device array per call: the train carry is donated.
    smoothing = np.asarray(label_smoothing if replicated else config.label_smoothing, np.float32)
    stop_on_nan = config.on_nan == "stop"
    pmapped = placement.mode == "pmap"
    synced_apply = placement.synced(models.create(config.model, dtype=jnp.dtype(config.dtype))).apply

    def train_batch(carry, device_data, indices, mask):
        state, totals, epoch, smoothing = carry
        # On the device, per example, from (root key, step, epoch, example index); pixel / 255 when all is off.
        images = augment.augment(config.augment, state.rng, state.step, epoch, indices,
                                 device_data.images[indices], mean)
        batch = data.Batch(data.pipeline.standardize(images, mean, std), device_data.labels[indices], mask)
        new, metrics = train_step(state, batch, smoothing, config.ema, parallel.AXIS if pmapped else None)
        bad = metrics.pop("nonfinite")
        apply = (bad == 0) & ~(stop_on_nan & (totals["nonfinite"] > 0))

        def keep(new_value, old_value):
            return jax.tree.map(lambda n, o: jnp.where(apply, n, o), new_value, old_value)
        state = new.replace(step=keep(new.step, state.step), params=keep(new.params, state.params),
                            batch_stats=keep(new.batch_stats, state.batch_stats),
                            opt_state=keep(new.opt_state, state.opt_state), ema=keep(new.ema, state.ema))
        totals = {**{k: totals[k] + jnp.where(apply, v, jnp.zeros_like(v)) for k, v in metrics.items()},
                  "nonfinite": totals["nonfinite"] + bad}
        return state, totals, epoch, smoothing

    def logits(state, device_data, indices):  # Weighted average over the test-time augmentation views.
        images = device_data.images[indices].astype(jnp.float32) / 255.0
        return sum(weight * eval_logits(state, data.pipeline.standardize(view, mean, std))
                   for weight, view in data.pipeline.tta_views(images, config.tta))

    def eval_batch(carry, device_data, indices, mask):
        state, totals, smoothing = carry
        batch = data.Batch(None, device_data.labels[indices], mask)
        metrics = batch_metrics(logits(state, device_data, indices), batch, smoothing)
        return state, jax.tree.map(jnp.add, totals, metrics), smoothing

    plan = jax.jit(data.batch_plan, static_argnums=(1, 2))
    if replicated:  # Replica axis first in the carry; the epoch's plans step-major, [S, N, B].
        train_batch = jax.vmap(train_batch, in_axes=((0, 0, None, 0), None, 0, 0), out_axes=(0, 0, None, 0))
        eval_batch = jax.vmap(eval_batch, in_axes=((0, 0, 0), None, None, None))
        plans = jax.jit(jax.vmap(data.batch_plan, in_axes=(0, None, None)), static_argnums=(1, 2))

        def train_plan(key, n, batch_size):
            indices, mask = plans(key, n, batch_size)
            return jnp.swapaxes(indices, 0, 1), jnp.swapaxes(mask, 0, 1)
    else:
        train_plan = plan
    run_train = epoch_driver(train_batch, loop, donate=True, pmapped=pmapped)
    run_eval = epoch_driver(eval_batch, loop, donate=False, pmapped=pmapped)
    placed_data = {}  # id -> (data, its copy on the devices): placed once per split, not per epoch.

    def on_devices(device_data):
        if id(device_data) not in placed_data:
            placed_data[id(device_data)] = (device_data, placement.replicated(device_data))
        return placed_data[id(device_data)][1]

    def placed(carry, totals_at=1):
        """The carry on the devices; under pmap the sums start on device 0 (the others at 0)."""
        carry = placement.replicated(carry)
        if pmapped:
            device = placement.rows == 0
            totals = jax.tree.map(lambda t: jnp.where(device.reshape((-1,) + (1,) * (t.ndim - 1)), t, 0),
                                  carry[totals_at])
            carry = carry[:totals_at] + (totals,) + carry[totals_at + 1:]
        return carry

    def gathered_totals(totals):
        """Sums over devices (``pmap``: a leading device axis); ``nonfinite`` is the same on each device."""
        if not pmapped:
            return totals
        totals = placement.gathered(totals)
        return {k: (jnp.max if k == "nonfinite" else jnp.sum)(v, axis=0) for k, v in totals.items()}

    def zeros(train):
        totals = zero_metrics(train)
        return jax.tree.map(lambda x: jnp.zeros(smoothing.shape, x.dtype), totals) if replicated else totals

    def train_epoch(state, device_data, key, epoch=0, start=0, totals=None, should_stop=None,
                    description="train"):
        indices, mask = placement.batches(*train_plan(key, len(device_data.labels), config.batch_size))
        steps = indices.shape[1 if pmapped else 0]  # pmap's plan is [D, S, B / D].
        with tqdm.tqdm(total=steps, initial=start, desc=description, leave=False, unit="step",
                       disable=not sys.stderr.isatty() or not hosts.primary()) as bar:
            def on_step(done, carry):
                sync = done % SYNC_EVERY == 0 or done == steps
                # With several processes should_stop is a collective: at host syncs only.
                if should_stop is not None and (sync or placement.processes == 1) and should_stop():
                    return True
                if not sync:
                    return False
                if stop_on_nan and int(jnp.max(carry[1]["nonfinite"])):  # A host sync: not every step.
                    return True
                if not bar.disable:
                    bar.update(done - bar.n)
                    accuracy, loss = summarize(carry[1])
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.2f}%", refresh=False)
                return False
            apply_fn = state.apply_fn
            carry = placed((state.replace(apply_fn=synced_apply), zeros(True) if totals is None else totals,
                            jnp.asarray(epoch, jnp.int32), jnp.asarray(smoothing)))
            (state, totals, _, _), done = run_train(carry, on_devices(device_data), indices, mask, start, on_step)
        return placement.unreplicated(state).replace(apply_fn=apply_fn), gathered_totals(totals), done

    def evaluate(state, device_data):
        indices, mask = placement.batches(*plan(None, len(device_data.labels), config.eval_batch_size))
        carry = placed((state, zeros(False), jnp.asarray(smoothing)))
        return gathered_totals(run_eval(carry, on_devices(device_data), indices, mask)[0][1])

    @jax.jit
    def predict_batch(state, device_data, indices):
        return jnp.argmax(logits(state, device_data, indices), -1).astype(jnp.int32)

    def predict(state, device_data):
        n = len(device_data.labels)
        indices, mask = plan(None, n, config.eval_batch_size)
        batches = [predict_batch(state, device_data, indices[i]) for i in range(len(indices))]
        return np.asarray(jnp.concatenate(batches))[:n]

    return train_epoch, evaluate, predict
