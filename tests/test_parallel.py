"""Data parallel: --parallel sharding and pmap over 4 CPU devices equal one device on the same global batch.

The 4 devices are XLA's host-platform devices in a subprocess
(``--xla_force_host_platform_device_count=4``): this process's jax has
already started with one.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from experiments import mnist_onecycle
from tinyjax import parallel
from tinyjax.cli import main
from tinyjax.config import Config, ConfigError

from same_run import assert_same_run, history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 4 full batches per epoch, and a gentle peak lr: at the recipe's 0.05 a BatchNorm channel with a near-zero
# variance can turn the summation order's 1e-7 into 1e-3 within a few steps, hiding what the tests compare.
TINY = ["--epochs", "2", "--train-limit", "256", "--batch-size", "64", "--max-lr", "0.005"]
RUN = """
import json, sys
from experiments import mnist_onecycle
from tinyjax.cli import main
for args in json.loads(sys.argv[1]):
    assert main(mnist_onecycle.VARIANTS, args) == 0, args
"""


def on_devices(runs: list[list[str]], devices: int = 4) -> None:
    """Runs ``python -m experiments.mnist_onecycle <args>`` for each args in one process with ``devices`` CPU devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(runs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_dir(folder) -> str:
    (only,) = os.listdir(folder)
    return os.path.join(folder, only)


MODES = {  # name -> flags; each trained in one 4-device process.
    "one device": ["--parallel", "none"],
    "pmap": ["--parallel", "pmap"],
    "pmap scan": ["--parallel", "pmap", "--loop", "scan"],
    "one device, batch 62": ["--parallel", "none", "--batch-size", "62"],
    # Padded to 64 (2 masked per batch; the last of 5 batches has 8 real), each device a quarter.
    "sharding, batch 62": ["--parallel", "sharding", "--batch-size", "62"],
    "seeds, sharding": ["--parallel", "sharding", "--seeds", "0,1", "--replicas", "vmap"],
    "seeds, pmap": ["--parallel", "pmap", "--seeds", "0,1", "--replicas", "vmap"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    on_devices([TINY + flags + ["--out", str(folder / name)] for name, flags in MODES.items()])
    return {name: run_dir(folder / name) for name in MODES}


def test_sharding_equals_one_device_padding_batches_that_do_not_divide(runs):
    assert_same_run(runs["sharding, batch 62"], runs["one device, batch 62"])
    assert history(runs["sharding, batch 62"])[-1]["train_loss"] != history(runs["one device"])[-1]["train_loss"]


def test_pmap_equals_one_device(runs):
    # The 4 shards' means of loss and BatchNorm statistics are averaged: equal on full batches, up to rounding.
    assert_same_run(runs["pmap"], runs["one device"])
    # A scan compiles the convolutions inside a loop body, rounded differently (as on one device).
    assert_same_run(runs["pmap scan"], runs["pmap"], rtol=1e-3)


def test_vmapped_seeds_compose_with_sharding_and_pmap(runs):
    seeds = runs["seeds, sharding"]
    assert_same_run(os.path.join(seeds, "seed-0"), runs["one device"])
    assert history(os.path.join(seeds, "seed-1"))[-1]["train_loss"] != history(runs["one device"])[-1]["train_loss"]
    for seed in (0, 1):
        assert_same_run(os.path.join(runs["seeds, pmap"], f"seed-{seed}"), os.path.join(seeds, f"seed-{seed}"))


def test_run_records_its_devices(runs):
    results = json.load(open(os.path.join(runs["sharding, batch 62"], "results.json")))
    assert results["hardware"]["device_count"] == 4 and results["parallel"] == "sharding"


def killed_copy(original: str, folder, last: int) -> str:
    """The run as if killed after epoch 1: its ``last`` checkpoint (after epoch 2) and results gone."""
    killed = str(folder / "killed")
    shutil.copytree(original, killed)
    shutil.rmtree(os.path.join(killed, "checkpoints", str(last)))
    os.remove(os.path.join(killed, "results.json"))
    return killed


def test_checkpoint_of_four_devices_resumes_on_one(runs, tmp_path, capsys):
    killed = killed_copy(runs["sharding, batch 62"], tmp_path, last=10)  # 2 epochs x 5 steps.
    assert main(mnist_onecycle.VARIANTS, ["--resume", killed, "--parallel", "auto"]) == 0
    assert "resumed at epoch 2, step 0" in capsys.readouterr().out
    assert_same_run(killed, runs["sharding, batch 62"])


def test_checkpoint_of_one_device_resumes_on_four(tmp_path):
    assert main(mnist_onecycle.VARIANTS, TINY + ["--out", str(tmp_path / "one")]) == 0
    original = run_dir(tmp_path / "one")
    killed = killed_copy(original, tmp_path, last=8)  # 2 epochs x 4 steps.
    on_devices([["--resume", killed, "--parallel", "pmap"]])
    assert_same_run(killed, original)


def test_auto_resolves_by_device_count():
    assert parallel.resolve("auto") == "none"  # This process has one CPU device.
    assert parallel.resolve("pmap") == "pmap"
    placement = parallel.Placement.create("sharding")
    indices, mask = placement.batches(np.arange(6).reshape(2, 3), np.ones((2, 3), bool))
    assert indices.shape == (2, 3) and mask.all()  # One device: nothing to pad.


def test_batch_smaller_than_the_devices_is_one_error_line():
    with pytest.raises(ConfigError, match="--batch-size 2 is smaller than the 4 devices"):
        parallel.check_batch(Config(batch_size=2), 4)
