"""An epoch's record, its printed line, and what of it ranks the best checkpoint; each member's record
written (history, ``metrics.jsonl``, TensorBoard, the printed line) and the members' best records."""

from __future__ import annotations

from tinyjax import runs
from tinyjax.train.progress import summarize
from tinyjax.train.flops import si


# What a record measures of the machine, not of the model: left out where runs are compared bit for bit.
TIMING = ("seconds", "train_seconds", "train_flop_per_s", "train_mfu")


def epoch_record(epoch: int, totals: dict, evals: dict, lr, seconds: float, compute: dict | None = None) -> dict:
    """The record of (0-based) ``epoch`` from its metric sums: ``{"epoch" (1-based), "train_acc",
    ["val_acc",] "test_acc" (%), "train_loss", ["val_loss",] "test_loss", "lr" (of the epoch's last
    step), "seconds" (wall time of its training and evaluation)}``, then ``compute``'s fields
    (``train_seconds``: the training's part of that; ``train_flop_per_s``, ``train_mfu``:
    ``tinyjax.train.flops.rates``); ``evals`` maps a split name to its sums."""
    train_acc, train_loss = summarize(totals)
    summaries = {name: summarize(t) for name, t in evals.items()}
    row = {"epoch": epoch + 1, "train_acc": train_acc}
    row.update({f"{name}_acc": acc for name, (acc, _) in summaries.items()})
    row["train_loss"] = train_loss
    row.update({f"{name}_loss": loss for name, (_, loss) in summaries.items()})
    return {**row, "lr": float(lr), "seconds": seconds, **(compute or {})}


def epoch_line(row: dict, epochs: int) -> str:
    """The printed line of an epoch's record, e.g. ``epoch   3/20  train acc  98.10%  test acc
    98.90%  train loss 0.0612  test loss 0.0345  lr 4.200e-02   12.9s  52.1 GFLOP/s``
    (the training's achieved FLOP/s, and its MFU where the device's peak is known)."""
    return (f"epoch {row['epoch']:3d}/{epochs}  "
            + "  ".join(f"{k.replace('_', ' ')} {v:6.2f}%" for k, v in row.items() if k.endswith("_acc"))
            + "  " + "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in row.items() if k.endswith("_loss"))
            + f"  lr {row['lr']:.3e}  {row['seconds']:5.1f}s"
            + (f"  {si(row['train_flop_per_s'], 'FLOP/s')}" if row.get("train_flop_per_s") else "")
            + (f" (MFU {100 * row['train_mfu']:.1f}%)" if row.get("train_mfu") is not None else ""))


def ranked(row: dict | None, improved: bool, metric: str) -> dict | None:
    """What ranks a member's checkpoint for the best one: its epoch record without the timings, and
    without the metric when the epoch did not improve (``--early-stop``: the best checkpoint is then
    Keras's best epoch, the first to reach the best value by more than min_delta)."""
    return None if row is None else {k: v for k, v in row.items() if k not in TIMING and (improved or k != metric)}


def record_epoch(run, epoch: int, state, totals, evals: dict, steps, nonfinite: list[int],
            histories: list[list[dict]], events: list, seconds: float, active: list[bool],
            compute: dict) -> list[dict | None]:
    """Each active member's epoch record: appended to its history, ``metrics.jsonl`` and
    TensorBoard, printed; None for a member that stopped early. ``compute``: the epoch's training
    seconds and FLOP/s, the program's (all members together)."""
    rows = []
    for k in range(run.n):
        if not active[k]:
            rows.append(None)
            continue
        row = epoch_record(epoch, run.member(totals, k), {s: run.member(t, k) for s, t in evals.items()},
                           run.lr_fns[k](int(steps[k]) - 1), seconds, compute)
        if run.config.on_nan == "skip":
            row["skipped"] = nonfinite[k]
        rows.append(row)
        histories[k].append(row)
        runs.append_metrics(run.run_dirs[k], histories[k])
        events[k].epoch(row)
        run.print_fn(run.labels[k] + epoch_line(row, run.config.epochs)
                     + (f"  skipped {nonfinite[k]} non-finite steps" if nonfinite[k] else ""))
    return rows


def best_records(run, histories: list[list[dict]]) -> list[dict]:
    """Each member's best epoch record: its best checkpoint's when saving (``--best-metric``)."""
    bests = [runs.best_epoch(c, h) for c, h in zip(run.configs, histories)]
    for k, c in enumerate(run.checkpoints or []):
        c.wait()
        best_id = c.best()
        bests[k] = histories[k][c.meta(best_id)["epoch"] - 1] if best_id is not None else bests[k]
    return bests
