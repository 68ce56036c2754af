"""Early stopping: the decision against Keras EarlyStopping's on_epoch_end replayed by hand, and
whole runs (vmapped replicas against their own runs, restore-best, resume)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from experiments import mnist_mlp
from tinyjax.cli import main
from tinyjax.config import Config
from tinyjax.data import splits
from tinyjax.runs.loading import load
from tinyjax.train.seeds import member_dirs
from tinyjax.train.stopping import patience

from same_run import assert_same_run, history, sigterm_after_epoch


def records(values, metric="val_acc"):
    return [{"epoch": e + 1, metric: v} for e, v in enumerate(values)]


@pytest.mark.parametrize("values,mode,wait,min_delta,expected", [
    # Improves every epoch: never stops.
    ([90, 91, 92, 93], "max", 1, 0.0, (93, 4, 0, None)),
    # Two epochs without improvement after epoch 2, patience 2: stops after epoch 4, best epoch 2.
    ([90, 95, 94, 95, 99], "max", 2, 0.0, (95, 2, 2, 4)),
    # An equal value is no improvement (strictly better only).
    ([90, 90, 90], "max", 2, 0.0, (90, 1, 2, 3)),
    # min_delta: +0.05 is not more than 0.1, so it does not reset the counter.
    ([90, 90.05, 90.08, 92], "max", 2, 0.1, (90, 1, 2, 3)),
    # Patience 0 stops after the first epoch that does not improve, never after the very first.
    ([90, 89], "max", 0, 0.0, (90, 1, 1, 2)),
    ([90], "max", 0, 0.0, (90, 1, 0, None)),
    # Losses: mode min.
    ([0.5, 0.4, 0.45, 0.41, 0.42], "min", 3, 0.0, (0.4, 2, 3, 5)),
    ([0.5, 0.4, 0.39, 0.38], "min", 1, 0.02, (0.4, 2, 1, 3)),
])
def test_matches_keras_early_stopping(values, mode, wait, min_delta, expected):
    metric = "val_acc" if mode == "max" else "val_loss"
    p = patience(records(values, metric), metric, mode, wait, min_delta)
    assert (p.best, p.best_epoch, p.wait, p.stopped_epoch) == expected
    assert p.stopped == (expected[3] is not None)


def test_a_resumed_history_gives_the_same_decision():
    """What a run resumed after epoch ``cut`` recomputes from its metrics: not stopped before the
    epoch the whole history stops at, the same stop from then on (the counter is never saved)."""
    full = records([90, 95, 94, 96, 95, 95.5, 95, 97])
    stop = patience(full, "val_acc", "max", 2).stopped_epoch
    assert stop == 6
    for cut in range(len(full) + 1):
        head = patience(full[:cut], "val_acc", "max", 2)
        assert head.stopped_epoch == (stop if cut >= stop else None)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode max or min"):
        patience(records([1]), "val_acc", "up", 1)
    with pytest.raises(ValueError, match="did not record"):
        patience(records([1]), "val_loss", "min", 1)


# ----------------------------------------------------------------------------- whole runs
EARLY = ["--epochs", "8", "--train-limit", "256", "--test-limit", "500", "--batch-size", "32", "--val-split", "128",
         "--lr", "0.01", "--early-stop", "1", "--best-metric", "val_loss", "--best-mode", "min", "--seeds", "0,1,2"]


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
    """Reference 003's small MLP (Adam at a constant lr 0.01, 128 real images: it overfits within a
    few epochs), --early-stop 1 on val_loss, seeds 0-2 as one vmapped program and one after another."""
    out = {}
    for mode in ("vmap", "sequential"):
        folder = tmp_path_factory.mktemp(mode)
        assert main(mnist_mlp.VARIANTS, EARLY + ["--replicas", mode, "--out", str(folder)]) == 0
        (out[mode],) = folder.iterdir()
    return {mode: str(d) for mode, d in out.items()}


def test_vmapped_replicas_stop_where_their_own_runs_stop(stopped_runs):
    stops = {}
    for mode, run_dir in stopped_runs.items():
        stops[mode] = [json.load(open(os.path.join(d, "results.json")))["early_stop"]
                       for d in member_dirs(run_dir, Config(seeds=(0, 1, 2)))]
    assert stops["vmap"] == stops["sequential"]
    stopped = [s["stopped_epoch"] for s in stops["vmap"]]
    assert all(stopped) and len(set(stopped)) > 1  # Each stops, and not all at one epoch: the hold is tested.
    first = member_dirs(stopped_runs["vmap"], Config(seeds=(0, 1, 2)))[0]
    images, labels = splits.test_split(load(first, "best").config)  # The run's 500 test images (--test-limit).
    for a, b in zip(*(member_dirs(stopped_runs[m], Config(seeds=(0, 1, 2))) for m in ("vmap", "sequential"))):
        assert_same_run(a, b)  # The same epochs, and the vmapped member's latest weights are its last epoch's.
        rows, results = history(a), json.load(open(os.path.join(a, "results.json")))
        decision = patience(rows, "val_loss", "min", 1)
        assert results["epochs_trained"] == len(rows) == decision.stopped_epoch == results["early_stop"]["stopped_epoch"]
        assert results["best_epoch"] == decision.best_epoch == results["early_stop"]["restored_epoch"]
        # The final weights are the best epoch's: its test accuracy is results.json's, image for image.
        best = rows[decision.best_epoch - 1]
        assert results["test_accuracy"] == best["test_acc"] and results["final_test_loss"] == best["test_loss"]
        predicted = load(a, "best").predict(images).argmax(-1)
        assert 100.0 * np.mean(predicted == labels) == pytest.approx(best["test_acc"], abs=1e-9)
    summary = json.load(open(os.path.join(stopped_runs["vmap"], "results.json")))
    assert summary["epochs_trained_values"] == stopped and summary["early_stop"]["patience"] == 1


@pytest.mark.parametrize("cut", [3, 5])
def test_a_stopped_run_resumes_with_its_patience(stopped_runs, tmp_path, cut, capsys, monkeypatch):
    """SIGTERM after epoch ``cut`` (3: no member has stopped; 5: seed 1 has), then --resume: each
    member recomputes its patience from its records, and the run ends as the uninterrupted one, bit
    for bit."""
    sigterm_after_epoch(monkeypatch, cut)
    assert main(mnist_mlp.VARIANTS, EARLY + ["--replicas", "vmap", "--out", str(tmp_path)]) != 0
    monkeypatch.undo()
    (killed,) = [str(p) for p in tmp_path.iterdir() if p.is_dir()]
    lengths = [len(history(d)) for d in member_dirs(killed, Config(seeds=(0, 1, 2)))]
    assert lengths == [cut] * 3 if cut == 3 else min(lengths) < cut == max(lengths)  # 5: a member had stopped.
    assert main(mnist_mlp.VARIANTS, ["--resume", killed]) == 0
    assert f"resumed at epoch {cut + 1}, step 0" in capsys.readouterr().out
    original = stopped_runs["vmap"]
    for a, b in zip(member_dirs(original, Config(seeds=(0, 1, 2))), member_dirs(killed, Config(seeds=(0, 1, 2)))):
        assert_same_run(a, b, exact=True)
        assert json.load(open(os.path.join(a, "results.json")))["early_stop"] == \
            json.load(open(os.path.join(b, "results.json")))["early_stop"]


def test_the_report_shows_the_epochs_trained(stopped_runs):
    from tinyjax.runs import report

    member = os.path.join(stopped_runs["sequential"], "seed-1")
    trained = len(history(member))
    mean = np.mean(json.load(open(os.path.join(stopped_runs["vmap"], "results.json")))["epochs_trained_values"])
    assert trained < 8 and mean < 8
    assert f"| {trained} of 8 (early stop) |" in report.table([member]).splitlines()[-1]
    assert f"| {mean:.3g} of 8 (early stop) |" in report.table([stopped_runs["vmap"]]).splitlines()[-1]


def test_a_stopped_replicas_non_finite_steps_do_not_stop_the_epoch(mnist_train):
    """A replica stopped early still trains in the vmapped program, its updates thrown away: a
    non-finite step of its own must not cut the epoch short (--on-nan stop), one of a replica that
    trains must (at the first host sync, step 25 of 32)."""
    import jax
    import jax.numpy as jnp

    from tinyjax import data, streams
    from tinyjax.train import replicas
    from tinyjax.train.epochs import make_epoch_fns
    from tinyjax.train.state import init_state

    config = dataclasses.replace(mnist_mlp.VARIANTS["2hl_50"], batch_size=32, on_nan="stop")
    images, labels = mnist_train[0][:1024], mnist_train[1][:1024]  # 32 steps.
    states = [init_state(dataclasses.replace(config, seed=s), 32, images)[1] for s in (0, 1)]
    states[1] = states[1].replace(params=jax.tree.map(lambda x: x * jnp.nan, states[1].params))
    train_epoch, _ = make_epoch_fns(config, "step", replicas.Members((0.0, 0.0)))
    device = data.to_device(images, labels)
    for active, expected in (([True, False], 32), ([True, True], 25), (None, 25)):
        state = replicas.stack(states)
        keys = jax.vmap(lambda r: streams.key(r, streams.DATA_ORDER, 0))(state.rng)
        _, _, done = train_epoch(state, device, keys, active=active)
        assert done == expected, active


def test_resume_refuses_another_best_metric_when_stopping_early(stopped_runs, capsys):
    """Early stopping's decisions are replayed on the best metric: changing it on resume would undo them."""
    assert main(mnist_mlp.VARIANTS, ["--resume", stopped_runs["sequential"], "--best-metric", "val_acc"]) == 2
    assert "--best-metric val_acc (the run has val_loss) would change the run's result" in capsys.readouterr().err
