"""Loading a finished or running run for inference: ``tinyjax.load(run_dir)`` -> ``Restored``
(model, variables, config, epoch, and the data's ``info``), with ``predict``."""

from __future__ import annotations

import json
import os

import numpy as np

from tinyjax.config import Config, ConfigError


class Restored:
    """A checkpoint ready for inference: the ``model`` (a ``tinyjax.models.door.Net``), its
    ``variables`` (``{"params": ..., "batch_stats": ...}``), the run's ``config``, the ``epoch`` the
    checkpoint was saved in (1-based; a mid-epoch checkpoint belongs to the epoch it interrupted),
    and the data's ``info`` (``tinyjax.data.DataInfo``: image shape, class names, normalisation).
    Unpacks as ``model, variables, config, epoch``."""

    def __init__(self, model, variables: dict, config: Config, epoch: int, info):
        self.model, self.variables, self.config, self.epoch, self.info = model, variables, config, epoch, info

    def __iter__(self):
        return iter((self.model, self.variables, self.config, self.epoch))

    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """``float32 [N, K]`` class probabilities of raw ``uint8 [N, H, W, C]`` images, computed as
        the run evaluated: its data's normalisation and its test-time augmentation
        (``config.tta``); see ``tinyjax.predict``. ``info.class_names[k]`` names column k.

        Raises:
          ValueError: images are not ``uint8 [N, H, W, C]``.
        """
        from tinyjax.runs.inference import predict

        return predict(self.model, self.variables, images, self.info, batch_size, self.config.tta)


def data_info(run_dir: str, config: Config):
    """The ``DataInfo`` a run recorded in ``data.json`` (a run older than it: its built-in dataset's)."""
    from tinyjax.data.dataset import DataInfo, builtin_info

    path = os.path.join(run_dir, "data.json")
    if os.path.exists(path):
        with open(path) as f:
            return DataInfo.from_json(json.load(f))
    return builtin_info(config.data.name)


def load(run_dir: str, which: str = "best", model=None) -> Restored:
    """Restores a run's ``"best"`` or ``"latest"`` checkpoint without knowing its
    config in advance (it is read from ``run_dir/config.json``, the data's shape, class names and
    normalisation from ``data.json``). The model is rebuilt from the run's ``--model`` (a preset or
    an import reference); a run trained on a Python object that cannot be imported again needs it
    passed as ``model`` (the object, its class or function).

    Example::

        import tinyjax

        run = tinyjax.load("runs/mnist_onecycle-default-...")   # this function
        probs = run.predict(images)                      # float32 [N, 10], the run's --tta views
        model, variables, config, epoch = run            # or: tinyjax.predict(model, variables, ...)

    Raises:
      ConfigError: not a run directory, no such checkpoint, or a model that cannot be rebuilt
        (one that does not import; a Python object not passed).
      CheckpointError: the checkpoint cannot be read.
    """
    from tinyjax.models.door import ModelError, resolve
    from tinyjax.runs.checkpoint import find, load_config  # It imports this module at its end.

    config = load_config(run_dir)
    info = data_info(run_dir, config)
    try:
        net = resolve(config.model if model is None else model, num_classes=info.num_classes, dtype=config.dtype)
    except ModelError as e:
        raise ConfigError(f"{run_dir}: {e}; a run trained on a Python object loads with "
                          "tinyjax.load(run_dir, model=<the object, its class or function>).") from None
    checkpoints, checkpoint_id = find(run_dir, config, which)
    try:
        meta = checkpoints.meta(checkpoint_id)
        variables = checkpoints.variables(checkpoint_id)  # The moving average when the run kept one (--ema).
    finally:
        checkpoints.close()
    return Restored(net, variables, config, meta["epoch"] + (0 if meta["position"] == 0 else 1), info)
