"""Data parallel over the devices of one host or many: ``--parallel none|sharding|pmap``.

Both ways split every global batch (``--batch-size``) over the devices and
train the same model as one device on the same batch:

- ``sharding`` (the default when more than one device is visible): ``jax.jit``
  over a 1-D ``Mesh`` with the axis ``"data"``. The train state and the
  dataset are replicated (``NamedSharding(mesh, P())``), the batch axis of
  every batch plan is split (``P(..., "data")``), and the step functions are
  the single-device ones: XLA's SPMD partitioner turns the means over the
  batch (the loss, BatchNorm's statistics) into all-reduces, so the result is
  one device's on the global batch, up to float rounding.
- ``pmap``: the classic per-device program, ``jax.pmap(axis_name="data")``,
  with the gradients averaged by ``lax.pmean`` (``train_step(axis_name=)``)
  and BatchNorm's statistics too (the model's ``bn_axis_name``, as PyTorch's
  ``SyncBatchNorm``). Since jax 0.8 ``pmap`` is implemented with ``jit`` and
  ``shard_map`` and is in maintenance mode (docs.jax.dev, "Migrating to the
  new jax.pmap"); it is here for the notebooks and habits built on it. Each
  device's shard weighs the same in those means, so it equals one device when
  every device holds as many real examples: full batches, and a padded last
  batch whose real examples divide by the device count (they are dealt out
  in turn). Dropout draws its own mask per device.

A batch that does not divide by the device count is padded with masked
examples (``data.batch_plan``'s mask), which count in no loss, metric or
statistic. ``jax.distributed`` (``initialize``) joins several processes, each
with its local devices, into one mesh.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tinyjax.config import Config, ConfigError

AXIS = "data"  # The device axis: of the mesh (sharding), of pmap and of its collectives.
MODES = ("none", "sharding", "pmap")


def resolve(mode: str) -> str:
    """``"auto"`` -> ``"sharding"`` when more than one device is visible (all
    processes together), else ``"none"``; other modes unchanged."""
    if mode == "auto":
        return "sharding" if jax.device_count() > 1 else "none"
    return mode


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's arrays live and how its steps are mapped over devices.

    Attributes:
      mode: ``"none"`` (the default device), ``"sharding"`` or ``"pmap"``.
      mesh: the 1-D ``Mesh`` over ``jax.devices()`` with axis ``AXIS``
        (None for ``"none"``).
    """

    mode: str = "none"
    mesh: Mesh | None = None

    @classmethod
    def create(cls, mode: str) -> "Placement":
        """The placement of ``--parallel mode`` (``auto`` resolved) over all devices of all processes.

        Raises:
          ConfigError: ``pmap`` over several processes (its device axis is this
            host's devices; use ``sharding``).
        """
        mode = resolve(mode)
        if mode == "none":
            return cls()
        if mode == "pmap" and jax.process_count() > 1:
            raise ConfigError("--parallel pmap maps over one host's devices; use --parallel sharding "
                              "(the default) to train over several processes.")
        return cls(mode, Mesh(np.asarray(jax.devices() if mode == "sharding" else jax.local_devices()), (AXIS,)))

    @property
    def devices(self) -> int:
        """Devices the global batch is split over (1 for ``"none"``)."""
        return 1 if self.mesh is None else self.mesh.size

    def replicated(self, tree: Any) -> Any:
        """``tree`` on every device: as is (``none``), replicated over the mesh
        (``sharding``), or stacked ``[D, ...]`` with one copy per device
        (``pmap``'s layout, the replacement of the deprecated
        ``jax.device_put_replicated`` in jax >= 0.8.1)."""
        if self.mode == "sharding":
            return jax.device_put(tree, NamedSharding(self.mesh, P()))
        if self.mode == "pmap":
            stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (self.devices,) + jnp.shape(x)), tree)
            return jax.device_put(stacked, NamedSharding(self.mesh, P(AXIS)))
        return tree

    def unreplicated(self, tree: Any) -> Any:
        """One copy of a ``pmap``-replicated tree (device 0's); other modes unchanged."""
        return jax.tree.map(lambda x: x[0], tree) if self.mode == "pmap" else tree

    def batches(self, indices: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """An epoch's plan split over the devices along its last (batch) axis.

        ``indices int32 [S, ..., B]``, ``mask bool [S, ..., B]`` (``...``: a
        replica axis) are padded with masked examples to a multiple of the
        device count, then sharded on that axis (``sharding``), or reshaped to
        ``pmap``'s ``[D, S, ..., B / D]`` with example ``j`` of a batch on
        device ``j % D`` (so a padded batch's real examples spread evenly).
        """
        if self.mode == "none":
            return indices, mask
        d = self.devices
        pad = [(0, 0)] * (indices.ndim - 1) + [(0, -indices.shape[-1] % d)]
        indices, mask = jnp.pad(indices, pad), jnp.pad(mask, pad)
        if self.mode == "sharding":
            spec = P(*([None] * (indices.ndim - 1)), AXIS)
            return jax.device_put((indices, mask), NamedSharding(self.mesh, spec))

        def per_device(x):
            x = x.reshape(x.shape[:-1] + (x.shape[-1] // d, d))
            return jnp.moveaxis(x, -1, 0)
        return jax.device_put((per_device(indices), per_device(mask)), NamedSharding(self.mesh, P(AXIS)))

    def synced(self, model: nn.Module) -> nn.Module:
        """``model`` with BatchNorm statistics averaged over ``AXIS`` under ``pmap``; else ``model``."""
        if self.mode == "pmap" and any(f.name == "bn_axis_name" for f in dataclasses.fields(model)):
            return model.clone(bn_axis_name=AXIS)
        return model

    def describe(self) -> str:
        """E.g. ``"4 cpu devices, sharding"``, ``"1 cpu device"``."""
        if self.mesh is None:
            return f"1 {jax.default_backend()} device"
        hosts = f" on {jax.process_count()} processes" if jax.process_count() > 1 else ""
        return f"{self.devices} {jax.default_backend()} devices{hosts}, {self.mode}"


def check_batch(config: Config, devices: int) -> None:
    """Refuses a global batch smaller than the device count (some device would hold only padding).

    Raises:
      ConfigError: one line naming the batch size and the device count.
    """
    for flag, size in (("--batch-size", config.batch_size), ("--eval-batch-size", config.eval_batch_size)):
        if size < devices:
            raise ConfigError(f"{flag} {size} is smaller than the {devices} devices it is split over; "
                              f"raise it to at least {devices} (a multiple is best) or pass --parallel none.")


def initialize(config: Config) -> None:
    """``jax.distributed.initialize`` for a multi-process run, before any other jax call.

    With ``--coordinator host:port --num-processes N --process-id I`` it joins
    those processes; without them, when the environment names a cluster
    (``SLURM_JOB_ID`` with several tasks, ``TPU_WORKER_HOSTNAMES``, Open MPI's
    ``OMPI_COMM_WORLD_SIZE``), jax detects the rest itself; otherwise nothing.
    CPU processes exchange collectives with gloo.

    Raises:
      ConfigError: only some of the three flags, or a process id out of range.
    """
    flags = (config.coordinator, config.num_processes, config.process_id)
    if any(f is not None for f in flags) and any(f is None for f in flags):
        raise ConfigError("--coordinator, --num-processes and --process-id go together; give all three "
                          "(or none, on a TPU pod slice or under SLURM, which jax detects).")
    if config.coordinator is not None:
        if not 0 <= config.process_id < config.num_processes:
            raise ConfigError(f"--process-id must be in [0, --num-processes {config.num_processes}), "
                              f"got {config.process_id}.")
        _initialize(coordinator_address=config.coordinator, num_processes=config.num_processes,
                    process_id=config.process_id)
    elif (int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "TPU_WORKER_HOSTNAMES" in os.environ
          or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1):
        _initialize()


def _initialize(**kwargs) -> None:
    if jax.distributed.is_initialized():  # jax >= 0.7: a second call raises.
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # Only used by the CPU backend.
    jax.distributed.initialize(**kwargs)
