"""Training on real CIFAR-10 (the JPEG copy in ../shared/data), and the recipe pieces of the fast
experiment: the frozen whitening layer, the weights' moving average, test-time augmentation."""

import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cifar10_fast, cifar10_resnet
from tinyjax import data, predict
from tinyjax.runs import loading
from tinyjax.cli import main
from tinyjax.train.epochs import make_epoch_fns
from tinyjax.data.splits import load_splits
from tinyjax.data import splits
from tinyjax.train.state import TrainState, init_state, update_ema
from tinyjax.train.steps import cross_entropy_loss


def have_cifar():
    root = os.environ.get("TINYJAX_DATA_DIR", "")
    return os.path.exists(os.path.join(root, "cifar10-jpeg.tar.gz"))


needs_cifar = pytest.mark.skipif(not have_cifar(), reason="needs $TINYJAX_DATA_DIR/cifar10-jpeg.tar.gz")


def train_mode_loss(state: TrainState, images, labels, mean, std) -> float:
    @jax.jit  # One program: op by op, each of ResNet-20's layers compiled on its own.
    def loss(variables, images, labels):
        logits, _ = state.apply_fn(variables, data.pipeline.normalize(images, mean, std), train=True,
                                   mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
        return cross_entropy_loss(logits, labels)
    return float(loss({"params": state.params, "batch_stats": state.batch_stats}, images, labels))


@pytest.mark.slow
def test_fastnet_whitening_is_set_from_data_and_stays_frozen():
    config = dataclasses.replace(cifar10_fast.VARIANTS["small"], epochs=1, batch_size=8, ema=0.0, tta="none")
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64, dtype=np.int32) % 10
    _, state, _ = init_state(config, 8, images)
    kernel = np.asarray(state.params["whiten"]["kernel"])
    _, random_init, _ = init_state(config, 8)
    assert not np.allclose(kernel, random_init.params["whiten"]["kernel"])
    np.testing.assert_allclose(kernel[..., :12], -kernel[..., 12:])  # Filters and their negatives.
    train_epoch, _ = make_epoch_fns(config, "step")
    before = jax.tree.map(np.asarray, state.params)
    state, _, _ = train_epoch(state, data.to_device(images, labels), jax.random.key(1))
    np.testing.assert_array_equal(state.params["whiten"]["kernel"], kernel)  # No step, no weight decay.
    assert not np.allclose(state.params["whiten"]["bias"], before["whiten"]["bias"])
    assert not np.allclose(state.params["fc"]["kernel"], before["fc"]["kernel"])


def test_ema_is_a_moving_average_that_evaluation_uses():
    config = dataclasses.replace(cifar10_fast.VARIANTS["small"], epochs=1, batch_size=8, ema=0.5)
    _, state, _ = init_state(config, 8)
    chex.assert_trees_all_equal(state.ema, {"params": state.params, "batch_stats": state.batch_stats})
    moved = state.replace(params=jax.tree.map(lambda p: p + 1.0, state.params))
    averaged = update_ema(moved, 0.5)
    chex.assert_trees_all_close(averaged.ema["params"], jax.tree.map(lambda p: p + 0.5, state.params))
    assert averaged.eval_variables()["params"] is averaged.ema["params"]
    no_ema = init_state(dataclasses.replace(config, ema=0.0), 8)[1]
    assert no_ema.ema is None and no_ema.eval_variables()["params"] is no_ema.params


def test_tta_views():
    x = jnp.asarray(np.random.default_rng(0).random((2, 5, 6, 3)), jnp.float32)
    [(weight, view)] = data.pipeline.tta_views(x, "none")
    assert weight == 1.0 and view is x
    (w0, original), (w1, flipped) = data.pipeline.tta_views(x, "flip")
    assert w0 == w1 == 0.5
    np.testing.assert_array_equal(flipped, x[:, :, ::-1])
    views = data.pipeline.tta_views(x, "flip_shift")
    # airbench94's level 2: 0.5 * mirror pair + 0.5 * mean of the two shifted mirror pairs.
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    v = np.asarray(x)
    pad = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # numpy's reflect is PyTorch's
    down_right, up_left = views[2][1], views[4][1]
    np.testing.assert_array_equal(down_right, pad[:, :5, :6])
    np.testing.assert_array_equal(up_left, pad[:, 2:7, 2:8])
    np.testing.assert_array_equal(down_right[:, 1:, 1:], v[:, :-1, :-1])
    np.testing.assert_array_equal(down_right[:, 0, 1:], v[:, 1, :-1])  # Row -1 reflects to row 1.
    np.testing.assert_array_equal(views[3][1], down_right[:, :, ::-1])
    np.testing.assert_array_equal(views[5][1], up_left[:, :, ::-1])
    shifts = data.pipeline.tta_views(x, "shift")  # The same views without mirrors, for digits.
    assert [w for w, _ in shifts] == [0.5, 0.25, 0.25]
    for (_, got), (_, want) in zip(shifts, views[0::2]):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        data.pipeline.tta_views(x, "rotate")


def loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) of float64 logits ``[N, K]``, written out in numpy."""
    top = logits.max(1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(1))
    loss = np.mean(log_z - logits[np.arange(len(labels)), labels])
    return float(loss), 100 * float(np.mean(logits.argmax(1) == labels))


@needs_cifar
@pytest.mark.slow
def test_resnet20_epoch_on_2000_real_images_lowers_the_loss_end_to_end_with_ema_tta_and_checkpoint(tmp_path):
    # The CIFAR family's real-data training test: one epoch (16 steps of 128) of ResNet-20 on 2,000 real images.
    args = ["--variant", "resnet20", "--epochs", "1", "--train-limit", "2000", "--test-limit", "1000", "--ema", "0.9",
            "--tta", "flip", "--rotation", "10", "--brightness", "0.2", "--out", str(tmp_path)]
    assert main(cifar10_resnet.VARIANTS, args) == 0
    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["params"] == 269_722 and results["label_smoothing"] == 0.0
    assert (run_dir / "misclassified.png").exists()
    restored = loading.load(str(run_dir), "latest")
    assert restored.config.augment.rotation == 10 and restored.config.ema == 0.9
    assert restored.epoch == 1 and (run_dir / "checkpoints" / "16").is_dir()  # ceil(2000 / 128) steps.
    # The epoch lowered the loss: the train-mode loss (batch statistics) of 500 of its training images, at the
    # run's initial weights (the same seed) and at its restored ones (the moving average).
    train_images, train_labels = load_splits(restored.config)["train"]
    assert train_images.shape == (2000, 32, 32, 3) and len(np.unique(train_labels)) == 10  # A subset of every class.
    _, initial, _ = init_state(restored.config, 16, train_images)
    mean, std = data.NORMALIZATION["cifar10"]
    probe = jnp.asarray(train_images[:500]), jnp.asarray(train_labels[:500])
    before = train_mode_loss(initial, *probe, mean, std)
    after = train_mode_loss(initial.replace(params=restored.variables["params"],
                                            batch_stats=restored.variables["batch_stats"]), *probe, mean, std)
    assert after < 0.8 * before, (before, after)
    # The recorded test figures are those of the restored weights (the moving average) under the flip TTA,
    # over the run's 1,000 test images (--test-limit: a fixed subset): recomputed here with the model's own
    # apply and numpy, outside the epoch functions. (One epoch on 2,000 images leaves it far from trained: the
    # figure is the plumbing's.)
    images, labels = splits.test_split(restored.config)
    assert images.shape == (1000, 32, 32, 3)
    mean, std = data.NORMALIZATION["cifar10"]
    apply = jax.jit(lambda x: restored.model.apply(restored.variables, data.pipeline.normalize(x, mean, std),
                                                   train=False))

    def logits(x):
        return np.concatenate([np.asarray(apply(jnp.asarray(x[i:i + 400]))) for i in range(0, len(x), 400)]
                              ).astype(np.float64)
    plain, mirrored = logits(images), logits(images[:, :, ::-1])
    loss, accuracy = loss_and_accuracy(0.5 * plain + 0.5 * mirrored, labels)
    assert results["final_test_loss"] == pytest.approx(loss, rel=1e-5)
    assert results["test_accuracy"] == pytest.approx(accuracy, abs=0.11)  # A near-tie may flip one image (0.1%).
    assert loss_and_accuracy(plain, labels)[0] != pytest.approx(loss, rel=1e-5)  # Without the TTA: another loss.
    # evaluate_checkpoint gives back the accuracy the run recorded.
    from tinyjax.evaluate import evaluate_checkpoint

    evaluated = evaluate_checkpoint(str(run_dir), "latest")
    assert evaluated["test_acc"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    assert evaluated["recorded"]["test_acc"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    probs = predict(restored.model, restored.variables, images[:16], "cifar10")
    assert probs.shape == (16, 10) and np.allclose(probs.sum(-1), 1, atol=1e-5)


@pytest.mark.slow
def test_bfloat16_computes_in_bf16_but_keeps_float32_weights_statistics_and_optimizer_state():
    config = dataclasses.replace(cifar10_resnet.VARIANTS["resnet20"], epochs=1, batch_size=8, dtype="bfloat16")
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16, dtype=np.int32) % 10
    model, state, _ = init_state(config, 2, images)
    assert model.dtype == jnp.bfloat16
    train_epoch, evaluate = make_epoch_fns(config, "step")
    state, totals, _ = train_epoch(state, data.to_device(images, labels), jax.random.key(1))
    assert int(totals["nonfinite"]) == 0
    for tree in (state.params, state.batch_stats, state.opt_state):
        assert {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)} == {np.dtype(np.float32)}
    assert np.isfinite(float(evaluate(state, data.to_device(images, labels))["loss_sum"]))


def test_bfloat16_on_a_float32_only_family_is_one_config_error():
    from experiments import mnist_onecycle
    from tinyjax.config import ConfigError
    from tinyjax.validation import validate

    with pytest.raises(ConfigError, match="--dtype bfloat16: mnist_cnn_7k \\(CNN\\) supports only float32"):
        validate(dataclasses.replace(mnist_onecycle.CONFIG, dtype="bfloat16"))
