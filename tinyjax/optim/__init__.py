"""Schedules (one-cycle with PyTorch's semantics) and PyTorch-rule optimizers on optax."""

from tinyjax.optim.optimizers import adam, adamw, make_optimizer, sgd
from tinyjax.optim.schedules import OneCycle, onecycle

__all__ = ["adam", "adamw", "make_optimizer", "sgd", "OneCycle", "onecycle"]
