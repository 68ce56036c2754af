"""Gradient accumulation (--accumulate K): K micro-batches, one optimizer update."""

import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import mnist_mlp, mnist_onecycle
from tinyjax import data, models
from tinyjax.cli import main
from tinyjax.config import Config, ConfigError, OptimConfig, ScheduleConfig
from tinyjax.distributed import parallel
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state, train_step
from tinyjax.train.seeds import member_dirs

from same_run import assert_same_run

MEAN, STD = 0.1307, 0.3081


def state_of(model, optimizer="sgd"):
    optim = OptimConfig(name=optimizer, lr=0.05, momentum=0.9)
    tx, _ = make_optimizer(optim, ScheduleConfig(name="constant"), 10)
    return create_train_state(models.create(model), tx, jax.random.key(0), (1, 28, 28, 1))


def batch_of(n, size, seed=0):
    """A batch of ``size`` rows, the first ``n`` of them real random images."""
    rng = np.random.default_rng(seed)
    device_data = data.to_device(rng.integers(0, 256, (max(n, 1), 28, 28, 1), dtype=np.uint8),
                                 rng.integers(0, 10, max(n, 1)).astype(np.int32))
    indices = jnp.where(jnp.arange(size) < n, jnp.arange(size), 0)
    return data.make_batch(device_data, indices, jnp.arange(size) < n, MEAN, STD)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_without_batchnorm_k_micro_batches_equal_one_big_batch(optimizer):
    state, batch = state_of("mlp_2hl_50", optimizer), batch_of(128, 128)
    one, m1 = jax.jit(train_step)(state, batch, 0.1)
    four, m4 = jax.jit(train_step, static_argnums=(3, 4, 5))(state, batch, 0.1, 0.0, None, 4)
    # The optimizer state holds the gradient (SGD's momentum buffer; Adam's moments 0.1 g and 0.001 g^2).
    chex.assert_trees_all_close(one.opt_state, four.opt_state, rtol=1e-5, atol=1e-8)
    if optimizer == "sgd":  # Adam's first step, lr * g / |g|, maps rounding in near-zero gradients to O(lr).
        chex.assert_trees_all_close(one.params, four.params, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m4["loss_sum"], m1["loss_sum"], rtol=1e-6)
    assert int(m4["correct"]) == int(m1["correct"]) and int(m4["count"]) == 128 and int(m4["nonfinite"]) == 0
    assert int(four.step) == int(one.step) == 1  # One optimizer update, whatever K.


def test_batchnorm_normalises_each_micro_batch_and_updates_its_statistics_per_micro_batch():
    """PyTorch's semantics: K train-mode passes over rows k, k + K, ..., each moving the running
    statistics, and the gradients of the batch's mean loss summed over them."""
    state, batch = state_of("mnist_cnn_7k"), batch_of(64, 64)
    got, _ = jax.jit(train_step, static_argnums=(3, 4, 5))(state, batch, 0.0, 0.0, None, 2)

    def loss_fn(params, stats, rows):
        logits, updates = state.apply_fn({"params": params, "batch_stats": stats}, batch.image[rows],
                                         train=True, mask=batch.mask[rows], mutable=["batch_stats"])
        onehot = jax.nn.one_hot(batch.label[rows], 10)
        return -jnp.sum(onehot * jax.nn.log_softmax(logits)) / 64, updates["batch_stats"]

    stats, grads = state.batch_stats, []
    grad_fn = jax.jit(jax.grad(loss_fn, has_aux=True))  # One compile; op by op took ~25 s on 2 cores.
    for k in range(2):
        g, stats = grad_fn(state.params, stats, jnp.arange(k, 64, 2))
        grads.append(g)
    want = state.apply_gradients(grads=jax.tree.map(jnp.add, *grads), batch_stats=stats)
    chex.assert_trees_all_close(got.batch_stats, want.batch_stats, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(got.params, want.params, rtol=1e-4, atol=1e-6)
    one, _ = jax.jit(train_step)(state, batch)  # Not the big batch's statistics: the test can fail.
    assert not np.allclose(jax.tree.leaves(one.batch_stats)[0], jax.tree.leaves(got.batch_stats)[0])


def test_an_all_padding_micro_batch_changes_nothing():
    """A last partial batch of 2 real rows in 128, K = 4: micro-batches 2 and 3 are padding only
    (BatchNorm of no rows would be NaN); the update is the K = 2 update of the 2 rows."""
    state = state_of("mnist_cnn_7k")
    padded, m = jax.jit(train_step, static_argnums=(3, 4, 5))(state, batch_of(2, 128), 0.0, 0.0, None, 4)
    alone, _ = jax.jit(train_step, static_argnums=(3, 4, 5))(state, batch_of(2, 2), 0.0, 0.0, None, 2)
    assert int(m["nonfinite"]) == 0 and int(m["count"]) == 2
    chex.assert_trees_all_close((padded.params, padded.batch_stats), (alone.params, alone.batch_stats),
                                rtol=1e-5, atol=1e-6)


TINY = ["--epochs", "2", "--train-limit", "256", "--test-limit", "500", "--batch-size", "32", "--seeds", "0,1"]  # 8 updates per epoch.


@pytest.mark.slow
def test_accumulated_mlp_run_matches_the_plain_run_and_resumes_bit_identically(tmp_path, capsys):
    """Run level: the MLP (no BatchNorm, no dropout) with --accumulate 4 trains as without it, through
    vmapped --seeds, checkpoints and a resume after a kill at the end of epoch 1."""
    runs = {}
    for k in ("1", "4"):
        out = tmp_path / k
        assert main(mnist_mlp.VARIANTS, TINY + ["--accumulate", k, "--replicas", "vmap", "--out", str(out)]) == 0
        (runs[k],) = out.iterdir()
    members = {k: member_dirs(str(d), Config(seeds=(0, 1))) for k, d in runs.items()}
    for plain, accumulated in zip(members["1"], members["4"]):
        assert_same_run(plain, accumulated, rtol=1e-4)
        saved = [int(n) for n in os.listdir(os.path.join(accumulated, "checkpoints")) if n.isdigit()]
        assert max(saved) == 16  # 2 epochs x 8 optimizer updates: steps count updates, not micro-batches.
    killed = str(tmp_path / "killed")
    shutil.copytree(runs["4"], killed)
    os.remove(os.path.join(killed, "results.json"))
    for d in member_dirs(killed, Config(seeds=(0, 1))):
        shutil.rmtree(os.path.join(d, "checkpoints", "16"))
        os.remove(os.path.join(d, "results.json"))
    assert main(mnist_mlp.VARIANTS, ["--resume", killed]) == 0
    assert "resumed at epoch 2, step 0" in capsys.readouterr().out
    for a, b in zip(members["4"], member_dirs(killed, Config(seeds=(0, 1)))):
        assert_same_run(a, b, exact=True)


@pytest.mark.parametrize("args, message", [
    (["--accumulate", "3"], "--accumulate 3 must be >= 1 and divide --batch-size 128"),
    (["--accumulate", "0"], "--accumulate 0 must be >= 1"),
    (["--accumulate", "2", "--parallel", "pmap"], "--accumulate does not run under --parallel pmap"),
])
def test_bad_accumulate_is_one_error_line(args, message, tmp_path, capsys):
    assert main(mnist_onecycle.VARIANTS, args + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not list(tmp_path.iterdir())


def test_per_device_micro_batches_must_be_equal():
    parallel.check_batch(Config(batch_size=128, accumulate=4), devices=4)
    with pytest.raises(ConfigError, match="does not split into 4 devices x --accumulate 8 .* multiple of 32"):
        parallel.check_batch(Config(batch_size=48, accumulate=8), devices=4)
