import json
import os

import chex
import jax
import numpy as np
import pytest

import tinyjax
from tinyjax import models
from tinyjax.runs import loading
from tinyjax.data import splits
from tinyjax.runs.checkpoint import CheckpointError, Checkpoints
from tinyjax.config import CheckpointConfig, ConfigError
from tinyjax.evaluate import evaluate_checkpoint, main as evaluate_main
from tinyjax.optim import make_optimizer
from tinyjax.train import create_train_state

from experiments.mnist_onecycle import CONFIG
from faults_helpers import fail_checkpoint_writes


def state_of(seed=0, model="mnist_cnn_7k", ema=False):
    tx, _ = make_optimizer(CONFIG.optim, CONFIG.schedule, 100)
    return create_train_state(models.create(model), tx, jax.random.key(seed), (1, 28, 28, 1), ema=ema)


def saved_ids(run_dir):
    return sorted(int(p) for p in os.listdir(os.path.join(run_dir, "checkpoints")) if p.isdigit())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mnist_cnn_7k", "mlp_2hl_50"])  # With and without batch statistics.
def test_restore_gives_back_the_whole_state(tmp_path, model):
    state = state_of(3, model)
    ckpt = Checkpoints(str(tmp_path), CONFIG)
    ckpt.save(5, state, {"epoch": 0, "position": 5, "steps_per_epoch": 10, "totals": {"count": 7}})
    ckpt.close()
    restored, meta = Checkpoints(str(tmp_path), CONFIG).restore(5, state_of(0, model))
    chex.assert_trees_all_equal((restored.params, restored.batch_stats, restored.opt_state, restored.step),
                                (state.params, state.batch_stats, state.opt_state, state.step))
    assert jax.random.key_impl(restored.rng) == jax.random.key_impl(state.rng)
    np.testing.assert_array_equal(jax.random.key_data(restored.rng), jax.random.key_data(state.rng))
    assert meta == {"epoch": 0, "position": 5, "steps_per_epoch": 10, "totals": {"count": 7}}


def test_the_weights_moving_average_is_saved_and_restored(tmp_path):
    state = state_of(3, ema=True)
    state = state.replace(ema=jax.tree.map(lambda x: x + 0.25, state.ema))  # Unlike the live weights.
    ckpt = Checkpoints(str(tmp_path), CONFIG)
    ckpt.save(1, state, {"epoch": 1})
    ckpt.close()
    restored, _ = Checkpoints(str(tmp_path), CONFIG).restore(1, state_of(0, ema=True))
    chex.assert_trees_all_equal(restored.ema, state.ema)
    chex.assert_trees_all_equal(restored.params, state.params)


@pytest.mark.parametrize("mode,accuracies,best", [
    ("max", [90.0, 97.0, 95.0, 94.0, 93.0], 2),  # The metric gets worse after epoch 2.
    ("min", [0.5, 0.2, 0.3, 0.4, 0.6], 2),
])
def test_keeps_the_latest_k_and_the_best_even_when_the_metric_gets_worse(tmp_path, mode, accuracies, best):
    config = CONFIG.__class__(**{**CONFIG.__dict__, "checkpoint": CheckpointConfig(keep=2, best_mode=mode)})
    ckpt, state = Checkpoints(str(tmp_path), config), state_of()
    for epoch, value in enumerate(accuracies, 1):
        ckpt.save(epoch, state, {"epoch": epoch}, {"test_acc": value})
    ckpt.save(6, state, {"epoch": 5, "position": 1})  # A mid-epoch save: no metric, never the best.
    ckpt.wait()
    assert ckpt.latest() == 6 and ckpt.best() == best
    assert saved_ids(tmp_path) == sorted({best, 5, 6})
    ckpt.close()


def test_a_failed_background_save_is_an_error_and_older_checkpoints_stay(tmp_path, monkeypatch):
    ckpt, state = Checkpoints(str(tmp_path), CONFIG), state_of()
    ckpt.save(1, state, {"epoch": 1}, {"test_acc": 50.0})
    ckpt.wait()
    fail_checkpoint_writes(monkeypatch, OSError(28, "No space left on device"))
    ckpt.save(2, state, {"epoch": 2}, {"test_acc": 60.0})
    with pytest.raises(CheckpointError, match="saving checkpoint 2 .* failed .*older checkpoints are intact"):
        ckpt.wait()
    monkeypatch.undo()
    assert saved_ids(tmp_path) == [1] and ckpt.latest() == 1
    ckpt.close()


def test_a_non_finite_state_is_never_saved(tmp_path):
    state = state_of()
    bad = state.replace(params=jax.tree.map(lambda x: x * np.nan, state.params))
    ckpt = Checkpoints(str(tmp_path), CONFIG)
    with pytest.raises(CheckpointError, match="not finite"):
        ckpt.save(1, bad, {"epoch": 1})
    ckpt.close()
    assert saved_ids(tmp_path) == []


def test_load_and_predict_without_knowing_the_config(tiny_run):
    model, variables, config, epoch = loading.load(tiny_run, "latest")
    assert config.model == "mnist_cnn_7k" and epoch == 3
    assert set(variables) == {"params", "batch_stats"}
    images, labels = splits.test_split(config)  # The 1,000 test images the run evaluated on (--test-limit).
    probabilities = tinyjax.predict(model, variables, images, config.data.name, batch_size=300)
    assert probabilities.shape == (1000, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    # The predictions are the run's: the accuracy its last epoch recorded, to the image.
    last = json.loads(open(os.path.join(tiny_run, "metrics.jsonl")).read().splitlines()[-1])
    assert 100 * (probabilities.argmax(1) == labels).mean() == pytest.approx(last["test_acc"], abs=1e-9)
    with pytest.raises(ValueError, match="uint8 images"):
        tinyjax.predict(model, variables, images[:3].astype(np.float32))


def test_evaluate_reproduces_the_recorded_accuracy(tiny_run, capsys):
    with open(os.path.join(tiny_run, "results.json")) as f:
        results = json.load(f)
    best = evaluate_checkpoint(tiny_run, "best")
    assert best["epoch"] == results["best_epoch"]
    assert best["test_acc"] == results["best_epoch_test_accuracy"] == best["recorded"]["test_acc"]
    np.testing.assert_allclose(best["test_loss"], best["recorded"]["test_loss"], rtol=1e-6)
    latest = evaluate_checkpoint(tiny_run, "latest")
    assert latest["epoch"] == 3 and latest["test_acc"] == results["test_accuracy"]
    assert evaluate_main([tiny_run, "--which", "latest"]) == 0
    assert f"latest checkpoint (epoch 3): test acc {results['test_accuracy']:.2f}%" in capsys.readouterr().out


def test_evaluate_with_another_tta_is_predict_with_it(tiny_run, capsys):
    shifted = evaluate_checkpoint(tiny_run, "latest", tta="shift")
    assert shifted["recorded"] is None  # The run evaluated without TTA: nothing recorded to compare.
    model, variables, config, _ = loading.load(tiny_run, "latest")
    images, labels = splits.test_split(config)
    probabilities = tinyjax.predict(model, variables, images, config.data.name, tta="shift")
    assert shifted["test_acc"] == pytest.approx(100 * (probabilities.argmax(1) == labels).mean(), abs=1e-9)
    assert evaluate_main([tiny_run, "--which", "latest", "--tta", "shift"]) == 0
    assert "(not recorded by the run: another --tta)" in capsys.readouterr().out
    assert evaluate_main([tiny_run, "--split", "val"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tiny_run} was trained without --val-split: it has no "
                                              "validation images; use --split test.")


def test_results_say_which_epoch_is_best_and_how_it_was_chosen(tiny_run):
    with open(os.path.join(tiny_run, "results.json")) as f:
        results = json.load(f)
    history = [json.loads(line) for line in open(os.path.join(tiny_run, "metrics.jsonl"))]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    best = max(history, key=lambda h: (h["test_acc"], h["epoch"]))  # The last of equals, as orbax keeps it.
    assert results["best_epoch"] == best["epoch"] and results["selected_by"] == "test_acc (max)"
    assert results["best_epoch_test_accuracy"] == best["test_acc"]
    assert results["test_accuracy"] == history[-1]["test_acc"] and results["val_split"] == 0
    assert saved_ids(tiny_run)[-1] == 48  # 3 epochs x 16 steps: ids count batches.


@pytest.mark.parametrize("which,message", [("newest", "--which must be 'latest' or 'best'"),
                                           ("best", "is not a tinyjax run directory")])
def test_load_errors_are_one_line(tmp_path, tiny_run, which, message):
    with pytest.raises(ConfigError, match=message) as err:
        loading.load(str(tmp_path) if which == "best" else tiny_run, which)
    assert "\n" not in str(err.value)


def test_evaluate_on_a_folder_without_checkpoints_is_one_error_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model": "mnist_cnn_7k"}))
    assert evaluate_main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path} holds no checkpoint (no checkpoints/ folder; " \
                                              "was it run with --save-every 0?)."
