"""Checkpoints with orbax: save and resume a train state, the best and the latest, load for inference.

A run keeps its checkpoints in ``<run_dir>/checkpoints/<id>/``, where ``id``
counts the batches trained so far (``epoch * steps_per_epoch + position``).
Each holds two orbax items: ``state``, the whole ``TrainState`` pytree
(params, batch statistics, optimizer state with its step count and injected
hyperparameters, step, and the PRNG key as its raw ``uint32`` key data), and
``meta``, JSON: the epoch and position in it, the partial epoch's metric
sums, steps per epoch, and the run's config. orbax adds ``metrics`` for the
best-checkpoint ranking.

Written against orbax-checkpoint 0.12 (``ocp.CheckpointManager``, still the
stable training-loop API there; ``orbax.checkpoint.v1`` is not). In 0.12:

- ``max_to_keep`` and ``best_fn`` alone are deprecated retention: with
  ``best_fn`` set, orbax keeps the best N, which deletes the newest checkpoint,
  the one a resume needs, when the metric gets worse. So retention is an
  explicit ``AnyPreservationPolicy([LatestN(keep), BestN(n=1)])``, and
  ``best_fn`` is set so that orbax stores each save's metrics.
- Saves are atomic: orbax writes ``<id>.orbax-checkpoint-tmp`` and renames it
  when complete; an interrupted write is never listed, and
  ``cleanup_tmp_directories`` removes it at the next start.
- Saves are asynchronous: ``save`` returns after the device-to-host copy
  (made here, explicitly, so that buffers donated to the next step cannot
  change what is written) and the write goes on in a background thread.
  Except with several processes (``tinyjax.distributed.hosts``): orbax's barriers are
  then device collectives (``multihost_utils.sync_global_devices``, its
  default in 0.12), and one run in a background thread beside the train
  step's collectives can meet a different collective on another process and
  hang both; so there every save finishes before training goes on. All
  processes call ``save``; orbax writes the host (numpy) state from process 0.
- A failed background write surfaces as an exception from orbax's
  ``wait_until_finished``, which ``Checkpoints.wait`` turns into
  ``CheckpointError``. orbax's finalize thread catches and only logs some
  failures (``_finalize_checkpoint``), so ``wait`` also checks that the save
  is listed once it finishes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policies

from tinyjax.distributed import hosts
from tinyjax.common import one_line
from tinyjax.config import Config, ConfigError, best_metric, from_dict

# A train state is a ``tinyjax.train.state.TrainState``, read and rebuilt by its fields (step, params,
# batch_stats, opt_state, rng, ema and ``replace``): this module never imports the training package.
TrainState = Any


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names it."""


def _state_tree(state: TrainState) -> dict:
    """The savable pytree of a state: every array field of ``TrainState`` (the
    weights' moving average when kept), the typed key as its ``uint32`` key data."""
    tree = {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
            "opt_state": state.opt_state, "rng": jax.random.key_data(state.rng)}
    return tree if state.ema is None else {**tree, "ema": state.ema}


class Checkpoints:
    """The checkpoints of one run directory: ``save``, ``restore``, ``latest``, ``best``.

    Keeps the latest ``config.checkpoint.keep`` checkpoints and the best one by
    ``best_metric(config)`` (``--best-mode``). Checkpoints saved without that
    metric (mid-epoch saves on an interrupt) are never the best.
    """

    def __init__(self, run_dir: str, config: Config, read_only: bool = False):
        self.metric, mode = best_metric(config), config.checkpoint.best_mode
        worst = -math.inf if mode == "max" else math.inf

        def score(metrics: dict) -> float:
            return metrics.get(self.metric, worst)

        options = ocp.CheckpointManagerOptions(
            best_fn=score, best_mode=mode,
            preservation_policy=policies.AnyPreservationPolicy([
                policies.LatestN(config.checkpoint.keep),
                policies.BestN(get_metric_fn=score, reverse=mode == "min", n=1,
                               keep_checkpoints_without_metrics=False)]),
            cleanup_tmp_directories=not read_only, create=not read_only,
            enable_async_checkpointing=jax.process_count() == 1)
        self.directory = os.path.join(os.path.abspath(run_dir), "checkpoints")
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self.pending: int | None = None

    def save(self, checkpoint_id: int, state: TrainState, meta: dict, metrics: dict | None = None) -> None:
        """Starts saving ``state`` and ``meta`` (JSON) as checkpoint ``checkpoint_id``;
        returns once the state is copied to the host. ``metrics`` (an epoch's
        record) ranks it for the best checkpoint.

        Raises:
          CheckpointError: the state is not finite (never saved), or the
            previous save failed.
        """
        self.wait()
        host = jax.tree.map(lambda x: np.array(x, copy=True), _state_tree(state))
        if not all(np.isfinite(x).all() for x in jax.tree.leaves(host) if np.issubdtype(x.dtype, np.floating)):
            raise CheckpointError(f"refusing to save checkpoint {checkpoint_id}: the state is not finite.")
        self.manager.save(checkpoint_id, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta)), metrics=metrics or {}, force=True)
        self.pending = checkpoint_id

    def wait(self) -> None:
        """Blocks until the last save is on disk.

        Raises:
          CheckpointError: it failed (older checkpoints are left as they were).
        """
        if self.pending is None:
            return
        step, self.pending = self.pending, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(f"saving checkpoint {step} in {self.directory} failed "
                                  f"({type(e).__name__}: {e}); older checkpoints are intact.") from e
        self.manager.reload()
        # Process 0 wrote it; another host's view of a shared folder may lag (tinyjax.distributed.hosts).
        if hosts.primary() and step not in self.manager.all_steps():
            raise CheckpointError(f"saving checkpoint {step} in {self.directory} failed (see the log above); "
                                  "older checkpoints are intact.")

    def close(self) -> None:
        """Waits for the last save (raising ``CheckpointError`` if it failed) and releases orbax."""
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            except Exception as e:  # orbax re-raises a failed background write here too.
                raise CheckpointError(f"closing the checkpoints in {self.directory} failed ({type(e).__name__}: "
                                      f"{e}); older checkpoints are intact.") from e

    def latest(self) -> int | None:
        """The newest checkpoint's id, or None."""
        return self.manager.latest_step()

    def best(self) -> int | None:
        """The id of the best checkpoint among those with the metric, or None."""
        step = self.manager.best_step()
        if step is None or self.metric not in (self.manager.metrics(step) or {}):
            step = None
        return json.loads(hosts.agree(json.dumps(step)))  # Process 0's view, on every process.

    def meta(self, checkpoint_id: int) -> dict:
        """The JSON ``meta`` of a checkpoint.

        Raises:
          CheckpointError: it cannot be read.
        """
        try:
            return self.manager.restore(checkpoint_id, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as e:
            raise CheckpointError(f"cannot read checkpoint {checkpoint_id} in {self.directory} "
                                  f"({one_line(e)}).") from e

    def variables(self, checkpoint_id: int) -> dict:
        """The variables a checkpoint's model evaluates with, ``{"params", "batch_stats"}`` (numpy),
        read without a template: the weights' moving average when the run kept one (``--ema``), else
        the live weights.

        Raises:
          CheckpointError: the checkpoint cannot be read.
        """
        try:  # orbax 0.12 restores a tree saved by StandardSave as nested dicts of numpy arrays.
            tree = self.manager.restore(checkpoint_id, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
        except Exception as e:
            raise CheckpointError(f"cannot restore checkpoint {checkpoint_id} from {self.directory} "
                                  f"({one_line(e)}).") from e
        return dict(tree["ema"]) if "ema" in tree else {"params": tree["params"], "batch_stats": tree["batch_stats"]}

    def _difference(self, checkpoint_id: int, abstract: dict) -> str | None:
        """Where a template's ``params`` and ``batch_stats`` differ from a checkpoint's, or None (also
        when the checkpoint cannot be read at all)."""
        try:
            saved = self.manager.restore(checkpoint_id, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
        except Exception:
            return None
        keep = ("params", "batch_stats")
        return _first_difference(_paths({k: abstract[k] for k in keep}), _paths({k: saved.get(k, {}) for k in keep}))

    def restore(self, checkpoint_id: int, template: TrainState) -> tuple[TrainState, dict]:
        """``(state, meta)`` of a checkpoint; ``template`` (a fresh state of the
        same config) gives the tree structure, dtypes, and the static
        ``apply_fn`` and ``tx``.

        Raises:
          CheckpointError: the checkpoint does not fit the template or cannot be read.
        """
        tree = _state_tree(template)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        try:
            restored = self.manager.restore(checkpoint_id, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as e:
            difference = self._difference(checkpoint_id, abstract)
            if difference:
                raise ConfigError(f"cannot restore checkpoint {checkpoint_id} from {self.directory}: the model's "
                                  f"parameters differ from the run's ({difference}); resume with the model the run "
                                  "was trained with, or start a new run.") from None
            raise CheckpointError(f"cannot restore checkpoint {checkpoint_id} from {self.directory} "
                                  f"({one_line(e)}).") from e
        t = restored.state
        rng = jax.random.wrap_key_data(t["rng"], impl=jax.random.key_impl(template.rng))
        state = template.replace(step=t["step"], params=t["params"], batch_stats=t["batch_stats"],
                                 opt_state=t["opt_state"], rng=rng, ema=t.get("ema"))
        return state, restored.meta


def _paths(tree) -> dict:
    """``{"params/conv/kernel": shape, ...}`` of a pytree's array leaves."""
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(getattr(x, "shape", ()))
            for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first_difference(expected: dict, saved: dict) -> str | None:
    """The first path (sorted) that one tree has and the other lacks, or whose shapes differ."""
    for path in sorted(set(expected) | set(saved)):
        if path not in saved:
            return f"{path} is new, the checkpoint has no such parameter"
        if path not in expected:
            return f"the checkpoint's {path} is not in the model"
        if expected[path] != saved[path]:
            return f"{path} is {list(expected[path])}, {list(saved[path])} in the checkpoint"
    return None


def load_config(run_dir: str) -> Config:
    """The ``Config`` saved in ``run_dir/config.json``.

    Raises:
      ConfigError: there is no readable config.json (not a run directory).
    """
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            return from_dict(json.load(f))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{run_dir} is not a tinyjax run directory: cannot read {path} "
                          f"({getattr(e, 'strerror', None) or e}).") from e


def find(run_dir: str, config: Config, which: str = "latest") -> tuple[Checkpoints, int]:
    """The run's checkpoints (read-only) and the id of its ``"latest"`` or ``"best"`` one.

    Raises:
      ConfigError: ``which`` is neither, or the run holds no such checkpoint.
    """
    if which not in ("latest", "best"):
        raise ConfigError(f"--which must be 'latest' or 'best', got {which!r}.")
    if not os.path.isdir(os.path.join(run_dir, "checkpoints")):
        raise ConfigError(f"{run_dir} holds no checkpoint (no checkpoints/ folder; was it run with --save-every 0?).")
    checkpoints = Checkpoints(run_dir, config, read_only=True)
    checkpoint_id = checkpoints.latest() if which == "latest" else checkpoints.best()
    if checkpoint_id is None:
        checkpoints.close()
        what = "checkpoint" if which == "latest" else f"epoch-end checkpoint with {checkpoints.metric}"
        raise ConfigError(f"{run_dir} holds no {what} yet.")
    return checkpoints, checkpoint_id
