"""A run's data and model, resolved once: ``resolve_inputs(config, model=..., dataset=...)``.

Every entry point that trains (``prepare``, ``--seeds``, a grid, ``--halving``, ``--find-lr``) needs
the same three things before it can build anything: the data (read once when it is a file, a
folder, a TFDS name or the user's arrays), what the data tells the model (image shape, class names,
normalisation) and the model through the door, with the data's class count."""

from __future__ import annotations

from typing import NamedTuple, Sequence

from tinyjax.config import Config, ConfigError
from tinyjax.data.dataset import Dataset, DataInfo
from tinyjax.data.splits import data_info, dataset_of
from tinyjax.models.door import ModelError, Net, resolve


class Inputs(NamedTuple):
    """``source``: the run's ``Dataset`` (None for a built-in name, read split by split by
    ``load_splits``); ``info``: its image shape, class names and normalisation; ``net``: the model
    (a ``tinyjax.models.door.Net``) with ``info.num_classes`` outputs in ``--dtype``."""

    source: Dataset | None
    info: DataInfo
    net: Net


def resolve_inputs(config: Config, model=None, dataset: Dataset | None = None) -> Inputs:
    """The ``Inputs`` of ``config``: ``dataset`` (an object passed in) or ``--dataset`` read once, and
    ``model`` (an object passed in, a ``Net`` kept as it is) or ``--model`` through the door.

    Raises:
      ConfigError: a model that cannot be built (``ModelError``'s line).
      DatasetNotFoundError, DataError: data that cannot be found or used.
    """
    source = dataset_of(config, dataset)
    info = data_info(config, source)
    if isinstance(model, Net):
        return Inputs(source, info, model)
    try:
        net = resolve(config.model if model is None else model, num_classes=info.num_classes, dtype=config.dtype)
    except ModelError as e:
        raise ConfigError(str(e)) from None
    return Inputs(source, info, net)


def inputs_of(configs: Sequence[Config], model=None, dataset: Dataset | None = None) -> list[Inputs]:
    """``resolve_inputs`` of each config (a grid's points), each dataset read and each model built
    once however many points share it.

    Raises:
      as ``resolve_inputs``.
    """
    sources, found = {}, {}
    for c in configs:
        data_key = (c.data.name, c.data.image_size, c.data.data_dir)
        if data_key not in sources:
            sources[data_key] = dataset_of(c, dataset)
        if (data_key, c.model, c.dtype) not in found:
            found[data_key, c.model, c.dtype] = resolve_inputs(c, model, sources[data_key])
    return [found[(c.data.name, c.data.image_size, c.data.data_dir), c.model, c.dtype] for c in configs]
