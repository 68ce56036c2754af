"""tinyjax.runs.inference: a checkpoint's predictions are the run's evaluation, test-time augmentation included."""

import json
import os

import numpy as np
import pytest

import tinyjax
import tinyjax.runs.loading
from tinyjax.data import splits
from tinyjax.runs.inference import view_logits


def test_view_logits_average_the_views_with_their_weights():
    """A model whose logits are the mean pixel of each half of the image: the mirror swaps them."""
    def apply_fn(variables, x, train):
        assert not train
        w = x.shape[2] // 2
        return np.stack([x[:, :, :w].mean((1, 2, 3)), x[:, :, w:].mean((1, 2, 3))], -1)

    pixels = np.zeros((1, 4, 4, 1), np.float32)
    pixels[:, :, :2] = 1.0  # Left half white.
    one = np.asarray(view_logits(apply_fn, {}, pixels, 0.0, 1.0, "none"))
    flip = np.asarray(view_logits(apply_fn, {}, pixels, 0.0, 1.0, "flip"))
    np.testing.assert_allclose(one, [[1.0, 0.0]])
    np.testing.assert_allclose(flip, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        view_logits(apply_fn, {}, pixels, 0.0, 1.0, "mirror")


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory):
    """A finished 1-epoch run with --tta flip_shift and --ema on 1,024 real MNIST images (Adam at a
    constant 0.01, so that 32 steps learn enough for the views to change some predictions)."""
    from experiments import mnist_onecycle
    from tinyjax.cli import main

    out = tmp_path_factory.mktemp("tta_run")
    args = ["--epochs", "1", "--train-limit", "1024", "--test-limit", "1000", "--batch-size", "32", "--optimizer", "adam", "--schedule",
            "constant", "--lr", "0.01", "--tta", "flip_shift", "--ema", "0.5"]
    assert main(mnist_onecycle.VARIANTS, args + ["--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return str(run_dir)


def test_predict_reproduces_the_recorded_accuracy_of_a_tta_run(tta_run):
    run = tinyjax.runs.loading.load(tta_run, "latest")
    assert run.config.tta == "flip_shift" and run.epoch == 1
    images, labels = splits.test_split(run.config)  # The run's 1,000 test images (--test-limit).
    recorded = json.loads(open(os.path.join(tta_run, "metrics.jsonl")).read().splitlines()[-1])["test_acc"]
    assert recorded > 50  # A model that tells digits apart, so that the check below means something.
    probabilities = run.predict(images)
    assert probabilities.shape == (1000, 10)
    assert 100 * (probabilities.argmax(1) == labels).mean() == pytest.approx(recorded, abs=1e-9)
    # The same through tinyjax.predict with the run's tta; one view alone is another classifier.
    same = tinyjax.predict(run.model, run.variables, images, run.config.data.name, tta=run.config.tta)
    np.testing.assert_array_equal(same, probabilities)
    one_view = tinyjax.predict(run.model, run.variables, images, run.config.data.name)
    assert (one_view.argmax(1) != probabilities.argmax(1)).any()
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        tinyjax.predict(run.model, run.variables, images[:2], "mnist", tta="mirror")
