"""``validate(config)``: every field of a ``Config`` checked before anything is
loaded or compiled, each bad one named in one line with its fix; and
``check_flags(args)``, the command line's flags checked before tyro parses them."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Sequence

from tinyjax.common import closest
from tinyjax.config import EPOCH_METRICS, Config, ConfigError, best_metric
from tinyjax.flags import flag


def validate(config: Config, model=None, data=None) -> None:
    """Checks a config before anything is loaded or compiled, including
    ``--max-params`` against the model's trainable parameters (counted from
    shapes only, see ``tinyjax.models.summary.layer_table``).

    ``model``, ``data``: a model object and a ``tinyjax.data.Dataset`` passed to ``train_and_evaluate``
    instead of ``--model`` and ``--dataset``.

    Raises:
      ConfigError: one line naming the bad field, or the model over its
        budget, and how to fix it.
    """
    for ok, message in _field_checks(config, data is not None) + _schedule_checks(config):
        if not ok:
            raise ConfigError(message + ".")
    _check_model(config, model, data is not None)
    check_elastic(config)
    if config.profile:  # Its format; its end is checked against the run's steps (tinyjax.train.profile).
        parse_profile(config.profile)


def parse_profile(spec: str) -> tuple[int, int]:
    """``--profile``'s ``"START:STOP"`` -> ``(START, STOP)``, 0-based training steps, STOP excluded.

    Raises:
      ConfigError: not two integers ``0 <= START < STOP`` joined by a colon.
    """
    match = re.fullmatch(r"(\d+):(\d+)", spec)
    if match is None or int(match[1]) >= int(match[2]):
        raise ConfigError(f"--profile {spec!r} is not START:STOP with 0 <= START < STOP (training steps, from 0, "
                          "STOP excluded); e.g. --profile 10:30 traces 20 steps.")
    return int(match[1]), int(match[2])


def _field_checks(config: Config, given_data: bool = False) -> list[tuple[bool, str]]:
    """``(ok, message)`` of every field outside the schedule."""
    import os

    from tinyjax.data.dataset import BUILTIN, FORMS

    from tinyjax.data.dataset import is_tfds_name

    name = config.data.name
    return [
        (given_data or name in BUILTIN or os.path.isdir(name) or (os.path.isfile(name) and name.endswith(".npz"))
         or is_tfds_name(name), f"--dataset {name!r} is unknown{closest(name, BUILTIN)}; no such file, folder or "
         f"TFDS dataset either: give {FORMS}"),
        (config.data.data_dir is None or os.path.isdir(config.data.data_dir),
         f"--data-dir {config.data.data_dir}: no such folder; give an existing folder, or drop --data-dir"),
        (config.data.image_size is None or re.fullmatch(r"[1-9]\d*,[1-9]\d*", config.data.image_size) is not None,
         f"--image-size must be H,W in pixels (e.g. 32,32), got {config.data.image_size!r}"),
        (config.epochs >= 1, f"--epochs must be >= 1, got {config.epochs}"),
        (min(config.seeds, default=0) >= 0 and len(set(config.seeds)) == len(config.seeds),
         f"--seeds must be distinct seeds >= 0, got {list(config.seeds)}"),
        (config.batch_size >= 1, f"--batch-size must be >= 1, got {config.batch_size}"),
        (config.accumulate >= 1 and config.batch_size % config.accumulate == 0,
         f"--accumulate {config.accumulate} must be >= 1 and divide --batch-size {config.batch_size} "
         "(each update's micro-batches are equal)"),
        (config.accumulate == 1 or config.parallel != "pmap",
         "--accumulate does not run under --parallel pmap (a device whose share of a micro-batch is all "
         "padding would make the synced BatchNorm statistics NaN); use --parallel sharding"),
        (config.max_params is None or config.max_params >= 1,
         f"--max-params must be >= 1, got {config.max_params}"),
        (config.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {config.eval_batch_size}"),
        (0.0 <= config.label_smoothing < 1.0,
         f"--label-smoothing must be in [0, 1), got {config.label_smoothing}"),
        (config.data.train_limit is None or config.data.train_limit >= 1,
         f"--train-limit must be >= 1, got {config.data.train_limit}"),
        (config.data.test_limit is None or config.data.test_limit >= 1,
         f"--test-limit must be >= 1, got {config.data.test_limit}"),
        (0.0 <= config.ema < 1.0, f"--ema must be in [0, 1) (a decay per step), got {config.ema}"),
        (config.augment.crop_padding >= 0, f"--crop-padding must be >= 0 (pixels), got {config.augment.crop_padding}"),
        (0 <= config.augment.rotation <= 180, f"--rotation must be in [0, 180] (degrees), got {config.augment.rotation}"),
        (0 <= config.augment.scale < 1, f"--scale must be in [0, 1) (zoom by U(1-s, 1+s)), got {config.augment.scale}"),
        (config.augment.interpolation in ("nearest", "bilinear"),
         f"--interpolation must be nearest or bilinear, got {config.augment.interpolation!r}"),
        (0 <= config.augment.shear < 90, f"--shear must be in [0, 90) (degrees), got {config.augment.shear}"),
        (config.augment.elastic_alpha >= 0, f"--elastic-alpha must be >= 0, got {config.augment.elastic_alpha}"),
        (config.augment.elastic_sigma > 0, f"--elastic-sigma must be > 0 (pixels), got {config.augment.elastic_sigma}"),
        (min(config.augment.brightness, config.augment.contrast, config.augment.saturation) >= 0,
         "--brightness, --contrast and --saturation must be >= 0"),
        (config.data.val_split >= 0, f"--val-split must be >= 0 (images), got {config.data.val_split}"),
        (config.checkpoint.save_every >= 0, f"--save-every must be >= 0 (epochs), got {config.checkpoint.save_every}"),
        (config.checkpoint.keep >= 1, f"--keep must be >= 1, got {config.checkpoint.keep}"),
        (config.early_stop >= 0, f"--early-stop must be >= 0 (epochs of patience), got {config.early_stop}"),
        (config.early_stop_min_delta >= 0,
         f"--early-stop-min-delta must be >= 0, got {config.early_stop_min_delta}"),
        (not config.early_stop or config.checkpoint.save_every > 0,
         "--early-stop restores the best checkpoint's weights at the end and needs checkpoints: drop --save-every 0"),
        (not config.early_stop or not best_metric(config).startswith("test_") or config.early_stop_on_test,
         f"--early-stop watches --best-metric {best_metric(config)}, which selects on the test set: add "
         "--val-split N (it then watches val_acc), or pass --early-stop-on-test"),
        (best_metric(config) in EPOCH_METRICS, f"--best-metric {best_metric(config)!r} is unknown"
         f"{closest(best_metric(config), EPOCH_METRICS)}; choose one of {list(EPOCH_METRICS)}"),
        (not best_metric(config).startswith("val_") or config.data.val_split > 0,
         f"--best-metric {best_metric(config)} needs a validation split: add --val-split N"),
        (config.optim.lr > 0, f"--lr must be > 0, got {config.optim.lr}"),
        (0.0 <= config.optim.momentum < 1.0, f"--momentum must be in [0, 1), got {config.optim.momentum}"),
        (0.0 <= config.optim.beta2 < 1.0, f"--beta2 must be in [0, 1), got {config.optim.beta2}"),
        (config.optim.weight_decay >= 0, f"--weight-decay must be >= 0, got {config.optim.weight_decay}"),
        (config.optim.bn_bias_lr_scale > 0, f"--bn-bias-lr-scale must be > 0, got {config.optim.bn_bias_lr_scale}"),
        (config.optim.bn_bias_lr_scale == 1 or config.optim.name == "sgd",
         f"--bn-bias-lr-scale applies to SGD only, not {config.optim.name} (it scales gradients, which Adam "
         "normalises away); leave it at 1"),
        (not config.optim.nesterov or config.optim.name == "sgd",
         f"--nesterov applies to SGD only, not {config.optim.name}"),
    ]


def _schedule_checks(config: Config) -> list[tuple[bool, str]]:
    """``(ok, message)`` of the fields of the chosen schedule."""
    s, checks = config.schedule, []
    if s.name == "piecewise":
        checks += [
            (all(0 < m for m in s.milestones) and list(s.milestones) == sorted(s.milestones),
             f"--milestones must be epochs >= 1 in non-decreasing order (one given twice decays twice, as in "
             f"MultiStepLR), got {list(s.milestones)}"),
            (0 < s.gamma <= 1, f"--gamma must be in (0, 1], got {s.gamma}"),
        ]
    if s.name == "cosine":
        checks.append((0 <= s.min_lr <= config.optim.lr, f"--min-lr must be in [0, --lr {config.optim.lr}], got {s.min_lr}"))
    if s.name == "onecycle":
        checks += [
            (s.max_lr > 0, f"--max-lr must be > 0, got {s.max_lr}"),
            (0.0 < s.pct_start < 1.0, f"--pct-start must be in (0, 1), got {s.pct_start}"),
            (s.div_factor > 0 and s.final_div_factor > 0,
             "--div-factor and --final-div-factor must be > 0"),
            (0.0 <= s.base_momentum <= s.max_momentum < 1.0,
             f"need 0 <= --base-momentum <= --max-momentum < 1, got {s.base_momentum}, {s.max_momentum}"),
        ]
    return checks


def _check_model(config: Config, model=None, given_data: bool = False) -> None:
    """The model (``--model``, or ``model``, an object passed in) goes through the door in ``--dtype``;
    on a built-in dataset, whose image shape is known before loading, its output width and trainable
    parameters (from shapes only) within ``--max-params`` too (``check_model``)."""
    from tinyjax.data.dataset import BUILTIN, builtin_info
    from tinyjax.models import PRESETS
    from tinyjax.models.door import ModelError, resolve

    try:
        net = resolve(config.model if model is None else model, dtype=config.dtype)
    except ModelError as e:
        raise ConfigError(str(e)) from None
    if config.data.name in BUILTIN and not given_data and (config.max_params is not None or net.reference not in PRESETS):
        check_model(config, net, builtin_info(config.data.name))


def check_model(config: Config, net, info) -> None:
    """``net`` (a ``tinyjax.models.door.Net``) on ``info``'s images (a ``DataInfo``): it initialises
    and gives ``info.num_classes`` logits, and has at most ``--max-params`` trainable parameters
    (``jax.eval_shape``: nothing is compiled or allocated).

    Raises:
      ConfigError: its init or forward pass raises (its message), a wrong output width, or a model
        over its budget.
    """
    from tinyjax.models.summary import trace_shapes

    params, logits = trace_shapes(net, info.image_shape)
    if logits != (info.num_classes,):
        raise ConfigError(f"--model {net.name} gives logits of shape {list(logits)} per image but the data has "
                          f"{info.num_classes} classes; give its head {info.num_classes} outputs (or a num_classes "
                          "argument, which tinyjax sets).")
    if config.max_params is not None and params > config.max_params:
        raise ConfigError(f"--model {net.name} has {params:,} trainable parameters, over --max-params "
                          f"{config.max_params:,}; choose a smaller model or raise the budget.")


def check_elastic(config: Config, image_shape: tuple[int, ...] | None = None) -> None:
    """``--elastic-sigma``'s blur kernel (reflect padding) fits ``image_shape`` (H, W, C), by default a
    built-in dataset's (other data is checked once loaded: ``tinyjax.train.prepare``).

    Raises:
      ConfigError: a kernel wider than the images allow (``tinyjax.data.warp.blur_matrix``'s line).
    """
    if config.augment.elastic_alpha > 0:
        from tinyjax.data import IMAGE_SHAPES
        from tinyjax.data.warp import blur_matrix

        shape = image_shape or IMAGE_SHAPES.get(config.data.name)
        try:
            for n in shape[:2] if shape else ():
                blur_matrix(n, config.augment.elastic_sigma)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def _flag_types(cls: type = Config, prefix: str = "") -> dict[str, tuple[type, tuple]]:
    """``{"--epochs": (int, ()), "--optimizer": (str, ("sgd", "adam", "adamw")), ...}``:
    each flag of ``Config`` with its value type and, for a ``Literal``, its choices."""
    flags, hints = {}, typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default):
            flags.update(_flag_types(type(f.default), f"{prefix}{f.name}."))
            continue
        hint = hints[f.name]
        while typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        args = [a for a in typing.get_args(hint) if a is not type(None)]  # Optional[X] -> X.
        if typing.get_origin(hint) is typing.Literal:
            kind, choices = str, typing.get_args(hint)
        else:
            kind, choices = (args[0] if args else hint), ()
        if f.name not in ("variant", "seeds"):  # Chosen with --variant and --seeds, parsed before tyro.
            flags[flag(prefix + f.name)] = (kind, choices)
    return flags


def check_flags(args: Sequence[str]) -> None:
    """Checks the config flags in ``args`` before tyro parses them, so that a
    mistake is one line (tyro would print a multi-line box): unknown flags,
    values outside a flag's choices (both with the closest name suggested) and
    values that are not numbers where numbers are needed.

    Raises:
      ConfigError: the first bad flag, named with the fix.
    """
    flags = _flag_types()
    tokens = list(args)
    for i, token in enumerate(tokens):
        if not token.startswith("--") or token == "--help":
            continue
        name, eq, value = token.partition("=")
        if name not in flags:
            raise ConfigError(f"unknown flag {name}{closest(name, flags)}; see --help for the flags.")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise ConfigError(f"{name} needs a value; see --help.")
            value = tokens[i + 1]
        kind, choices = flags[name]
        if choices and value not in choices:
            raise ConfigError(f"{name} {value!r} is unknown{closest(value, choices)}; choose one of {list(choices)}.")
        try:
            if value != "None" and kind in (int, float):
                kind(value)
        except ValueError:
            raise ConfigError(f"{name} needs {'an integer' if kind is int else 'a number'}, got {value!r}.") from None
        if kind is bool and value not in ("True", "False"):
            raise ConfigError(f"{name} needs True or False, got {value!r}.")
