"""Optimizer trajectories against PyTorch 2.13 (float64) on a quadratic.

loss(p) = sum(0.5*a*p^2 + b*p), a = [1, 2, 0.5, 3], b = [0.3, -0.2, 0.1, -0.4],
p0 = [0.5, -1, 2, 0.25]; 12 steps; "onecycle" is OneCycleLR(max_lr=0.1,
total_steps=12, pct_start=0.25, div_factor=10, final_div_factor=100), which
overwrites lr and cycles momentum / beta1 between 0.95 and 0.85; "piecewise" is
MultiStepLR(milestones=[1, 3], gamma=0.5) stepped every 3 optimizer steps (an
epoch of 3 batches); "cosine" is CosineAnnealingLR(T_max=12, eta_min=0.01)
stepped per batch. The expected parameters are what torch.optim.SGD / Adam /
AdamW reached.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tinyjax.config import OptimConfig, ScheduleConfig
from tinyjax.optim import make_optimizer

A = jnp.array([1.0, 2.0, 0.5, 3.0])
B = jnp.array([0.3, -0.2, 0.1, -0.4])
ONECYCLE = ScheduleConfig(name="onecycle", max_lr=0.1, pct_start=0.25, div_factor=10, final_div_factor=100)
CONSTANT = ScheduleConfig(name="constant")
PIECEWISE = ScheduleConfig(name="piecewise", milestones=(1, 3), gamma=0.5)
COSINE = ScheduleConfig(name="cosine", min_lr=0.01)

CASES = [
    ("sgd_onecycle_wd", OptimConfig(name="sgd", lr=0.001, weight_decay=0.01), ONECYCLE,
     [-0.554298510831, 0.717631474599, 0.133171872347, 0.0972045674823]),
    ("sgd_nesterov_onecycle", OptimConfig(name="sgd", lr=0.001, momentum=0.9, nesterov=True), ONECYCLE,
     [-0.516864200108, 0.465838089678, 0.0656938496354, 0.120570486596]),
    ("sgd_const_momentum_wd", OptimConfig(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3), CONSTANT,
     [-0.659743254088, 0.539232792425, -0.227831204095, 0.14056422759]),
    ("adam_onecycle_wd", OptimConfig(name="adam", lr=0.01, momentum=0.9, weight_decay=0.05), ONECYCLE,
     [0.00969590565024, -0.50039482042, 1.49115718409, 0.095257854905]),
    ("adamw_onecycle_wd", OptimConfig(name="adamw", lr=0.02, momentum=0.9, weight_decay=0.05), ONECYCLE,
     [0.0014521997762, -0.479153437619, 1.44179197587, 0.101206893096]),
    ("adam_const", OptimConfig(name="adam", lr=0.01, momentum=0.8, beta2=0.99, eps=1e-6), CONSTANT,
     [0.381421542523, -0.881011299351, 1.88049126675, 0.146047178276]),
    ("sgd_piecewise_momentum_wd", OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4), PIECEWISE,
     [-0.5475842738486805, 0.39416420813432756, -0.023018796566344663, 0.14562972053598403]),
    ("sgd_cosine_nesterov_wd", OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
     COSINE, [-0.5101679821767299, 0.2544855150843105, -0.14013911162948145, 0.13810845379109424]),
]


@pytest.mark.parametrize("name,optim,schedule,expected", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch(name, optim, schedule, expected):
    tx, _ = make_optimizer(optim, schedule, total_steps=12, steps_per_epoch=3)
    params = jnp.array([0.5, -1.0, 2.0, 0.25])
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(lambda p: jnp.sum(0.5 * A * p ** 2 + B * p))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(12):
        params, opt_state = step(params, opt_state)
    np.testing.assert_allclose(params, expected, rtol=2e-5, atol=2e-6)


def test_onecycle_drives_lr_and_momentum_in_state():
    tx, lr_fn = make_optimizer(OptimConfig(name="sgd"), dataclasses.replace(ONECYCLE), total_steps=12)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.ones(2), state, jnp.zeros(2))
    np.testing.assert_allclose(state.hyperparams["peak"] * state.hyperparams["shape"], lr_fn(0))
    np.testing.assert_allclose(state.hyperparams["momentum"], 0.95)


def test_unknown_optimizer_raises():
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        make_optimizer(OptimConfig(name="lion"), ONECYCLE, total_steps=12)


def test_frozen_parameters_get_no_update_not_even_weight_decay():
    optim = OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.1)
    tx, _ = make_optimizer(optim, CONSTANT, total_steps=12, frozen=lambda path: path == ("whiten", "kernel"))
    params = {"whiten": {"kernel": jnp.ones(3), "bias": jnp.ones(3)}, "fc": {"kernel": jnp.ones(2)}}
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["whiten"]["kernel"], jnp.ones(3))
    assert float(params["whiten"]["bias"][0]) < 1 and float(params["fc"]["kernel"][0]) < 1


def test_piecewise_needs_steps_per_epoch():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_optimizer(OptimConfig(name="sgd", lr=0.1), PIECEWISE, total_steps=12)
