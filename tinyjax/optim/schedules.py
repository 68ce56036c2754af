"""Learning-rate and momentum schedules, functions of the optimizer step count.

All schedules take the 0-based optimizer step (``count`` in optax: the
update number k uses ``schedule(k)``), which is what PyTorch's per-batch
schedulers give the k-th ``optimizer.step()``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


class OneCycle(NamedTuple):
    """A one-cycle policy: the learning rate and, when cycled, the momentum
    (SGD's momentum or Adam's beta1); ``momentum`` is None when not cycled."""

    learning_rate: Schedule
    momentum: Schedule | None


def _anneal(start: float, end: float, pct: jnp.ndarray, strategy: str) -> jnp.ndarray:
    if strategy == "cos":  # torch.optim.lr_scheduler.OneCycleLR._annealing_cos
        return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1.0)
    # _annealing_linear, (end - start) * pct + start, written so that pct = 1
    # gives `end` exactly in float32.
    return start * (1.0 - pct) + end * pct


def onecycle(total_steps: int, max_lr: float, pct_start: float = 0.3,
             anneal_strategy: str = "cos", cycle_momentum: bool = True,
             base_momentum: float = 0.85, max_momentum: float = 0.95,
             div_factor: float = 25.0, final_div_factor: float = 1e4,
             three_phase: bool = False) -> OneCycle:
    """The one-cycle policy with the exact semantics of PyTorch's ``OneCycleLR``.

    Source: ``torch.optim.lr_scheduler.OneCycleLR`` (PyTorch 2.x), after Smith
    and Topin, "Super-Convergence" (arXiv:1708.07120). Defaults are PyTorch's.
    initial lr = ``max_lr / div_factor``, minimum lr = ``initial / final_div_factor``.
    Phases end at the float steps ``pct_start*T - 1`` and ``T - 1`` (three-phase:
    ``pct_start*T - 1``, ``2*pct_start*T - 2``, ``T - 1``); within a phase the
    value goes from its start to its end with ``pct = (step - phase_start) /
    (phase_end - phase_start)``, cosine ``end + (start-end)/2*(cos(pi*pct)+1)``
    or linear. Momentum moves opposite to the lr: ``max_momentum`` ->
    ``base_momentum`` -> ``max_momentum`` (three-phase: stays at max in phase 3).
    optax's ``cosine_onecycle_schedule`` differs at the boundaries and cycles
    no momentum.

    Args:
      total_steps: T, optimizer steps in the whole run (epochs * steps per epoch).
      max_lr: peak learning rate.
      pct_start: fraction of T spent increasing the lr, in (0, 1).
      anneal_strategy: ``"cos"`` or ``"linear"``.

    Returns:
      ``OneCycle(learning_rate, momentum)``: jittable functions of the step
      (int or int32 array). Steps past T are clamped to T (PyTorch raises).

    Raises:
      ValueError: T < 2 or phase lengths of zero, pct_start outside (0, 1), an
        unknown anneal strategy, non-positive lr or div factors.
    """
    if total_steps < 2:
        raise ValueError(f"one-cycle needs at least 2 total steps, got {total_steps}.")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}.")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}.")
    if max_lr <= 0 or div_factor <= 0 or final_div_factor <= 0:
        raise ValueError("max_lr, div_factor and final_div_factor must be positive.")
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    # (end_step, start_lr, end_lr, start_momentum, end_momentum), as in PyTorch.
    if three_phase:
        phases = [
            (float(pct_start * total_steps) - 1, initial_lr, max_lr, max_momentum, base_momentum),
            (float(2 * pct_start * total_steps) - 2, max_lr, initial_lr, base_momentum, max_momentum),
            (total_steps - 1, initial_lr, min_lr, max_momentum, max_momentum),
        ]
    else:
        phases = [
            (float(pct_start * total_steps) - 1, initial_lr, max_lr, max_momentum, base_momentum),
            (total_steps - 1, max_lr, min_lr, base_momentum, max_momentum),
        ]
    starts = [0.0] + [p[0] for p in phases[:-1]]
    for start, phase in zip(starts, phases):
        if phase[0] <= start:
            raise ValueError(f"one-cycle phase of zero length (total_steps={total_steps}, "
                             f"pct_start={pct_start}); use more steps or another pct_start.")

    def schedule(step: jnp.ndarray, column: int) -> jnp.ndarray:
        step = jnp.clip(jnp.asarray(step, jnp.float32), 0, total_steps)
        value = jnp.zeros((), jnp.float32)
        # PyTorch takes the first phase with step <= end_step, else the last.
        for i in reversed(range(len(phases))):
            end, start = phases[i][0], starts[i]
            pct = (step - start) / (end - start)
            here = _anneal(phases[i][column], phases[i][column + 1], pct, anneal_strategy)
            value = here if i == len(phases) - 1 else jnp.where(step <= end, here, value)
        return value

    return OneCycle(learning_rate=lambda step: schedule(step, 1),
                    momentum=(lambda step: schedule(step, 3)) if cycle_momentum else None)
