"""Successive halving (``--grid ... --halving ETA``): the rungs and the ranking, then whole searches on real
MNIST (vmapped and sequential points make the same decisions; a point paused at every rung ends as its own
run; an interrupted search resumes to the same decisions and runs)."""

import json
import math
import os
import signal

import pytest

from experiments import mnist_mlp
from tinyjax.cli import main
from tinyjax.train import halving

from same_run import assert_same_run, history, sigterm_after_epoch


@pytest.mark.parametrize("epochs,points,eta,expected", [
    (27, 27, 3, [1, 3, 9, 27]),   # Hyperband's bracket s = 3: 27, 9, 3, 1 points.
    (20, 27, 3, [2, 7, 20]),      # A first rung of 20/27 epochs would be under one: s = 2.
    (27, 10, 3, [3, 9, 27]),      # 10, 3, 1 points.
    (27, 8, 3, [9, 27]),          # 8 points allow one pruning (3**2 > 8): 8, 2.
    (4, 4, 2, [1, 2, 4]),
    (2, 27, 3, [2]),              # No rung before the end.
    (5, 2, 3, [5]),               # Fewer points than ETA.
])
def test_rungs_are_hyperbands_most_aggressive_bracket(epochs, points, eta, expected):
    assert halving.rungs(epochs, points, eta) == expected


def test_keep_and_order():
    assert [halving.keep(n, 3) for n in (27, 9, 3, 2, 1, 10)] == [9, 3, 1, 1, 1, 3]
    assert halving.order([90.0, 95.0, math.nan, 95.0, 80.0], "max") == [1, 3, 0, 4, 2]  # Ties in order; NaN last.
    assert halving.order([0.3, math.inf, 0.1, 0.2], "min") == [2, 3, 0, 1]


# ----------------------------------------------------------------------------- whole searches
# Reference 003's small MLP on 512 real images, 4 points, ETA 2: rungs at epochs 1 and 2, then 4;
# ranked by the validation loss (continuous: no ties for float rounding to flip).
SEARCH = ["--variant", "2hl_50_v2", "--epochs", "4", "--train-limit", "512", "--test-limit", "500",
          "--batch-size", "64", "--val-split", "256", "--best-metric", "val_loss", "--best-mode", "min", "--halving", "2",
          "--grid", "lr=1e-3,3e-3", "weight_decay=0,1e-4"]


def only_dir(folder):
    (d,) = [str(p) for p in folder.iterdir() if p.is_dir()]
    return d


def meta(search_dir):
    with open(os.path.join(search_dir, "halving.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """The search with the points vmapped as one program, and one after another."""
    out = {}
    for mode in ("vmap", "sequential"):
        folder = tmp_path_factory.mktemp(mode)
        assert main(mnist_mlp.VARIANTS, SEARCH + ["--replicas", mode, "--out", str(folder)]) == 0
        out[mode] = only_dir(folder)
    return out


def test_vmapped_and_sequential_points_make_the_same_decisions(searches):
    a, b = meta(searches["vmap"]), meta(searches["sequential"])
    assert a["rungs"] == [1, 2, 4] and {c["on_nan"] for c in a["configs"]} == {"skip"}  # One NaN stops no search.
    for x, y in zip(a["decisions"], b["decisions"]):
        assert (x["epoch"], x["ranked"], x["kept"], x["pruned"]) == (y["epoch"], y["ranked"], y["kept"], y["pruned"])
        assert x["values"] == pytest.approx(y["values"], rel=1e-4)
    assert [len(d["kept"]) for d in a["decisions"]] == [2, 1] and a["ranking"] == b["ranking"]
    with open(os.path.join(searches["vmap"], "halving.md")) as f:
        table = f.read().splitlines()[2:]  # The grid's table, in rank order.
    assert [line.split(" | ")[0].strip("| ") for line in table] == [f"point-{k}" for k in a["ranking"]]
    for rank, (k, line) in enumerate(zip(a["ranking"], table), 1):
        point = os.path.join(searches["vmap"], f"point-{k}")
        with open(os.path.join(point, "results.json")) as f:
            results = json.load(f)
        pruned_at = next((d["epoch"] for d in a["decisions"] if k in d["pruned"]), None)
        rows = history(point)
        assert results["epochs_trained"] == len(rows) == (pruned_at or 4)
        assert results["halving"]["rank"] == rank and results["halving"]["pruned_at_epoch"] == pruned_at
        assert results["halving"]["value"] == rows[-1]["val_loss"] and results["test_accuracy"] == rows[-1]["test_acc"]
        assert f"| {len(rows)} of 4: " + ("pruned, " if pruned_at else "") + f"rank {rank} of 4 (val_loss " in line


@pytest.mark.slow
def test_a_point_paused_at_every_rung_ends_as_its_own_run(searches, tmp_path):
    """The winner paused after epochs 1 and 2 and resumed each time (its own program, sequential):
    bit for bit the run of its config trained straight through."""
    a = meta(searches["sequential"])
    winner = a["ranking"][0]
    lr, wd = a["configs"][winner]["optim"]["lr"], a["configs"][winner]["optim"]["weight_decay"]
    single = SEARCH[:SEARCH.index("--halving")] + ["--lr", str(lr), "--weight-decay", str(wd)]
    assert main(mnist_mlp.VARIANTS, single + ["--out", str(tmp_path)]) == 0
    assert_same_run(os.path.join(searches["sequential"], f"point-{winner}"), only_dir(tmp_path), exact=True)


@pytest.mark.slow
@pytest.mark.parametrize("cut", [1, 3])
def test_an_interrupted_search_resumes_to_the_same_decisions(searches, tmp_path, cut, capsys, monkeypatch):
    """SIGTERM in epoch ``cut`` (1: the first rung's, all four points paused there; 3: the winner's
    last segment), then --resume SEARCH_DIR: the same decisions, and every point's run bit for bit."""
    sigterm_after_epoch(monkeypatch, cut)
    assert main(mnist_mlp.VARIANTS, SEARCH + ["--replicas", "vmap", "--out", str(tmp_path)]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    killed = only_dir(tmp_path)
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"--resume {killed}")
    assert main(mnist_mlp.VARIANTS, ["--resume", killed, "--epochs", "9"]) == 2
    assert "continues a --halving search as it began; drop --epochs 9." in capsys.readouterr().err
    assert main(mnist_mlp.VARIANTS, ["--resume", killed, "--grid", "lr=1,2"]) == 2
    assert "continues it as it began; drop --grid." in capsys.readouterr().err
    assert main(mnist_mlp.VARIANTS, ["--resume", killed]) == 0
    original = searches["vmap"]
    a, b = meta(original), meta(killed)
    assert (a["decisions"], a["ranking"]) == (b["decisions"], b["ranking"])
    for point in a["points"]:
        assert_same_run(os.path.join(original, point), os.path.join(killed, point), exact=True)
