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


def piecewise_constant(base_lr: float, milestones: tuple[int, ...], gamma: float,
                       steps_per_epoch: int) -> Schedule:
    """PyTorch's ``MultiStepLR(milestones, gamma)`` stepped once per epoch, as a function of the step.

    Source: ``torch.optim.lr_scheduler.MultiStepLR`` (PyTorch 2.x): during
    (0-based) epoch ``e`` the lr is ``base_lr * gamma ** k`` with ``k`` the
    number of milestones ``<= e``. Epoch ``e`` holds the steps
    ``e * steps_per_epoch .. (e + 1) * steps_per_epoch - 1``, so the lr drops
    at step ``milestone * steps_per_epoch`` exactly, the first step of the
    milestone's epoch. A milestone listed twice decays twice, as in PyTorch.

    Args:
      base_lr: the optimizer's lr before the first milestone.
      milestones: epochs (0-based epoch index at which the decay starts, i.e.
        PyTorch's milestone numbers), non-decreasing.
      gamma: multiplicative decay at each milestone.
      steps_per_epoch: optimizer steps per epoch (``ceil(N / batch)``).

    Returns:
      A jittable ``lr(step)`` of the 0-based step (float32).

    Raises:
      ValueError: ``base_lr`` or ``gamma`` not positive, a negative or
        decreasing milestone, or ``steps_per_epoch < 1``.
    """
    if base_lr <= 0 or gamma <= 0:
        raise ValueError(f"piecewise-constant decay needs lr > 0 and gamma > 0, got {base_lr} and {gamma}.")
    if any(m < 0 for m in milestones) or list(milestones) != sorted(milestones):
        raise ValueError(f"milestones must be non-negative epochs in increasing order, got {list(milestones)}.")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}.")
    boundaries = jnp.asarray([m * steps_per_epoch for m in milestones], jnp.int32).reshape(-1)

    def lr(step: jnp.ndarray) -> jnp.ndarray:
        decays = jnp.sum(jnp.asarray(step, jnp.int32) >= boundaries)
        return jnp.asarray(base_lr, jnp.float32) * jnp.asarray(gamma, jnp.float32) ** decays.astype(jnp.float32)

    return lr


def cosine(base_lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """Cosine decay from ``base_lr`` to ``min_lr`` over the run, stepped per optimizer step.

    Source: the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``
    (Loshchilov and Hutter, SGDR, arXiv:1608.03983) with ``T_max =
    total_steps`` and ``eta_min = min_lr``, stepped once per batch:
    ``lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T_max)) / 2``.
    Steps past ``T_max`` stay at ``min_lr``.

    Args:
      base_lr: the lr at step 0.
      total_steps: ``T_max``, optimizer steps of the whole run (epochs * steps per epoch).
      min_lr: the lr at step ``T_max`` and after.

    Returns:
      A jittable ``lr(step)`` of the 0-based step (float32).

    Raises:
      ValueError: ``total_steps < 1``, ``base_lr <= 0`` or ``min_lr`` outside ``[0, base_lr]``.
    """
    if total_steps < 1 or base_lr <= 0 or not 0 <= min_lr <= base_lr:
        raise ValueError(f"cosine decay needs total_steps >= 1 and 0 <= min_lr <= lr, got {total_steps}, "
                         f"{min_lr}, {base_lr}.")

    def lr(step: jnp.ndarray) -> jnp.ndarray:
        t = jnp.clip(jnp.asarray(step, jnp.float32), 0, total_steps)
        return min_lr + (base_lr - min_lr) * (1.0 + jnp.cos(jnp.pi * t / total_steps)) / 2.0

    return lr
