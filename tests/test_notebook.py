"""notebooks/colab.ipynb runs headless on CPU (nbclient), parameters overridden: resume of a cut-off run, then seeds."""

import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import TINY_RUN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "colab.ipynb")


def flag(name: str) -> str:
    return TINY_RUN[TINY_RUN.index(name) + 1]


@pytest.mark.slow  # Starts a kernel and trains twice.
def test_colab_notebook_resumes_a_cut_off_run_and_trains_seeds(tmp_path, tiny_run):
    out = tmp_path / "runs"
    # A run cut off after epoch 2 (as a Colab disconnect leaves it on Drive): last checkpoint and results gone.
    # The session's finished TINY_RUN; the notebook trains with its shape, so its programs come from the
    # persistent compilation cache (the seeds of a CNN train one after another on CPU: the same program).
    run_dir = out / "one-seed" / os.path.basename(tiny_run)
    shutil.copytree(tiny_run, run_dir)
    finished = json.load(open(run_dir / "results.json"))
    shutil.rmtree(run_dir / "checkpoints" / "48")  # 3 epochs x 16 steps: the last save.
    os.remove(run_dir / "results.json")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (index,) = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        f"EPOCHS, TRAIN_LIMIT, TEST_LIMIT, BATCH_SIZE = {flag('--epochs')}, {flag('--train-limit')}, "
        f"{flag('--test-limit')}, {flag('--batch-size')}\nSEEDS, OUT = 2, {str(out)!r}"))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}}).execute()

    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "runtime accelerator: cpu" in text and "resumed at epoch 3, step 0" in text
    resumed = json.load(open(run_dir / "results.json"))
    assert resumed["test_accuracy"] == finished["test_accuracy"]  # Bit-identical resume, as on one machine.
    assert f"test accuracy {resumed['test_accuracy']:.2f}%" in text
    (seeds_dir,) = (out / "2-seeds").iterdir()
    summary = json.load(open(seeds_dir / "results.json"))
    assert len(summary["test_accuracy_values"]) == 2 and f"{summary['test_accuracy']:.2f} ±" in text
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # The plots of both runs, inline.
