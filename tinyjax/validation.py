"""``validate(config)``: every field of a ``Config`` checked before anything is
loaded or compiled, each bad one named in one line with its fix."""

from __future__ import annotations

from tinyjax.config import EPOCH_METRICS, Config, ConfigError, best_metric


def closest(name: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to ``name``, or ``""``."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def validate(config: Config) -> None:
    """Checks a config before anything is loaded or compiled, including
    ``--max-params`` against the model's trainable parameters (counted from
    shapes only, see ``tinyjax.summary.layer_table``).

    Raises:
      ConfigError: one line naming the bad field, or the model over its
        budget, and how to fix it.
    """
    from tinyjax.models import PRESETS  # Imports flax: not needed to build or print a config.

    checks = [
        (config.model in PRESETS,
         f"--model {config.model!r} is unknown{closest(config.model, PRESETS)}; choose one of {sorted(PRESETS)}"),
        (config.epochs >= 1, f"--epochs must be >= 1, got {config.epochs}"),
        (min(config.seeds, default=0) >= 0 and len(set(config.seeds)) == len(config.seeds),
         f"--seeds must be distinct seeds >= 0, got {list(config.seeds)}"),
        (config.batch_size >= 1, f"--batch-size must be >= 1, got {config.batch_size}"),
        (config.max_params is None or config.max_params >= 1,
         f"--max-params must be >= 1, got {config.max_params}"),
        (config.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {config.eval_batch_size}"),
        (0.0 <= config.label_smoothing < 1.0,
         f"--label-smoothing must be in [0, 1), got {config.label_smoothing}"),
        (config.data.train_limit is None or config.data.train_limit >= 1,
         f"--train-limit must be >= 1, got {config.data.train_limit}"),
        (0.0 <= config.ema < 1.0, f"--ema must be in [0, 1) (a decay per step), got {config.ema}"),
        (config.augment.crop_padding >= 0, f"--crop-padding must be >= 0 (pixels), got {config.augment.crop_padding}"),
        (0 <= config.augment.rotation <= 180, f"--rotation must be in [0, 180] (degrees), got {config.augment.rotation}"),
        (min(config.augment.brightness, config.augment.contrast, config.augment.saturation) >= 0,
         "--brightness, --contrast and --saturation must be >= 0"),
        (config.data.val_split >= 0, f"--val-split must be >= 0 (images), got {config.data.val_split}"),
        (config.checkpoint.save_every >= 0, f"--save-every must be >= 0 (epochs), got {config.checkpoint.save_every}"),
        (config.checkpoint.keep >= 1, f"--keep must be >= 1, got {config.checkpoint.keep}"),
        (best_metric(config) in EPOCH_METRICS, f"--best-metric {best_metric(config)!r} is unknown"
         f"{closest(best_metric(config), EPOCH_METRICS)}; choose one of {list(EPOCH_METRICS)}"),
        (not best_metric(config).startswith("val_") or config.data.val_split > 0,
         f"--best-metric {best_metric(config)} needs a validation split: add --val-split N"),
        (config.optim.lr > 0, f"--lr must be > 0, got {config.optim.lr}"),
        (0.0 <= config.optim.momentum < 1.0, f"--momentum must be in [0, 1), got {config.optim.momentum}"),
        (0.0 <= config.optim.beta2 < 1.0, f"--beta2 must be in [0, 1), got {config.optim.beta2}"),
        (config.optim.weight_decay >= 0, f"--weight-decay must be >= 0, got {config.optim.weight_decay}"),
        (not config.optim.nesterov or config.optim.name == "sgd",
         f"--nesterov applies to SGD only, not {config.optim.name}"),
    ]
    if config.schedule.name == "piecewise":
        s = config.schedule
        checks += [
            (all(0 < m for m in s.milestones) and list(s.milestones) == sorted(s.milestones),
             f"--milestones must be epochs >= 1 in non-decreasing order (one given twice decays twice, as in "
             f"MultiStepLR), got {list(s.milestones)}"),
            (0 < s.gamma <= 1, f"--gamma must be in (0, 1], got {s.gamma}"),
        ]
    if config.schedule.name == "cosine":
        checks.append((0 <= config.schedule.min_lr <= config.optim.lr,
                       f"--min-lr must be in [0, --lr {config.optim.lr}], got {config.schedule.min_lr}"))
    if config.schedule.name == "onecycle":
        s = config.schedule
        checks += [
            (s.max_lr > 0, f"--max-lr must be > 0, got {s.max_lr}"),
            (0.0 < s.pct_start < 1.0, f"--pct-start must be in (0, 1), got {s.pct_start}"),
            (s.div_factor > 0 and s.final_div_factor > 0,
             "--div-factor and --final-div-factor must be > 0"),
            (0.0 <= s.base_momentum <= s.max_momentum < 1.0,
             f"need 0 <= --base-momentum <= --max-momentum < 1, got {s.base_momentum}, {s.max_momentum}"),
        ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message + ".")
    if config.dtype != "float32":
        from tinyjax.models import create

        try:
            create(config.model, dtype=config.dtype)
        except ValueError as e:
            raise ConfigError(f"--dtype {config.dtype}: {e}") from None
    if config.max_params is not None:
        from tinyjax.data import IMAGE_SHAPES
        from tinyjax.models import create
        from tinyjax.summary import layer_table

        params = layer_table(create(config.model), IMAGE_SHAPES[config.data.name]).trainable_params
        if params > config.max_params:
            raise ConfigError(f"--model {config.model} has {params:,} trainable parameters, over --max-params "
                              f"{config.max_params:,}; choose a smaller model or raise the budget.")
