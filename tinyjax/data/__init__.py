"""Datasets: one ``Dataset`` type from any source (built-in names through ``load``, CIFAR-10's
layouts in ``cifar``; ``.npz`` files, class folders and the user's arrays through ``from_arrays``),
and the on-device pipeline."""

from tinyjax.data import cifar
from tinyjax.data.dataset import BUILTIN, DataInfo, Dataset, builtin_info, from_arrays
from tinyjax.data.errors import DataError, DatasetNotFoundError
from tinyjax.data.idx import IDXFormatError, read_idx, write_idx
from tinyjax.data.pipeline import (IMAGE_SHAPES, NORMALIZATION, Batch, DeviceData, batch_plan, make_batch,
                                   num_batches, to_device)
from tinyjax.data.sources import NUM_CLASSES, cache_dir, load

__all__ = [
    "BUILTIN", "DataInfo", "Dataset", "builtin_info", "from_arrays",
    "DataError", "IDXFormatError", "read_idx", "write_idx", "IMAGE_SHAPES", "NORMALIZATION", "Batch",
    "DeviceData", "batch_plan", "make_batch", "num_batches", "to_device", "DatasetNotFoundError",
    "NUM_CLASSES", "cache_dir", "load", "cifar",
]
