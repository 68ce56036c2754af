"""Many runs of your own model on your own data: a grid (from Python and from the command line),
successive halving and the learning-rate range test take ``model=`` and ``data=`` as
``train_and_evaluate`` does (scikit-learn's bundled 8x8 digits, as in test_own)."""

import dataclasses
import glob
import json
import math
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from test_own import TinyNnx
from tinyjax.config import Config, DataConfig, OptimConfig, ScheduleConfig
from tinyjax.grid import expand
from tinyjax.train import find_lr, lr_find, replicas, train_grid, train_halving


class TinyMlp(nnx.Module):
    """No convolution: --replicas auto vmaps it on CPU too."""

    def __init__(self, rngs: nnx.Rngs, num_classes: int = 10):
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


# 1,300 train images after --val-split 200: 20 batches of 64, then 20 images.
BASE = Config(experiment="own", epochs=1, batch_size=64, optim=OptimConfig(name="adam"),
              schedule=ScheduleConfig(max_lr=0.01), data=DataConfig(val_split=200))


@pytest.mark.slow
def test_a_grid_of_a_user_model_trains_as_vmapped_replicas(digits, tmp_path):
    configs = expand(dataclasses.replace(BASE, out=str(tmp_path)), {"max_lr": [0.003, 0.03]})
    lines = []
    run_dirs = train_grid(configs, lines.append, model=TinyMlp, data=digits)
    assert [json.load(open(os.path.join(d, "config.json")))["schedule"]["max_lr"] for d in run_dirs] == [0.003, 0.03]
    assert any("2 replicas vmapped as one program" in line for line in lines)
    assert any(line.startswith("max-lr 0.003: ") for line in lines) and any(line.startswith("max-lr 0.03: ")
                                                                          for line in lines)
    for run_dir in run_dirs:
        assert json.load(open(os.path.join(run_dir, "config.json")))["model"] == "test_own_runs:TinyMlp"
        assert os.path.exists(os.path.join(run_dir, "results.json"))


@pytest.mark.slow
def test_the_grid_of_a_linen_model_file_and_an_npz_on_the_command_line(digits, tmp_path, capsys):
    from tinyjax.train_cli import main

    (x, y), (x_test, y_test) = digits.train, digits.test
    np.savez(tmp_path / "digits.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    (tmp_path / "net.py").write_text(  # A linen MLP in its own file: --replicas auto vmaps it.
        "from flax import linen as nn\n\n\nclass Net(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        return nn.Dense(10)(nn.relu(nn.Dense(32)(x.reshape(x.shape[0], -1))))\n")
    status = main(["--model", str(tmp_path / "net.py") + ":Net", "--dataset", str(tmp_path / "digits.npz"),
                   "--epochs", "1", "--batch-size", "100", "--optimizer", "adam", "--out", str(tmp_path / "runs"),
                   "--grid", "max_lr=0.003,0.03"])
    assert status == 0
    table = open(glob.glob(str(tmp_path / "runs" / "train-grid-*.md"))[0]).read()
    assert "| 0.003 |" in table and "| 0.03 |" in table
    assert "2 replicas vmapped as one program" in capsys.readouterr().out


@pytest.mark.slow
def test_successive_halving_takes_a_user_model_and_ranks_on_validation(digits, tmp_path):
    configs = expand(dataclasses.replace(BASE, epochs=3, out=str(tmp_path)), {"max_lr": [1e-5, 0.003, 0.03]})
    ranked = train_halving(configs, 3, ["max_lr"], print_fn=lambda _: None, model=TinyMlp, data=digits)
    meta = json.load(open(os.path.join(os.path.dirname(ranked[0]), "halving.json")))
    assert meta["rungs"] == [1, 3] and len(meta["decisions"]) == 1 and len(meta["decisions"][0]["kept"]) == 1
    epochs = [json.load(open(os.path.join(d, "results.json")))["epochs_trained"] for d in ranked]
    assert epochs == [3, 1, 1]
    first = meta["decisions"][0]
    assert first["values"] == sorted(first["values"], reverse=True)  # Ranked by val_acc after epoch 1.
    assert ranked[0].endswith(f"point-{first['kept'][0]}") and first["ranked"][-1] == 0  # lr 1e-5 learns least.


@pytest.mark.slow
def test_the_lr_finder_takes_a_user_model_and_its_data(digits, tmp_path):
    run_dir = find_lr(dataclasses.replace(BASE, out=str(tmp_path)), "1e-3:1e-1:3", 25, model=TinyNnx, data=digits)
    progress = json.load(open(os.path.join(run_dir, "lr_find.json")))
    assert progress["done"] == [True] * 3 and all(len(curve) == 25 for curve in progress["losses"])
    assert all(math.isfinite(v) for curve in progress["losses"] for v in curve)  # 25 steps: into a second epoch.
    assert json.load(open(os.path.join(run_dir, "data.json")))["image_shape"] == [8, 8, 1]
    assert progress["suggested_max_lr"] is not None


@pytest.mark.parametrize("full_only, rows", [(True, [32] * 7), (False, [32, 32, 32, 4, 32, 32, 32])])
def test_a_maskless_range_test_trains_full_batches_only(full_only, rows):
    """A model without ``mask`` (``full_only``): 100 images in batches of 32 give three full batches an
    epoch, never the padded fourth, whose padding rows would reach its batch statistics."""
    masks = []

    def program(carry, device_data, indices, mask):
        masks.extend(np.asarray(mask))
        return carry, jnp.zeros(indices.shape[0])
    state = types.SimpleNamespace(rng=jax.random.key(0))
    device_data = types.SimpleNamespace(labels=jnp.zeros(100, jnp.int32))
    losses = lr_find._run(program, replicas.Members((0.0,)), state, device_data, dataclasses.replace(BASE, batch_size=32),
                          7, full_only)
    assert losses.shape == (7, 1) and [int(m.sum()) for m in masks] == rows

