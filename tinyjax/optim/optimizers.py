"""SGD, Adam and AdamW with PyTorch's update rules, built from optax.

Each builder returns an ``optax.GradientTransformation`` whose numeric
hyperparameters may be floats or schedules (functions of the 0-based step);
``make_optimizer`` wraps them with ``optax.inject_hyperparams`` so that a
one-cycle policy can drive both the learning rate and the momentum (beta1),
and the current values can be read from ``opt_state.hyperparams``.

Weight decay: *coupled* L2 adds ``wd * param`` to the gradient before the
moment estimates (``torch.optim.SGD`` and ``torch.optim.Adam``'s
``weight_decay``); *decoupled* decay shrinks parameters by ``lr * wd * param``
beside the Adam step (``torch.optim.AdamW``; Loshchilov and Hutter,
arXiv:1711.05101).
"""

from __future__ import annotations

import optax

from tinyjax.config import OptimConfig, ScheduleConfig
from tinyjax.optim.schedules import Schedule, onecycle


def sgd(learning_rate, momentum=0.0, nesterov: bool = False, weight_decay=0.0) -> optax.GradientTransformation:
    """``torch.optim.SGD`` (dampening 0): ``g += wd*p; buf = momentum*buf + g;
    p -= lr * (g + momentum*buf if nesterov else buf)``. The momentum buffer
    holds raw gradients, so a changing lr does not rescale it (as in PyTorch)."""
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.trace(decay=momentum, nesterov=nesterov),
                       optax.scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0) -> optax.GradientTransformation:
    """``torch.optim.Adam`` with coupled L2 weight decay (``g += wd*p`` before
    the moments); bias correction uses the current beta1, as PyTorch does."""
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                       optax.scale_by_learning_rate(learning_rate))


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2) -> optax.GradientTransformation:
    """``torch.optim.AdamW``: decoupled decay, ``p -= lr*(adam_step + wd*p)``."""
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                       optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(learning_rate))


def make_optimizer(optim: OptimConfig, schedule: ScheduleConfig,
                   total_steps: int) -> tuple[optax.GradientTransformation, Schedule]:
    """The optimizer of a config, and its learning-rate schedule.

    With ``schedule.name == "onecycle"`` the lr follows ``onecycle(...)`` and,
    when ``cycle_momentum``, its momentum schedule replaces ``optim.momentum``
    (SGD) or beta1 (Adam, AdamW), exactly as ``OneCycleLR`` overwrites the
    optimizer's values; ``optim.lr`` is then unused, as in PyTorch.
    ``"constant"`` keeps ``optim.lr`` and ``optim.momentum``.

    Args:
      total_steps: optimizer steps of the whole run (epochs * steps per epoch).

    Returns:
      ``(tx, lr_fn)`` where ``lr_fn(step)`` is the lr of the 0-based step.

    Raises:
      ValueError: unknown optimizer or schedule kind, or invalid one-cycle values.
    """
    if schedule.name == "onecycle":
        policy = onecycle(total_steps, schedule.max_lr, schedule.pct_start, schedule.anneal_strategy,
                          schedule.cycle_momentum, schedule.base_momentum, schedule.max_momentum,
                          schedule.div_factor, schedule.final_div_factor, schedule.three_phase)
        lr, momentum = policy.learning_rate, policy.momentum or optim.momentum
    elif schedule.name == "constant":
        lr, momentum = (lambda step: optim.lr), optim.momentum
    else:
        raise ValueError(f"unknown schedule {schedule.name!r}; use onecycle or constant.")
    if optim.name == "sgd":
        tx = optax.inject_hyperparams(sgd, static_args="nesterov")(
            learning_rate=lr, momentum=momentum, nesterov=optim.nesterov,
            weight_decay=optim.weight_decay)
    elif optim.name in ("adam", "adamw"):
        tx = optax.inject_hyperparams(adam if optim.name == "adam" else adamw)(
            learning_rate=lr, b1=momentum, b2=optim.beta2, eps=optim.eps,
            weight_decay=optim.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optim.name!r}; use sgd, adam or adamw.")
    return tx, lr
