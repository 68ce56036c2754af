"""Comparing two finished run directories (shared by the replica and parallel tests), and interrupting a run."""

import json
import os
import signal

import chex
import numpy as np

from tinyjax.runs.loading import load


def history(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_same_run(a, b, exact=False, rtol=1e-4, weights=None):
    """Two run directories trained the same: metrics per epoch (losses and lr to ``rtol``, accuracies to
    0.5 points) and the latest weights (to ``10 * rtol``, ``atol`` ``rtol``; or ``weights`` = (rtol, atol));
    ``exact``: bit for bit."""
    ha, hb = history(a), history(b)
    assert [h["epoch"] for h in ha] == [h["epoch"] for h in hb]
    for x, y in zip(ha, hb):
        for key in ("train_loss", "test_loss", "lr"):
            np.testing.assert_allclose(x[key], y[key], rtol=0 if exact else rtol)
        for key in ("train_acc", "test_acc"):  # A near-tie may flip one image.
            assert abs(x[key] - y[key]) <= (0 if exact else 0.5), (key, x[key], y[key])
    weights_rtol, weights_atol = (0, 0) if exact else weights or (10 * rtol, rtol)
    chex.assert_trees_all_close(load(a, "latest").variables, load(b, "latest").variables,
                                rtol=weights_rtol, atol=weights_atol)


def sigterm_after_epoch(monkeypatch, cut):
    """Sends SIGTERM at the end of (1-based) epoch ``cut`` of the runs that follow, where the epoch loop
    decides early stops; the loop sees it at its next ``interrupts.agreed()``. ``monkeypatch.undo()`` ends it."""
    from tinyjax.train import stopping

    decide = stopping.early_stops

    def terminated(run, stops, epoch, histories, state):
        if epoch + 1 == cut:
            os.kill(os.getpid(), signal.SIGTERM)
        return decide(run, stops, epoch, histories, state)
    monkeypatch.setattr(stopping, "early_stops", terminated)
