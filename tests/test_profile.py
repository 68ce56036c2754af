"""``--profile START:STOP`` (a jax.profiler trace of those steps) and the train step's FLOPs, FLOP/s and MFU."""

import dataclasses
import glob
import json
import os

import chex
import jax
import numpy as np
import pytest

from experiments import mnist_mlp
from tinyjax.cli import main
from tinyjax.config import ConfigError
from tinyjax.runs import loading
from tinyjax.train import flops, profile, replicas
from tinyjax.train.profile import traced as _traced
from tinyjax.train.records import TIMING, epoch_line
from tinyjax.train.state import init_state
from tinyjax.validation import parse_profile

MLP = mnist_mlp.VARIANTS["2hl_50"]  # 784-50-50-10, Adam, batch 50, no augmentation.
IMAGES = np.zeros((1000, 28, 28, 1), np.uint8)


def test_step_flops_of_the_mlp_are_its_matmuls_and_a_little_more():
    state = init_state(MLP, 10, IMAGES)[1]
    b = MLP.batch_size
    forward = 2 * b * (784 * 50 + 50 * 50 + 50 * 10)  # A multiply-add is 2 FLOPs.
    # Backward: every weight gradient (as many FLOPs as the forward), every input gradient but the image's.
    matmuls = 3 * forward - 2 * b * 784 * 50
    counted = flops.step_flops(MLP, state, IMAGES)
    assert matmuls <= counted <= 1.2 * matmuls  # Plus normalisation, softmax, Adam: elementwise.
    # N replicas as one program: N times the work; K micro-batches: the arithmetic of one batch.
    np.testing.assert_allclose(flops.step_flops(MLP, state, IMAGES, members=replicas.Members((0.0,) * 3)), 3 * counted, rtol=1e-4)
    assert flops.step_flops(dataclasses.replace(MLP, accumulate=5), state, IMAGES) == counted


def test_step_flops_compile_where_the_lowered_program_has_no_cost_analysis(monkeypatch):
    state = init_state(MLP, 10, IMAGES)[1]
    lowered = flops.step_flops(MLP, state, IMAGES)
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", lambda self: None)  # As on GPU and TPU (jax 0.10).
    np.testing.assert_allclose(flops.step_flops(MLP, state, IMAGES), lowered, rtol=0.05)  # The compiled count.


def test_peak_flops_of_known_devices_and_none_for_the_cpu():
    assert flops.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989e12
    assert flops.peak_flops("NVIDIA H100 80GB HBM3", "float32")[0] == 494.5e12  # TF32: XLA's default precision.
    assert flops.peak_flops("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12  # Not the SXM module's.
    assert flops.peak_flops("TPU v4", "float32")[0] == 275e12  # The MXU's bfloat16 passes.
    assert flops.peak_flops("NVIDIA L40S", "bfloat16")[0] == 362e12  # Not an "NVIDIA L4".
    assert flops.peak_flops("NVIDIA L4", "bfloat16")[0] == 121e12
    assert flops.peak_flops("TPU v4 lite", "bfloat16")[0] == 137.5e12  # Not a "TPU v4".
    assert flops.peak_flops("NVIDIA A100-SXM4-40GB", "bfloat16")[0] == 312e12
    peak, why = flops.peak_flops("cpu", "float32")
    assert peak is None and "'cpu' unknown: no MFU" in why


def test_rates_and_results_take_the_median_of_the_epochs_after_the_first():
    peak = (1e12, "a device")
    assert flops.rates(2e9, 10, 4.0, 1e12, 2) == {"train_flop_per_s": 5e9, "train_mfu": 5e9 / 2e12}
    assert flops.rates(None, 10, 4.0, 1e12, 1) == {"train_flop_per_s": None, "train_mfu": None}
    history = [{"train_flop_per_s": 1e9},  # Compiles: left out.
               {"train_flop_per_s": 4e9}, {"train_flop_per_s": 0.5e9},  # Compiles again after a --resume.
               {"train_flop_per_s": 3e9}]
    out = flops.results(8e9, 64, history, peak, 1)
    assert out["flops_per_image"] == 8e9 / 64 and out["train_flop_per_s"] == 3e9
    assert out["train_mfu"] == 3e9 / 1e12 and out["peak_source"] == "a device"
    assert flops.results(8e9, 64, history[:1], (None, "why"), 1)["train_flop_per_s"] == 1e9  # One epoch: it.
    row = {"epoch": 2, "train_acc": 90.0, "train_loss": 0.3, "lr": 0.1, "seconds": 2.0,
           "train_flop_per_s": 5.24e9, "train_mfu": 0.0123}
    assert epoch_line(row, 5).endswith("2.0s  5.24 GFLOP/s (MFU 1.2%)")


def test_profile_ranges_are_checked_with_one_line():
    assert parse_profile("10:30") == (10, 30)
    for bad in ("5", "30:10", "3:3", "-1:4", "a:b"):
        with pytest.raises(ConfigError, match="is not START:STOP with 0 <= START < STOP"):
            parse_profile(bad)
    with pytest.raises(ConfigError, match=r"--profile 10:41 ends after the run's 40 training steps; give a STOP"):
        profile.check(dataclasses.replace(MLP, profile="10:41"), 40)
    from tinyjax.train import lr_find

    with pytest.raises(ConfigError, match="a --find-lr range test has none: drop --profile"):
        lr_find.find_lr(dataclasses.replace(MLP, profile="1:3"), None, None)


@pytest.mark.parametrize("loop, start, stop, traced", [
    ("step", 3, 7, (3, 7)),      # Before step 3, after step 6.
    ("step", 5, 7, (5, 7)),      # From epoch 1's first step: not from epoch 0's end (its evaluation, save).
    ("step", 2, 5, (2, 5)),      # Up to epoch 0's last step: stopped before its evaluation.
    ("scan", 3, 7, (0, 10)),     # An epoch is one call: the whole epochs the range touches.
    ("scan", 5, 7, (5, 10)),
])
def test_the_trace_holds_the_steps_asked_for(monkeypatch, loop, start, stop, traced):
    events, lines = [], []
    monkeypatch.setattr(jax.profiler, "start_trace", lambda d, **kw: events.append(("start", kw)))
    monkeypatch.setattr(jax.profiler, "stop_trace", lambda: events.append(("stop",)))
    trace = profile.StepTrace(start, stop, "/runs/x/profile", lines.append)
    for epoch in range(3):  # 5 steps per epoch, called as train_epoch calls its hook.
        hook = _traced(trace, epoch, 5, loop)
        hook(0, jax.numpy.zeros(()))
        for done in ([5] if loop == "scan" else range(1, 6)):
            hook(done, jax.numpy.zeros(()))
    trace.close()  # Ended already: nothing more.
    assert events == [("start", {"create_perfetto_trace": True}), ("stop",)]
    assert lines == [f"profile: training steps {traced[0]}:{traced[1]} traced into /runs/x/profile (asked: "
                     f"{start}:{stop}); open it with tensorboard --logdir /runs/x/profile, or its "
                     "perfetto_trace.json.gz on https://ui.perfetto.dev"]


def test_a_trace_that_cannot_start_is_a_warning_and_a_resume_past_it_says_so(monkeypatch):
    def busy(*args, **kwargs):
        raise RuntimeError("Profile has already been started")
    monkeypatch.setattr(jax.profiler, "start_trace", busy)
    lines = []
    trace = profile.StepTrace(2, 4, "/runs/x/profile", lines.append)
    for step in range(6):
        trace.at(step, step + 1, None)
    trace.close()
    assert lines == ["warning: --profile: no trace (RuntimeError: Profile has already been started)."]
    late = profile.StepTrace(2, 4, "/runs/x/profile", lines.append)
    late.skipped(10)
    late.at(10, 11, None)
    assert lines[-1] == "profile: the run resumes at training step 10, past --profile 2:4: nothing traced."


@pytest.mark.slow
def test_a_profiled_run_traces_and_trains_exactly_as_one_without(tmp_path, capsys):
    args = ["--epochs", "2", "--train-limit", "500", "--test-limit", "500"]  # 10 steps per epoch.
    assert main({"2hl_50": MLP}, args + ["--out", str(tmp_path / "plain")]) == 0
    assert main({"2hl_50": MLP}, args + ["--out", str(tmp_path / "traced"), "--profile", "8:13"]) == 0
    (plain,), (traced,) = (glob.glob(str(tmp_path / d / "*")) for d in ("plain", "traced"))
    assert "profile: training steps 8:13 traced into" in capsys.readouterr().out
    assert glob.glob(os.path.join(traced, "profile", "plugins", "profile", "*", "*.xplane.pb"))
    assert glob.glob(os.path.join(traced, "profile", "plugins", "profile", "*", "perfetto_trace.json.gz"))

    def records(d):
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in open(f"{d}/metrics.jsonl")]
    assert records(traced) == records(plain)
    chex.assert_trees_all_equal(loading.load(traced, "latest").variables, loading.load(plain, "latest").variables)
    results = json.load(open(f"{traced}/results.json"))
    assert results["flops_per_step"] == MLP.batch_size * results["flops_per_image"] > 0
