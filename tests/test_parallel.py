"""Data parallel: --parallel sharding and pmap over 4 CPU devices, in one process or in two processes
joined by jax.distributed, equal one device on the same global batch.

The devices are XLA's host-platform devices in subprocesses
(``--xla_force_host_platform_device_count``): this process's jax has
already started with one. Two processes talk through gloo on 127.0.0.1.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import mnist_onecycle
from tinyjax.distributed import parallel
from tinyjax.cli import main
from tinyjax.config import Config, ConfigError

from same_run import assert_same_run, history

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 4 full batches per epoch, and a gentle peak lr: at the recipe's 0.05 a BatchNorm channel with a near-zero
# variance can turn the summation order's 1e-7 into 1e-3 within a few steps, hiding what the tests compare.
# Reference 002's 3-conv network (BatchNorm after each conv, as the 7-conv one): what is compared (shards'
# means of loss and BatchNorm statistics) does not depend on depth, and it compiles in half the time.
TINY = ["--epochs", "2", "--train-limit", "256", "--test-limit", "500", "--batch-size", "64", "--max-lr", "0.005",
        "--model", "mnist_dsconv_2k"]
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
    "sharding, 4 epochs": ["--parallel", "sharding", "--epochs", "4"],
    # 250 images: the last batch holds 58 real and 6 padding rows, strided over both micro-batches.
    "one device, accumulate 2": ["--parallel", "none", "--accumulate", "2", "--train-limit", "250"],
    "sharding, accumulate 2": ["--parallel", "sharding", "--accumulate", "2", "--train-limit", "250"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    on_devices([TINY + flags + ["--out", str(folder / name)] for name, flags in MODES.items()])
    return {name: run_dir(folder / name) for name in MODES}


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_sharding_equals_one_device_padding_batches_that_do_not_divide(runs):
    assert_same_run(runs["sharding, batch 62"], runs["one device, batch 62"])
    assert history(runs["sharding, batch 62"])[-1]["train_loss"] != history(runs["one device"])[-1]["train_loss"]


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_pmap_equals_one_device(runs):
    # The 4 shards' means of loss and BatchNorm statistics are averaged: equal on full batches, up to rounding.
    assert_same_run(runs["pmap"], runs["one device"])
    # A scan compiles the convolutions inside a loop body, rounded differently (as on one device).
    assert_same_run(runs["pmap scan"], runs["pmap"], rtol=1e-3)


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_vmapped_seeds_compose_with_sharding_and_pmap(runs):
    seeds = runs["seeds, sharding"]
    assert_same_run(os.path.join(seeds, "seed-0"), runs["one device"])
    assert history(os.path.join(seeds, "seed-1"))[-1]["train_loss"] != history(runs["one device"])[-1]["train_loss"]
    for seed in (0, 1):
        assert_same_run(os.path.join(runs["seeds, pmap"], f"seed-{seed}"), os.path.join(seeds, f"seed-{seed}"))


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_accumulation_composes_with_sharding(runs):
    """(That accumulation changes BatchNorm runs at all is tests/test_accumulate.py's.)"""
    assert_same_run(runs["sharding, accumulate 2"], runs["one device, accumulate 2"])


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
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


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_checkpoint_of_four_devices_resumes_on_one(runs, tmp_path, capsys):
    killed = killed_copy(runs["sharding, batch 62"], tmp_path, last=10)  # 2 epochs x 5 steps.
    assert main(mnist_onecycle.VARIANTS, ["--resume", killed, "--parallel", "auto"]) == 0
    assert "resumed at epoch 2, step 0" in capsys.readouterr().out
    assert_same_run(killed, runs["sharding, batch 62"])


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
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


def launch(args: list[str], processes: int = 2, devices: int = 2, data_dirs: list[str] | None = None
           ) -> list[subprocess.Popen]:
    """``processes`` processes of one run (``--coordinator`` on a free local port), ``devices`` CPU devices
    each; process i reads ``data_dirs[i]`` when given."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    return [subprocess.Popen([sys.executable, "-m", "experiments.mnist_onecycle", *args, "--coordinator",
                              f"127.0.0.1:{port}", "--num-processes", str(processes), "--process-id", str(i)],
                             cwd=ROOT, env={**env, **({"TINYJAX_DATA_DIR": data_dirs[i]} if data_dirs else {})},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(processes)]


def finish(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Each process's (exit status, stdout, stderr), once all have ended."""
    try:
        outputs = [p.communicate(timeout=300) for p in processes]
    except subprocess.TimeoutExpired:  # One waits for the other forever: say where each was.
        for p in processes:
            p.kill()
        outputs = [p.communicate() for p in processes]
        pytest.fail("processes hung:\n" + "\n---\n".join(out[-2000:] + err[-3000:] for out, err in outputs))
    return [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_two_processes_stop_together_resume_and_equal_one_process_of_four_devices(runs, tmp_path):
    # Two processes of 2 devices each, sharding; SIGTERM to process 1 alone once epoch 1 is saved.
    processes = launch(TINY + ["--epochs", "4", "--parallel", "sharding", "--out", str(tmp_path)])
    deadline = time.time() + 600
    while not glob.glob(f"{tmp_path}/*/checkpoints/4") and time.time() < deadline and processes[1].poll() is None:
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGTERM)
    ended = finish(processes)
    # Agreed at a host sync: both save the same step and stop with SIGTERM's status.
    assert [status for status, _, _ in ended] == [143, 143], ended
    stopped = [err.strip().splitlines()[-2] for _, _, err in ended]
    assert stopped[0] == stopped[1] and stopped[0].startswith("stopped: SIGTERM"), stopped
    run = run_dir(tmp_path)
    assert "epoch   1/4" in ended[0][1] and "epoch" not in ended[1][1]  # Only process 0 prints.
    # Resumed by two processes again, now with pmap: the run of one process with 4 devices.
    ended = finish(launch(["--resume", run, "--parallel", "pmap"]))
    assert [status for status, _, _ in ended] == [0, 0], ended
    assert len(history(run)) == 4  # Each epoch once: only process 0 writes the run directory.
    assert_same_run(run, runs["sharding, 4 epochs"])
    assert json.load(open(os.path.join(run, "results.json")))["hardware"]["device_count"] == 4


@pytest.mark.slow  # Subprocesses of 4 devices, or several processes.
def test_a_process_that_cannot_load_its_data_stops_the_others(tmp_path):
    broken = tmp_path / "data" / "mnist"
    broken.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (broken / name).write_text("not gzip")
    good = os.environ.get("TINYJAX_DATA_DIR")
    if not good:
        pytest.skip("needs TINYJAX_DATA_DIR (real MNIST for the process that loads it)")
    ended = finish(launch(TINY + ["--out", str(tmp_path / "runs")], data_dirs=[good, str(tmp_path / "data")]))
    assert [status for status, _, _ in ended] == [2, 2], ended
    assert "another process of this run could not start" in ended[0][2]
    assert "not valid gzip data" in ended[1][2]
    assert not (tmp_path / "runs").exists()  # Nothing written.

