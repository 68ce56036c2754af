"""Datasets: host loading (``load``; CIFAR-10's layouts and class names in ``cifar``) and the
on-device pipeline."""

from tinyjax.data import cifar
from tinyjax.data.errors import DataError, DatasetNotFoundError
from tinyjax.data.idx import IDXFormatError, read_idx, write_idx
from tinyjax.data.pipeline import (IMAGE_SHAPES, NORMALIZATION, Batch, DeviceData, batch_plan, make_batch,
                                   num_batches, to_device)
from tinyjax.data.sources import NUM_CLASSES, cache_dir, load

__all__ = [
    "DataError", "IDXFormatError", "read_idx", "write_idx", "IMAGE_SHAPES", "NORMALIZATION", "Batch",
    "DeviceData", "batch_plan", "make_batch", "num_batches", "to_device", "DatasetNotFoundError",
    "NUM_CLASSES", "cache_dir", "load", "cifar",
]
