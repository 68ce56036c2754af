"""``train_and_evaluate(config)``: input, model and optimizer, epoch loop, run directory."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import sys
import time
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

import tinyjax
from tinyjax import data, models, plots
from tinyjax.config import Config, ConfigError, validate
from tinyjax.optim.optimizers import make_optimizer
from tinyjax.summary import layer_table
from tinyjax.train.state import TrainState, create_train_state
from tinyjax.train.steps import eval_logits, eval_step, train_step

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
      ``run(carry, data, indices, mask, progress=None) -> carry``; the
      optional ``progress(steps_done, carry)`` is called after every step
      (``step``) or once at the end (``scan``).
    """
    donate_argnums = (0,) if donate else ()
    if loop == "scan":
        @functools.partial(jax.jit, donate_argnums=donate_argnums)
        def scan_epoch(carry, device_data, indices, mask):
            def body(c, xs):
                return batch_fn(c, device_data, *xs), None
            return jax.lax.scan(body, carry, (indices, mask))[0]

        def run_scan(carry, device_data, indices, mask, progress=None):
            carry = scan_epoch(carry, device_data, indices, mask)
            if progress is not None:
                progress(indices.shape[0], carry)
            return carry
        return run_scan

    @functools.partial(jax.jit, donate_argnums=donate_argnums)
    def one_batch(carry, device_data, indices, mask, i):
        return batch_fn(carry, device_data, indices[i], mask[i])

    def run_steps(carry, device_data, indices, mask, progress=None):
        for i in range(indices.shape[0]):
            carry = one_batch(carry, device_data, indices, mask, i)
            if progress is not None:
                progress(i + 1, carry)
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


def make_epoch_fns(config: Config, loop: str) -> tuple[Callable, Callable, Callable]:
    """``(train_epoch, evaluate, predict)`` for a config.

    ``train_epoch(state, device_data, key, description) -> (state, totals)``
    shuffles with ``key`` and trains one epoch, with a tqdm progress bar (live
    loss and accuracy) when stderr is a terminal; ``evaluate(state, device_data) -> totals``
    runs the split in order with running batch statistics;
    ``predict(state, device_data) -> int32 [N]`` (host) the predicted classes.
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

    def train_epoch(state, device_data, key, description="train"):
        indices, mask = plan(key, len(device_data.labels), config.batch_size)
        with tqdm.tqdm(total=len(indices), desc=description, leave=False, unit="step",
                       disable=not sys.stderr.isatty()) as bar:
            def progress(done, carry):
                bar.update(done - bar.n)
                if done % 25 == 0 or done == len(indices):  # A host sync: not every step.
                    accuracy, loss = summarize(carry[1])
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.2f}%", refresh=False)
            return run_train((state, zero_metrics()), device_data, indices, mask,
                             progress if not bar.disable else None)

    def evaluate(state, device_data):
        indices, mask = plan(None, len(device_data.labels), config.eval_batch_size)
        return run_eval((state, zero_metrics()), device_data, indices, mask)[1]

    @jax.jit
    def predict_batch(state, device_data, indices, mask):
        image = data.make_batch(device_data, indices, mask, mean, std).image
        return jnp.argmax(eval_logits(state, image), -1).astype(jnp.int32)

    def predict(state, device_data):
        n = len(device_data.labels)
        indices, mask = plan(None, n, config.eval_batch_size)
        batches = [predict_batch(state, device_data, indices[i], mask[i]) for i in range(len(indices))]
        return np.asarray(jnp.concatenate(batches))[:n]

    return train_epoch, evaluate, predict


# ----------------------------------------------------------------------------- run directory
def make_run_dir(config: Config) -> str:
    """Creates ``<out>/<experiment>-<variant>-<YYYYmmdd-HHMMSS>[-N]/`` and returns its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(config.out, f"{config.experiment}-{config.variant}-{stamp}")
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


def environment() -> dict:
    """Hardware and library versions, for results.json."""
    device = jax.devices()[0]
    return {"hardware": {"machine": platform.machine(), "processor": platform.processor(),
                         "cpu_count": os.cpu_count(), "backend": jax.default_backend(),
                         "device": getattr(device, "device_kind", str(device)),
                         "device_count": jax.device_count()},
            "versions": {"tinyjax": tinyjax.__version__, "python": platform.python_version(),
                         "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                         "numpy": np.__version__}}


def write_results(run_dir: str, config: Config, params: int, history: list[dict], wall_time: float) -> dict:
    """``results.json``: the run in one record, in the spirit of seed 003's."""
    last = history[-1]
    lr = config.schedule.max_lr if config.schedule.name == "onecycle" else config.optim.lr
    results = {"experiment": config.experiment, "variant": config.variant, "model_type": config.model,
               "params": params, "test_accuracy": last["test_acc"], "train_accuracy": last["train_acc"],
               "best_test_accuracy": max(h["test_acc"] for h in history),
               "final_train_loss": last["train_loss"], "final_test_loss": last["test_loss"],
               "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": lr,
               "schedule": config.schedule.name, "optimizer": config.optim.name,
               "weight_decay": config.optim.weight_decay, "label_smoothing": config.label_smoothing,
               "seed": config.seed, "wall_time_s": wall_time,
               "train_time_s": sum(h["seconds"] for h in history), **environment()}
    write_json(os.path.join(run_dir, "results.json"), results)
    return results


# ----------------------------------------------------------------------------- main loop
def train_and_evaluate(config: Config, print_fn: Callable[[str], None] = functools.partial(print, flush=True)
                       ) -> tuple[TrainState, list[dict], str]:
    """Trains ``config`` end to end and writes its run directory.

    Order: validate the config, load both splits to the device, build the
    model, optimizer and train state, then per epoch train, evaluate and print
    one line (epoch, train acc, test acc, train loss, test loss, lr, seconds).
    The run directory holds ``config.json`` (the resolved config, written
    first), ``layers.md`` (the layer table, also printed), ``metrics.json``
    (one dict per epoch, rewritten each epoch) and, at the end,
    ``results.json`` (the run in one record: accuracies, losses, recipe,
    wall time, hardware, library versions) and the plots ``curves.png``,
    ``confusion.png`` (test set) and ``misclassified.png``.

    Returns:
      ``(final_state, history, run_dir)``; ``history[e]`` has keys epoch,
      train_acc, test_acc (%), train_loss, test_loss, lr (of the epoch's last
      step), seconds (wall time of the epoch's training and evaluation).

    Raises:
      ConfigError: a bad config field, or a model over ``max_params`` (before
        anything is loaded or compiled).
      DatasetNotFoundError, IDXFormatError: data that cannot be loaded.
    """
    started = time.perf_counter()
    validate(config)
    model = models.create(config.model)
    table = layer_table(model, data.IMAGE_SHAPES[config.data.name])  # Shapes only: no compile.
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
    train_epoch, evaluate, predict = make_epoch_fns(config, config.loop)

    run_dir = make_run_dir(config)
    write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))
    layers = table.markdown()
    with open(os.path.join(run_dir, "layers.md"), "w") as f:
        f.write(layers + "\n")
    print_fn(layers)
    print_fn(f"{config.experiment}: {config.model} ({table.trainable_params:,} params), "
             f"{config.data.name} {len(train_labels)} train / {len(test_labels)} test, "
             f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size}, "
             f"{jax.default_backend()} '{config.loop}' loop -> {run_dir}")

    history = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        # From state.rng, not a copy of the root key: the state's buffers are donated.
        key = jax.random.fold_in(jax.random.fold_in(state.rng, DATA_STREAM), epoch)
        state, train_totals = train_epoch(state, train_data, key, f"epoch {epoch + 1}/{config.epochs}")
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

    title = f"{config.experiment} {config.variant} ({config.model}, seed {config.seed})"
    predictions = predict(state, test_data)
    plots.curves(history, os.path.join(run_dir, "curves.png"), title)
    plots.confusion(test_labels, predictions, os.path.join(run_dir, "confusion.png"), title)
    plots.misclassified(test_images, test_labels, predictions, os.path.join(run_dir, "misclassified.png"), title)
    write_results(run_dir, config, table.trainable_params, history, time.perf_counter() - started)
    return state, history, run_dir
