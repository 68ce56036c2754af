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


def test_norm_biases_marks_the_batchnorm_shifts_of_a_real_model():
    from tinyjax import models
    from tinyjax.optim.optimizers import norm_biases

    model = models.create("resnet20")
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    marked = {"/".join(str(getattr(k, "key", k)) for k in path)
              for path, on in jax.tree_util.tree_leaves_with_path(norm_biases(variables["params"])) if on}
    batch_norms = {"/".join(str(getattr(k, "key", k)) for k in path[:-1])
                   for path, _ in jax.tree_util.tree_leaves_with_path(variables["batch_stats"])}
    assert marked == {f"{m}/bias" for m in batch_norms} and "fc/bias" not in marked and len(marked) == 19


def test_the_reference_covers_every_optimizer_and_schedule():
    assert {o.name for _, o, _, _ in CASES} == {"sgd", "adam", "adamw"}
    assert {s.name for _, _, s, _ in CASES} == {"onecycle", "constant", "piecewise", "cosine"}
    assert any(o.nesterov for _, o, _, _ in CASES) and any(o.weight_decay for _, o, _, _ in CASES)


def as_tree(p):
    """The four parameters as a conv kernel and bias and a BatchNorm bias (the reference's param groups)."""
    return {"conv": {"kernel": p[:2], "bias": p[2:3]}, "bn": {"bias": p[3:]}}


def flat(tree):
    return jnp.concatenate([tree["conv"]["kernel"], tree["conv"]["bias"], tree["bn"]["bias"]])


@pytest.mark.parametrize("name,optim,schedule,expected", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch(name, optim, schedule, expected):
    tx, _ = make_optimizer(optim, schedule, total_steps=TORCH["steps"], steps_per_epoch=TORCH["steps_per_epoch"])
    params = as_tree(jnp.array(TORCH["p0"]))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(lambda t: jnp.sum(0.5 * A * flat(t) ** 2 + B * flat(t)))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(TORCH["steps"]):
        params, opt_state = step(params, opt_state)
    np.testing.assert_allclose(flat(params), expected, rtol=2e-5, atol=2e-6)


def test_bn_bias_lr_scale_moves_only_the_normalisation_shifts():
    scaled = [c for c in CASES if c[1].bn_bias_lr_scale != 1]
    assert scaled and all(o.name == "sgd" for _, o, _, _ in scaled)
    unscaled = dataclasses.replace(scaled[0][1], bn_bias_lr_scale=1.0)
    tx, _ = make_optimizer(unscaled, scaled[0][2], total_steps=TORCH["steps"], steps_per_epoch=3)
    params = as_tree(jnp.array(TORCH["p0"]))
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    tx, _ = make_optimizer(scaled[0][1], scaled[0][2], total_steps=TORCH["steps"], steps_per_epoch=3)
    scaled_updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    np.testing.assert_array_equal(scaled_updates["conv"]["bias"], updates["conv"]["bias"])  # Beside a kernel.
    np.testing.assert_array_equal(scaled_updates["conv"]["kernel"], updates["conv"]["kernel"])
    assert abs(float(scaled_updates["bn"]["bias"][0])) > 3 * abs(float(updates["bn"]["bias"][0]))


def test_onecycle_drives_lr_and_momentum_in_state():
    tx, lr_fn = make_optimizer(OptimConfig(name="sgd"), dataclasses.replace(ONECYCLE), total_steps=12)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.ones(2), state, jnp.zeros(2))
    np.testing.assert_allclose(state.hyperparams["peak"] * state.hyperparams["shape"], lr_fn(0))
    np.testing.assert_allclose(state.hyperparams["momentum"], 0.95)


def test_unknown_optimizer_raises():
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        make_optimizer(OptimConfig(name="lion"), ONECYCLE, total_steps=12)


@pytest.mark.parametrize("bn_bias_lr_scale", [1.0, 64.0])
def test_frozen_parameters_get_no_update_not_even_weight_decay(bn_bias_lr_scale):
    def train(optim, bn_grad):
        tx, _ = make_optimizer(optim, CONSTANT, total_steps=12, frozen=lambda path: path == ("whiten", "kernel"))
        params = {"whiten": {"kernel": jnp.ones(3), "bias": jnp.ones(3)}, "fc": {"kernel": jnp.ones(2)},
                  "bn": {"bias": jnp.ones(2)}}  # As a FastNet: frozen whitening kernel, BatchNorm shifts.
        state = tx.init(params)
        for _ in range(3):
            grads = {**jax.tree.map(jnp.ones_like, params), "bn": {"bias": jnp.full(2, bn_grad)}}
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    optim = OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.1, bn_bias_lr_scale=bn_bias_lr_scale)
    params = train(optim, 1.0)
    np.testing.assert_array_equal(params["whiten"]["kernel"], jnp.ones(3))
    assert float(params["whiten"]["bias"][0]) < 1 and float(params["fc"]["kernel"][0]) < 1
    # The scale multiplies the shifts' gradients only, not their weight decay.
    plain = train(dataclasses.replace(optim, bn_bias_lr_scale=1.0), bn_bias_lr_scale)
    np.testing.assert_allclose(params["bn"]["bias"], plain["bn"]["bias"], rtol=1e-6)
    np.testing.assert_array_equal(params["fc"]["kernel"], plain["fc"]["kernel"])


def test_piecewise_needs_steps_per_epoch():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_optimizer(OptimConfig(name="sgd", lr=0.1), PIECEWISE, total_steps=12)
