"""How ``--find-lr`` reads its curves: each rate's final loss, the plateau and the suggested peak.

The rule (``tinyjax.train.lr_find``'s docstring gives its sources and the rules tried first): a
replica's final loss is its mean training loss over the last ``TAIL`` of the steps, infinite where a
step was not finite; the plateau is the rates whose final loss is within ``TOLERANCE`` of the lowest;
the suggested one-cycle peak is the plateau's geometric middle.
"""

from __future__ import annotations

import math

import numpy as np

TAIL = 0.2  # The share of the last steps whose mean training loss is a replica's final loss.
TOLERANCE = 0.05  # A final loss at most 5% above the lowest: on the plateau.


def final_losses(losses: np.ndarray) -> np.ndarray:
    """``float64 [K]`` from ``losses`` (``float32 [steps, K]``): each replica's mean loss over the last
    ``TAIL`` of the steps; inf for a replica that diverged (a non-finite step anywhere)."""
    tail = losses[-max(1, int(round(TAIL * len(losses)))):]
    finals = tail.mean(0).astype(np.float64)
    return np.where(np.isfinite(losses).all(0), finals, np.inf)


def suggest(flat: tuple[float, float] | None) -> float | None:
    """The suggested one-cycle peak (see the module docstring): the geometric middle of the plateau
    ``flat`` (``flat_range``), to 3 significant digits; None when every replica diverged (no plateau)."""
    return None if flat is None else float(f"{math.sqrt(flat[0] * flat[1]):.3g}")


def flat_range(lrs, finals: np.ndarray) -> tuple[float, float] | None:
    """``(lowest, highest)`` rate whose final loss (``finals``, ``final_losses``) is at most
    ``(1 + TOLERANCE)`` times the lowest; None when every replica diverged."""
    if not np.isfinite(finals).any():
        return None
    near = [float(lr) for lr, f in zip(lrs, finals) if f <= (1 + TOLERANCE) * finals.min()]
    return min(near), max(near)


def table(lrs, losses: np.ndarray, finals: np.ndarray, flat: tuple[float, float] | None) -> str:
    """Markdown: each rate, its first-step and final loss, and whether it is on the plateau ``flat``."""
    lines = ["| lr | loss at step 1 | final loss (mean of the last 20% of steps) | |", "|---|---|---|---|"]
    for lr, first, final in zip(lrs, losses[0], finals):
        on = flat is not None and flat[0] <= lr <= flat[1]
        lines.append(f"| {lr:.3g} | {first:.4f} | {'diverged' if math.isinf(final) else f'{final:.4f}'} | "
                     f"{'plateau' if on else ''} |")
    return "\n".join(lines)
