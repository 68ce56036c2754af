"""--grid: parsing, the product of points, milestones that scale with --epochs, and a real grid run."""

import pytest

from experiments import cifar10_resnet, mnist_mlp, mnist_onecycle
from tinyjax import grid
from tinyjax.cli import main, parse
from tinyjax.config import ConfigError


def test_values_split_on_commas_outside_brackets():
    assert grid.split_values("64,256") == ["64", "256"]
    assert grid.split_values("[50,100],[75,125]") == ["50 100", "75 125"]
    assert grid.split_values("50:100,75:125") == ["50 100", "75 125"]
    for bad in ("[50,100", "64,,256", "", "]50,100[", "[[50]]"):
        with pytest.raises(ConfigError, match="malformed"):
            grid.split_values(bad)


def test_the_default_grid_is_seed_004s_table_2():
    points = grid.points(grid.parse([], cifar10_resnet.GRID))
    assert len(points) == 4 * 4 * 4 * 4
    assert points[0] == ["--batch-size", "32", "--gamma", "0.1", "--weight-decay", "1e-5", "--milestones", "50", "100"]
    assert points[-1] == ["--batch-size", "512", "--gamma", "0.5", "--weight-decay", "1e-3", "--milestones", "125", "175"]


def test_a_subset_from_the_command_line():
    parsed = grid.parse(["batch_size=64,256", "weight-decay=1e-4,5e-4"], cifar10_resnet.GRID)
    assert list(parsed) == ["--batch-size", "--weight-decay"]
    assert [p[1::2] for p in grid.points(parsed)] == [["64", "1e-4"], ["64", "5e-4"], ["256", "1e-4"], ["256", "5e-4"]]


def test_fields_are_named_by_their_flags():
    parsed = grid.parse(["optimizer=sgd,adam", "--schedule=onecycle,cosine", "max_lr=0.1,0.2"], None)
    assert list(parsed) == ["--optimizer", "--schedule", "--max-lr"]


@pytest.mark.parametrize("tokens,match", [(["batch_size"], "field=value1,value2"),
                                          (["gamma=0.1", "gamma=0.2"], "twice"),
                                          (["batch=32,64"], "unknown flag --batch"),
                                          (["optimiser=sgd,adam"], "did you mean '--optimizer'")])
def test_bad_grid_tokens(tokens, match):
    with pytest.raises(ConfigError, match=match):
        grid.parse(tokens, None)


def test_no_default_grid():
    with pytest.raises(ConfigError, match="no default grid"):
        grid.parse([], None)


def test_milestones_scale_with_epochs_unless_given():
    assert parse(cifar10_resnet.VARIANTS, []).schedule.milestones == (80, 120)
    assert parse(cifar10_resnet.VARIANTS, ["--epochs", "20"]).schedule.milestones == (8, 12)
    assert parse(cifar10_resnet.VARIANTS, ["--epochs", "20", "--milestones", "5", "15"]).schedule.milestones == (5, 15)
    assert parse(cifar10_resnet.VARIANTS, ["--variant", "resnet20", "--epochs", "10"]).schedule.milestones == (5, 8)


def test_scaled_milestones_never_merge():
    from tinyjax.grid import scale_milestones

    assert scale_milestones((80, 120), 200, 20) == (8, 12)
    assert scale_milestones((125, 175), 200, 20) == (13, 18)  # 12.5 and 17.5 round half up.
    assert scale_milestones((80, 120), 200, 2) == (1, 2)      # Not (1, 1): two decays stay two.
    assert parse(cifar10_resnet.VARIANTS, ["--epochs", "2"]).schedule.milestones == (1, 2)


@pytest.mark.slow
def test_grid_runs_every_point_and_writes_one_table(tmp_path):
    # The MLP, one point after another: the grid is the CLI's, whatever the model (vmapped points: test_replicas).
    args = ["--variant", "2hl_50", "--grid", "batch_size=32,64", "label_smoothing=0,0.1", "--epochs", "1",
            "--train-limit", "512", "--test-limit", "500", "--replicas", "sequential", "--out", str(tmp_path)]
    assert main(mnist_mlp.VARIANTS, args) == 0
    (table,) = tmp_path.glob("mnist_mlp-grid-*.md")
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| run | batch-size | label-smoothing | variant |")
    assert [line.split(" | ")[1:3] for line in lines[2:]] == [["32", "0.0"], ["32", "0.1"], ["64", "0.0"], ["64", "0.1"]]
    assert len(list(tmp_path.glob("mnist_mlp-2hl_50-*/results.json"))) == 4


def test_grid_errors_come_before_any_training(tmp_path, capsys):
    assert main(mnist_onecycle.VARIANTS, ["--grid", "batch_size=64,0", "--out", str(tmp_path)]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    assert main(mnist_onecycle.VARIANTS, ["--grid", "bach_size=64", "--out", str(tmp_path)]) == 2
    assert "unknown flag --bach-size (did you mean '--batch-size'?)" in capsys.readouterr().err
    assert main(mnist_onecycle.VARIANTS, ["--grid", "--sweep"]) == 2
    assert "--grid and --sweep" in capsys.readouterr().err
    assert main(mnist_onecycle.VARIANTS, ["--grid", "batch_size=32,64", "--batch-size", "16"]) == 2
    assert "--batch-size given both in --grid and as a flag" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_saved_config_with_milestones_reads_back_equal():
    # config.json has lists; a resume compares the saved config with the flags' one field by field.
    import dataclasses
    import json

    from tinyjax.config import from_dict

    config = cifar10_resnet.REFERENCE_004
    assert from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config
