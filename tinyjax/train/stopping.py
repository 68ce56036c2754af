"""Early stopping (``--early-stop PATIENCE``) with Keras ``EarlyStopping``'s semantics, read from a history.

The decision is a pure function of a member's epoch records, so a resumed run
recomputes its patience counter from ``metrics.jsonl`` instead of saving it,
and a vmapped replica decides exactly what its own run would.

Keras 3 (``keras/src/callbacks/early_stopping.py``, ``baseline=None``,
``start_from_epoch=0``): the first epoch always improves on the initial best
(-inf for ``max``, +inf for ``min``); an epoch improves when its value beats
the best by more than ``min_delta`` (``value - min_delta > best`` for max,
``value + min_delta < best`` for min), which resets the wait counter to 0 and
makes it the best epoch; any other epoch adds 1 to the counter; training stops
after the first epoch (not the very first) at which the counter reaches
``patience``. With ``restore_best_weights`` the best epoch's weights are the
final ones, whether or not training stopped early (Keras 3's ``on_train_end``).

In a run of N replicas (``--seeds``, a grid's points) each member decides on
its own (``Stops``): a stopped member's slice of the stacked train state is
held as it was after its last epoch (its updates are computed and thrown away:
the program runs while any member trains), it gets no new epoch records, and
it is still saved beside the others so that all checkpoints stay at one step
(``--resume`` needs that).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax.config import Config, best_metric
from tinyjax.train.state import copy_buffers

HELD_FIELDS = ("step", "params", "batch_stats", "opt_state", "ema")  # What a step changes (``rng`` never does).


@dataclasses.dataclass(frozen=True)
class Patience:
    """Where early stopping stands after a history: ``best`` (the monitored value of ``best_epoch``,
    1-based; None before any epoch), ``wait`` (epochs since the last improvement) and
    ``stopped_epoch`` (1-based, the epoch after which training stops; None: it goes on)."""

    best: float | None
    best_epoch: int | None
    wait: int
    stopped_epoch: int | None

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None


def patience(history: Sequence[dict], metric: str, mode: str, patience: int, min_delta: float = 0.0) -> Patience:
    """Replays Keras ``EarlyStopping.on_epoch_end`` over ``history`` (epoch records with ``metric``).

    Args:
      metric: the monitored key of each record, e.g. ``"val_acc"`` (%) or ``"val_loss"``.
      mode: ``"max"`` or ``"min"``.
      patience: epochs without improvement after which training stops (>= 0).
      min_delta: the smallest change that counts as an improvement (>= 0, in the metric's unit).

    Raises:
      ValueError: an unknown mode, a negative patience or min_delta, or a record without ``metric``.
    """
    if mode not in ("max", "min") or patience < 0 or min_delta < 0:
        raise ValueError(f"early stopping needs mode max or min, patience >= 0 and min_delta >= 0; got "
                         f"{mode!r}, {patience}, {min_delta}")
    best, best_epoch, wait = (-math.inf if mode == "max" else math.inf), None, 0
    for index, row in enumerate(history):
        if metric not in row:
            raise ValueError(f"early stopping monitors {metric}, which epoch {row.get('epoch')} did not record")
        value = row[metric]
        wait += 1
        if (value - min_delta > best) if mode == "max" else (value + min_delta < best):
            best, best_epoch, wait = value, row["epoch"], 0
            continue
        if wait >= patience and index > 0:
            return Patience(best, best_epoch, wait, row["epoch"])
    return Patience(None if best_epoch is None else best, best_epoch, wait, None)


def decide(config: Config, history: Sequence[dict]) -> Patience:
    """``patience`` of a member's history with its config's ``--early-stop`` (patience),
    ``--early-stop-min-delta`` and its best metric and mode (``--best-metric``, ``--best-mode``)."""
    return patience(history, best_metric(config), config.checkpoint.best_mode, config.early_stop,
                    config.early_stop_min_delta)


@dataclasses.dataclass
class Stops:
    """Which members of a run have stopped early, and their held train states.

    ``stopped[k]``: member k trains no more; ``held``: the stacked train state whose stopped members'
    slices are what they were after their last epoch (None while no member of a multi-member run
    has stopped). Built from the members' histories, so a resumed run knows who stopped.
    """

    configs: list[Config]
    stopped: list[bool]
    held: object = None

    @classmethod
    def start(cls, configs: Sequence[Config], histories: Sequence[Sequence[dict]], state) -> "Stops":
        """The stops of a run about to train (fresh: none; resumed: those its histories decide)."""
        stopped = [bool(c.early_stop and h and decide(c, h).stopped) for c, h in zip(configs, histories)]
        return cls(list(configs), stopped, copy_buffers(state) if any(stopped) and not all(stopped) else None)

    @property
    def on(self) -> bool:
        return bool(self.configs[0].early_stop)

    @property
    def active(self) -> list[bool]:
        return [not s for s in self.stopped]

    def hold(self, state):
        """``state`` with each stopped member's slice replaced by its held one (a multi-member state)."""
        return state if self.held is None else _select(self.stopped, self.held, state)

    def after_epoch(self, epoch: int, histories: Sequence[Sequence[dict]], state) -> tuple[list[bool], list[int]]:
        """Decides after (0-based) ``epoch`` from the histories (with its records): returns which
        active members improved (Keras: by more than min_delta; they are the only epochs ranked for
        the best checkpoint) and the members that stop now, whose slices of ``state`` are held."""
        improved = [False] * len(self.configs)
        newly = []
        for k, (c, h) in enumerate(zip(self.configs, histories)):
            if self.stopped[k]:
                continue
            p = decide(c, h)
            improved[k] = p.best_epoch == epoch + 1
            if p.stopped:
                newly.append(k)
        if newly and len(self.configs) > 1:
            fresh = [k in newly for k in range(len(self.configs))]
            self.held = copy_buffers(state) if self.held is None else _select(fresh, state, self.held)
        self.stopped = [s or k in newly for k, s in enumerate(self.stopped)]
        return improved, newly


def _select(mask: Sequence[bool], a, b):
    """The stacked train state ``b`` with member k's ``HELD_FIELDS`` taken from ``a`` where ``mask[k]``."""
    mask = jnp.asarray(np.asarray(mask, bool))

    def where(x, y):
        return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y)
    return b.replace(**{f: jax.tree.map(where, getattr(a, f), getattr(b, f)) for f in HELD_FIELDS})


def early_stops(run, stops: Stops, epoch: int, histories: list[list[dict]], state) -> list[bool]:
    """``--early-stop``'s decisions after ``epoch`` (``Stops.after_epoch``), the stops
    printed; returns which members improved (all members without ``--early-stop``)."""
    if not stops.on:
        return [True] * run.n
    improved, newly = stops.after_epoch(epoch, histories, state)
    for k in newly:
        c, best = run.configs[k], decide(run.configs[k], histories[k])
        run.print_fn(f"{run.labels[k]}stopped early after epoch {epoch + 1}: {best_metric(c)} did not improve "
                     f"by more than {c.early_stop_min_delta:g} in {c.early_stop} epochs (best {best.best:.4f} "
                     f"at epoch {best.best_epoch})")
    return improved


def restore_best(run, state, bests: list[dict]):
    """Each member's best checkpoint's train state, stacked like ``state``, announced."""
    members = []
    for k, c in enumerate(run.checkpoints):
        members.append(c.restore(c.best(), run.member(state, k))[0])
        run.print_fn(f"{run.labels[k]}restored the best checkpoint, epoch {bests[k]['epoch']} "
                     f"({best_metric(run.configs[k])} {bests[k][best_metric(run.configs[k])]:.4f}), "
                     "for the final evaluation")
    return run.members.stack(members)
