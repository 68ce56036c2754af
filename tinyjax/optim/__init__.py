"""Schedules (one-cycle, piecewise-constant and cosine, with PyTorch's semantics) and PyTorch-rule optimizers on optax."""

from tinyjax.optim.optimizers import adam, adamw, make_optimizer, sgd
from tinyjax.optim.schedules import OneCycle, cosine, onecycle, piecewise_constant

__all__ = ["adam", "adamw", "make_optimizer", "sgd", "OneCycle", "cosine", "onecycle", "piecewise_constant"]
