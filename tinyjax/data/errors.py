"""The data package's errors: data that cannot be used, and data that cannot be found."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset cannot be used for training: a malformed file, or data that does
    not fit the dataset (image shape or dtype, label range, no examples). The
    message is one line naming the file or source, what is wrong and the fix."""


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide the dataset; the message lists what was tried."""
