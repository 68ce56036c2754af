"""Faults a run must survive: SIGKILL anywhere, SIGINT / SIGTERM, non-finite steps,
an unwritable output folder, resumes that do not fit. Runs are tiny: the suite's ``TINY_RUN``
(reference 000's CNN on 512 real images, 3 epochs of 16 steps), whose finished run, the session's
``tiny_run``, is the uninterrupted run every interrupted one must equal."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from experiments import mnist_mlp, mnist_onecycle
from tinyjax import data
from tinyjax.runs import loading
from tinyjax.cli import main
from tinyjax.train.records import TIMING

from conftest import TINY_RUN
from faults_helpers import fail_checkpoint_writes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs the experiment as `python -m` would; with TINYJAX_TEST_STALL_SAVE=<id>:<seconds>, the background
# write of checkpoint <id> stalls that long (after touching <out>/stalled) so the test can kill it mid-save.
DRIVER = """
import os, runpy, sys
stall = os.environ.get("TINYJAX_TEST_STALL_SAVE")
if stall:
    sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
    from faults_helpers import stall_checkpoint_write
    checkpoint, seconds = stall.split(":")
    stall_checkpoint_write(int(checkpoint), os.environ["TINYJAX_TEST_STALL_MARK"], float(seconds))
sys.argv = ["experiments.mnist_onecycle"] + sys.argv[1:]
runpy.run_module("experiments.mnist_onecycle", run_name="__main__", alter_sys=True)
"""


class Run:
    """``python -m experiments.mnist_onecycle`` in a subprocess, logs in files."""

    def __init__(self, tmp_path, args, stall=None, stall_seconds=600.0):
        self.tmp_path = tmp_path
        self.stdout, self.stderr = tmp_path / f"out{time.monotonic_ns()}", tmp_path / f"err{time.monotonic_ns()}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TINYJAX_TEST_STALL_MARK": str(tmp_path / "stalled")}
        if stall is not None:
            env["TINYJAX_TEST_STALL_SAVE"] = f"{stall}:{stall_seconds}"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=ROOT, env=env,
                                            stdout=out, stderr=err)

    def epochs_printed(self) -> int:
        return sum(line.startswith("epoch") for line in self.stdout.read_text().splitlines())

    def wait_for(self, condition, timeout=180.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.stderr.read_text()[-2000:]
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def finish(self, timeout=300) -> int:
        return self.process.wait(timeout=timeout)


def run_dir(out) -> str:
    (only,) = [p for p in out.iterdir() if p.is_dir()]
    return str(only)


def assert_same_run(resumed: str, baseline: str) -> None:
    """Per-epoch metrics but the timings (`seconds`, FLOP/s), and the final parameters, bit for bit."""
    def records(d):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]
    assert records(resumed) == records(baseline)
    a, b = loading.load(resumed, "latest"), loading.load(baseline, "latest")
    chex.assert_trees_all_equal(a.variables, b.variables)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, tiny_run):
    rng, out = random.Random(7), tmp_path / "runs"
    # The killed runs stall in the last save (step 48, after epoch 3), so none can finish before its kill,
    # however fast it trains: a kill that lands there is a kill mid-save.
    run = Run(tmp_path, TINY_RUN + ["--out", str(out)], stall=48)
    def saved() -> bool:  # A complete checkpoint exists (before one, there is nothing to resume).
        folder = os.path.join(run_dir(out), "checkpoints")
        return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))

    for kill in range(3):  # Kill it mid-epoch or mid-save, wherever the dice land, and resume.
        run.wait_for(lambda: run.epochs_printed() > 0 and saved())
        time.sleep(rng.uniform(0.0, 1.0))
        assert run.process.poll() is None, "the run ended before it was killed"
        run.process.kill()
        assert run.finish() == -signal.SIGKILL  # Killed, not ended on its own.
        run = Run(tmp_path, ["--resume", run_dir(out)], stall=48 if kill < 2 else None)
    assert run.finish() == 0, run.stderr.read_text()[-2000:]
    assert_same_run(run_dir(out), tiny_run)


@pytest.mark.slow
def test_sigkill_during_a_save_leaves_the_older_checkpoint_latest(tmp_path, tiny_run):
    out = tmp_path / "runs"
    run = Run(tmp_path, TINY_RUN + ["--out", str(out)], stall=32)  # The save after epoch 2.
    run.wait_for(lambda: (tmp_path / "stalled").exists())
    run.process.kill()
    run.finish()
    entries = os.listdir(os.path.join(run_dir(out), "checkpoints"))
    assert "16" in entries and "32" not in entries and any(e.startswith("32.") for e in entries), entries
    resumed = Run(tmp_path, ["--resume", run_dir(out)])
    assert resumed.finish() == 0, resumed.stderr.read_text()[-2000:]
    assert "resumed at epoch 2, step 0" in resumed.stdout.read_text()
    assert not any(e.startswith("32.") for e in os.listdir(os.path.join(run_dir(out), "checkpoints")))
    assert_same_run(run_dir(out), tiny_run)


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_save_print_the_resume_command_and_exit(tmp_path, tiny_run, signum, status):
    out = tmp_path / "runs"
    # The save after epoch 1 stalls for 3 s, so the run cannot end before the signal, however fast it trains
    # (it waits for that save before it finishes); the signal lands while it trains epoch 2 or waits.
    run = Run(tmp_path, TINY_RUN + ["--out", str(out)], stall=16, stall_seconds=3.0)
    run.wait_for(lambda: (tmp_path / "stalled").exists())
    time.sleep(0.3)
    run.process.send_signal(signum)
    assert run.finish() == status
    lines = run.stderr.read_text().strip().splitlines()
    assert lines[-1] == f"python -m experiments.mnist_onecycle --resume {run_dir(out)}"
    assert lines[-2].startswith(f"stopped: {signal.Signals(signum).name} ") and "saved" in lines[-2]
    resumed = Run(tmp_path, lines[-1].split()[3:])
    assert resumed.finish() == 0, resumed.stderr.read_text()[-2000:]
    assert_same_run(run_dir(out), tiny_run)


@pytest.mark.slow
def test_a_second_sigint_aborts_at_once(tmp_path):
    run = Run(tmp_path, TINY_RUN + ["--out", str(tmp_path / "runs")], stall=16)  # The save after epoch 1 hangs.
    run.wait_for(lambda: (tmp_path / "stalled").exists())
    run.process.send_signal(signal.SIGINT)  # The run finishes its step, then waits on the stalled save...
    time.sleep(1.0)
    run.process.send_signal(signal.SIGINT)  # ...which a second Ctrl-C does not wait for.
    assert run.finish(timeout=30) == 130
    assert run.stderr.read_text().strip().endswith("aborted by Ctrl-C: nothing saved since the last checkpoint.")


@pytest.mark.slow
def test_non_finite_loss_stops_at_once_and_saves_nothing_non_finite(tmp_path, capsys):
    status = main(mnist_onecycle.VARIANTS, TINY_RUN + ["--max-lr", "1e8", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in err, err
    assert err.startswith("error: non-finite loss or gradient at epoch 1, step ")
    assert "nothing after the last good checkpoint was saved (none yet)" in err and "--on-nan skip" in err
    assert os.listdir(os.path.join(run_dir(tmp_path), "checkpoints")) == []
    assert not os.path.exists(os.path.join(run_dir(tmp_path), "metrics.jsonl"))


@pytest.mark.slow
def test_on_nan_skip_drops_non_finite_steps_and_goes_on(tmp_path):
    args = TINY_RUN + ["--max-lr", "1e4", "--on-nan", "skip", "--out", str(tmp_path)]
    assert main(mnist_onecycle.VARIANTS, args) == 0
    history = [json.loads(line) for line in open(os.path.join(run_dir(tmp_path), "metrics.jsonl"))]
    assert sum(h["skipped"] for h in history) > 0
    assert all(np.isfinite(h["train_loss"]) for h in history)
    restored = loading.load(run_dir(tmp_path), "latest")
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.variables))


def test_out_under_a_regular_file_is_one_error_line_before_data_loads(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data was loaded"))
    status = main(mnist_onecycle.VARIANTS, ["--out", str(tmp_path / "file" / "runs")])
    assert status == 2
    assert capsys.readouterr().err.strip() == (f"error: --out {tmp_path}/file/runs: {tmp_path}/file is a file, "
                                               "not a folder; choose another --out.")


@pytest.mark.parametrize("args,message", [
    (["--epochs", "5", "--seed", "1", "--optimizer", "adam"],
     "--seed 1 (the run has 0), --epochs 5 (the run has 3), --optimizer adam (the run has sgd) would change "
     "the run's result; drop them to resume, or start a new run."),
    (["--batch-size", "64"], "--batch-size 64 (the run has 32) would change the run's result; drop it"),
    (["--variant", "dropout"], "is a run of --variant default, not dropout; drop --variant."),
])
def test_resume_refuses_flags_that_change_the_result(tiny_run, capsys, args, message):
    assert main(mnist_onecycle.VARIANTS, ["--resume", tiny_run] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume {tiny_run}") and message in err and "\n" not in err, err


def test_resume_of_another_experiment_or_a_folder_without_checkpoints(tiny_run, tmp_path, capsys):
    assert main(mnist_mlp.VARIANTS, ["--resume", tiny_run]) == 2
    assert f"is a run of experiment mnist_onecycle, not mnist_mlp; run: python -m experiments.mnist_onecycle " \
           f"--resume {tiny_run}" in capsys.readouterr().err
    assert main(mnist_onecycle.VARIANTS, ["--resume", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {tmp_path} is not a tinyjax run directory")
    empty = tmp_path / "empty"
    assert main(mnist_onecycle.VARIANTS, TINY_RUN + ["--save-every", "0", "--out", str(empty)]) == 0
    capsys.readouterr()
    assert main(mnist_onecycle.VARIANTS, ["--resume", run_dir(empty)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {run_dir(empty)} holds no checkpoint (no checkpoints/ "
                                               "folder; was it run with --save-every 0?).")
    assert main(mnist_onecycle.VARIANTS, ["--resume", tiny_run, "--save-every", "0"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --resume {tiny_run} with --save-every 0 could not save "
                                               "again; give --save-every N >= 1.")


def test_resume_on_other_data_is_refused(tiny_run, tmp_path, capsys):
    from tinyjax.data import write_idx

    rng, folder = np.random.default_rng(0), tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 512), ("t10k", 100)):  # As many images as the run trained on, but others.
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    before = sorted(os.listdir(os.path.join(tiny_run, "checkpoints")))
    assert main(mnist_onecycle.VARIANTS, ["--resume", tiny_run, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume {tiny_run}: the training data differs from the run's (") and "\n" not in err
    assert err.endswith("point --data-dir at the data the run began with.")
    assert sorted(os.listdir(os.path.join(tiny_run, "checkpoints"))) == before  # Nothing saved is lost.
    assert json.load(open(os.path.join(tiny_run, "config.json")))["data"]["data_dir"] is None


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_is_one_error_line_and_exit_1(tmp_path, capsys, monkeypatch):
    fail_checkpoint_writes(monkeypatch, OSError(28, "No space left on device"))
    assert main(mnist_onecycle.VARIANTS, TINY_RUN + ["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: saving checkpoint 16 in ") and "No space left on device" in err, err
    assert err.endswith("older checkpoints are intact.") and "\n" not in err


def test_resuming_a_finished_run_only_rewrites_its_results(tiny_run):
    before = [json.loads(line) for line in open(os.path.join(tiny_run, "metrics.jsonl"))]
    assert main(mnist_onecycle.VARIANTS, ["--resume", tiny_run, "--out", "/elsewhere"]) == 0
    assert [json.loads(line) for line in open(os.path.join(tiny_run, "metrics.jsonl"))] == before
