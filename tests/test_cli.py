import os
import subprocess
import sys

import pytest

from experiments.mnist_onecycle import CONFIG
from tinyjax.cli import main, parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_are_the_seed_000_effective_recipe():
    config = parse(CONFIG, [])
    assert (config.epochs, config.batch_size, config.label_smoothing) == (20, 128, 0.02)
    assert config.optim.name == "sgd" and config.schedule.name == "onecycle"
    s = config.schedule
    assert (s.max_lr, s.pct_start, s.div_factor, s.final_div_factor, s.anneal_strategy) == (
        0.05, 0.2, 10.0, 100.0, "cos")
    assert s.cycle_momentum and (s.base_momentum, s.max_momentum) == (0.85, 0.95)


def test_every_field_is_a_flat_flag():
    config = parse(CONFIG, ["--epochs", "3", "--batch-size", "256", "--seed", "1", "--max-lr", "0.1",
                            "--optimizer", "adamw", "--weight-decay", "1e-4", "--data-dir", "/x",
                            "--three-phase", "True", "--loop", "scan"])
    assert (config.epochs, config.batch_size, config.seed, config.loop) == (3, 256, 1, "scan")
    assert config.schedule.max_lr == 0.1 and config.schedule.three_phase
    assert config.optim.name == "adamw" and config.optim.weight_decay == 1e-4
    assert config.data.data_dir == "/x"


def test_help_lists_fields_with_units():
    out = subprocess.run([sys.executable, "-m", "experiments.mnist_onecycle", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    for flag in ("--epochs", "--batch-size", "--seed", "--max-lr", "--pct-start", "--label-smoothing",
                 "--optimizer", "--momentum", "--weight-decay", "--data-dir", "--out", "--loop"):
        assert flag in out.stdout
    assert "Training length (epochs over the train split)." in out.stdout
    assert "Training batch (images per step)" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "error: --epochs must be >= 1, got 0."),
    (["--pct-start", "1.5"], "error: --pct-start must be in (0, 1), got 1.5."),
    (["--model", "nope"], "error: --model 'nope' is unknown; choose one of ['mlp_1hl_50', "),
    (["--optimizer", "adam", "--nesterov", "True"], "error: --nesterov applies to SGD only, not adam."),
])
def test_bad_input_is_one_error_line_before_anything_runs(tmp_path, capsys, args, message):
    status = main(CONFIG, args + ["--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().startswith(message) and "\n" not in err.strip()
    assert not (tmp_path / "runs").exists()  # Nothing was loaded, compiled or written.


def test_too_few_steps_for_one_cycle_is_a_config_error(tmp_path, capsys):
    status = main(CONFIG, ["--epochs", "1", "--train-limit", "100", "--batch-size", "128",
                           "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: one-cycle needs at least 2 total steps")
    assert "\n" not in err.strip()
