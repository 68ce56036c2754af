"""The run directory: ``<out>/<experiment>-<variant>-<timestamp>/``.

What a run leaves, in the order it is written:

- ``config.json``: the resolved ``Config`` (``--resume`` reads it back);
- ``layers.md``: the layer table;
- ``metrics.jsonl``: one JSON record per epoch, appended as the epoch ends.
  It is the source of truth: a resumed run first cuts it back to the epochs
  its checkpoint holds, so no epoch is missing or repeated. ``metrics.json``
  (a JSON list, rewritten each epoch) mirrors it for tools that want one document;
- ``checkpoints/``: orbax step folders (``tinyjax.runs.checkpoint``);
- ``results.json``, ``curves.png``, ``confusion.png``, ``misclassified.png``
  at the end;
- with tensorboardX installed (``pip install -e '.[tensorboard]'``), TensorBoard
  event files, so ``tensorboard --logdir runs`` compares runs.

In a run of several processes (``tinyjax.distributed.hosts``) only process 0 writes:
``create`` names the folder there and every process gets its path; the
writers below do nothing on the other processes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys

import numpy as np

from tinyjax.distributed import hosts, parallel
from tinyjax.models.summary import layer_table
from tinyjax.runs import plots
from tinyjax.runs.hardware import environment
from tinyjax.common import atomic_write
from tinyjax.config import Config, ConfigError, best_metric


def check_writable(out: str) -> None:
    """Checks, creating nothing, that the run directory can be made under ``out``.

    Raises:
      ConfigError: a part of ``out`` is a file, or the nearest existing folder
        is not writable.
    """
    path = os.path.abspath(out)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ConfigError(f"--out {out}: {path} is a file, not a folder; choose another --out.")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {path} (permission denied); choose another --out.")


def create(config: Config, net, info, path: str | None = None) -> str:
    """Creates ``path``, by default ``<out>/<experiment>-<variant>-<YYYYmmdd-HHMMSS>[-N]/``, with
    ``config.json``, ``layers.md`` (the layer table of ``net``, a ``tinyjax.models.door.Net``, on
    ``info.image_shape``: ``tinyjax.models.summary.layer_table``) and ``data.json`` (``info``, a
    ``tinyjax.data.DataInfo``: the data's image shape, class names and normalisation, which
    ``tinyjax.load`` and ``tinyjax-export`` read); returns its path (process 0's, on every process).

    Raises:
      ConfigError: the folder cannot be created.
    """
    if not hosts.primary():
        path = hosts.agree("")
        if not path:
            raise ConfigError(f"--out {config.out}: process 0 could not create the run directory (see its error).")
        return path
    try:
        path = _create(config, layer_table(net, info.image_shape).markdown(), path, info.to_json())
    except BaseException:
        hosts.agree("")  # The other processes are waiting for the path.
        raise
    return hosts.agree(path)


def _create(config: Config, layers: str, path: str | None, data_info: dict) -> str:
    given = path is not None
    base = path if given else os.path.join(
        config.out, f"{config.experiment}-{config.variant}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    for n in range(10_000):  # A default name taken (another run started in the same second): -1, -2, ...
        path = base if n == 0 else f"{base}-{n}"
        try:
            os.makedirs(path)
            break
        except OSError as e:
            if given or not isinstance(e, FileExistsError):
                raise ConfigError(f"--out {config.out}: cannot create {path} ({e.strerror}); "
                                  "choose another --out.") from e
    else:
        raise ConfigError(f"--out {config.out}: 10,000 runs named {base}-N exist; choose another --out.")
    write_json(os.path.join(path, "config.json"), dataclasses.asdict(config))
    write_json(os.path.join(path, "data.json"), data_info)
    with open(os.path.join(path, "layers.md"), "w") as f:
        f.write(layers + "\n")
    return path


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to a temporary file renamed into place: a reader never sees half a file.
    Process 0 only."""
    if not hosts.primary():
        return

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON, written atomically (``write_text``)."""
    write_text(path, json.dumps(obj, indent=1))


# ----------------------------------------------------------------------------- per-epoch metrics
def append_metrics(run_dir: str, history: list[dict]) -> None:
    """Appends ``history[-1]`` to ``metrics.jsonl`` (flushed to disk) and mirrors
    the whole history as ``metrics.json``. Process 0 only."""
    if not hosts.primary():
        return
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(history[-1]) + "\n")
        f.flush()
        os.fsync(f.fileno())
    write_json(os.path.join(run_dir, "metrics.json"), history)


def read_metrics(run_dir: str, epochs: int | None = None) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl``, those of epochs ``<= epochs``
    only when given. With ``epochs``, the file is cut back to them (and a line
    torn by a crash dropped), so a resumed run appends after its checkpoint.
    Only process 0 cuts the file back; every process reads it."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    history = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # The last line of a run killed while writing it.
                break
            if epochs is None or record["epoch"] <= epochs:
                history.append(record)
    if epochs is not None:  # write_text: process 0 only.
        write_text(path, "".join(json.dumps(h) + "\n" for h in history))
        write_json(os.path.join(run_dir, "metrics.json"), history)
    return history


class EventWriter:
    """TensorBoard event files through tensorboardX, when it is installed;
    otherwise (and on processes other than 0) every call does nothing. ``purge_step`` (the
    first epoch a resumed run writes) makes TensorBoard drop events that a crash left past it."""

    def __init__(self, run_dir: str, purge_step: int | None = None):
        self.writer = None
        if not hosts.primary():
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            return
        except Exception as e:  # E.g. a protobuf it cannot work with: the events are optional, the run is not.
            print(f"warning: no TensorBoard events: tensorboardX fails to import ({type(e).__name__}: {e}).",
                  file=sys.stderr)
            return
        self.writer = SummaryWriter(run_dir, purge_step=purge_step)

    def epoch(self, row: dict) -> None:
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and value is not None:  # None: unknown (an MFU without a known peak).
                    split, _, name = key.partition("_")
                    self.writer.add_scalar(f"{name or split}/{split}" if name else key, value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- end of run
def best_epoch(config: Config, history: list[dict]) -> dict:
    """The epoch record that is best by ``best_metric(config)`` and ``--best-mode``,
    the last of equals as orbax's ``BestN`` keeps it: the best checkpoint's
    epoch when every epoch is saved."""
    metric = best_metric(config)
    sign = 1 if config.checkpoint.best_mode == "max" else -1
    return max(history, key=lambda h: (sign * h[metric], h["epoch"]))


def write_results(run_dir: str, config: Config, params: int, history: list[dict], best: dict,
                  wall_time: float, compute: dict | None = None, stopped_epoch: int | None = None) -> dict:
    """``results.json``: the run in one record, in the spirit of reference 003's.

    ``test_accuracy`` is the last epoch's; ``best_epoch`` and
    ``best_epoch_test_accuracy`` belong to ``best``, the record of the epoch
    the best checkpoint was saved after, chosen by ``selected_by``
    (``val_acc`` with ``--val-split``: the test set then only reports;
    ``test_acc`` without one: that figure has seen the test set).
    ``test_limit`` (None: the whole test split) says when the test accuracies
    come from a subset of it. With ``--early-stop`` the final weights are the
    best checkpoint's (Keras's ``restore_best_weights``), so ``test_accuracy``
    and ``final_test_loss`` are ``best``'s, and ``early_stop`` records the
    patience, min_delta, the monitored metric, ``epochs_trained`` and
    ``stopped_epoch`` (1-based, given by the caller: ``tinyjax.train.stopping``'s decision replayed
    from ``history``; None when it never stopped). ``compute`` (``tinyjax.train.flops.results``: FLOPs per step and per image,
    achieved FLOP/s, MFU) is added as it is.
    """
    last = history[-1]
    lr = config.schedule.max_lr if config.schedule.name == "onecycle" else config.optim.lr
    results = {"experiment": config.experiment, "variant": config.variant, "model_type": config.model,
               "params": params, "test_accuracy": last["test_acc"], "train_accuracy": last["train_acc"],
               "best_test_accuracy": max(h["test_acc"] for h in history),
               "best_epoch": best["epoch"], "selected_by": f"{best_metric(config)} ({config.checkpoint.best_mode})",
               "best_epoch_test_accuracy": best["test_acc"],
               "val_split": config.data.val_split, "test_limit": config.data.test_limit,
               "final_train_loss": last["train_loss"], "final_test_loss": last["test_loss"],
               "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": lr,
               "schedule": config.schedule.name, "optimizer": config.optim.name,
               "weight_decay": config.optim.weight_decay, "label_smoothing": config.label_smoothing,
               "seed": config.seed, "parallel": parallel.resolve(config.parallel),
               "wall_time_s": wall_time,
               "train_time_s": sum(h["seconds"] for h in history), **(compute or {}), **environment()}
    if config.data.val_split:
        results["best_epoch_val_accuracy"] = best["val_acc"]
    if config.early_stop:
        results.update(test_accuracy=best["test_acc"], final_test_loss=best["test_loss"], epochs_trained=len(history),
                       early_stop={"patience": config.early_stop, "min_delta": config.early_stop_min_delta,
                                   "monitor": best_metric(config), "restored_epoch": best["epoch"],
                                   "stopped_epoch": stopped_epoch})
    write_json(os.path.join(run_dir, "results.json"), results)
    return results


def write_plots(run_dir: str, config: Config, history: list[dict], test_images: np.ndarray,
                test_labels: np.ndarray, predictions: np.ndarray, class_names=tuple(map(str, range(10)))) -> None:
    """``curves.png``, ``confusion.png`` and ``misclassified.png`` (test set), labelled with the data's
    ``class_names``. Process 0 only."""
    if not hosts.primary():
        return
    title = f"{config.experiment} {config.variant} ({config.model}, seed {config.seed})"
    plots.curves(history, os.path.join(run_dir, "curves.png"), title)
    plots.confusion(test_labels, predictions, os.path.join(run_dir, "confusion.png"), title, class_names)
    plots.misclassified(test_images, test_labels, predictions, os.path.join(run_dir, "misclassified.png"), title,
                        class_names=class_names)


def resume_command(run_dir: str, experiment: str) -> str:
    """The command that resumes ``run_dir``: ``python -m <module> --resume <run_dir>`` with the
    experiment module that is running (``experiments.<experiment>`` when there is one),
    ``tinyjax-train --resume <run_dir>`` for its runs, else the Python call."""
    import importlib.util

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("experiments."):
        return f"python -m {spec.name} --resume {run_dir}"
    if experiment == "train":
        return f"tinyjax-train --resume {run_dir}"
    try:
        found = importlib.util.find_spec(f"experiments.{experiment}") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return f"python -m experiments.{experiment} --resume {run_dir}"
    return f"train_and_evaluate(config, resume={run_dir!r}) with the same model= and data="
