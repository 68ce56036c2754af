"""``train_and_evaluate(config)``: input, model and optimizer, epoch loop, run directory."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp

from tinyjax import data, models
from tinyjax.config import Config, ConfigError, validate
from tinyjax.optim.optimizers import make_optimizer
from tinyjax.train.state import TrainState, create_train_state
from tinyjax.train.steps import eval_step, train_step

DATA_STREAM = 2  # fold_in tag of the data-order keys (0: init, 1: dropout).

# ----------------------------------------------------------------------------- epoch drivers
BatchFn = Callable  # (carry, data, indices int32 [B], mask bool [B]) -> carry


def resolve_loop(loop: str) -> str:
    """``"auto"`` -> ``"step"`` on CPU, where XLA:CPU ran this kind of model
    about 2x faster per jitted step than as one scan (scripts/bench_loop.py),
    and ``"scan"`` on GPU/TPU, where per-step dispatch costs more than the
    small steps themselves."""
    if loop == "auto":
        return "step" if jax.default_backend() == "cpu" else "scan"
    return loop


def epoch_driver(batch_fn: BatchFn, loop: str, donate: bool) -> Callable:
    """Runs ``batch_fn`` over an epoch's ``[S, B]`` index plan, all on the device.

    ``loop="step"`` jits one batch and calls it S times from Python (the
    host only dispatches); ``loop="scan"`` jits the whole epoch as one
    ``jax.lax.scan``. Both compile once per shape and give the same result.
    With ``donate`` the carry's buffers are donated to the update.

    Returns:
      ``run(carry, data, indices, mask) -> carry``.
    """
    donate_argnums = (0,) if donate else ()
    if loop == "scan":
        @functools.partial(jax.jit, donate_argnums=donate_argnums)
        def run_scan(carry, device_data, indices, mask):
            def body(c, xs):
                return batch_fn(c, device_data, *xs), None
            return jax.lax.scan(body, carry, (indices, mask))[0]
        return run_scan

    @functools.partial(jax.jit, donate_argnums=donate_argnums)
    def one_batch(carry, device_data, indices, mask, i):
        return batch_fn(carry, device_data, indices[i], mask[i])

    def run_steps(carry, device_data, indices, mask):
        for i in range(indices.shape[0]):
            carry = one_batch(carry, device_data, indices, mask, i)
        return carry
    return run_steps


def zero_metrics() -> dict[str, jax.Array]:
    return {"loss_sum": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.int32),
            "count": jnp.zeros((), jnp.int32)}


def summarize(totals: dict[str, jax.Array]) -> tuple[float, float]:
    """(accuracy in %, mean loss) from summed metrics."""
    totals = jax.device_get(totals)
    count = max(int(totals["count"]), 1)
    return 100.0 * float(totals["correct"]) / count, float(totals["loss_sum"]) / count


def make_epoch_fns(config: Config, loop: str) -> tuple[Callable, Callable]:
    """``(train_epoch, evaluate)`` for a config.

    ``train_epoch(state, device_data, key) -> (state, totals)`` shuffles with
    ``key`` and trains one epoch; ``evaluate(state, device_data) -> totals``
    runs the split in order with running batch statistics.
    """
    mean, std = data.NORMALIZATION[config.data.name]
    smoothing = config.label_smoothing

    def train_batch(carry, device_data, indices, mask):
        state, totals = carry
        state, metrics = train_step(state, data.make_batch(device_data, indices, mask, mean, std), smoothing)
        return state, jax.tree.map(jnp.add, totals, metrics)

    def eval_batch(carry, device_data, indices, mask):
        state, totals = carry
        metrics = eval_step(state, data.make_batch(device_data, indices, mask, mean, std), smoothing)
        return state, jax.tree.map(jnp.add, totals, metrics)

    run_train = epoch_driver(train_batch, loop, donate=True)
    run_eval = epoch_driver(eval_batch, loop, donate=False)
    plan = jax.jit(data.batch_plan, static_argnums=(1, 2))

    def train_epoch(state, device_data, key):
        indices, mask = plan(key, len(device_data.labels), config.batch_size)
        return run_train((state, zero_metrics()), device_data, indices, mask)

    def evaluate(state, device_data):
        indices, mask = plan(None, len(device_data.labels), config.eval_batch_size)
        return run_eval((state, zero_metrics()), device_data, indices, mask)[1]

    return train_epoch, evaluate


# ----------------------------------------------------------------------------- run directory
def make_run_dir(config: Config) -> str:
    """Creates ``<out>/<experiment>-<YYYYmmdd-HHMMSS>[-N]/`` and returns its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(config.out, f"{config.experiment}-{stamp}")
    path, n = base, 1
    while os.path.exists(path):
        path, n = f"{base}-{n}", n + 1
    os.makedirs(path)
    return path


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main loop
def train_and_evaluate(config: Config, print_fn: Callable[[str], None] = functools.partial(print, flush=True)
                       ) -> tuple[TrainState, list[dict], str]:
    """Trains ``config`` end to end and writes its run directory.

    Order: validate the config, load both splits to the device, build the
    model, optimizer and train state, then per epoch train, evaluate and print
    one line (epoch, train acc, test acc, train loss, test loss, lr, seconds).
    The run directory holds ``config.json`` (the resolved config, written
    first) and ``metrics.json`` (one dict per epoch, rewritten each epoch).

    Returns:
      ``(final_state, history, run_dir)``; ``history[e]`` has keys epoch,
      train_acc, test_acc (%), train_loss, test_loss, lr (of the epoch's last
      step), seconds (wall time of the epoch's training and evaluation).

    Raises:
      ConfigError: a bad config field (before anything is loaded or compiled).
      DatasetNotFoundError, IDXFormatError: data that cannot be loaded.
    """
    validate(config)
    model = models.create(config.model)
    config = dataclasses.replace(config, loop=resolve_loop(config.loop))

    train_images, train_labels = data.load(config.data.name, "train", config.data.data_dir)
    if config.data.train_limit is not None:
        train_images = train_images[:config.data.train_limit]
        train_labels = train_labels[:config.data.train_limit]
    test_images, test_labels = data.load(config.data.name, "test", config.data.data_dir)
    train_data = data.to_device(train_images, train_labels)
    test_data = data.to_device(test_images, test_labels)

    steps_per_epoch = data.num_batches(len(train_labels), config.batch_size)
    try:  # One-cycle limits depend on the number of steps, known once the data is.
        tx, lr_fn = make_optimizer(config.optim, config.schedule, config.epochs * steps_per_epoch)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    state = create_train_state(model, tx, jax.random.key(config.seed), (1,) + train_images.shape[1:])
    train_epoch, evaluate = make_epoch_fns(config, config.loop)

    run_dir = make_run_dir(config)
    write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))
    print_fn(f"{config.experiment}: {config.model} ({models.count_params(state.params):,} params), "
             f"{config.data.name} {len(train_labels)} train / {len(test_labels)} test, "
             f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size}, "
             f"{jax.default_backend()} '{config.loop}' loop -> {run_dir}")

    history = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        # From state.rng, not a copy of the root key: the state's buffers are donated.
        key = jax.random.fold_in(jax.random.fold_in(state.rng, DATA_STREAM), epoch)
        state, train_totals = train_epoch(state, train_data, key)
        train_acc, train_loss = summarize(train_totals)
        test_acc, test_loss = summarize(evaluate(state, test_data))
        row = {"epoch": epoch + 1, "train_acc": train_acc, "test_acc": test_acc,
               "train_loss": train_loss, "test_loss": test_loss,
               "lr": float(lr_fn(int(state.step) - 1)), "seconds": time.perf_counter() - start}
        history.append(row)
        write_json(os.path.join(run_dir, "metrics.json"), history)
        print_fn(f"epoch {row['epoch']:3d}/{config.epochs}  train acc {train_acc:6.2f}%  "
                 f"test acc {test_acc:6.2f}%  train loss {train_loss:.4f}  test loss {test_loss:.4f}  "
                 f"lr {row['lr']:.3e}  {row['seconds']:5.1f}s")
    return state, history, run_dir
