"""Compare runs: ``python -m tinyjax.runs.report runs/*`` prints a markdown table.

One row per run directory that holds a ``results.json`` (directories
without one, e.g. runs still training, are listed as skipped on stderr):
run, variant, seed, model, parameters, optimizer and schedule, epochs,
batch, best and final test accuracy, final train accuracy, epochs to 99%
(first epoch with test accuracy >= 99%, from ``metrics.json``), wall time.
A ``--seeds`` run is one row: its seeds, and each accuracy as mean ± sample
std over them with the 95% confidence interval of the mean and n (epochs to
99% of the mean curve). A run with ``--early-stop`` shows the epochs it trained (a
``--seeds`` run: their mean) of those it could have, and its final accuracy is
that of the restored best checkpoint; a point of a ``--halving`` search, the
epochs it trained, whether it was pruned, and its rank.

``--compare A B`` asks whether A beats B instead: paired by seed, with
confidence intervals and tests (``tinyjax.runs.compare``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from tinyjax.flags import field, flat
from tinyjax.runs.compare import confidence_interval

COLUMNS = ("run", "variant", "seed", "model", "params", "optimizer", "epochs", "batch", "best test %",
           "final test %", "final train %", "epochs to 99%", "wall time")


def row(run_dir: str) -> list[str]:
    """The table row of one run directory.

    Raises:
      FileNotFoundError: no results.json in ``run_dir``.
    """
    with open(os.path.join(run_dir, "results.json")) as f:
        r = json.load(f)
    history = []
    if os.path.exists(os.path.join(run_dir, "metrics.json")):
        with open(os.path.join(run_dir, "metrics.json")) as f:
            history = json.load(f)
    to_99 = next((str(h["epoch"]) for h in history if h["test_acc"] >= 99.0), "never")
    minutes, seconds = divmod(round(r["wall_time_s"]), 60)

    def accuracy(key: str) -> str:  # A --seeds run: mean ± sample std [95% CI] over its seeds.
        if key + "_values" not in r:
            return f"{r[key]:.2f}"
        low, high = confidence_interval(r[key + "_values"])
        return f"{r[key]:.2f} ± {r[key + '_std']:.2f} [{low:.2f}, {high:.2f}] (n = {len(r[key + '_values'])})"
    seed = ",".join(map(str, r["seed"])) if isinstance(r["seed"], list) else str(r["seed"])
    return [os.path.basename(os.path.normpath(run_dir)), r["variant"], seed, r["model_type"],
            f"{r['params']:,}",
            f"{r['optimizer']} + {r['schedule']} (lr {r['learning_rate']:g})",
            _epochs(r),
            str(r["batch_size"]), accuracy("best_test_accuracy"), accuracy("test_accuracy"),
            accuracy("train_accuracy"), to_99, f"{minutes}m{seconds:02d}s"]


def _epochs(r: dict) -> str:
    """The epochs cell: the epochs trained of those the run could have, with ``--early-stop`` (a
    ``--seeds`` run: their mean) and in a ``--halving`` search (with its rank and ranking value)."""
    if "halving" in r:
        h = r["halving"]
        return (f"{r['epochs_trained']} of {r['epochs']}: {'pruned, ' if h['pruned_at_epoch'] else ''}"
                f"rank {h['rank']} of {h['of']} ({h['metric']} {h['value']:.4g})")
    return f"{r['epochs_trained']:.3g} of {r['epochs']} (early stop)" if "early_stop" in r else str(r["epochs"])


def config_value(run_dir: str, flag: str) -> str:
    """The value of the config field of ``flag`` (``"--weight-decay"``, ``"--optimizer"``) in
    ``run_dir/config.json``, as text (a list as its items joined by spaces).

    Raises:
      FileNotFoundError: no config.json in ``run_dir``.
      ConfigError: no config field has that flag.
    """
    with open(os.path.join(run_dir, "config.json")) as f:
        value = flat(json.load(f))[field(flag)]
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def table(run_dirs: Sequence[str], fields: Sequence[str] = ()) -> str:
    """Markdown comparison of the runs in ``run_dirs`` that have results; ``fields``
    (flags, e.g. ``["--batch-size", "--gamma"]``) add a column each, with the run's value."""
    rows = []
    for d in run_dirs:
        try:
            cells = row(d)
            rows.append(cells[:1] + [config_value(d, f) for f in fields] + cells[1:])
        except (FileNotFoundError, NotADirectoryError):  # A run still training, or a file that runs/* matched.
            print(f"skipped {d}: no results.json", file=sys.stderr)
    columns = COLUMNS[:1] + tuple(f.lstrip("-") for f in fields) + COLUMNS[1:]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    run_dirs = list(sys.argv[1:] if argv is None else argv)
    if run_dirs[:1] == ["--compare"]:
        return _compare(run_dirs[1:])
    if not run_dirs:
        print("usage: python -m tinyjax.runs.report RUN_DIR [RUN_DIR ...]   (e.g. runs/*)\n"
              "       python -m tinyjax.runs.report --compare A B [--plot PNG]   (does A beat B?)", file=sys.stderr)
        return 2
    print(table(run_dirs))
    return 0


def _compare(argv: Sequence[str]) -> int:
    """``--compare A B [--plot PNG]``: ``tinyjax.runs.compare``'s table; one error line on bad input."""
    import argparse

    from tinyjax.runs import compare

    parser = argparse.ArgumentParser(prog="tinyjax-report --compare", description=compare.__doc__.split("\n")[0])
    parser.add_argument("a", help="a --seeds run directory, or run directories (comma-separated or a quoted glob)")
    parser.add_argument("b", help="the same for B")
    parser.add_argument("--plot", default=None, help="also write the comparison plot to this PNG file")
    args = parser.parse_args(argv)
    try:
        print(compare.main(args.a, args.b, args.plot))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
