"""The decisions of successive halving (``tinyjax.train.halving``), pure: where the rungs are
(``rungs``), how many points go on (``keep``), their order (``order``), and which searches can
rank and prune at all (``check``). Jamieson and Talwalkar 2016 (arXiv:1502.07943); Hyperband, Li
et al. 2018 (arXiv:1603.06560)."""

from __future__ import annotations

import math
from typing import Sequence

from tinyjax.config import Config, ConfigError, best_metric


def rungs(epochs: int, points: int, eta: int) -> list[int]:
    """The epochs (1-based) after which points are ranked and pruned, the last being ``epochs``
    itself: Hyperband's most aggressive bracket for ``points`` and ``R = epochs``, ``R * eta**(i - s)``
    (rounded, i = 0..s) with ``s`` the most prunings that leave a point (``eta**s <= points``) and a
    first rung of one epoch or more; ``[epochs]`` when no pruning fits.

    Raises:
      ValueError: ``eta < 2``.
    """
    if eta < 2:
        raise ValueError(f"successive halving needs ETA >= 2, got {eta}")
    s = 0
    while eta ** (s + 1) <= points and epochs / eta ** (s + 1) >= 1:
        s += 1
    return sorted({max(1, round(epochs / eta ** (s - i))) for i in range(s + 1)})


def keep(alive: int, eta: int) -> int:
    """How many of ``alive`` points go on after a rung: ``alive // eta``, at least one (Hyperband)."""
    return max(1, alive // eta)


def order(values: Sequence[float], mode: str) -> list[int]:
    """Indices of ``values`` best first (``mode`` ``"max"`` or ``"min"``); a non-finite value ranks
    last, and equal values in index order."""
    def key(i):
        finite = math.isfinite(values[i])
        return (not finite, (-values[i] if mode == "max" else values[i]) if finite else 0.0, i)
    return sorted(range(len(values)), key=key)


def check(configs: Sequence[Config], eta: int) -> None:
    """Refuses a search that cannot rank or prune, with one line naming the fix.

    Raises:
      ConfigError: ETA < 2, fewer points than ETA, no validation split, a test-set metric, points of
        different lengths or metrics, ``--early-stop``, ``--save-every 0``, or no rung before the end.
    """
    c, n = configs[0], len(configs)
    metric = best_metric(c)
    if eta < 2:
        raise ConfigError(f"--halving ETA keeps the best 1/ETA of the points at each rung: give an integer >= 2, "
                          f"got {eta}.")
    problems = [
        (n >= eta, f"--halving {eta} needs a grid of at least {eta} points, this one has {n}"),
        (all(x.data.val_split > 0 for x in configs), "--halving ranks the points on a validation split, "
                                                     "never the test set: add --val-split N"),
        (metric.startswith("val_"), f"--halving ranks on --best-metric {metric}, which is not a validation "
                                    "metric: use val_acc or val_loss"),
        (c.checkpoint.best_mode == ("min" if metric.endswith("_loss") else "max"),
         f"--halving ranks on {metric} with --best-mode {c.checkpoint.best_mode}, which would keep the worst "
         f"points: give --best-mode {'min' if metric.endswith('_loss') else 'max'}"),
        (len({(x.epochs, best_metric(x), x.checkpoint.best_mode) for x in configs}) == 1,
         "--halving needs one --epochs, --best-metric and --best-mode for every point (the rungs are "
         "epochs of one length): take them out of --grid"),
        (not any(x.early_stop for x in configs), "--halving and --early-stop both stop points: give one of them"),
        (all(x.checkpoint.save_every for x in configs), "--halving pauses the points at each rung in their "
                                                         "checkpoints: drop --save-every 0"),
        (len(rungs(c.epochs, n, eta)) > 1, f"--halving {eta} with --epochs {c.epochs} has no rung before the "
                                           f"end: give --epochs >= {eta}"),
    ]
    for ok, message in problems:
        if not ok:
            raise ConfigError(message + ".")
