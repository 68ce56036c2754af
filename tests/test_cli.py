import os
import subprocess
import sys

import pytest

from experiments import mnist_mlp, mnist_onecycle, mnist_optimizers, mnist_tiny
from tinyjax import models
from tinyjax.cli import main, parse
from tinyjax.validation import validate
from tinyjax.models.summary import layer_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_are_the_seed_000_effective_recipe():
    config = parse(mnist_onecycle.VARIANTS, [])
    assert (config.epochs, config.batch_size, config.label_smoothing) == (20, 128, 0.02)
    assert config.optim.name == "sgd" and config.schedule.name == "onecycle"
    s = config.schedule
    assert (s.max_lr, s.pct_start, s.div_factor, s.final_div_factor, s.anneal_strategy) == (
        0.05, 0.2, 10.0, 100.0, "cos")
    assert s.cycle_momentum and (s.base_momentum, s.max_momentum) == (0.85, 0.95)


def test_every_field_is_a_flat_flag():
    config = parse(mnist_onecycle.VARIANTS, ["--epochs", "3", "--batch-size", "256", "--seed", "1", "--max-lr", "0.1",
                            "--optimizer", "adamw", "--weight-decay", "1e-4", "--data-dir", "/x",
                            "--three-phase", "True", "--loop", "scan"])
    assert (config.epochs, config.batch_size, config.seed, config.loop) == (3, 256, 1, "scan")
    assert config.schedule.max_lr == 0.1 and config.schedule.three_phase
    assert config.optim.name == "adamw" and config.optim.weight_decay == 1e-4
    assert config.data.data_dir == "/x"


EXPERIMENTS = ("mnist_onecycle", "mnist_mlp", "mnist_tiny", "mnist_optimizers", "cifar10_resnet", "cifar10_fast")


def _help(capsys, monkeypatch, module, flag="--help") -> list[str]:
    """The lines ``--help`` (or ``-H``) prints at ``COLUMNS=100``."""
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        parse(module.VARIANTS, [flag], module.__doc__)
    assert exited.value.code == 0
    return capsys.readouterr().out.rstrip("\n").split("\n")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_help_fits_a_screen_and_lists_every_option(name, capsys, monkeypatch):
    import importlib

    from tinyjax.cli_help import RUN_OPTIONS
    from tinyjax.data.dataset import BUILTIN
    from tinyjax.flags import FLAGS

    module = importlib.import_module(f"experiments.{name}")
    lines = _help(capsys, monkeypatch, module)
    assert len(lines) <= 130 and max(map(len, lines)) <= 100, (len(lines), max(lines, key=len))
    text = "\n".join(lines)
    for option in [f for f in FLAGS.values() if f not in ("--variant", "--seeds")] + [o for o, _ in RUN_OPTIONS]:
        assert f"{option} " in text or f"{option}\n" in text, option
    for variant in module.VARIANTS:
        assert f"\n  {variant}: " in text  # One line each.
    assert all(preset in text for preset in models.PRESETS) and all(d in text for d in BUILTIN)
    if name == "mnist_onecycle":  # Units and defaults.
        for option in ("--epochs EPOCHS (default: 20)", "--batch-size IMAGES (default: 128)",
                       "--rotation DEGREES (default: 0.0)", "--seeds N|S,S,..", "--save-every EPOCHS (default: 1)"):
            assert option in text, option


def test_verbose_help_says_what_every_field_means(capsys, monkeypatch):
    text = "\n".join(_help(capsys, monkeypatch, mnist_onecycle, "-H"))
    assert "Training length (epochs over the train split)." in text
    assert "Training batch (images per step)" in text
    assert "python -m experiments.mnist_onecycle --variant ours --seeds 5" in text  # The examples.


NET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "digits_net.py")


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "error: --epochs must be >= 1, got 0."),
    (["--pct-start", "1.5"], "error: --pct-start must be in (0, 1), got 1.5."),
    (["--model", "nope"], "error: --model 'nope' is unknown; choose one of ['fastnet_2m', "),
    (["--optimizer", "adam", "--nesterov", "True"], "error: --nesterov applies to SGD only, not adam."),
    (["--max-params", "7000"], "error: --model mnist_cnn_7k has 7,784 trainable parameters, over "
                               "--max-params 7,000; choose a smaller model or raise the budget."),
    (["--model", "mnist_cnn_7"], "error: --model 'mnist_cnn_7' is unknown (did you mean 'mnist_cnn_7k'?); "),
    (["--optimizer", "adamx"], "error: --optimizer 'adamx' is unknown (did you mean 'adam'?); "
                               "choose one of ['sgd', 'adam', 'adamw']."),
    (["--dataset=mnsit"], "error: --dataset 'mnsit' is unknown (did you mean 'mnist'?); "),
    (["--dataset", "kmnist"], "error: --dataset kmnist: no prepared array_record data for its 'train' split"),
    (["--data-dir", "/no/such/folder"], "error: --data-dir /no/such/folder: no such folder"),
    (["--image-size", "32x32"], "error: --image-size must be H,W in pixels (e.g. 32,32), got '32x32'."),
    (["--model", "no_such_pkg.models:Net"], "error: --model no_such_pkg.models:Net: cannot import it "
                                            "(ModuleNotFoundError: No module named 'no_such_pkg')"),
    (["--model", f"{NET}:Nope"], f"error: --model {NET}:Nope: cannot import it (AttributeError: "),
    (["--model", f"{NET}:DigitsCNN", "--max-params", "1000"],
     f"error: --model {NET}:DigitsCNN has 50,282 trainable parameters, over --max-params 1,000"),
    (["--epoch", "3"], "error: unknown flag --epoch (did you mean '--epochs'?); see --help for the flags."),
    (["--epochs", "x"], "error: --epochs needs an integer, got 'x'."),
    (["--max-lr", "fast"], "error: --max-lr needs a number, got 'fast'."),
    (["--three-phase", "yes"], "error: --three-phase needs True or False, got 'yes'."),
    (["--seed"], "error: --seed needs a value; see --help."),
    (["--on-nan", "ignore"], "error: --on-nan 'ignore' is unknown; choose one of ['stop', 'skip']."),
    (["--save-every", "-1"], "error: --save-every must be >= 0 (epochs), got -1."),
    (["--test-limit", "0"], "error: --test-limit must be >= 1, got 0."),
    (["--early-stop", "3"], "error: --early-stop watches --best-metric test_acc, which selects on the test set"),
    (["--early-stop", "-1"], "error: --early-stop must be >= 0 (epochs of patience), got -1."),
    (["--early-stop", "2", "--val-split", "500", "--save-every", "0"],
     "error: --early-stop restores the best checkpoint's weights at the end and needs checkpoints"),
    (["--find-lr", "1:0.1:4"], "error: --find-lr '1:0.1:4' needs 0 < MIN < MAX and K >= 2 rates"),
    (["--find-lr", "--seeds", "3"], "error: --find-lr tests one config's learning rates from its --seed"),
    (["--find-lr", "--find-lr-steps", "2"], "error: --find-lr-steps must be >= 5 (optimizer steps), got 2."),
    (["--halving", "3"], "error: --halving prunes the points of a grid: give --grid field=v1,v2 ... with it."),
    (["--halving", "3", "--grid", "max_lr=0.01,0.05,0.1"], "error: --halving ranks the points on a validation split"),
    (["--halving", "1", "--grid", "max_lr=0.01,0.05", "--val-split", "500"],
     "error: --halving ETA keeps the best 1/ETA of the points at each rung: give an integer >= 2, got 1."),
    (["--halving", "3", "--grid", "max_lr=0.01,0.05", "--val-split", "500"],
     "error: --halving 3 needs a grid of at least 3 points, this one has 2."),
    (["--halving", "2", "--grid", "max_lr=0.01,0.05", "--val-split", "500", "--best-metric", "test_acc"],
     "error: --halving ranks on --best-metric test_acc, which is not a validation metric"),
    (["--halving", "2", "--grid", "max_lr=0.01,0.05", "epochs=4,8", "--val-split", "500"],
     "error: --halving needs one --epochs, --best-metric and --best-mode for every point"),
    (["--halving", "2", "--grid", "max_lr=0.01,0.05", "--val-split", "500", "--best-metric", "val_loss"],
     "error: --halving ranks on val_loss with --best-mode max, which would keep the worst points: give --best-mode min."),
    (["--halving", "2", "--grid", "max_lr=0.01,0.05", "--val-split", "500", "--early-stop", "2"],
     "error: --halving and --early-stop both stop points: give one of them."),
    (["--halving", "2", "--grid", "max_lr=0.01,0.05", "--val-split", "500", "--epochs", "1"],
     "error: --halving 2 with --epochs 1 has no rung before the end: give --epochs >= 2."),
    (["--optimizer", "adam", "--bn-bias-lr-scale", "64"], "error: --bn-bias-lr-scale applies to SGD only, not adam"),
    (["--scale", "1.2"], "error: --scale must be in [0, 1) (zoom by U(1-s, 1+s)), got 1.2."),
    (["--shear", "90"], "error: --shear must be in [0, 90) (degrees), got 90.0."),
    (["--interpolation", "cubic"], "error: --interpolation 'cubic' is unknown; choose one of ['nearest', 'bilinear']."),
    (["--elastic-alpha", "34", "--elastic-sigma", "7"],
     "error: --elastic-sigma 7.0 needs a blur kernel of 57 pixels, too wide for a 28-pixel image (reflect padding): "
     "use a sigma below 6.875 pixels."),
])
def test_bad_input_is_one_error_line_before_anything_runs(tmp_path, capsys, args, message):
    status = main(mnist_onecycle.VARIANTS, args + ["--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().startswith(message) and "\n" not in err.strip()
    assert not (tmp_path / "runs").exists()  # Nothing was loaded, compiled or written.


@pytest.mark.parametrize("args,message", [
    (["--train-limit", "100", "--batch-size", "128"],
     "error: --batch-size 128 is larger than the training set (100 images after --train-limit and --val-split)"),
    (["--train-limit", "100", "--val-split", "100"], "error: --val-split 100 leaves no training images"),
    (["--train-limit", "128", "--batch-size", "128"], "error: one-cycle needs at least 2 total steps"),
])
def test_data_that_does_not_fit_the_config_is_one_error_line(tmp_path, capsys, args, message):
    status = main(mnist_onecycle.VARIANTS, ["--epochs", "1", "--out", str(tmp_path / "runs")] + args)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(message), err
    assert "\n" not in err.strip()
    assert not (tmp_path / "runs").exists()  # Checked before the run directory is made.


def test_variants_pick_the_base_config_and_flags_apply_over_it():
    config = parse(mnist_optimizers.VARIANTS, ["--variant", "sgd_fixed", "--epochs", "2"])
    assert config.variant == "sgd_fixed" and config.epochs == 2
    assert config.schedule.name == "constant" and config.optim.lr == 0.06 and config.optim.weight_decay == 1e-4
    assert parse(mnist_optimizers.VARIANTS, []).variant == "adam_onecycle"
    assert parse(mnist_onecycle.VARIANTS, ["--variant", "dropout"]).model == "mnist_cnn_7k_dropout"
    baseline = parse(mnist_onecycle.VARIANTS, ["--variant", "baseline"])
    assert baseline.schedule.name == "constant" and baseline.optim.lr == 0.001 and baseline.optim.momentum == 0


def test_unknown_variant_is_one_error_line(capsys, tmp_path):
    assert main(mnist_optimizers.VARIANTS, ["--variant", "sgd_onecylce", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --variant 'sgd_onecylce' is unknown (did you mean 'sgd_onecycle'?); choose one of "
        "['adam_onecycle', 'sgd_onecycle', 'sgd_fixed', 'adamw_onecycle', 'ours'].")


@pytest.mark.parametrize("module", [mnist_onecycle, mnist_optimizers, mnist_mlp, mnist_tiny])
def test_every_variant_is_valid_and_names_a_preset(module):
    for name, config in module.VARIANTS.items():
        validate(config)
        assert config.model in models.PRESETS, name


def test_help_lists_the_variants(capsys, monkeypatch):
    text = "\n".join(_help(capsys, monkeypatch, mnist_optimizers))
    assert "variants (--variant NAME):\n  adam_onecycle: (the base config)\n  sgd_onecycle: --optimizer sgd" in text


@pytest.mark.slow
def test_sweep_trains_every_variant_and_writes_one_table(tmp_path):
    variants = {name: mnist_mlp.VARIANTS[name] for name in ("2hl_50", "3hl_10")}
    status = main(variants, ["--sweep", "--epochs", "1", "--train-limit", "500", "--test-limit", "500", "--out", str(tmp_path)])
    assert status == 0
    tables = list(tmp_path.glob("mnist_mlp-sweep-*.md"))
    assert len(tables) == 1
    rows = tables[0].read_text().splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["2hl_50", "3hl_10"]
    assert len(list(tmp_path.glob("mnist_mlp-*-*/results.json"))) == 2


def test_sweep_checks_every_budget_before_the_first_variant_trains(tmp_path, capsys):
    variants = {name: mnist_mlp.VARIANTS[name] for name in ("2hl_50", "3hl_1000")}
    status = main(variants, ["--sweep", "--max-params", "50000", "--out", str(tmp_path / "runs")])
    assert status == 2
    assert capsys.readouterr().err.strip().startswith("error: --model mlp_3hl_1000 has 2,797,010 trainable "
                                                      "parameters, over --max-params 50,000;")
    assert not (tmp_path / "runs").exists()  # 2hl_50 (42,310 params) did not train first.


def test_our_variants_keep_their_references_budgets():
    """Issue 20's rules: the reference's network (or, for 003, any MLP) and no more epochs."""
    for name, epochs in (("ours", 20), ("ours_fast", 8)):
        config = mnist_onecycle.VARIANTS[name]
        assert config.model == "mnist_cnn_7k" and config.epochs == epochs, name
    config = mnist_mlp.VARIANTS["ours"]
    assert isinstance(models.create(config.model), models.MLP) and config.epochs <= 50
    config = mnist_optimizers.VARIANTS["ours"]
    assert config.model == "mnist_cnn_18k" and config.epochs == 20


def test_tiny_experiment_keeps_the_budget_and_fixed_training():
    for config in mnist_tiny.VARIANTS.values():
        assert config.max_params == 2048 and config.epochs == 10 and config.batch_size == 128
        assert (config.optim.name, config.optim.lr, config.schedule.name) == ("adam", 1e-3, "constant")
        assert layer_table(models.create(config.model), (28, 28, 1)).trainable_params <= 2048


def test_a_corrupt_data_file_is_one_error_line_and_no_run_directory(tmp_path, capsys, monkeypatch):
    import numpy as np

    from tinyjax.data import write_idx

    monkeypatch.delenv("TINYJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYJAX_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 64), ("t10k", 32)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(n, np.uint8))
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])  # A download cut short.
    status = main(mnist_onecycle.VARIANTS, ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err
    assert err == f"error: {images}: the gzip stream ends early (truncated download?); re-download the file."
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script, args, line", [
    ("bench.py", ["--models", "mnist_cnn_7k,mlp_3hl_100"],
     "unknown model 'mlp_3hl_100' in --models: choose from mnist_cnn_7k, mnist_cnn_18k, mlp_2hl_50, mlp_3hl_1000, "
     "resnet20"),
    ("bench.py", ["--models", "mnist_cnn_7k,mlp_2hl_50", "--accumulate", "2,4"],
     "--accumulate 4 must be >= 1 and divide mlp_2hl_50's batch 50: pick a divisor"),
    ("bench.py", ["--accumulate", "4x"], "--accumulate '4x' is not a comma-separated list of integers, e.g. 2,4"),
    ("bench_accumulate.py", ["--accumulate", "2,3"],
     "--accumulate 3 must be > 1 and divide --batch-sizes 128: pick a divisor"),
])
@pytest.mark.slow
def test_bench_scripts_refuse_bad_arguments_in_one_line(script, args, line):
    out = subprocess.run([sys.executable, f"scripts/{script}", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == f"{script}: error: {line}"
    assert "Traceback" not in out.stderr
