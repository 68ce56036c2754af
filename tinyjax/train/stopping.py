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
final ones.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence


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
