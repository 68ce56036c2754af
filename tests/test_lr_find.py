"""--find-lr: K constant learning rates from one init as one program, and its suggestion."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from experiments import mnist_mlp
from tinyjax.cli import main
from tinyjax.config import ConfigError, ScheduleConfig
from tinyjax.train import lr_find, lr_rule

SMALL = ["--train-limit", "512", "--batch-size", "32"]  # 16 steps per epoch.


def test_parse_range_is_log_spaced_with_both_ends():
    np.testing.assert_allclose(lr_find.parse_range("1e-4:1:5"), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert len(lr_find.parse_range(lr_find.DEFAULT_RANGE)) == 16
    for bad in ("1e-4:1", "a:1:4", "1:0.1:4", "0:1:4", "1e-4:1:1", "1e-4:1:4:2"):
        with pytest.raises(ConfigError, match="--find-lr"):
            lr_find.parse_range(bad)


def plateau(lrs, curves):
    return lr_rule.flat_range(lrs, lr_rule.final_losses(curves))


def suggestion(lrs, curves):
    return lr_rule.suggest(plateau(lrs, curves))


def test_suggestion_is_the_middle_of_the_plateau_within_5_percent_of_the_lowest_final_loss():
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    steps = 10
    curves = np.ones((steps, 4), np.float32)
    curves[-2:] = [[2.0, 0.40, 0.41, 5.0]]  # The last 20% of 10 steps: 2 steps.
    np.testing.assert_allclose(lr_rule.final_losses(curves), [2.0, 0.40, 0.41, 5.0], rtol=1e-6)
    assert plateau(lrs, curves) == (1e-2, 1e-1)  # 0.41 <= 1.05 x 0.40 = 0.42; 2.0 and 5.0 are not.
    assert suggestion(lrs, curves) == 0.0316  # sqrt(1e-2 * 1e-1), 3 significant digits.
    curves[-2:, 2] = 0.43
    assert plateau(lrs, curves) == (1e-2, 1e-2) and suggestion(lrs, curves) == 1e-2
    curves[3, 1] = np.nan  # A non-finite step anywhere: diverged, whatever came after.
    assert np.isinf(lr_rule.final_losses(curves)[1]) and suggestion(lrs, curves) == 1e-1
    nothing = np.full((steps, 4), np.nan, np.float32)
    assert suggestion(lrs, nothing) is None and plateau(lrs, nothing) is None
    finals = lr_rule.final_losses(curves)
    assert "| 0.1 | 1.0000 | 0.4300 | plateau |" in lr_rule.table(lrs, curves, finals, plateau(lrs, curves))


@pytest.mark.slow
def test_each_replica_trains_what_a_constant_rate_run_trains(tmp_path):
    """Replica k's per-step losses over the first epoch average to the train loss of a plain run at
    the constant rate lrs[k] (one epoch, same seed), vmapped and one after another alike, as
    jitted steps or one scan."""
    base = dataclasses.replace(mnist_mlp.VARIANTS["2hl_50"], batch_size=32, epochs=1,
                               data=dataclasses.replace(mnist_mlp.VARIANTS["2hl_50"].data, train_limit=512))
    lrs = [1e-4, 1e-2, 10.0]
    curves = {mode: lr_find.range_test(dataclasses.replace(base, replicas=mode), lrs, 20)
              for mode in ("vmap", "sequential")}
    scan = lr_find.range_test(dataclasses.replace(base, replicas="vmap", loop="scan"), lrs, 20)
    for other in (curves["sequential"], scan):  # Vmapped or not, jitted steps or one scan: the same training.
        np.testing.assert_allclose(other[:, :2], curves["vmap"][:, :2], rtol=1e-4)
        assert lr_rule.final_losses(other)[2] > 10 * other[0, 2]  # Adam at 10 blows up (rounding then grows).
    assert suggestion(lrs, curves["vmap"]) == suggestion(lrs, curves["sequential"]) == 1e-2  # Alone.
    from tinyjax.train import train_and_evaluate

    for k, lr in enumerate(lrs[:2]):
        run = dataclasses.replace(base, out=str(tmp_path), seed=0,
                                  schedule=ScheduleConfig(name="constant"), optim=dataclasses.replace(base.optim, lr=lr),
                                  checkpoint=dataclasses.replace(base.checkpoint, save_every=0))
        _, rows, _ = train_and_evaluate(run, print_fn=lambda line: None)
        assert np.mean(curves["vmap"][:16, k]) == pytest.approx(rows[0]["train_loss"], rel=1e-5)
    assert lr_rule.final_losses(curves["vmap"])[0] > 0.9 * curves["vmap"][0, 0]  # 1e-4: barely moves in 20 steps.
    assert lr_rule.final_losses(curves["vmap"])[2] > 10 * curves["vmap"][0, 2]  # Adam at 10 blows up.


@pytest.mark.slow
def test_the_command_writes_the_curves_table_and_suggestion(tmp_path, capsys):
    assert main(mnist_mlp.VARIANTS, SMALL + ["--find-lr", "1e-4:1:5", "--find-lr-steps", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (run_dir,) = [str(p) for p in tmp_path.iterdir()]
    assert "-find-lr-" in os.path.basename(run_dir)
    result = json.load(open(os.path.join(run_dir, "lr_find.json")))
    assert len(result["lrs"]) == len(result["losses"]) == 5 and all(len(c) == 20 for c in result["losses"])
    low, high = result["flat_range"]
    assert low <= result["suggested_max_lr"] <= high and low in result["lrs"] and high in result["lrs"]
    assert f"suggested one-cycle peak lr: {result['suggested_max_lr']:.3g} (the middle of the plateau " \
           f"{low:.3g} .. {high:.3g}, final losses within 5% of the lowest)" in out
    for name in ("lr_find.png", "lr_find.md", "config.json", "layers.md"):
        assert os.path.exists(os.path.join(run_dir, name))
    assert not os.path.exists(os.path.join(run_dir, "metrics.jsonl"))  # Nothing was trained as a run.


def test_members_hold_a_constant_rate_and_a_one_cycles_momentum_at_its_peak():
    from experiments import mnist_onecycle, mnist_optimizers
    from tinyjax.train import replicas

    for variants, name in ((mnist_onecycle.VARIANTS, "default"), (mnist_optimizers.VARIANTS, "adam_onecycle")):
        config = variants[name]
        members = lr_find.member_configs(config, [1e-3, 1e-1])
        assert [m.optim.lr for m in members] == [1e-3, 1e-1]
        assert all(m.schedule.name == "constant" and m.optim.momentum == config.schedule.base_momentum == 0.85
                   for m in members)
        assert len(replicas.groups(members)) == 1  # One program.
    constant = mnist_mlp.VARIANTS["2hl_50"]
    assert lr_find.member_configs(constant, [0.1])[0].optim.momentum == constant.optim.momentum == 0.9


@pytest.mark.slow
def test_an_interrupted_range_test_resumes_with_the_rates_it_finished(tmp_path, capsys):
    """Rates tested one after another, each saved as it ends; a test cut after two of three rates
    resumes with --resume and ends with the uninterrupted test's curves, bit for bit."""
    args = SMALL + ["--find-lr", "1e-3:1e-1:3", "--find-lr-steps", "10", "--replicas", "sequential"]
    assert main(mnist_mlp.VARIANTS, args + ["--out", str(tmp_path / "whole")]) == 0
    (whole,) = [str(p) for p in (tmp_path / "whole").iterdir()]
    assert "resume with: " in capsys.readouterr().out
    cut = str(tmp_path / "cut")
    shutil.copytree(whole, cut)
    finished = json.load(open(os.path.join(whole, "lr_find.json")))
    progress = json.loads(json.dumps({k: finished[k] for k in ("lrs", "steps", "seed", "done", "losses")}))
    progress["done"][2], progress["losses"][2] = False, None  # What the file held after the second rate.
    json.dump(progress, open(os.path.join(cut, "lr_find.json"), "w"))
    for name in ("lr_find.png", "lr_find.md"):
        os.remove(os.path.join(cut, name))
    assert main(mnist_mlp.VARIANTS, ["--resume", cut, "--lr", "0.5"]) == 2
    assert "continues a --find-lr range test as it began; drop --lr 0.5" in capsys.readouterr().err
    assert main(mnist_mlp.VARIANTS, ["--resume", cut]) == 0
    assert "resumed: 2 of 3 rates already tested" in capsys.readouterr().out
    resumed = json.load(open(os.path.join(cut, "lr_find.json")))
    for key in ("losses", "final_losses", "suggested_max_lr", "flat_range", "done"):
        assert resumed[key] == finished[key], key
    assert os.path.exists(os.path.join(cut, "lr_find.png"))
