"""Epoch drivers: one epoch of train or eval steps, all on the device.

``make_epoch_fns(config, loop)`` gives ``train_epoch`` and ``evaluate``,
built in three layers that each do one thing:

1. the batch functions (``train_batch``, ``eval_batch``): one batch of one
   model, pure, their loop state a named carry (``TrainCarry``, ``EvalCarry``);
2. the transforms: ``jax.vmap`` over a leading member axis for N > 1 members
   (``tinyjax.train.replicas.Members``), and ``placement.compile`` (``jax.jit``, or
   ``jax.pmap`` over the device axis; ``tinyjax.distributed.parallel``) for the devices;
3. the driver (``epoch_driver``): the epoch's batches as jitted steps called
   from Python, or as one ``lax.scan``.

A train epoch can start at any batch (a resumed run skips the batches
already trained) and stop after any step (SIGINT, SIGTERM, a non-finite
step): the plan of the epoch depends only on (seed, epoch), so the batches a
run trains are the same whether or not it was interrupted.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from tinyjax import data
from tinyjax.config import Config
from tinyjax.data import augment
from tinyjax.distributed import parallel
from tinyjax.runs.inference import view_logits
from tinyjax.train.carry import EvalCarry, TrainCarry
from tinyjax.train.progress import Progress
from tinyjax.train.replicas import Members
from tinyjax.train.steps import batch_metrics, train_step

BatchFn = Callable  # (carry, data, indices int32 [B], mask bool [B]) -> carry


def resolve_loop(loop: str) -> str:
    """``"auto"`` -> ``"step"`` on CPU, where XLA:CPU ran this kind of model
    faster per jitted step than as one scan (``scripts/bench_loop.py``), and
    ``"scan"`` on GPU/TPU, where per-step dispatch costs more than the small
    steps themselves."""
    if loop == "auto":
        return "step" if jax.default_backend() == "cpu" else "scan"
    return loop


def epoch_driver(batch_fn: BatchFn, loop: str, donate: bool,
                 placement: parallel.Placement = parallel.Placement()) -> Callable:
    """Runs ``batch_fn`` over an epoch's ``[S, B]`` index plan, all on the device.

    ``loop="step"`` compiles one batch and calls it from Python (the host only
    dispatches); ``loop="scan"`` compiles the steps as one ``jax.lax.scan``.
    Both compile once per shape and give the same result. With ``donate`` the
    carry's buffers are donated to the update. ``placement.compile`` is
    ``jax.jit``, or ``jax.pmap`` for ``--parallel pmap``: every argument then
    has a leading device axis (the plan ``[D, S, B / D]``, see
    ``parallel.Placement``) and ``batch_fn`` sees one device's part.

    Returns:
      ``run(carry, data, indices, mask, start=0, on_step=None) -> (carry, done)``
      that runs steps ``start .. S-1``. ``on_step(done, carry)`` is called after
      every step (``step``) or once at the end (``scan``, which compiles once
      more for a resumed epoch's shorter plan); when it returns True the epoch
      stops there. ``done`` is the number of steps of the epoch done.
    """
    step_axis = 1 if placement.mode == "pmap" else 0
    if loop == "scan":
        def scan_epoch(carry, device_data, indices, mask):
            def body(c, xs):
                return batch_fn(c, device_data, *xs), None
            return jax.lax.scan(body, carry, (indices, mask))[0]
        scan_epoch = placement.compile(scan_epoch, donate)

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
    one_batch = placement.compile(one_batch, donate, in_axes=(0, 0, 0, 0, None))

    def run_steps(carry, device_data, indices, mask, start=0, on_step=None):
        for i in range(start, indices.shape[step_axis]):
            carry = one_batch(carry, device_data, indices, mask, i)
            if on_step is not None and on_step(i + 1, carry):
                return carry, i + 1
        return carry, indices.shape[step_axis]
    return run_steps


def batch_fns(config: Config, axis_name: str | None = None, normalization=None) -> tuple[BatchFn, BatchFn]:
    """``(train_batch, eval_batch)`` of one model, pure.

    ``train_batch(TrainCarry, device_data, indices, mask) -> TrainCarry`` augments the batch on the
    device (``tinyjax.data.augment``, per example from (root key, step, epoch, example index)),
    takes one ``train_step`` and adds its metrics to the sums. A non-finite step (``nonfinite``) is
    not applied; with ``--on-nan stop`` no step after the first non-finite one is either.
    ``eval_batch(EvalCarry, ...) -> EvalCarry`` adds the batch's metrics of ``view_logits`` (running
    batch statistics, the moving average with ``--ema``, the ``--tta`` views). ``axis_name``: pmap's
    device axis (``train_step``). ``normalization``: the data's ``(mean, std)``; default the built-in
    ``config.data.name``'s.
    """
    mean, std = data.NORMALIZATION[config.data.name] if normalization is None else normalization
    stop_on_nan = config.on_nan == "stop"

    def train_batch(carry: TrainCarry, device_data, indices, mask) -> TrainCarry:
        state, totals = carry.state, carry.totals
        batch = data.make_batch(device_data, indices, mask, mean, std, lambda images: augment.augment(
            config.augment, state.rng, state.step, carry.epoch, indices, images, mean))
        new, metrics = train_step(state, batch, carry.smoothing, config.ema, axis_name, config.accumulate)
        bad = metrics.pop("nonfinite")
        apply = (bad == 0) & ~(stop_on_nan & (totals["nonfinite"] > 0))
        state = new.replace(**{field: jax.tree.map(lambda n, o: jnp.where(apply, n, o), getattr(new, field),
                                                   getattr(state, field))
                               for field in ("step", "params", "batch_stats", "opt_state", "ema")})
        totals = {**{k: totals[k] + jnp.where(apply, v, jnp.zeros_like(v)) for k, v in metrics.items()},
                  "nonfinite": totals["nonfinite"] + bad}
        return carry._replace(state=state, totals=totals)

    def eval_batch(carry: EvalCarry, device_data, indices, mask) -> EvalCarry:
        state = carry.state
        pixels = device_data.images[indices].astype(jnp.float32) / 255.0
        logits = view_logits(state.apply_fn, state.eval_variables(), pixels, mean, std, config.tta)
        metrics = batch_metrics(logits, data.Batch(None, device_data.labels[indices], mask), carry.smoothing)
        return carry._replace(totals=jax.tree.map(jnp.add, carry.totals, metrics))

    return train_batch, eval_batch


def make_epoch_fns(config: Config, loop: str, members: Members | None = None,
                   placement: parallel.Placement = parallel.Placement(), *, net=None,
                   info=None) -> tuple[Callable, Callable]:
    """``(train_epoch, evaluate)`` for a config (see the module docstring for their layers).

    ``members`` (``tinyjax.train.replicas.Members``; default one model, ``config``'s) trains N >= 1
    members as one program, member k with label smoothing ``members.smoothing[k]``: for N > 1,
    ``state`` and the metric sums have a leading member axis ``[N]``, and each member shuffles by
    its own key (``key`` is then ``[N]`` keys). ``placement`` splits every batch over devices; ``device_data``
    must be on them already (``placement.replicated``). Metric sums come back summed over devices.

    ``train_epoch(state, device_data, key, *, epoch=0, start=0, totals=None, should_stop=None,
    description="train", active=None, hook=None) -> (state, totals, done)`` trains the (0-based) ``epoch``
    shuffled by ``key`` from batch ``start``, adding to ``totals`` (a resumed epoch's sums); it
    stops early after a step where ``should_stop()`` is true (asked after every step of the
    ``step`` loop, with several processes at host syncs only; at the end of a ``scan``) or, with
    ``--on-nan stop``, at a host sync (every ``SYNC_EVERY`` steps, and at the end) that finds a
    non-finite step of a replica that ``active`` (bool ``[N]``, default all) says still trains.
    ``hook(done, carry)`` is called before the first step (``done = start``) and wherever the
    driver calls ``on_step`` (``epoch_driver``); ``--profile`` starts and stops its trace there.
    A tqdm progress bar (live loss and accuracy) shows when stderr is a terminal.
    ``evaluate(state, device_data) -> totals`` runs the split in order (``eval_batch``).

    ``net`` (a ``tinyjax.models.door.Net``; default ``config.model``'s) and ``info`` (the data's
    ``DataInfo``; default the built-in ``config.data.name``'s): the model and the normalisation. A
    model that takes no ``mask`` trains an epoch's last partial batch at its true size (a second
    compiled shape), so no padding row reaches its BatchNorm statistics.
    """
    members = Members.of([config]) if members is None else members
    smoothing = members.carried_smoothing()  # A new device array per call: the train carry is donated.
    info = data.builtin_info(config.data.name) if info is None else info
    if net is None:
        from tinyjax.models.door import resolve

        net = resolve(config.model, num_classes=info.num_classes, dtype=config.dtype)
    synced_apply = placement.synced(net).apply
    train_batch, eval_batch = members.batch_fns(*batch_fns(config, parallel.AXIS if placement.mode == "pmap" else None,
                                                           (info.mean, info.std)))
    train_plan, eval_plan = members.plan(), jax.jit(data.batch_plan, static_argnums=(1, 2))  # Eval: in order.
    run_train = epoch_driver(train_batch, loop, True, placement)
    run_eval = epoch_driver(eval_batch, loop, False, placement)

    def train_epoch(state, device_data, key, *, epoch=0, start=0, totals=None, should_stop=None,
                    description="train", active=None, hook=None):
        examples = device_data.labels.shape[-1]  # Under pmap the placed data is [L, N].
        indices, mask = placement.batches(*train_plan(key, examples, config.batch_size))
        steps = indices.shape[1 if placement.mode == "pmap" else 0]  # pmap's plan is [D, S, B / D].
        carry = TrainCarry(state.replace(apply_fn=synced_apply), members.zeros(True) if totals is None else totals,
                           jnp.asarray(epoch, jnp.int32), jnp.asarray(smoothing))
        if hook is not None:
            hook(start, carry)
        partial = 0 if net.takes_mask else examples % config.batch_size  # The last batch at its true size.
        with Progress(steps, start, description, should_stop, config.on_nan == "stop", placement,
                       active, hook) as on_step:
            carry = placement.carry(carry)
            if not partial:
                carry, done = run_train(carry, device_data, indices, mask, start, on_step)
            else:
                pmap = placement.mode == "pmap"  # Its plan is [D, S, B / D], row j of a batch on device j % D.
                carry, done = _split_last(run_train, carry, device_data, indices, mask, start, on_step,
                                          partial // placement.devices if pmap else partial, steps, int(pmap))
        state = placement.unreplicated(carry.state).replace(apply_fn=state.apply_fn)
        return state, placement.summed(carry.totals), done

    def evaluate(state, device_data):
        indices, mask = placement.batches(*eval_plan(None, device_data.labels.shape[-1], config.eval_batch_size))
        carry = placement.carry(EvalCarry(state, members.zeros(False), jnp.asarray(smoothing)))
        return placement.summed(run_eval(carry, device_data, indices, mask)[0].totals)

    return train_epoch, evaluate


def _split_last(run_train, carry, device_data, indices, mask, start: int, on_step, size: int, steps: int,
                step_axis: int):
    """``run_train`` over an epoch's plan whose last batch holds ``size`` real rows (then padding):
    the full batches, then the last one cut to its ``size`` rows (padded again only to the device
    count by ``Placement.batches``; ``tinyjax.validation`` refuses a count that does not divide it)."""
    def rows(x, first, last, cut=None):
        where = (slice(None),) * step_axis + (slice(first, last),)
        return x[where] if cut is None else x[where][..., :cut]
    done = start
    if start < steps - 1:
        carry, done = run_train(carry, device_data, rows(indices, 0, steps - 1), rows(mask, 0, steps - 1), start,
                                on_step)
        if done < steps - 1:
            return carry, done
    def last_step(n, c):
        return on_step(steps - 1 + n, c)
    carry, n = run_train(carry, device_data, rows(indices, steps - 1, steps, size), rows(mask, steps - 1, steps, size),
                         0, last_step)
    return carry, steps - 1 + n
