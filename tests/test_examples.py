"""The examples in examples/ run as their docstrings say, shortened (same code, fewer epochs and
images); their full runs' figures are in their docstrings."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
pytestmark = pytest.mark.slow  # Each trains whole runs.


def test_own_model_file_and_arrays(tmp_path):
    """examples/own_arrays.py: a linen model by file reference on numpy arrays, seeds, export."""
    import own_arrays

    run_dir = own_arrays.main(epochs=2, seeds=2, out=str(tmp_path))
    results = json.load(open(os.path.join(run_dir, "results.json")))
    assert results["n"] == 2 and results["test_accuracy"] > 50.0  # 10 classes: chance is 10%.
    assert os.path.exists(os.path.join(run_dir, "seed-0", "export", "model.jax_exported"))
    spec = json.load(open(os.path.join(run_dir, "seed-0", "export", "model.json")))
    assert spec["input"]["shape"] == [None, 8, 8, 1] and len(spec["class_names"]) == 10


def test_nnx_model_on_the_command_line(tmp_path, capsys):
    """examples/nnx_mnist.py through tinyjax-train on real MNIST, then tinyjax-evaluate in the same
    way a new process would: the model from its file reference."""
    from tinyjax.evaluate import main as evaluate
    from tinyjax.train_cli import main as train

    args = ["--model", os.path.join(ROOT, "examples", "nnx_mnist.py") + ":Net", "--dataset", "mnist", "--epochs", "1",
            "--train-limit", "2000", "--test-limit", "1000", "--batch-size", "100", "--optimizer", "adam",
            "--max-lr", "0.01", "--out", str(tmp_path)]
    assert train(args) == 0
    (run_dir,) = [str(p) for p in tmp_path.iterdir()]
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["model"].endswith("examples/nnx_mnist.py:Net") and config["experiment"] == "train"
    assert json.load(open(os.path.join(run_dir, "results.json")))["test_accuracy"] > 50.0
    capsys.readouterr()
    assert evaluate([run_dir]) == 0
    assert "(recorded: " in capsys.readouterr().out


def test_a_tfds_name_on_mock_data(tmp_path):
    """examples/tfds_name.py on tfds.testing.mock_data (no network; random images): Fashion-MNIST's
    class names and shapes reach the run, and it finishes."""
    import tensorflow_datasets as tfds

    import tfds_name

    with tfds.testing.mock_data(num_examples=1024):  # 8 steps of 128.
        run_dir = tfds_name.main(epochs=1, out=str(tmp_path))
    info = json.load(open(os.path.join(run_dir, "data.json")))
    assert info["image_shape"] == [28, 28, 1] and info["class_names"][:3] == ["T-shirt/top", "Trouser", "Pullover"]
    assert len(info["class_names"]) == 10 and os.path.exists(os.path.join(run_dir, "results.json"))
    assert json.load(open(os.path.join(run_dir, "config.json")))["data"]["name"] == "fashion_mnist:3.0.1"
