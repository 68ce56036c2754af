import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax import data, models
from tinyjax.config import DataConfig
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state, epoch_driver, train_and_evaluate, train_step
from tinyjax.train.epochs import make_epoch_fns

from experiments.mnist_onecycle import CONFIG


def small_state(total_steps=10):
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, total_steps)
    return create_train_state(models.create("mnist_cnn_7k"), tx, jax.random.key(0), (1, 28, 28, 1))


def fake_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return data.to_device(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                          rng.integers(0, 10, n).astype(np.int32))


def test_train_step_compiles_once_and_keeps_partial_batches():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, batch):
        return train_step(state, batch, label_smoothing=0.02)

    state = small_state()
    device_data = fake_data(300)
    indices, mask = data.batch_plan(jax.random.key(1), 300, 128)
    assert indices.shape == (3, 128) and int(mask.sum()) == 300 and int(mask[2].sum()) == 44
    seen = 0
    for i in range(3):
        state, metrics = step(state, data.make_batch(device_data, indices[i], mask[i], 0.1307, 0.3081))
        seen += int(metrics["count"])
    assert seen == 300 and int(state.step) == 3


@pytest.mark.slow
def test_padded_batch_trains_exactly_like_the_partial_batch():
    state = small_state()
    device_data = fake_data(96)
    idx = jnp.arange(96)
    partial = data.make_batch(device_data, idx, jnp.ones(96, bool), 0.1307, 0.3081)
    padded = data.make_batch(device_data, jnp.concatenate([idx, jnp.zeros(32, int)]),
                             jnp.arange(128) < 96, 0.1307, 0.3081)
    a, ma = jax.jit(train_step)(state, partial)
    b, mb = jax.jit(train_step)(state, padded)
    chex.assert_trees_all_close((a.params, a.batch_stats), (b.params, b.batch_stats), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ma["loss_sum"], mb["loss_sum"], rtol=1e-5)


@pytest.mark.parametrize("loop", ["step", "scan"])
def test_epoch_driver_compiles_once_and_is_deterministic(loop):
    chex.clear_trace_counter()  # Counts are per code object, shared by the parametrized cases.

    @chex.assert_max_traces(n=1)
    def batch_fn(carry, device_data, indices, mask):
        state, count = carry
        state, metrics = train_step(state, data.make_batch(device_data, indices, mask, 0.1307, 0.3081))
        return state, count + metrics["count"]

    run = epoch_driver(batch_fn, loop, donate=True)
    device_data = fake_data(300)
    indices, mask = data.batch_plan(jax.random.key(2), 300, 128)
    start, results, reported = small_state(), [], []
    for _ in range(2):  # Twice from the same start (copied: the carry is donated).
        carry = (jax.tree.map(jnp.copy, start), jnp.zeros((), jnp.int32))
        (state, count), done = run(carry, device_data, indices, mask,
                                   on_step=lambda done, carry: reported.append((done, int(carry[1]))))
        assert done == 3
        results.append(state.params)
        assert int(count) == 300 and int(state.step) == 3
    chex.assert_trees_all_equal(*results)
    per_run = [(1, 128), (2, 256), (3, 300)] if loop == "step" else [(3, 300)]
    assert reported == per_run * 2


@pytest.mark.slow
def test_step_and_scan_loops_agree():
    config = dataclasses.replace(CONFIG, batch_size=64)
    device_data = fake_data(200)
    key = jax.random.key(3)
    out = {}
    for loop in ("step", "scan"):
        train_epoch, evaluate = make_epoch_fns(config, loop)
        state, totals, done = train_epoch(small_state(), device_data, key)
        assert done == 4 and int(totals["nonfinite"]) == 0
        out[loop] = (state.params, state.batch_stats, totals["count"], evaluate(state, device_data)["count"])
    chex.assert_trees_all_close(out["step"], out["scan"], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_one_epoch_on_10k_real_images_reaches_95_percent(tmp_path):
    # The reference's recipe compressed into one epoch; batch 32 gives the one-cycle 313 steps.
    config = dataclasses.replace(CONFIG, epochs=1, batch_size=32, out=str(tmp_path),
                                 data=DataConfig(train_limit=10000))
    state, history, run_dir = train_and_evaluate(config, print_fn=lambda line: None)
    assert history[0]["test_acc"] >= 95.0, history
    assert os.path.dirname(run_dir) == str(tmp_path)
    assert os.path.basename(run_dir).startswith("mnist_onecycle-")
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["loop"] in ("step", "scan") and saved["data"]["train_limit"] == 10000
    assert saved["schedule"]["max_lr"] == 0.05 and saved["label_smoothing"] == 0.02
    with open(os.path.join(run_dir, "layers.md")) as f:
        assert "| conv7 | Conv2d(16->18, k=3, p=1, s=1) | 3x3x18 | 2,592 | 34x34 | 4 |" in f.read()
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics == history
    assert set(metrics[0]) == {"epoch", "train_acc", "test_acc", "train_loss", "test_loss", "lr", "seconds",
                               "train_seconds", "train_flop_per_s", "train_mfu"}
    assert 0 < metrics[0]["train_seconds"] <= metrics[0]["seconds"] and metrics[0]["train_flop_per_s"] > 0
    np.testing.assert_allclose(metrics[0]["lr"], 5e-5, rtol=1e-4)  # One-cycle ends at max_lr/10/100.
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    assert results["params"] == 7784 and results["test_accuracy"] == history[0]["test_acc"]
    assert results["model_type"] == "mnist_cnn_7k" and results["optimizer"] == "sgd"
    assert results["learning_rate"] == 0.05 and results["batch_size"] == 32
    assert results["flops_per_step"] == 32 * results["flops_per_image"] > 0 and results["train_flop_per_s"] > 0
    assert results["versions"]["jax"] == jax.__version__ and results["hardware"]["backend"] == jax.default_backend()
    for png in ("curves.png", "confusion.png", "misclassified.png"):
        with open(os.path.join(run_dir, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert int(state.step) == 313  # ceil(10000 / 32): the last partial batch is kept.


@pytest.mark.slow
def test_train_state_vmaps_over_seeds():
    """The state is a pure pytree: N seeds train as one vmapped program."""
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, 10)
    model = models.create("mnist_cnn_7k")
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    states = jax.jit(jax.vmap(lambda k: create_train_state(model, tx, k, (1, 28, 28, 1))))(keys)
    batch = data.make_batch(fake_data(64), jnp.arange(64), jnp.ones(64, bool), 0.1307, 0.3081)
    new, metrics = jax.jit(jax.vmap(train_step, in_axes=(0, None)))(states, batch)
    chex.assert_shape(metrics["loss_sum"], (3,))
    assert new.step.tolist() == [1, 1, 1]
    single, _ = jax.jit(train_step)(create_train_state(model, tx, jax.random.key(1), (1, 28, 28, 1)), batch)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], new.params), single.params, rtol=1e-5, atol=1e-6)
    assert not np.allclose(new.params["fc"]["kernel"][0], new.params["fc"]["kernel"][1])
