"""Learning-rate and momentum schedules against torch.optim.lr_scheduler.

The expected values (OneCycleLR, MultiStepLR, CosineAnnealingLR: lr and momentum read before the k-th
optimizer step) are read from tests/reference/torch_schedules.json, which
``python tests/reference/torch_schedules.py`` writes (its docstring says how each scheduler is stepped; the
JSON names the torch version, 2.13.0). torch is not needed to run this test.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax.optim import onecycle

with open(os.path.join(os.path.dirname(__file__), "reference", "torch_schedules.json")) as f:
    TORCH = json.load(f)


@pytest.mark.parametrize("case", TORCH["onecycle"], ids=lambda c: f"{c['kwargs']['total_steps']}_steps")
def test_matches_pytorch_onecycle(case):
    policy = onecycle(**case["kwargs"])
    steps = jnp.array(case["steps"])
    lr = jax.jit(jax.vmap(policy.learning_rate))(steps)
    momentum = jax.jit(jax.vmap(policy.momentum))(steps)
    np.testing.assert_allclose(lr, case["lr"], rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(momentum, case["momentum"], rtol=2e-6)


def test_the_onecycle_reference_covers_both_strategies_and_phases():
    kinds = {(c["kwargs"]["anneal_strategy"], c["kwargs"]["three_phase"]) for c in TORCH["onecycle"]}
    assert kinds == {("cos", False), ("linear", False), ("cos", True), ("linear", True)}


def test_momentum_off_when_not_cycled():
    assert onecycle(100, 0.1, cycle_momentum=False).momentum is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(total_steps=1, max_lr=0.1), "at least 2 total steps"),
    (dict(total_steps=100, max_lr=0.1, pct_start=1.0), "pct_start"),
    (dict(total_steps=100, max_lr=0.1, anneal_strategy="exp"), "anneal_strategy"),
    (dict(total_steps=3, max_lr=0.1, pct_start=0.2), "zero length"),
    (dict(total_steps=100, max_lr=0.0), "positive"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        onecycle(**kwargs)


def test_piecewise_constant_matches_pytorch_multisteplr():
    from tinyjax.optim import piecewise_constant

    ref = TORCH["piecewise"]  # Milestones [3, 5, 5]: a milestone listed twice decays twice.
    lr = piecewise_constant(ref["base_lr"], tuple(ref["milestones"]), ref["gamma"], ref["steps_per_epoch"])
    values = jax.jit(jax.vmap(lr))(jnp.array(ref["steps"]))
    np.testing.assert_allclose(values, ref["lr"], rtol=1e-6)
    assert sorted(set(ref["lr"]), reverse=True) == pytest.approx([0.1, 0.02, 0.0008])  # Three levels checked.
    # The drop lands on the first step of the milestone's epoch, exactly.
    assert float(lr(11)) == pytest.approx(0.1) and float(lr(12)) == pytest.approx(0.02)


def test_cosine_matches_pytorch_cosineannealinglr():
    from tinyjax.optim import cosine

    ref = TORCH["cosine"]
    lr = cosine(ref["base_lr"], ref["t_max"], min_lr=ref["eta_min"])
    np.testing.assert_allclose(jax.jit(jax.vmap(lr))(jnp.array(ref["steps"])), ref["lr"], rtol=2e-6)
    assert float(lr(50)) == pytest.approx(1e-4)  # Past T_max: stays at eta_min.


@pytest.mark.parametrize("args,match", [
    ((0.1, (5, 3), 0.1, 10), "increasing"), ((0.1, (-1,), 0.1, 10), "non-negative"),
    ((0.1, (3,), 0.0, 10), "gamma"), ((0.1, (3,), 0.1, 0), "steps_per_epoch"),
])
def test_piecewise_bad_arguments_raise(args, match):
    from tinyjax.optim import piecewise_constant

    with pytest.raises(ValueError, match=match):
        piecewise_constant(*args)
