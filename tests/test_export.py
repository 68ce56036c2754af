"""``tinyjax-export``: a run's model as a ``jax.export`` artifact that jax alone loads and runs."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import tinyjax
from tinyjax import export
from tinyjax.data import splits

# A fresh interpreter that knows jax and numpy only: the artifact's logits of the images in argv[2].
LOADER = """
import json, sys
import jax, numpy as np
out = sys.argv[1]
spec = json.load(open(out + "/model.json"))
with open(out + "/" + spec["file"], "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
images = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(exported.call(images)))
np.save(sys.argv[4], np.asarray(exported.call(images[:7])))  # Any batch: the dimension is symbolic.
assert not any(m == "tinyjax" or m.startswith("tinyjax.") for m in sys.modules), "tinyjax was imported"
"""


def test_the_artifact_loads_without_tinyjax_and_reproduces_the_test_accuracy(tiny_run, tmp_path):
    out = tmp_path / "export"
    assert export.main([tiny_run, "--out", str(out)]) == 0
    spec = json.loads((out / "model.json").read_text())
    assert spec["input"]["shape"] == [None, 28, 28, 1] and spec["input"]["dtype"] == "uint8"
    assert spec["output"]["shape"] == [None, 10] and spec["class_names"] == [str(d) for d in range(10)]
    assert spec["source"]["params"] == 7784 and set(spec["platforms"]) == {"cpu", "cuda", "tpu"}
    run = tinyjax.load(tiny_run, "best")
    images, labels = splits.test_split(run.config)  # The 1,000 test images the run evaluated on.
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", LOADER, str(out), str(tmp_path / "images.npy"), str(tmp_path / "logits.npy"),
                    str(tmp_path / "seven.npy")], check=True, cwd=str(tmp_path), env=env)
    logits, seven = np.load(tmp_path / "logits.npy"), np.load(tmp_path / "seven.npy")
    assert logits.shape == (1000, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(seven, logits[:7], rtol=1e-5, atol=1e-5)
    probabilities = run.predict(images)
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits)), probabilities, atol=1e-5)
    assert np.array_equal(logits.argmax(-1), probabilities.argmax(-1))  # To the image.
    recorded = next(h for h in map(json.loads, open(f"{tiny_run}/metrics.jsonl")) if h["epoch"] == run.epoch)
    assert np.sum(logits.argmax(-1) == labels) == round(recorded["test_acc"] * len(labels) / 100)


def test_a_fixed_batch_and_the_error_lines(tiny_run, tmp_path, capsys):
    out = tmp_path / "fixed"
    spec = export.export_run(tiny_run, "latest", batch=4, out=str(out), platforms=("cpu",))
    assert spec["input"]["shape"] == [4, 28, 28, 1] and spec["platforms"] == ["cpu"]
    exported = jax.export.deserialize(bytearray((out / "model.jax_exported").read_bytes()))
    assert exported.call(np.zeros((4, 28, 28, 1), np.uint8)).shape == (4, 10)
    with pytest.raises(ValueError):  # jax refuses another batch.
        exported.call(np.zeros((5, 28, 28, 1), np.uint8))
    assert export.main([str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} is not a tinyjax run directory")
    assert not (tmp_path / "x").exists()
    assert export.main([tiny_run, "--platforms", "cpu,gpu", "--out", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err == ("error: --platforms cpu,gpu: gpu is not a jax.export platform; "
                                       "choose among cpu,cuda,rocm,tpu.\n")
    assert not (tmp_path / "y").exists()
    with pytest.raises(SystemExit):
        export.main([tiny_run, "--batch", "many"])
    assert "--batch must be a number or 'dynamic'" in capsys.readouterr().err
