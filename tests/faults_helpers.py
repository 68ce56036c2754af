"""Checkpoint writes that fail or stall, for the tests of what a run does then.

Both replace ``JsonCheckpointHandler._save_fn``, the coroutine by which orbax writes a checkpoint's JSON item
(tinyjax's metadata, written with every checkpoint) in the background. That is a private name of
orbax-checkpoint 0.12.8 (``orbax.checkpoint._src.handlers.json_checkpoint_handler``), the version these
tests were written against; if a later orbax renames or moves it, the lookups here fail with an
AttributeError or ImportError naming it, rather than the tests passing without a fault.
"""

from __future__ import annotations

import time


def _handler():
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    return json_checkpoint_handler.JsonCheckpointHandler


def fail_checkpoint_writes(monkeypatch, error: BaseException) -> None:
    """Every checkpoint written from now on (until ``monkeypatch`` undoes it) raises ``error`` in the
    background write, as a full disk would."""
    async def failing(self, x, directory):
        raise error
    monkeypatch.setattr(_handler(), "_save_fn", failing)  # AttributeError if orbax has no such name.


def stall_checkpoint_write(checkpoint_id: int, mark: str, seconds: float = 600.0) -> None:
    """For the rest of this process, the background write of checkpoint ``checkpoint_id`` touches the file
    ``mark``, then hangs for ``seconds`` (a test kills or interrupts the process meanwhile); other
    checkpoints are written normally."""
    handler = _handler()
    original = handler._save_fn

    async def stalled(self, x, directory):
        if f"checkpoints/{checkpoint_id}." in str(directory):  # Orbax's temporary folder, "<id>.orbax-...".
            open(mark, "w").close()
            time.sleep(seconds)
        return await original(self, x, directory)
    handler._save_fn = stalled
