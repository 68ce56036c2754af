"""``--seeds``: one run of N seeds, and the mean and spread over them.

    python -m experiments.mnist_onecycle --seeds 5          # seeds 0-4
    python -m experiments.mnist_onecycle --seeds 0,3,7

The run directory ``<out>/<experiment>-<variant>-<timestamp>/`` holds the
config (with its ``seeds``) and one member run directory per seed,
``seed-<k>/``, each exactly what a single run with ``--seed k`` writes
(metrics, checkpoints, results, plots: ``tinyjax.runs.report``,
``tinyjax.evaluate`` and ``--resume`` work on it alone). The members train
as replicas of one vmapped program or one after another (``--replicas``,
``tinyjax.train.replicas``); the result is the same either way. At the end
the run directory gets ``results.json`` with the mean and sample standard
deviation over the seeds of the final, best and best-epoch test accuracy
(airbench's way of reporting: n runs, never one lucky seed), ``metrics.json``
(the members' mean per epoch) and ``curves.png`` (the mean, and a band from
the lowest to the highest member).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Callable, NamedTuple

from tinyjax import runs
from tinyjax.config import Config, ConfigError
from tinyjax.distributed import hosts
from tinyjax.runs.checkpoint import find
from tinyjax.runs.compare import confidence_interval
from tinyjax.train import replicas
from tinyjax.train.inputs import resolve_inputs
from tinyjax.train.loop import train_members
from tinyjax.train.prepare import with_inputs
from tinyjax.validation import validate

# Per member, summarised as their mean (None when unknown): what the device achieved (tinyjax.train.flops).
RATES = ("train_flop_per_s", "train_mfu")
SUMMARIZED = ("test_accuracy", "best_test_accuracy", "best_epoch_test_accuracy", "train_accuracy",
              "final_train_loss", "final_test_loss")


def member_dirs(run_dir: str, config: Config) -> list[str]:
    """The member run directories of a ``--seeds`` run, in seed order."""
    return [os.path.join(run_dir, f"seed-{s}") for s in config.seeds]


class SeedRuns(NamedTuple):
    """What ``train_seeds`` returns (unpacks as ``histories, run_dir``): each member's per-epoch
    records, in seed order, and the run directory."""

    histories: list[list[dict]]
    run_dir: str


def train_seeds(config: Config, print_fn: Callable[[str], None] = functools.partial(print, flush=True),
                resume: str | None = None, *, model=None, data=None) -> SeedRuns:
    """Trains every seed of ``config.seeds`` (a new run directory, or the
    interrupted one in ``resume``: finished members are kept, the others
    continue from their latest checkpoints, and one that had saved none starts
    again), then writes the summary.

    Returns:
      ``SeedRuns(histories, run_dir)``: each member's per-epoch records (as
      ``train_and_evaluate``'s), in seed order, and the run directory.

    ``model`` and ``data``: your own model and data, as ``train_and_evaluate`` takes them.

    Raises:
      as ``tinyjax.train.train_and_evaluate``.
    """
    config = with_inputs(config, model, data)
    validate(config, model, data)
    return run_seeds(config, print_fn, resume, model=model, dataset=data)


def run_seeds(config: Config, print_fn: Callable[[str], None] = functools.partial(print, flush=True),
              resume: str | None = None, *, model=None, dataset=None) -> SeedRuns:
    """``train_seeds`` of a config its caller has validated (the CLI validates every config first)."""
    started = time.perf_counter()
    print_fn = hosts.printer(print_fn)  # Process 0 prints for all.
    members = replicas.expand(config)
    source, info, net = resolve_inputs(config, model, dataset)  # Read once; every member trains on it.
    mode = replicas.resolve(config.replicas, net, info.image_shape) if len(members) > 1 else "sequential"
    if resume is None:
        hosts.together(lambda: runs.check_writable(config.out))
        run_dir = runs.create(config, net, info)
    else:
        run_dir = resume
        runs.write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))  # Allowed changes.
    dirs = member_dirs(run_dir, config)
    done = [os.path.exists(os.path.join(d, "results.json")) for d in dirs]
    points = [latest_position(d, m) for d, m in zip(dirs, members)]
    if mode == "vmap" and (any(done) or len(set(points)) > 1):
        mode = "sequential"  # A resumed run whose seeds are not all at one step.
    print_fn(f"{len(members)} seeds {_seeds(config.seeds)}, {mode} -> {run_dir}")
    # One program for all seeds, or one per unfinished seed; each fresh, or resumed from its checkpoints.
    batches = [list(range(len(members)))] if mode == "vmap" else [[k] for k in range(len(members)) if not done[k]]
    for batch in batches:
        fresh, batch_dirs = points[batch[0]] is None, [dirs[k] for k in batch]
        if fresh:
            for d in batch_dirs:
                if hosts.primary():  # A member made before its first save holds nothing to keep.
                    shutil.rmtree(d, ignore_errors=True)
        train_members([members[k] for k in batch], print_fn, resume=None if fresh else batch_dirs,
                      run_dirs=batch_dirs if fresh else None, group_dir=run_dir, model=net, dataset=source)
    histories = [runs.read_metrics(d) for d in dirs]
    summary = write_summary(run_dir, config, dirs, mode, histories, time.perf_counter() - started)
    def cell(key):
        low, high = summary[f"{key}_ci95"]
        return f"{summary[key]:.2f} ± {summary[key + '_std']:.2f}% [{low:.2f}, {high:.2f}]"
    print_fn(f"{len(dirs)} seeds {_seeds(config.seeds)}: test accuracy (mean ± sample std [95% CI], n = "
             f"{len(dirs)}) final {cell('test_accuracy')}, best {cell('best_test_accuracy')}, at the best "
             f"checkpoint {cell('best_epoch_test_accuracy')} -> {run_dir}/results.json")
    return SeedRuns(histories, run_dir)


def write_summary(run_dir: str, config: Config, dirs: list[str], mode: str, histories: list[list[dict]],
                  wall_time: float) -> dict:
    """``results.json`` (the members' common fields, ``n`` the number of seeds, then for each of
    ``SUMMARIZED`` (and ``epochs_trained`` with ``--early-stop``) the mean, its sample std as
    ``<key>_std``, the 95% confidence interval of the mean as ``<key>_ci95`` = [low, high]
    (``runs.compare.confidence_interval``) and the values as ``<key>_values``), ``metrics.json``
    (per epoch, the mean of the members that trained it) and ``curves.png`` of a ``--seeds`` run;
    returns the results."""
    members = []
    for d in dirs:
        with open(os.path.join(d, "results.json")) as f:
            members.append(json.load(f))
    results = {k: v for k, v in members[0].items()
               if k not in ("seed", "best_epoch", "best_epoch_val_accuracy", "early_stop") + SUMMARIZED + RATES}
    results.update({key: _mean([r.get(key) for r in members]) for key in RATES})
    if "early_stop" in members[0]:  # What is common; when each stopped is per member (epochs_trained_values).
        results["early_stop"] = {k: members[0]["early_stop"][k] for k in ("patience", "min_delta", "monitor")}
    results.update(seed=list(config.seeds), n=len(members), replicas=mode, wall_time_s=wall_time,
                   train_time_s=sum(r["train_time_s"] for r in members) if mode == "sequential"
                   else max(r["train_time_s"] for r in members))  # vmap: one program, as long as its longest member.
    for key in SUMMARIZED + ("best_epoch_val_accuracy", "epochs_trained"):
        if key not in members[0]:
            continue
        values = [r[key] for r in members]
        mean, std = replicas.spread(values)
        results.update({key: mean, f"{key}_std": std, f"{key}_ci95": list(confidence_interval(values)),
                        f"{key}_values": values})
    runs.write_json(os.path.join(run_dir, "results.json"), results)
    # Per epoch, the mean of the members that trained it (with --early-stop some stop sooner).
    longest = max(histories, key=len)
    mean_history = [{k: _mean([h[e].get(k) for h in histories if len(h) > e]) for k in longest[e]}
                    for e in range(len(longest))]
    runs.write_json(os.path.join(run_dir, "metrics.json"), mean_history)
    from tinyjax.runs import plots

    if hosts.primary():  # As runs' writers: process 0 only.
        plots.curves(mean_history, os.path.join(run_dir, "curves.png"),
                     f"{config.experiment} {config.variant} ({config.model.rsplit('/', 1)[-1]}, mean of seeds {_seeds(config.seeds)})",
                     replicas=histories)
    return results


def _mean(values: list) -> float | None:
    """The mean of the values that are known (not None: e.g. an MFU without a known peak); None if none is."""
    known = [v for v in values if v is not None]
    return replicas.spread(known)[0] if known else None


def check_resumable(run_dir: str, config: Config) -> None:
    """Checks that a ``--seeds`` run has something to resume from.

    Raises:
      ConfigError: no member has a checkpoint or is finished.
    """
    dirs = member_dirs(run_dir, config)
    if not any(os.path.exists(os.path.join(d, "results.json")) or latest_position(d, m) is not None
               for d, m in zip(dirs, replicas.expand(config))):
        raise ConfigError(f"--resume {run_dir}: no seed of the run has a checkpoint yet; start it again.")


def latest_position(member_dir: str, config: Config) -> tuple[int, int] | None:
    """``(epoch, position)`` of a member's latest checkpoint, or None."""
    try:
        checkpoints, checkpoint_id = find(member_dir, config, "latest")
    except ConfigError:
        return None
    try:
        meta = checkpoints.meta(checkpoint_id)
    finally:
        checkpoints.close()
    return meta["epoch"], meta["position"]


def _seeds(seeds) -> str:
    """``"0-4"`` for consecutive seeds, else ``"0,3,7"``."""
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
