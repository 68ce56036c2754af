import builtins
import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from experiments import mnist_mlp
from tinyjax import data, runs, streams
from tinyjax.cli import main
from tinyjax.config import Config, ConfigError, DataConfig
from tinyjax.data.splits import load_splits
from tinyjax.evaluate import evaluate_checkpoint


def test_read_metrics_cuts_back_to_the_checkpoint_and_drops_a_torn_line(tmp_path):
    history = []
    for epoch in (1, 2, 3):
        history.append({"epoch": epoch, "test_acc": 90.0 + epoch})
        runs.append_metrics(str(tmp_path), history)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "test_a')  # Killed while writing epoch 4.
    assert [h["epoch"] for h in runs.read_metrics(str(tmp_path))] == [1, 2, 3]
    assert runs.read_metrics(str(tmp_path), epochs=2) == history[:2]
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == [json.dumps(h) for h in history[:2]]
    assert json.loads((tmp_path / "metrics.json").read_text()) == history[:2]


def test_check_writable_creates_nothing(tmp_path):
    runs.check_writable(str(tmp_path / "a" / "b"))
    assert list(tmp_path.iterdir()) == []
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        with pytest.raises(ConfigError, match="permission denied"):
            runs.check_writable(str(tmp_path / "runs"))
    finally:
        os.chmod(tmp_path, 0o700)


def test_resume_command_names_the_experiment_module():
    assert runs.resume_command("runs/x", "mnist_tiny") == "python -m experiments.mnist_tiny --resume runs/x"


def test_hold_out_is_a_fixed_disjoint_subset():
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    labels = np.arange(100, dtype=np.int32) % 10
    key = streams.key(jax.random.key(0), streams.VALIDATION)
    (train_x, train_y), (val_x, val_y) = data.pipeline.hold_out(images, labels, 20, key)
    assert train_x.shape == (80, 1, 1, 1) and val_x.shape == (20, 1, 1, 1) and val_y.shape == (20,)
    assert set(train_x.ravel()) | set(val_x.ravel()) == set(range(100))
    assert not set(train_x.ravel()) & set(val_x.ravel())
    assert np.all(np.diff(train_x.ravel().astype(int)) > 0)  # Stored order kept.
    (_, _), (again, _) = data.pipeline.hold_out(images, labels, 20, key)
    np.testing.assert_array_equal(again, val_x)


@pytest.mark.slow
def test_test_limit_evaluates_a_fixed_subset_of_the_test_split(tmp_path, capsys):
    config = dataclasses.replace(mnist_mlp.VARIANTS["2hl_50"], data=DataConfig(train_limit=1000, test_limit=300))
    full_x, full_y = data.load("mnist", "test")
    x, y = load_splits(config)["test"]
    again_x, _ = load_splits(dataclasses.replace(config, seed=7))["test"]
    assert x.shape == (300, 28, 28, 1) and len(set(y.tolist())) == 10  # Not the first 300 of a sorted file.
    np.testing.assert_array_equal(again_x, x)
    keep = data.pipeline.subset(streams.key(jax.random.key(0), streams.TEST_SUBSET), len(full_y), 300)
    assert np.all(np.diff(keep) > 0)  # Test images with their labels, in stored order.
    np.testing.assert_array_equal(x, full_x[keep])
    np.testing.assert_array_equal(y, full_y[keep])
    args = ["--epochs", "1", "--train-limit", "1000", "--test-limit", "300", "--out", str(tmp_path)]
    assert main({"2hl_50": mnist_mlp.VARIANTS["2hl_50"]}, args) == 0
    assert "1000 train / 300 test" in capsys.readouterr().out
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "results.json").read_text())["test_limit"] == 300
    again = evaluate_checkpoint(str(run_dir), "latest")  # On the same 300 images: the recorded figure.
    assert again["test_acc"] == pytest.approx(again["recorded"]["test_acc"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("tensorboard", [True, False])
def test_val_split_picks_the_best_epoch_and_events_are_optional(tmp_path, monkeypatch, tensorboard):
    if tensorboard:
        pytest.importorskip("tensorboardX")
    else:  # As without the extra: the import fails and nothing else changes.
        real_import = builtins.__import__
        monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
            (_ for _ in ()).throw(ImportError(name)) if name == "tensorboardX" else real_import(name, *a, **k)))
    args = ["--epochs", "3", "--train-limit", "1000", "--test-limit", "500", "--val-split", "200", "--out", str(tmp_path)]
    assert main({"2hl_50": mnist_mlp.VARIANTS["2hl_50"]}, args) == 0
    (run_dir,) = tmp_path.iterdir()
    history = runs.read_metrics(str(run_dir))
    assert list(history[0]) == ["epoch", "train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss",
                                "lr", "seconds", "train_seconds", "train_flop_per_s", "train_mfu"]
    results = json.loads((run_dir / "results.json").read_text())
    best = max(history, key=lambda h: (h["val_acc"], h["epoch"]))  # The last of equals, as orbax keeps it.
    assert results["selected_by"] == "val_acc (max)" and results["val_split"] == 200
    assert results["best_epoch"] == best["epoch"] and results["best_epoch_val_accuracy"] == best["val_acc"]
    assert results["best_epoch_test_accuracy"] == best["test_acc"]
    # tinyjax-evaluate --split val reproduces the recorded validation figures of the best checkpoint.
    val = evaluate_checkpoint(str(run_dir), "best", "val")
    assert val["epoch"] == best["epoch"] and val["val_acc"] == best["val_acc"] == val["recorded"]["val_acc"]
    events = [p for p in os.listdir(run_dir) if p.startswith("events.out.tfevents")]
    assert len(events) == (1 if tensorboard else 0)


def test_val_metric_without_a_val_split_is_a_config_error(tmp_path):
    from tinyjax.config import CheckpointConfig
    from tinyjax.validation import validate
    with pytest.raises(ConfigError, match="--best-metric val_loss needs a validation split: add --val-split N"):
        validate(Config(checkpoint=CheckpointConfig(best_metric="val_loss")))
    with pytest.raises(ConfigError, match=r"--best-metric 'test_accuracy' is unknown \(did you mean 'test_acc'\?\)"):
        validate(Config(checkpoint=CheckpointConfig(best_metric="test_accuracy")))
