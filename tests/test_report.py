"""tinyjax.runs.report: the comparison table of run directories."""

import dataclasses
import json

from tinyjax.runs import report
from tinyjax.config import Config, OptimConfig, ScheduleConfig

RESULTS = {"variant": "adam_onecycle", "seed": 3, "model_type": "mnist_cnn_18k", "params": 18662, "optimizer": "adam",
           "schedule": "onecycle", "learning_rate": 0.01, "epochs": 2, "batch_size": 128, "best_test_accuracy": 99.1,
           "test_accuracy": 99.1, "train_accuracy": 98.0, "wall_time_s": 125.4}


def test_report_table_from_run_dirs(tmp_path, capsys):
    run = tmp_path / "mnist_optimizers-adam_onecycle-20260101-000000"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps([{"epoch": 1, "test_acc": 98.5}, {"epoch": 2, "test_acc": 99.1}]))
    (run / "results.json").write_text(json.dumps(RESULTS))
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "train.log").write_text("a file that runs/* also matches")
    assert report.main([str(run), str(tmp_path / "unfinished"), str(tmp_path / "train.log")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[2] == ("| mnist_optimizers-adam_onecycle-20260101-000000 | adam_onecycle | 3 | mnist_cnn_18k"
                                   " | 18,662 | adam + onecycle (lr 0.01) | 2 | 128 | 99.10 | 99.10 | 98.00 | 2 | 2m05s |")
    assert "skipped" in err and "unfinished" in err and "train.log" in err


def test_grid_columns_name_renamed_and_nested_fields(tmp_path):
    """A --grid over --optimizer, --schedule or --milestones gets a column with the run's value (the
    optimizer and schedule are config fields named differently from their flags)."""
    config = Config(optim=OptimConfig(name="adam", weight_decay=5e-4),
                    schedule=ScheduleConfig(name="piecewise", milestones=(50, 100)))
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    flags = ["--optimizer", "--schedule", "--milestones", "--weight-decay", "--batch-size", "--dataset"]
    assert [report.config_value(str(tmp_path), f) for f in flags] == ["adam", "piecewise", "50 100", "0.0005", "128",
                                                                       "mnist"]
    header, _, row = report.table([str(tmp_path)], ["--optimizer", "--schedule"]).splitlines()
    assert header.startswith("| run | optimizer | schedule | variant |")
    assert row.split(" | ")[1:3] == ["adam", "piecewise"]
