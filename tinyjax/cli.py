"""Command line of every experiment: ``main(variants, default)``.

``--variant NAME`` picks one of the experiment's named configs (default
first); every ``Config`` field is then a flag over it (``--epochs 3
--batch-size 256 --seed 1``); ``--help`` lists the variants and the fields
with their units. ``--sweep`` trains every variant in turn, the other flags
applied to each, and writes one results table
(``<out>/<experiment>-sweep-<timestamp>.md``, via ``tinyjax.report``). A bad value, an unknown variant, a model over its
parameter budget or missing data ends the run with one ``error:`` line on
stderr and exit status 2, before anything is compiled.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
from typing import Mapping, Sequence

import tyro

from tinyjax.config import Config, ConfigError
from tinyjax.data import DatasetNotFoundError, IDXFormatError


def parse(variants: Mapping[str, Config], args: Sequence[str] | None = None,
          description: str | None = None) -> Config:
    """The config of ``--variant`` (default: the first) with the other flags applied.

    Raises:
      ConfigError: an unknown variant.
    """
    variant, _, rest = _split(variants, args)
    return _parse_over(variants, variant, rest, description)


def _split(variants: Mapping[str, Config], args: Sequence[str] | None) -> tuple[str, bool, list[str]]:
    """(variant, sweep, remaining args) from the command line."""
    args = list(sys.argv[1:] if args is None else args)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--variant", default=next(iter(variants)))
    pre.add_argument("--sweep", action="store_true")
    known, rest = pre.parse_known_args(args)
    if known.variant not in variants:
        raise ConfigError(f"--variant {known.variant!r} is unknown; choose one of {list(variants)}.")
    return known.variant, known.sweep, rest


def _parse_over(variants: Mapping[str, Config], variant: str, rest: list[str], description: str | None) -> Config:
    names = list(variants)
    help_text = (description or "") + (
        f"\n\n--variant {{{','.join(names)}}}: the base config (default: {names[0]}). "
        "--sweep: train every variant, the other flags applied to each, and write one results table."
        if len(names) > 1 else "")
    config = tyro.cli(Config, default=variants[variant], args=rest, description=help_text,
                      config=(tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff))
    return dataclasses.replace(config, variant=variant)


def main(variants: Mapping[str, Config], args: Sequence[str] | None = None,
         description: str | None = None) -> int:
    """Parses flags, trains and evaluates (one variant, or all with ``--sweep``);
    returns the exit status."""
    from tinyjax import report
    from tinyjax.config import validate
    from tinyjax.train import train_and_evaluate  # Imports jax: after --help has been served.

    try:
        variant, sweep, rest = _split(variants, args)
        configs = [_parse_over(variants, v, rest, description) for v in (variants if sweep else [variant])]
        for config in configs:  # All checked before the first one trains.
            validate(config)
        run_dirs = [train_and_evaluate(config)[2] for config in configs]
    except (ConfigError, DatasetNotFoundError, IDXFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if sweep:
        table = report.table(run_dirs)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(configs[0].out, f"{configs[0].experiment}-sweep-{stamp}.md")
        with open(path, "w") as f:
            f.write(table + "\n")
        print(f"{table}\n\nwritten to {path}")
    return 0
