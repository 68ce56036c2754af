"""Hyperparameter grids: ``--grid`` expands one config into one config per point.

``--grid`` alone runs the experiment's own grid (e.g. reference 004's Table 2);
``--grid batch_size=64,256 weight_decay=1e-4,5e-4`` runs that subset: the
product of the values given, in the order given (the last field changes
fastest). A field is named as its flag without dashes (``batch_size`` or
``batch-size``); a list value is written in brackets or with colons
(``milestones=[50,100],[75,125]`` or ``milestones=50:100,75:125``; without
them ``milestones=80,120`` is two points of one milestone each). Milestones
are epochs of the variant's run, scaled with ``--epochs``. Each point
is a normal run with its own run directory; the other flags apply to every
point, and ``--epochs N`` shortens each one, its milestones scaled with it
(``tinyjax.cli``). From Python, ``expand(config, {"lr": [1e-3, 3e-3], ...})`` gives the points'
configs and ``tinyjax.train.grid.train_grid`` trains them.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping, Sequence

from tinyjax.config import Config, ConfigError, from_dict
from tinyjax.flags import field, flag


def split_values(text: str) -> list[str]:
    """``"[50,100],[75,125]"`` -> ``["50 100", "75 125"]``; ``"64,256"`` -> ``["64", "256"]``:
    commas inside brackets separate a list's items, colons too; outside, points."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            break
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    cleaned = [" ".join(v.strip("[] ").replace(":", ",").replace(",", " ").split()) for v in values]
    if depth != 0 or any(not v for v in cleaned):
        raise ConfigError(f"--grid value {text!r} is malformed; write values as 64,256 or, for lists, "
                          "[50,100],[75,125] or 50:100,75:125.")
    return cleaned


def parse(tokens: Sequence[str], default: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """``{"--batch-size": ["64", "256"], ...}`` from ``field=v1,v2`` tokens, or
    the experiment's ``default`` grid when ``tokens`` is empty.

    Raises:
      ConfigError: no tokens and no default grid, a token without ``=``, or a
        field given twice.
    """
    if not tokens:
        if not default:
            raise ConfigError("this experiment has no default grid; give one, e.g. --grid batch_size=64,256.")
        tokens = [f"{k}={v}" for k, v in default.items()]
    grid: dict[str, list[str]] = {}
    for token in tokens:
        name, eq, values = token.partition("=")
        if not eq or not name or not values:
            raise ConfigError(f"--grid {token!r}: write field=value1,value2 (e.g. weight_decay=1e-4,5e-4).")
        name_flag = flag(field(name))
        if name_flag in grid:
            raise ConfigError(f"--grid names {name} twice; give all its values at once.")
        grid[name_flag] = split_values(values)
    return grid


def points(grid: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The command-line flags of every point of the product, e.g.
    ``[["--batch-size", "64", "--milestones", "50", "100"], ...]``: a value
    holding a list (``"50 100"``, from ``split_values``) becomes one token per item."""
    flags = list(grid)
    return [[token for flag, value in zip(flags, combo) for token in (flag, *value.split())]
            for combo in itertools.product(*(grid[f] for f in flags))]


def expand(config: Config, grid: Mapping[str, Sequence[Any]]) -> list[Config]:
    """One config per point of the product of ``grid``'s values over ``config``, in order (the last
    field changes fastest), e.g. ``expand(c, {"lr": [1e-3, 3e-3], "weight_decay": [0, 5e-4]})``: four
    configs. Fields are named as their flags without dashes (``batch_size``, ``optimizer``, ``max_lr``);
    a list field takes lists (``{"milestones": [(50, 100), (75, 125)]}``). Call
    ``tinyjax.validation.validate`` (``train_grid`` does) to check the values.

    Raises:
      ConfigError: an unknown field (the closest flag named) or a field without values.
    """
    paths = {name: field(name) for name in grid}
    for name, values in grid.items():
        if not len(values):
            raise ConfigError(f"grid field {name!r} has no values; give at least one.")
    configs = []
    for combo in itertools.product(*grid.values()):
        d = dataclasses.asdict(config)
        for path, value in zip(paths.values(), combo):
            *parents, leaf = path.split(".")
            node = d
            for key in parents:
                node = node[key]
            node[leaf] = list(value) if isinstance(value, (list, tuple)) else value
        configs.append(from_dict(d))
    return configs


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5"`` -> ``(0, 1, 2, 3, 4)``; ``"0,3,7"`` -> ``(0, 3, 7)``.

    Raises:
      ConfigError: not a count >= 1 or a list of distinct seeds >= 0.
    """
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    seeds = tuple(range(values[0])) if len(values) == 1 else tuple(values)
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: give a count (--seeds 5: seeds 0-4) or distinct seeds >= 0 "
                          "(--seeds 0,3,7).")
    return seeds


def scale_milestones(milestones: Sequence[int], epochs: int, new_epochs: int) -> tuple[int, ...]:
    """Milestones (epochs) of an ``epochs``-long run moved to the same fractions of a
    ``new_epochs``-long one, rounded half up, at least 1 and each after the previous
    one (so that two decays never merge into one): ``(80, 120)`` of 200 -> ``(8, 12)``
    of 20, ``(1, 2)`` of 2."""
    scaled: list[int] = []
    for m in milestones:
        scaled.append(max(int(m * new_epochs / epochs + 0.5), scaled[-1] + 1 if scaled else 1))
    return tuple(scaled)
