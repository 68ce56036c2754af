"""Optimizer trajectories against PyTorch (float64) on a quadratic, and make_optimizer's other promises.

loss(p) = sum(0.5*a*p^2 + b*p), 12 steps in epochs of 3. The cases (in tinyjax's config fields) and the
parameters torch.optim.SGD / Adam / AdamW reached under OneCycleLR, MultiStepLR, CosineAnnealingLR or a
constant lr are read from tests/reference/torch_optimizers.json, which
``python tests/reference/torch_optimizers.py`` writes (its docstring says how each case maps to torch; the
JSON names the torch version, 2.13.0). torch is not needed to run this test.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tinyjax.config import OptimConfig, ScheduleConfig
from tinyjax.optim import make_optimizer

with open(os.path.join(os.path.dirname(__file__), "reference", "torch_optimizers.json")) as f:
    TORCH = json.load(f)
A, B = jnp.array(TORCH["a"]), jnp.array(TORCH["b"])
ONECYCLE = ScheduleConfig(name="onecycle", max_lr=0.1, pct_start=0.25, div_factor=10, final_div_factor=100)
CONSTANT = ScheduleConfig(name="constant")
PIECEWISE = ScheduleConfig(name="piecewise", milestones=(1, 3), gamma=0.5)


def config(fields, kind):
    """An OptimConfig or ScheduleConfig from the JSON's fields (lists become the tuples tinyjax keeps)."""
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


CASES = [(c["name"], config(c["optim"], OptimConfig), config(c["schedule"], ScheduleConfig), c["params"])
         for c in TORCH["cases"]]


def test_the_reference_covers_every_optimizer_and_schedule():
    assert {o.name for _, o, _, _ in CASES} == {"sgd", "adam", "adamw"}
    assert {s.name for _, _, s, _ in CASES} == {"onecycle", "constant", "piecewise", "cosine"}
    assert any(o.nesterov for _, o, _, _ in CASES) and any(o.weight_decay for _, o, _, _ in CASES)


@pytest.mark.parametrize("name,optim,schedule,expected", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch(name, optim, schedule, expected):
    tx, _ = make_optimizer(optim, schedule, total_steps=TORCH["steps"], steps_per_epoch=TORCH["steps_per_epoch"])
    params = jnp.array(TORCH["p0"])
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(lambda p: jnp.sum(0.5 * A * p ** 2 + B * p))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(TORCH["steps"]):
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
