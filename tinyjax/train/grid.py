"""A grid's points trained in order: ``train_grid(configs, model=..., data=...)`` (``--grid``).

The points come from ``tinyjax.grid`` (``expand(config, {"lr": [...]})`` in Python, ``--grid
field=v1,v2`` on the command line). Points that differ only in ``replicas.REPLICA_FIELDS`` share
one program: with ``--replicas vmap`` (or ``auto`` where it resolves to vmap) they train as its
vmapped replicas; the others one after another. Each point is a normal run in its own run
directory; a point with ``--seeds`` trains them as ``train_seeds`` does."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from tinyjax.config import Config
from tinyjax.data.dataset import Dataset
from tinyjax.train import replicas
from tinyjax.train.inputs import inputs_of
from tinyjax.train.loop import train_members
from tinyjax.train.prepare import with_inputs
from tinyjax.train.seeds import run_seeds
from tinyjax.validation import validate

PRINT = functools.partial(print, flush=True)


def train_grid(configs: Sequence[Config], print_fn: Callable[[str], None] = PRINT, *, model=None,
               data: Dataset | None = None) -> list[str]:
    """Validates every point (``configs``, e.g. ``tinyjax.grid.expand``'s) before the first one
    trains, then trains them all; returns their run directories, in the points' order
    (``tinyjax.runs.report.table(run_dirs, fields)`` tabulates them). ``model`` and ``data``: your
    own model and data for every point, as ``train_and_evaluate`` takes them.

    Raises:
      as ``tinyjax.train.train_and_evaluate``, for any point (a bad one before anything trains).
    """
    configs = [with_inputs(c, model, data) for c in configs]
    for config in configs:
        validate(config, model, data)
    run_dirs, inputs = [""] * len(configs), inputs_of(configs, model, data)
    for group in replicas.groups(configs):
        members = [configs[i] for i in group]
        source, info, net = inputs[group[0]]
        if len(group) > 1 and replicas.resolve(members[0].replicas, net, info.image_shape) == "vmap":
            for i, run_dir in zip(group, train_members(members, print_fn, model=net, dataset=source).run_dirs):
                run_dirs[i] = run_dir
            continue
        for i, config in zip(group, members):
            run_dirs[i] = (run_seeds(config, print_fn, model=net, dataset=source).run_dir if config.seeds else
                           train_members([config], print_fn, model=net, dataset=source).run_dirs[0])
    return run_dirs
