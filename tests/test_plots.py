import numpy as np

from tinyjax import plots


def test_confusion_matrix_counts():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    matrix = plots.confusion_matrix(labels, predictions, num_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.sum() == len(labels)


def test_report_table_from_run_dirs(tmp_path, capsys):
    import json

    from tinyjax import report
    run = tmp_path / "mnist_optimizers-adam_onecycle-20260101-000000"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps([{"epoch": 1, "test_acc": 98.5}, {"epoch": 2, "test_acc": 99.1}]))
    (run / "results.json").write_text(json.dumps({
        "variant": "adam_onecycle", "seed": 3, "model_type": "mnist_cnn_18k", "params": 18662, "optimizer": "adam",
        "schedule": "onecycle", "learning_rate": 0.01, "epochs": 2, "batch_size": 128,
        "best_test_accuracy": 99.1, "test_accuracy": 99.1, "train_accuracy": 98.0, "wall_time_s": 125.4}))
    (tmp_path / "unfinished").mkdir()
    assert report.main([str(run), str(tmp_path / "unfinished")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[2] == ("| mnist_optimizers-adam_onecycle-20260101-000000 | adam_onecycle | 3 | mnist_cnn_18k"
                                   " | 18,662 | adam + onecycle (lr 0.01) | 2 | 128 | 99.10 | 99.10 | 98.00 | 2 | 2m05s |")
    assert "skipped" in err and "unfinished" in err
