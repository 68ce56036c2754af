"""The one field <-> flag map of ``tinyjax.config.Config``: ``FLAGS``, ``flag``, ``field``, and
``flat``, a config (or its saved ``config.json``) as ``{field path: value}``. The CLI's checks,
``--grid``, ``--resume``'s refusals, replica labels and ``tinyjax.runs.report`` all name fields
through it."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any

from tinyjax.config import Config, ConfigError


def _flags(cls: type = Config, prefix: str = "") -> dict[str, str]:
    """``{"epochs": "--epochs", "data.name": "--dataset", ...}``: every leaf field's path and its flag,
    the field's name with dashes unless a ``tyro.conf.arg(name=...)`` renames it. (tyro 1.0 keeps that
    name as the ``name`` attribute of the ``Annotated`` metadata object.)"""
    out, hints = {}, typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default):
            out.update(_flags(type(f.default), f"{prefix}{f.name}."))
            continue
        hint, name = hints[f.name], f.name
        if typing.get_origin(hint) is Annotated:
            name = next((m.name for m in typing.get_args(hint)[1:] if isinstance(getattr(m, "name", None), str)),
                        name)
        out[prefix + f.name] = "--" + name.replace("_", "-")
    return out


FLAGS: dict[str, str] = _flags()
"""Every config field's path (``"optim.name"``) and its command-line flag (``"--optimizer"``): the one map
that the CLI's checks, ``--grid``, ``--resume``'s refusals, replica labels and ``tinyjax.runs.report`` use."""
_FIELDS = {f: path for path, f in FLAGS.items()}


def flag(path: str) -> str:
    """The flag of a field path: ``"data.name"`` -> ``"--dataset"``, ``"schedule.max_lr"`` -> ``"--max-lr"``."""
    return FLAGS[path]


def field(name: str) -> str:
    """The field path of a flag, given as ``"--batch-size"``, ``"batch-size"`` or ``"batch_size"``:
    ``"optimizer"`` -> ``"optim.name"``.

    Raises:
      ConfigError: no field has that flag (the closest one suggested).
    """
    key = "--" + name.lstrip("-").replace("_", "-")
    if key not in _FIELDS:
        import difflib

        match = difflib.get_close_matches(key, list(_FIELDS), n=1, cutoff=0.5)
        raise ConfigError(f"unknown flag {key}" + (f" (did you mean {match[0]!r}?)" if match else "")
                          + "; see --help for the flags.")
    return _FIELDS[key]


def flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.name": "mnist", "epochs": 20, ...}`` of a ``Config`` or of its ``dataclasses.asdict`` form
    (a run's ``config.json``)."""
    items = ({f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
             if dataclasses.is_dataclass(config) else config)
    out = {}
    for name, value in items.items():
        nested = dataclasses.is_dataclass(value) or isinstance(value, dict)
        out.update(flat(value, f"{prefix}{name}.") if nested else {f"{prefix}{name}": value})
    return out
