"""SGD, Adam and AdamW with PyTorch's update rules, built from optax.

Each builder returns an ``optax.GradientTransformation`` whose numeric
hyperparameters may be floats or schedules (functions of the 0-based step);
``make_optimizer`` wraps them with ``optax.inject_hyperparams`` so that a
one-cycle policy can drive both the learning rate and the momentum (beta1),
and the current values can be read from ``opt_state.hyperparams``. The
learning rate is ``peak * shape(step)``: the peak (``optim.lr``, or
``schedule.max_lr`` for one-cycle) and the weight decay are arrays of the
optimizer state, not constants of the program, so replicas of one vmapped
program (``tinyjax.train.replicas``) can train at different values.

Weight decay: *coupled* L2 adds ``wd * param`` to the gradient before the
moment estimates (``torch.optim.SGD`` and ``torch.optim.Adam``'s
``weight_decay``); *decoupled* decay shrinks parameters by ``lr * wd * param``
beside the Adam step (``torch.optim.AdamW``; Loshchilov and Hutter,
arXiv:1711.05101).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from tinyjax.config import OptimConfig, ScheduleConfig
from tinyjax.optim.schedules import Schedule, cosine, onecycle, piecewise_constant


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


def norm_biases(params) -> dict:
    """A tree like ``params`` of bools: True on the normalisation shifts, the ``bias`` of every module
    without a ``kernel`` (flax's ``BatchNorm``, ``LayerNorm``, ``GroupNorm``), False elsewhere (conv and
    dense biases sit beside their kernel)."""
    def mark(tree):
        return {k: (mark(v) if isinstance(v, dict) else (k == "bias" and "kernel" not in tree))
                for k, v in tree.items()}
    return mark(dict(params))


def make_optimizer(optim: OptimConfig, schedule: ScheduleConfig, total_steps: int,
                   steps_per_epoch: int | None = None, frozen: Callable[[tuple[str, ...]], bool] | None = None
                   ) -> tuple[optax.GradientTransformation, Schedule]:
    """The optimizer of a config, and its learning-rate schedule.

    With ``schedule.name == "onecycle"`` the lr follows ``onecycle(...)`` and,
    when ``cycle_momentum``, its momentum schedule replaces ``optim.momentum``
    (SGD) or beta1 (Adam, AdamW), exactly as ``OneCycleLR`` overwrites the
    optimizer's values; ``optim.lr`` is then unused, as in PyTorch.
    ``"constant"`` keeps ``optim.lr`` and ``optim.momentum``; ``"piecewise"``
    and ``"cosine"`` start from ``optim.lr`` (``piecewise_constant``, ``cosine``).

    Args:
      total_steps: optimizer steps of the whole run (epochs * steps per epoch).
      steps_per_epoch: needed by ``"piecewise"`` (milestones are in epochs).
      frozen: ``frozen(path) -> bool`` on a parameter's path (a tuple of
        names, e.g. ``("whiten", "kernel")``): those parameters get no update
        at all (no gradient step, no weight decay), as ``requires_grad=False``
        in PyTorch; None: all are trained.

    With ``optim.bn_bias_lr_scale = K != 1`` (SGD), the gradients of the
    normalisation shifts (``norm_biases``) are multiplied by K first; with
    coupled decay and a momentum buffer of raw gradients that is PyTorch's
    param group ``lr = K * lr, weight_decay = wd / K``, the form of
    airbench94's 64x lr on BatchNorm biases (Jordan, arXiv:2404.00498).

    Returns:
      ``(tx, lr_fn)`` where ``lr_fn(step)`` is the lr of the 0-based step,
      ``peak * shape(step)`` in float32 as the update computes it (the state's
      ``hyperparams`` hold ``peak``, and ``shape`` of the last update).

    Raises:
      ValueError: unknown optimizer or schedule kind, invalid one-cycle or
        piecewise values, or ``"piecewise"`` without ``steps_per_epoch``.
    """
    if schedule.name == "onecycle":  # Every value of OneCycleLR is proportional to max_lr.
        policy = onecycle(total_steps, 1.0, schedule.pct_start, schedule.anneal_strategy,
                          schedule.cycle_momentum, schedule.base_momentum, schedule.max_momentum,
                          schedule.div_factor, schedule.final_div_factor, schedule.three_phase)
        peak, shape, momentum = schedule.max_lr, policy.learning_rate, policy.momentum or optim.momentum
    elif schedule.name == "constant":
        peak, shape, momentum = optim.lr, (lambda step: 1.0), optim.momentum
    elif schedule.name == "piecewise":
        if steps_per_epoch is None:
            raise ValueError("the piecewise schedule needs steps_per_epoch (its milestones are epochs).")
        peak, shape = optim.lr, piecewise_constant(1.0, schedule.milestones, schedule.gamma, steps_per_epoch)
        momentum = optim.momentum
    elif schedule.name == "cosine":
        peak, shape = optim.lr, cosine(1.0, total_steps, schedule.min_lr / optim.lr)
        momentum = optim.momentum
    else:
        raise ValueError(f"unknown schedule {schedule.name!r}; use onecycle, constant, piecewise or cosine.")
    if optim.name == "sgd":
        def build_sgd(peak, shape, momentum, nesterov, weight_decay):
            return sgd(peak * shape, momentum, nesterov, weight_decay)
        tx = optax.inject_hyperparams(build_sgd, static_args="nesterov")(
            peak=peak, shape=shape, momentum=momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay)
    elif optim.name in ("adam", "adamw"):
        builder = adam if optim.name == "adam" else adamw

        def build_adam(peak, shape, b1, b2, eps, weight_decay):
            return builder(peak * shape, b1, b2, eps, weight_decay)
        tx = optax.inject_hyperparams(build_adam)(peak=peak, shape=shape, b1=momentum, b2=optim.beta2,
                                                  eps=optim.eps, weight_decay=optim.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optim.name!r}; use sgd, adam or adamw.")
    if frozen is not None:
        def labels(params):
            return jax.tree_util.tree_map_with_path(
                lambda path, _: "frozen" if frozen(tuple(getattr(k, "key", str(k)) for k in path)) else "train",
                params)
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    if optim.bn_bias_lr_scale != 1:  # Only then: the state keeps the structure that older checkpoints have.
        tx = optax.chain(optax.masked(optax.scale(optim.bn_bias_lr_scale), norm_biases), tx)
    return tx, lambda step: jnp.float32(peak) * shape(step)
