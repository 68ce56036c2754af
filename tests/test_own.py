"""Your own model and data through the one door: linen and nnx user models on real digits
(scikit-learn's bundled 8x8 ``load_digits``), every feature of a run, and the bad inputs."""

import dataclasses
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import tinyjax
from tinyjax import data
from tinyjax.config import AugmentConfig, Config, ConfigError, DataConfig, OptimConfig, ScheduleConfig
from tinyjax.data import DataError, from_arrays
from tinyjax.models.door import ModelError, resolve
from tinyjax.train import train_and_evaluate
from tinyjax.train.seeds import train_seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = os.path.join(ROOT, "examples", "digits_net.py") + ":DigitsCNN"


class TinyNnx(nnx.Module):
    """An nnx model in the flax docs' form: rngs and num_classes, BatchNorm and Dropout."""

    def __init__(self, rngs: nnx.Rngs, num_classes: int = 10):
        self.conv = nnx.Conv(1, 8, (3, 3), use_bias=False, rngs=rngs)  # Before BatchNorm: no bias (Adam would
        # move it on float noise alone, its gradient being 0, and vmapped and sequential members would part).
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
        self.fc = nnx.Linear(8 * 4 * 4, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.max_pool(nnx.relu(self.bn(self.conv(x))), (2, 2), (2, 2))
        return self.fc(self.drop(x.reshape(x.shape[0], -1)))


# 1,300 train images after --val-split 200: 20 steps of 64, the last of 20 (no mask: its true size); the
# augmentation at the digits' 8x8x1.
FEATURES = Config(experiment="own", epochs=3, batch_size=64, ema=0.9, tta="flip", accumulate=2, early_stop=2,
                  augment=AugmentConfig(crop_padding=1, rotation=10.0, brightness=0.2),  # At 8x8x1.
                  optim=OptimConfig(name="adam"), schedule=ScheduleConfig(max_lr=0.01),
                  data=DataConfig(val_split=200))


@pytest.fixture(scope="session", params=["linen", "nnx"])
def own_run(request, digits, tmp_path_factory):
    """A finished run of a user model (linen from a file reference, nnx as a class object) on arrays
    with EMA, TTA, --accumulate 2, crop, rotation and brightness, and early stopping on a validation split."""
    model = NET if request.param == "linen" else TinyNnx
    out = tmp_path_factory.mktemp(f"own-{request.param}")
    _, history, run_dir = train_and_evaluate(dataclasses.replace(FEATURES, out=str(out)), model=model, data=digits)
    return request.param, model, history, run_dir


def test_a_user_model_trains_with_every_feature(own_run, digits):
    kind, model, history, run_dir = own_run
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["test_acc"] > 30.0  # 10 classes: chance 10%.
    results = json.load(open(os.path.join(run_dir, "results.json")))
    info = json.load(open(os.path.join(run_dir, "data.json")))
    assert info["image_shape"] == [8, 8, 1] and info["class_names"] == [str(k) for k in range(10)]
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["model"] == (NET if kind == "linen" else "test_own:TinyNnx") and config["data"]["name"] == "arrays"
    assert "early_stop" in results and results["params"] > 0
    # The best checkpoint, loaded in this process, predicts what the run recorded (EMA weights, flip TTA).
    run = tinyjax.load(run_dir, "best", model=None if kind == "linen" else model)
    x, y = digits.test
    accuracy = 100.0 * float(np.mean(run.predict(x).argmax(-1) == y))
    assert accuracy == pytest.approx(results["best_epoch_test_accuracy"], abs=1e-6)
    assert "| n/a | n/a |" in open(os.path.join(run_dir, "layers.md")).read()  # Not a family tinyjax can read.


def test_an_evaluation_of_an_arrays_run_needs_its_data(own_run, digits):
    from tinyjax.evaluate import evaluate_checkpoint

    kind, model, history, run_dir = own_run
    with pytest.raises(ConfigError, match="trained on arrays"):
        evaluate_checkpoint(run_dir, model=model if kind == "nnx" else None)
    result = evaluate_checkpoint(run_dir, model=model if kind == "nnx" else None, data=digits)
    assert result["test_acc"] == pytest.approx(result["recorded"]["test_acc"], abs=1e-6)


def test_the_export_of_a_user_model_runs_without_tinyjax(own_run, digits, tmp_path):
    from tinyjax.export import export_run

    kind, model, _, run_dir = own_run
    spec = export_run(run_dir, out=str(tmp_path / "export"), model=model if kind == "nnx" else None)
    assert spec["class_names"] == [str(k) for k in range(10)] and spec["input"]["shape"] == [None, 8, 8, 1]
    assert set(spec["platforms"]) == {"cpu", "cuda", "tpu"}
    x = digits.test[0][:5]
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, jax; exported = jax.export.deserialize(open(sys.argv[1], 'rb').read()); "
            "np.save(sys.argv[3], np.asarray(exported.call(np.load(sys.argv[2])))); "
            "assert 'tinyjax' not in sys.modules and 'flax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "export" / "model.jax_exported"),
                    str(tmp_path / "x.npy"), str(tmp_path / "logits.npy")], check=True)
    expected = tinyjax.load(run_dir, model=model if kind == "nnx" else None).predict(x)
    np.testing.assert_allclose(jax.nn.softmax(np.load(tmp_path / "logits.npy")), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_seeds_of_an_nnx_model_draw_their_own_init_and_resume(digits, tmp_path, monkeypatch):
    """--seeds 2, vmapped and one after another: each member its own nnx.Rngs init, the same run
    either way; a run stopped by SIGTERM after epoch 1 and resumed (the model from its reference,
    the same arrays passed again) ends bit-identical to the member that never stopped."""
    from same_run import assert_same_run, sigterm_after_epoch
    from tinyjax.runs.checkpoint import load_config
    from tinyjax.train.faults import Interrupted

    config = Config(experiment="own", epochs=2, batch_size=100, replicas="sequential", out=str(tmp_path / "seeds"),
                    optim=OptimConfig(name="adam"), schedule=ScheduleConfig(max_lr=0.01), seeds=(0, 1))
    histories, sequential = train_seeds(config, model=TinyNnx, data=digits)
    _, vmapped = train_seeds(dataclasses.replace(config, replicas="vmap", out=str(tmp_path / "vmap")),
                             model=TinyNnx, data=digits)
    assert histories[0][0]["train_loss"] != histories[1][0]["train_loss"]  # Own init and data order.
    for seed in (0, 1):
        assert_same_run(os.path.join(vmapped, f"seed-{seed}"), os.path.join(sequential, f"seed-{seed}"))
    single = dataclasses.replace(config, seeds=(), seed=1, out=str(tmp_path / "stopped"))
    sigterm_after_epoch(monkeypatch, 1)
    with pytest.raises(Interrupted):
        train_and_evaluate(single, model=TinyNnx, data=digits)
    monkeypatch.undo()
    (stopped,) = os.listdir(tmp_path / "stopped")
    stopped = str(tmp_path / "stopped" / stopped)
    with pytest.raises(ConfigError, match="the checkpoint's batch_stats/bn/mean is not in the model"):
        train_and_evaluate(single, resume=stopped, data=digits)  # The default --model: not the run's.
    saved = load_config(stopped)  # Its --model is the reference test_own:TinyNnx.
    train_and_evaluate(saved, resume=stopped, data=digits)
    assert_same_run(stopped, os.path.join(sequential, "seed-1"), exact=True)


def test_a_maskless_model_trains_the_last_batch_at_its_true_size():
    """No padding row reaches a maskless model's BatchNorm: an epoch of 100 images in batches of 32
    (the last of 4) ends with the batch statistics of four steps on the true batches."""
    from tinyjax.data.dataset import DataInfo
    from tinyjax.train.epochs import make_epoch_fns
    from tinyjax.train.state import init_state
    from tinyjax.train.steps import train_step

    class Maskless(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.BatchNorm(use_running_average=not train)(nn.Conv(4, (3, 3))(x))
            return nn.Dense(3)(x.mean((1, 2)))

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (100, 6, 6, 1), dtype=np.uint8), rng.integers(0, 3, 100).astype(np.int32)
    info = DataInfo((6, 6, 1), ("a", "b", "c"), 0.5, 0.25)
    config = Config(epochs=1, batch_size=32, optim=OptimConfig(name="sgd", lr=0.1),
                    schedule=ScheduleConfig(name="constant"))
    net = resolve(Maskless(), num_classes=3)
    assert not net.takes_mask and net.takes_train
    _, state, _ = init_state(config, 4, net=net, info=info)
    device = data.to_device(images, labels)
    key = jax.random.key(5)
    indices, _ = data.batch_plan(key, 100, 32)
    expected = state
    for i, size in enumerate((32, 32, 32, 4)):
        rows = indices[i, :size]
        batch = data.make_batch(device, rows, jnp.ones(size, bool), 0.5, 0.25)
        expected, _ = jax.jit(train_step)(expected, batch)
    train_epoch, _ = make_epoch_fns(config, "step", net=net, info=info)
    trained, totals, done = train_epoch(state, device, key)  # Donates state's buffers.
    assert done == 4 and int(totals["count"]) == 100
    chex.assert_trees_all_close((trained.params, trained.batch_stats), (expected.params, expected.batch_stats),
                                rtol=1e-5, atol=1e-6)


def test_the_door_takes_every_form_of_model(tmp_path):
    assert resolve("mnist_cnn_7k").takes_mask and resolve("mnist_cnn_7k").reference == "mnist_cnn_7k"
    linen = resolve(NET, num_classes=3)
    assert linen.kind == "linen" and linen.module.num_classes == 3 and linen.reference == NET
    assert resolve("test_own:TinyNnx").kind == "nnx"
    made = TinyNnx(nnx.Rngs(7))
    own = resolve(made)
    assert own.instance is made and own.reference is None
    x = jnp.zeros((1, 8, 8, 1))
    chex.assert_trees_all_equal(own.init(jax.random.key(0), x), own.init(jax.random.key(1), x))  # Its own init.
    fresh = resolve(TinyNnx)
    assert not jnp.array_equal(fresh.init(jax.random.key(0), x)["params"]["fc"]["kernel"],
                               fresh.init(jax.random.key(1), x)["params"]["fc"]["kernel"])

    def build():
        return nn.Dense(10)
    assert resolve(build).kind == "linen"


@pytest.mark.parametrize("spec, message", [
    ("mnist_cnn_7", "did you mean 'mnist_cnn_7k'"),
    ("no_such_module_xyz:Net", "cannot import it"),
    ("test_own:nothing_here", "cannot import it"),
    (42, "not a flax module"),
])
def test_a_model_that_cannot_go_through_the_door_is_one_error(spec, message):
    with pytest.raises(ModelError, match=message):
        resolve(spec)


def test_bad_user_data_is_one_error_each():
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 1])
    for bad, match in [((x, np.array([0, 1, 2, 5]), None, None, ["a", "b", "c"]), "outside \\[0, 3\\)"),
                       ((x, y.astype(np.float32)), "labels must be integers"),
                       ((x[0], y), "must be \\[N, H, W, C\\]"),
                       ((x.astype(np.int16), y), "give uint8 pixels"),
                       ((x.astype(np.float32) + 2, y), "must lie in \\[0, 1\\]"),
                       ((x, y, np.zeros((2, 9, 9), np.uint8), np.array([0, 1])), "images of one shape"),
                       ((x, y[:3]), "one label per image")]:
        with pytest.raises(DataError, match=match):
            from_arrays(*bad)
    made = from_arrays(x, y)
    assert made.info.class_names == ("0", "1", "2") and made.test is None and made.train[0].shape == (4, 8, 8, 1)


def test_a_model_that_does_not_fit_the_data_stops_before_training(digits, tmp_path):
    config = Config(out=str(tmp_path))

    class Wide(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(7)(x.reshape(x.shape[0], -1))

    class Broken(nn.Module):
        @nn.compact
        def __call__(self, x):
            raise RuntimeError("my layer is wrong")

    for model, match in [(Wide(), "logits of shape \\[7\\].*10 classes"), (Broken(), "my layer is wrong")]:
        with pytest.raises(ConfigError, match=match):
            train_and_evaluate(config, model=model, data=digits)
    with pytest.raises(ConfigError, match="over --max-params 100"):
        train_and_evaluate(Config(out=str(tmp_path), max_params=100), model=NET, data=digits)
    # No mask: the last batch, 1,500 % 64 = 28 images, trains at its true size, which 8 micro-batches do not cut.
    with pytest.raises(ConfigError, match="takes no mask.* 28 images .*--accumulate 8"):
        train_and_evaluate(Config(out=str(tmp_path), batch_size=64, accumulate=8), model=NET, data=digits)
    # The elastic warp's blur kernel (sigma 2: 17 pixels) against the digits' 8 pixels, known once loaded.
    with pytest.raises(ConfigError, match="too wide for a 8-pixel image"):
        train_and_evaluate(Config(out=str(tmp_path), augment=AugmentConfig(elastic_alpha=1.0, elastic_sigma=2.0)),
                           model=NET, data=digits)
    assert not os.listdir(tmp_path)  # Nothing written.


def test_a_resume_whose_model_no_longer_imports_is_one_error(own_run, digits, tmp_path):
    from tinyjax.runs.checkpoint import load_config

    _, _, _, run_dir = own_run
    gone = dataclasses.replace(load_config(run_dir), model=str(tmp_path / "deleted.py") + ":DigitsCNN")
    with pytest.raises(ConfigError, match="deleted.py:DigitsCNN: cannot import it"):
        train_and_evaluate(gone, resume=run_dir, data=digits)


def test_a_dataset_larger_than_memory_is_one_line():
    from tinyjax.data.dataset import _check_memory

    with pytest.raises(DataError, match="huge.npz holds 931322.6 GiB, more than the .* GiB of memory free"):
        _check_memory("huge.npz", 10**15)


def test_a_folder_of_class_folders_is_a_dataset(tmp_path):
    """Real digits written as PNGs into class folders (sorted names, as torchvision's ImageFolder),
    some at another size: one error line without --image-size, resized with it; a train/test layout
    keeps its split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from tinyjax.data.dataset import resolve as dataset

    d = load_digits()
    names = ["zero", "one", "two"]
    for i in range(30):
        label, pixels = int(d.target[i]) % 3, np.rint(d.images[i] * 255 / 16).astype(np.uint8)
        split = "train" if i < 24 else "test"
        for root in (tmp_path / "flat" / names[label], tmp_path / "split" / split / names[label]):
            root.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels)
            (image.resize((10, 10)) if i == 5 else image).save(root / f"{i}.png")
    with pytest.raises(DataError, match="images of 2 sizes .*pass --image-size H,W"):
        dataset(str(tmp_path / "flat"))
    flat = dataset(str(tmp_path / "flat"), (8, 8))
    assert flat.info.class_names == ("one", "two", "zero") and flat.train[0].shape == (30, 8, 8, 1)
    assert flat.test is None
    split = dataset(str(tmp_path / "split"), (8, 8))
    assert split.train[0].shape == (24, 8, 8, 1) and split.test[0].shape == (6, 8, 8, 1)
    expected = sorted(["one", "two", "zero"].index(names[int(t) % 3]) for t in d.target[24:30])  # Read class by class.
    np.testing.assert_array_equal(split.test[1], expected)


def test_a_user_run_is_in_the_report(own_run):
    from tinyjax.runs import report

    _, _, _, run_dir = own_run
    assert os.path.basename(run_dir) in report.table([run_dir])
