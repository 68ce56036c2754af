"""Evaluate a run's checkpoint on the test split:
``python -m tinyjax.evaluate RUN_DIR [--which best|latest]``.

Prints the test accuracy and loss of the checkpoint, computed exactly as the
run computed them (same eval batch, label smoothing, code path and test images,
the ``--test-limit`` subset when the run had one), beside the
figures the run recorded for that epoch in ``metrics.jsonl``. Exit status 2
with one ``error:`` line for a folder that is not a run, holds no such
checkpoint, or holds one that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def evaluate_checkpoint(run_dir: str, which: str = "best") -> dict:
    """``{"epoch", "test_acc" (%), "test_loss", "recorded": the run's record of that epoch or None}``.

    Raises:
      ConfigError: not a run directory, or no such checkpoint.
      CheckpointError: the checkpoint cannot be read.
      DatasetNotFoundError, DataError: the test split cannot be loaded.
    """
    import jax
    import optax

    from tinyjax import data, runs

    from tinyjax.data.splits import test_split
    from tinyjax.runs import checkpoint
    from tinyjax.train.epochs import make_epoch_fns, summarize
    from tinyjax.train.state import TrainState

    model, variables, config, epoch = checkpoint.load(run_dir, which)
    images, labels = test_split(config)  # The run's --test-limit subset, when it had one.
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.identity(),
                              batch_stats=variables["batch_stats"], rng=jax.random.key(config.seed))
    _, evaluate = make_epoch_fns(config, config.loop)
    accuracy, loss = summarize(evaluate(state, data.to_device(images, labels)))
    recorded = next((h for h in runs.read_metrics(run_dir) if h["epoch"] == epoch), None)
    return {"epoch": epoch, "test_acc": accuracy, "test_loss": loss, "recorded": recorded}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyjax.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory, e.g. runs/mnist_onecycle-default-<timestamp>")
    parser.add_argument("--which", choices=("best", "latest"), default="best",
                        help="the best checkpoint (by the run's --best-metric) or the latest one")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one error line")
    args = parser.parse_args(argv)

    from tinyjax.runs.checkpoint import CheckpointError
    from tinyjax.config import ConfigError
    from tinyjax.data import DataError, DatasetNotFoundError

    try:
        result = evaluate_checkpoint(args.run_dir, args.which)
    except (ConfigError, DatasetNotFoundError, DataError, CheckpointError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    recorded = result["recorded"]
    print(f"{args.run_dir}: {args.which} checkpoint (epoch {result['epoch']}): "
          f"test acc {result['test_acc']:.2f}%, test loss {result['test_loss']:.4f}"
          + (f" (recorded: {recorded['test_acc']:.2f}%, {recorded['test_loss']:.4f})" if recorded else
             " (a mid-epoch checkpoint: no record)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
