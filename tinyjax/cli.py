"""Command line of every experiment: ``main(variants, default)``.

``--variant NAME`` picks one of the experiment's named configs (default
first); every ``Config`` field is then a flag over it (``--epochs 3
--batch-size 256 --seed 1``); ``--help`` lists the variants and every option with its
unit and default on one screen, ``-H`` what each means (``tinyjax.cli_help``). ``--sweep`` trains every variant in turn, the other flags
applied to each, and writes one results table
(``<out>/<experiment>-sweep-<timestamp>.md``, via ``tinyjax.runs.report``).
``--grid [field=v1,v2 ...]`` trains every point of a hyperparameter grid
(``tinyjax.grid``) and writes ``<experiment>-grid-<timestamp>.md`` with a
column per grid field. When ``--epochs`` changes a piecewise schedule's
length and ``--milestones`` is not given, the milestones scale with it.
``--seeds 5`` (or ``--seeds 0,3,7``) trains those seeds as one run and
reports mean ± sample std (``tinyjax.train.seeds``); grid points that differ
only in scalars train as replicas of one program (``tinyjax.train.replicas``).
``--resume RUN_DIR`` continues that run in place from its latest checkpoint
with the config saved there; flags that would change its result are refused.
``--coordinator HOST:PORT --num-processes N --process-id I`` (or a launcher
that names a coordinator: SLURM, Open MPI; or ``--coordinator auto``) joins
this process to the others of one run (``tinyjax.distributed.hosts``).

Exit status: 0 done; 2 bad input (a bad value, an unknown name, a model over
its parameter budget, missing or malformed data, a resume that does not fit),
reported as one ``error:`` line on stderr before anything is compiled
(``--debug`` shows the traceback instead); 130 / 143 stopped by SIGINT /
SIGTERM after saving, with the resume command as the last line; 1 a
non-finite step (``--on-nan stop``) or a checkpoint that could not be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
from typing import Mapping, Sequence

import tyro

from tinyjax import cli_help, grid as grids
from tinyjax.cli_help import HELP_FLAGS
from tinyjax.config import Config, ConfigError
from tinyjax.flags import flag, flat
from tinyjax.common import closest
from tinyjax.validation import check_flags
from tinyjax.data import DataError, DatasetNotFoundError

# Fields a resumed run may change: where things are written or read, which
# checkpoints are kept, how replicas train, on how many devices, what is traced.
# Every other field would change the result (beyond float rounding).
RESUMABLE_CHANGES = ("out", "data.data_dir", "checkpoint.save_every", "checkpoint.keep",
                     "checkpoint.best_metric", "checkpoint.best_mode", "replicas", "parallel", "profile")


def parse(variants: Mapping[str, Config], args: Sequence[str] | None = None,
          description: str | None = None) -> Config:
    """The config of ``--variant`` (default: the first) with the other flags applied.

    Raises:
      ConfigError: an unknown variant.
    """
    known, rest = _split(variants, args)
    return _parse_over(variants, _named(variants, known.variant), rest, description)


def _named(variants: Mapping[str, Config], name: str | None) -> Config:
    """The variant ``name`` (default: the first) with its name in ``Config.variant``."""
    name = name or next(iter(variants))
    return dataclasses.replace(variants[name], variant=name)


def _split(variants: Mapping[str, Config], args: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """(``--variant``, ``--sweep``, ``--resume``, ``--debug``, ``--grid``, ``--seeds``, ``--coordinator``,
    ``--num-processes``, ``--process-id``; the remaining args) from the command line."""
    args = list(sys.argv[1:] if args is None else args)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)  # --seed is not --seeds.
    pre.add_argument("--variant", default=None)
    pre.add_argument("--sweep", action="store_true")
    pre.add_argument("--resume", default=None)
    pre.add_argument("--debug", action="store_true")
    pre.add_argument("--grid", nargs="*", default=None)
    pre.add_argument("--seeds", default=None)
    pre.add_argument("--find-lr", nargs="?", const="", default=None)
    pre.add_argument("--find-lr-steps", type=int, default=None)
    pre.add_argument("--halving", type=int, default=None)
    pre.add_argument("--coordinator", default=None)
    pre.add_argument("--num-processes", type=int, default=None)
    pre.add_argument("--process-id", type=int, default=None)
    try:
        known, rest = pre.parse_known_args(args)
    except argparse.ArgumentError as e:  # E.g. --num-processes two.
        raise ConfigError(f"{e}.") from None
    if known.seeds is not None:
        known.seeds = grids.parse_seeds(known.seeds)
        if any(a.split("=")[0] == "--seed" for a in rest):
            raise ConfigError("--seed and --seeds both given; list every seed in --seeds (e.g. --seeds 0,3,7).")
    if known.variant is not None and known.variant not in variants:
        raise ConfigError(f"--variant {known.variant!r} is unknown{closest(known.variant, variants)}; "
                          f"choose one of {list(variants)}.")
    return known, rest


def _parse_over(variants: Mapping[str, Config], base: Config, rest: list[str], description: str | None) -> Config:
    check_flags(rest)
    help_text = None
    if any(a in HELP_FLAGS for a in rest):
        help_text = cli_help.help_text(variants, description, any(a in ("-H", "--help-verbose") for a in rest))
    config = tyro.cli(Config, default=base, args=rest, description=help_text,
                      config=(tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff), compact_help=True)
    schedule = config.schedule
    if (schedule.name == "piecewise" and config.epochs != base.epochs and schedule.milestones == base.schedule.milestones
            and not any(a.split("=")[0] == "--milestones" for a in rest)):
        config = dataclasses.replace(config, schedule=dataclasses.replace(
            schedule, milestones=grids.scale_milestones(schedule.milestones, base.epochs, config.epochs)))
    return dataclasses.replace(config, variant=base.variant)



def resume_config(variants: Mapping[str, Config], run_dir: str, variant: str | None, rest: list[str],
                  description: str | None = None) -> Config:
    """The config saved in ``run_dir``, with the flags in ``rest`` applied over it.

    Raises:
      ConfigError: not a run of this experiment, or flags that would change
        its result (one line naming each, with the saved value).
    """
    from tinyjax.runs.checkpoint import find, load_config

    saved = load_config(run_dir)
    experiments = {v.experiment for v in variants.values()}
    if saved.experiment not in experiments:
        raise ConfigError(f"--resume {run_dir} is a run of experiment {saved.experiment}, not "
                          f"{'/'.join(sorted(experiments))}; run: python -m experiments.{saved.experiment} "
                          f"--resume {run_dir}")
    if variant is not None and variant != saved.variant:
        raise ConfigError(f"--resume {run_dir} is a run of --variant {saved.variant}, not {variant}; drop --variant.")
    config = _parse_over(variants, saved, rest, description)
    before, after = flat(saved), flat(config)
    # --early-stop replays its decisions on the best metric: changing it would undo them.
    fixed = ("checkpoint.best_metric", "checkpoint.best_mode") if saved.early_stop else ()
    changed = [k for k in before if before[k] != after[k] and (k not in RESUMABLE_CHANGES or k in fixed)]
    if changed:
        flags = ", ".join(f"{flag(k)} {after[k]} (the run has {before[k]})" for k in changed)
        raise ConfigError(f"--resume {run_dir}: {flags} would change the run's result; drop "
                          f"{'it' if len(changed) == 1 else 'them'} to resume, or start a new run.")
    if config.seeds:
        from tinyjax.train.seeds import check_resumable

        check_resumable(run_dir, config)  # Raises ConfigError when there is nothing to resume from.
    else:
        checkpoints, _ = find(run_dir, config, "latest")  # Raises ConfigError when there is none.
        checkpoints.close()
    if config.checkpoint.save_every == 0:
        raise ConfigError(f"--resume {run_dir} with --save-every 0 could not save again; give --save-every N >= 1.")
    return config


def main(variants: Mapping[str, Config], args: Sequence[str] | None = None,
         description: str | None = None, grid: Mapping[str, str] | None = None) -> int:
    """Parses flags, trains and evaluates (one variant, all with ``--sweep``, or
    every point of ``--grid``, ``grid`` being the experiment's default one as
    ``{"batch_size": "32,64", ...}``); returns the exit status."""
    from tinyjax.distributed import hosts
    from tinyjax.runs.checkpoint import CheckpointError
    from tinyjax.train.faults import Interrupted, NonFiniteError  # Imports jax: after --help has been served.

    debug = "--debug" in (sys.argv[1:] if args is None else args)
    try:
        known, rest = _split(variants, args)
        hosts.initialize(known.coordinator, known.num_processes, known.process_id)  # Before any computation.
        from tinyjax.train import halving, lr_find

        if known.resume is not None and (lr_find.is_range_test(known.resume) or halving.is_search(known.resume)):
            given = [f for f, v in (("--variant", known.variant), ("--sweep", known.sweep), ("--grid", known.grid),
                                    ("--seeds", known.seeds), ("--find-lr", known.find_lr), ("--halving", known.halving))
                     if v not in (None, False)]
            if given:
                raise ConfigError(f"--resume {known.resume} continues it as it began; drop {', '.join(given)}.")
            (lr_find if lr_find.is_range_test(known.resume) else halving).resume(known.resume, rest)
            return 0
        configs = _configs(variants, known, rest, description, grid)
        if known.find_lr is not None:  # A range test instead of training.
            lr_find.find_lr(configs[0], known.find_lr or None, known.find_lr_steps)
            return 0
        if known.halving is not None:  # A grid that prunes itself.
            halving.train_halving(configs, known.halving, list(grids.parse(known.grid, grid)))
            return 0
        run_dirs = _train(configs, known)
    except (ConfigError, DatasetNotFoundError, DataError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        if e.resume:
            print(e.resume, file=sys.stderr, flush=True)  # The last line: the command to continue.
        return e.exit_status
    except (NonFiniteError, CheckpointError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted by Ctrl-C: nothing saved since the last checkpoint.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)  # At once: not waiting for a background checkpoint write (saves are atomic).
    if (known.sweep or known.grid is not None) and hosts.primary():
        _write_table(configs[0], run_dirs, "sweep" if known.sweep else "grid",
                     [] if known.sweep else list(grids.parse(known.grid, grid)))
    return 0


def _configs(variants: Mapping[str, Config], known: argparse.Namespace, rest: list[str],
             description: str | None, grid: Mapping[str, str] | None) -> list[Config]:
    """The configs the command line asks for (one, a resumed one, every variant, every grid point),
    each validated before the first one trains: the only validation of a command-line run.

    Raises:
      ConfigError: flags that contradict each other, or a bad config.
    """
    from tinyjax.train.prepare import with_inputs
    from tinyjax.validation import validate

    if known.find_lr is not None and (known.resume or known.sweep or known.grid is not None or known.seeds):
        raise ConfigError("--find-lr tests one config's learning rates from its --seed; drop --resume, --sweep, "
                          "--grid and --seeds.")
    if known.halving is not None and known.grid is None:
        raise ConfigError("--halving prunes the points of a grid: give --grid field=v1,v2 ... with it.")
    if known.resume is not None:
        if known.sweep or known.grid is not None or known.seeds:
            raise ConfigError("--resume continues one run with its own seeds; drop --sweep, --grid and --seeds.")
        configs = [resume_config(variants, known.resume, known.variant, rest, description)]
    elif known.grid is not None:
        if known.sweep or known.seeds:
            raise ConfigError(f"--grid and {'--sweep' if known.sweep else '--seeds'} both choose the runs; "
                              "give one of them (a grid's seed is a grid field: --grid seed=0,1,2).")
        base, points = _named(variants, known.variant), grids.parse(known.grid, grid)
        again = sorted(set(points) & {a.split("=")[0] for a in rest})
        if again:
            raise ConfigError(f"{', '.join(again)} given both in --grid and as a flag; give it in one place.")
        configs = [_parse_over(variants, _parse_over(variants, base, point, description), rest, description)
                   for point in grids.points(points)]
    else:
        names = variants if known.sweep else [known.variant]
        configs = [_parse_over(variants, _named(variants, v), rest, description) for v in names]
        if known.seeds:
            configs = [dataclasses.replace(c, seed=known.seeds[0], seeds=known.seeds) for c in configs]
    configs = [with_inputs(c) for c in configs]  # File references and data paths made absolute.
    for config in configs:
        validate(config)
    return configs


def _train(configs: list[Config], known: argparse.Namespace) -> list[str]:
    """Trains the configs in order (a grid's points that can share a program as replicas of one,
    with ``--replicas vmap``: ``tinyjax.train.grid``); returns their run directories."""
    from tinyjax.train import train_members
    from tinyjax.train.grid import train_grid
    from tinyjax.train.seeds import run_seeds

    if known.grid is not None:
        return train_grid(configs)
    resume = None if known.resume is None else [known.resume]
    return [run_seeds(c, resume=known.resume).run_dir if c.seeds else train_members([c], resume=resume).run_dirs[0]
            for c in configs]


def _write_table(config: Config, run_dirs: list[str], kind: str, fields: list[str]) -> None:
    """``<out>/<experiment>-<kind>-<timestamp>.md``: the results table of a sweep or grid, also printed."""
    from tinyjax.runs import report

    table = report.table(run_dirs, fields)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(config.out, f"{config.experiment}-{kind}-{stamp}.md")
    with open(path, "w") as f:
        f.write(table + "\n")
    print(f"{table}\n\nwritten to {path}")
