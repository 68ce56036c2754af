"""Command line of every experiment: ``main(default_config)``.

Each ``Config`` field is a flag (``--epochs 3 --batch-size 256 --seed 1``);
``--help`` lists them with their units. A bad value or missing data ends the
run with one ``error:`` line on stderr and exit status 2, before anything is
compiled.
"""

from __future__ import annotations

import sys
from typing import Sequence

import tyro

from tinyjax.config import Config, ConfigError
from tinyjax.data import DatasetNotFoundError, IDXFormatError


def parse(default: Config, args: Sequence[str] | None = None, description: str | None = None) -> Config:
    """The config given by ``args`` (default ``sys.argv[1:]``) over ``default``."""
    return tyro.cli(Config, default=default, args=args, description=description,
                    config=(tyro.conf.OmitArgPrefixes, tyro.conf.FlagConversionOff))


def main(default: Config, args: Sequence[str] | None = None, description: str | None = None) -> int:
    """Parses flags over ``default``, trains and evaluates; returns the exit status."""
    from tinyjax.train import train_and_evaluate  # Imports jax: after --help has been served.

    config = parse(default, args, description)
    try:
        train_and_evaluate(config)
    except (ConfigError, DatasetNotFoundError, IDXFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
