"""Datasets: host loading (``load``) and the on-device pipeline."""

from tinyjax.data.idx import DataError, IDXFormatError, read_idx, write_idx
from tinyjax.data.pipeline import (IMAGE_SHAPES, NORMALIZATION, Batch, DeviceData, batch_plan, make_batch,
                                   num_batches, to_device)
from tinyjax.data.sources import NUM_CLASSES, DatasetNotFoundError, cache_dir, load

__all__ = [
    "DataError", "IDXFormatError", "read_idx", "write_idx", "IMAGE_SHAPES", "NORMALIZATION", "Batch",
    "DeviceData", "batch_plan", "make_batch", "num_batches", "to_device", "DatasetNotFoundError",
    "NUM_CLASSES", "cache_dir", "load",
]
