"""Early stopping's decision against Keras EarlyStopping's on_epoch_end, replayed by hand."""

import pytest

from tinyjax.train.stopping import patience


def records(values, metric="val_acc"):
    return [{"epoch": e + 1, metric: v} for e, v in enumerate(values)]


@pytest.mark.parametrize("values,mode,wait,min_delta,expected", [
    # Improves every epoch: never stops.
    ([90, 91, 92, 93], "max", 1, 0.0, (93, 4, 0, None)),
    # Two epochs without improvement after epoch 2, patience 2: stops after epoch 4, best epoch 2.
    ([90, 95, 94, 95, 99], "max", 2, 0.0, (95, 2, 2, 4)),
    # An equal value is no improvement (strictly better only).
    ([90, 90, 90], "max", 2, 0.0, (90, 1, 2, 3)),
    # min_delta: +0.05 is not more than 0.1, so it does not reset the counter.
    ([90, 90.05, 90.08, 92], "max", 2, 0.1, (90, 1, 2, 3)),
    # Patience 0 stops after the first epoch that does not improve, never after the very first.
    ([90, 89], "max", 0, 0.0, (90, 1, 1, 2)),
    ([90], "max", 0, 0.0, (90, 1, 0, None)),
    # Losses: mode min.
    ([0.5, 0.4, 0.45, 0.41, 0.42], "min", 3, 0.0, (0.4, 2, 3, 5)),
    ([0.5, 0.4, 0.39, 0.38], "min", 1, 0.02, (0.4, 2, 1, 3)),
])
def test_matches_keras_early_stopping(values, mode, wait, min_delta, expected):
    metric = "val_acc" if mode == "max" else "val_loss"
    p = patience(records(values, metric), metric, mode, wait, min_delta)
    assert (p.best, p.best_epoch, p.wait, p.stopped_epoch) == expected
    assert p.stopped == (expected[3] is not None)


def test_a_resumed_history_gives_the_same_decision():
    """What a run resumed after epoch ``cut`` recomputes from its metrics: not stopped before the
    epoch the whole history stops at, the same stop from then on (the counter is never saved)."""
    full = records([90, 95, 94, 96, 95, 95.5, 95, 97])
    stop = patience(full, "val_acc", "max", 2).stopped_epoch
    assert stop == 6
    for cut in range(len(full) + 1):
        head = patience(full[:cut], "val_acc", "max", 2)
        assert head.stopped_epoch == (stop if cut >= stop else None)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode max or min"):
        patience(records([1]), "val_acc", "up", 1)
    with pytest.raises(ValueError, match="did not record"):
        patience(records([1]), "val_loss", "min", 1)
