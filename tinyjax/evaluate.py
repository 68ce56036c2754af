"""Evaluate a run's checkpoint on the test split:
``python -m tinyjax.evaluate RUN_DIR [--which best|latest] [--split test|val] [--tta MODE]``.

Prints the test accuracy and loss of the checkpoint, computed exactly as the
run computed them (same eval batch, label smoothing, code path and test images,
the ``--test-limit`` subset when the run had one), beside the
figures the run recorded for that epoch in ``metrics.jsonl``. ``--split val``
evaluates the run's ``--val-split`` images instead (the same held-out subset),
and ``--tta`` another test-time augmentation than the run's: together, whether
test-time augmentation helps a recipe is decided without reading the test set.
Exit status 2 with one ``error:`` line for a folder that is not a run, holds no
such checkpoint, or holds one that cannot be read, or ``--split val`` of a run
without a validation split.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from tinyjax.data.pipeline import TTA


def evaluate_checkpoint(run_dir: str, which: str = "best", split: str = "test", tta: str | None = None, *,
                        model=None, data=None) -> dict:
    """``{"epoch", "<split>_acc" (%), "<split>_loss", "recorded": the run's record of that epoch or None,
    "other_tta": whether ``tta`` differs from the run's}``.

    Args:
      split: ``"test"``, or ``"val"``: the run's ``--val-split`` images.
      tta: a test-time augmentation (``tinyjax.data.pipeline.TTA``) instead of the run's; None: the run's.
        ``recorded`` is None when it differs from the run's (the run did not measure it).
      model: the run's model when it was a Python object (``tinyjax.load``'s ``model``).
      data: the run's data when it was not a built-in name or a file: a ``tinyjax.data.Dataset``
        (``from_arrays``), or a ``--dataset`` name or path; default the run's ``--dataset``.

    Raises:
      ConfigError: not a run directory, or no such checkpoint, ``split`` val of a run without
        ``--val-split``, an unknown split or ``tta``.
      CheckpointError: the checkpoint cannot be read.
      DatasetNotFoundError, DataError: the test split (and, for ``split`` val, the train split) cannot be
        loaded.
    """
    import dataclasses

    import jax
    import optax

    from tinyjax import runs
    from tinyjax.config import ConfigError
    from tinyjax.data import Dataset, to_device
    from tinyjax.data.splits import dataset_of, load_splits, test_split
    from tinyjax.runs import loading
    from tinyjax.train.epochs import make_epoch_fns
    from tinyjax.train.progress import summarize
    from tinyjax.train.state import TrainState

    if split not in ("test", "val") or (tta is not None and tta not in TTA):
        raise ConfigError(f"--split must be test or val and --tta one of {list(TTA)}; got {split!r}, {tta!r}.")
    run = loading.load(run_dir, which, model)
    model, variables, config, epoch = run
    if split == "val" and not config.data.val_split:
        raise ConfigError(f"{run_dir} was trained without --val-split: it has no validation images; use --split test.")
    measured = tta is None or tta == config.tta
    config = dataclasses.replace(config, tta=tta or config.tta)
    if isinstance(data, str):
        config, data = dataclasses.replace(config, data=dataclasses.replace(config.data, name=data)), None
    if data is None and config.data.name == "arrays":
        raise ConfigError(f"{run_dir} trained on arrays passed from Python: give its test data (tinyjax-evaluate "
                          "RUN --dataset data.npz, or evaluate_checkpoint(RUN, data=tinyjax.data.from_arrays(...))).")
    source = dataset_of(config, data if isinstance(data, Dataset) else None)
    # The run's --test-limit subset, or its --val-split images (the same held-out subset for every seed).
    images, labels = test_split(config, source) if split == "test" else load_splits(config, source)["val"]
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.identity(),
                              batch_stats=variables["batch_stats"], rng=jax.random.key(config.seed))
    _, evaluate = make_epoch_fns(config, config.loop, net=model, info=run.info)
    accuracy, loss = summarize(evaluate(state, to_device(images, labels)))
    recorded = next((h for h in runs.read_metrics(run_dir) if h["epoch"] == epoch), None) if measured else None
    return {"epoch": epoch, f"{split}_acc": accuracy, f"{split}_loss": loss, "recorded": recorded,
            "other_tta": not measured}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyjax.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory, e.g. runs/mnist_onecycle-default-<timestamp>")
    parser.add_argument("--which", choices=("best", "latest"), default="best",
                        help="the best checkpoint (by the run's --best-metric) or the latest one")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="the test split, or the run's --val-split images")
    parser.add_argument("--tta", choices=TTA, default=None,
                        help="a test-time augmentation instead of the run's (--tta of the run's config)")
    parser.add_argument("--dataset", default=None,
                        help="the data to evaluate on (a .npz or class folder) when the run trained on arrays "
                             "passed from Python; default the run's --dataset")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one error line")
    args = parser.parse_args(argv)
    split = args.split

    from tinyjax.runs.checkpoint import CheckpointError
    from tinyjax.config import ConfigError
    from tinyjax.data import DataError, DatasetNotFoundError

    try:
        result = evaluate_checkpoint(args.run_dir, args.which, split, args.tta, data=args.dataset)
    except (ConfigError, DatasetNotFoundError, DataError, CheckpointError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    recorded = result["recorded"]
    print(f"{args.run_dir}: {args.which} checkpoint (epoch {result['epoch']}"
          + (f", --tta {args.tta}" if args.tta else "") + f"): "
          f"{split} acc {result[f'{split}_acc']:.2f}%, {split} loss {result[f'{split}_loss']:.4f}"
          + (f" (recorded: {recorded[f'{split}_acc']:.2f}%, {recorded[f'{split}_loss']:.4f})" if recorded else
             " (not recorded by the run: another --tta)" if result["other_tta"] else " (a mid-epoch checkpoint: no record)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
