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
statistic. The mesh spans ``jax.devices()``: with several processes joined by
``jax.distributed`` (``tinyjax.distributed.hosts``) the devices of all of them, each
process placing only its own devices' shards (``jax.make_array_from_callback``)
and getting back a copy on its first device (``unreplicated``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tinyjax.config import Config, ConfigError

AXIS = "data"  # The device axis: of the mesh (sharding), of pmap and of its collectives.


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
        """The placement of ``--parallel mode`` (``auto`` resolved) over all devices.

        Raises:
          ConfigError: ``none`` in a run of several processes (each would train alone).
        """
        mode = resolve(mode)
        if mode == "none" and jax.process_count() > 1:
            raise ConfigError(f"--parallel none in a run of {jax.process_count()} processes would train a "
                              "model per process; pass --parallel sharding (or pmap), or start one process.")
        return cls() if mode == "none" else cls(mode, Mesh(np.asarray(jax.devices()), (AXIS,)))

    @property
    def processes(self) -> int:
        """Processes whose devices the mesh spans (``jax.process_count()``; 1 for ``"none"``)."""
        return 1 if self.mesh is None else jax.process_count()

    @property
    def devices(self) -> int:
        """Devices the global batch is split over (1 for ``"none"``)."""
        return 1 if self.mesh is None else self.mesh.size

    @property
    def rows(self) -> np.ndarray:
        """``int [L]``: the positions on ``pmap``'s device axis of this process's ``L``
        devices (pmap orders devices by process: ``p * L .. p * L + L - 1``)."""
        local = 1 if self.mesh is None else jax.local_device_count()
        return np.arange(local) + jax.process_index() * local

    def replicated(self, tree: Any) -> Any:
        """``tree`` on every device: as is (``none``), replicated over the mesh
        (``sharding``), or stacked ``[L, ...]`` with one copy per local device
        (``pmap``'s host-local layout, the replacement of the deprecated
        ``jax.device_put_replicated`` in jax >= 0.8.1)."""
        if self.mode == "sharding":
            return self._put(tree, P())
        if self.mode == "pmap":
            return self._local(jax.tree.map(lambda x: jnp.broadcast_to(x, (len(self.rows),) + jnp.shape(x)), tree))
        return tree

    def unreplicated(self, tree: Any) -> Any:
        """One copy of a replicated tree: ``pmap``'s first copy; with several
        processes, a copy on this process's first device; else ``tree``."""
        # From the first local device's buffer: indexing the [D, ...] array itself is a program over
        # every process's devices, which can deadlock against the next collective of another process.
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x.addressable_data(0)[0], tree)
        if self.processes == 1:
            return tree
        tree = jax.jit(lambda t: t, out_shardings=NamedSharding(self.mesh, P()))(tree)  # Whole on every device.
        return jax.tree.map(lambda x: x.addressable_data(0), tree)

    def gathered(self, tree: Any) -> Any:
        """``pmap``'s per-device values ``[L, ...]`` of every process, stacked ``[D, ...]``
        (a collective with several processes); other modes unchanged."""
        if self.mode != "pmap" or self.processes == 1:
            return tree
        return multihost_utils.process_allgather(tree, tiled=True)

    def compile(self, fn: Callable, donate: bool, in_axes: Any = 0) -> Callable:
        """``fn`` compiled for this placement: ``jax.pmap`` over ``AXIS`` with ``in_axes`` (every
        argument then has a leading device axis), else ``jax.jit`` (the sharding of the arguments
        places the computation). ``donate``: the first argument's buffers are donated."""
        donate_argnums = (0,) if donate else ()
        if self.mode == "pmap":
            return jax.pmap(fn, AXIS, in_axes=in_axes, donate_argnums=donate_argnums)
        return jax.jit(fn, donate_argnums=donate_argnums)

    def carry(self, carry: Any) -> Any:
        """An epoch's loop state (a NamedTuple with ``totals``, e.g. ``train.epochs.TrainCarry``) on
        the devices (``replicated``); under ``pmap`` its sums start on device 0 only and at 0 on the
        others, so that ``summed`` adds each device's part once."""
        carry = self.replicated(carry)
        if self.mode != "pmap":
            return carry
        first = self.rows == 0
        return carry._replace(totals=jax.tree.map(
            lambda t: jnp.where(first.reshape((-1,) + (1,) * (t.ndim - 1)), t, 0), carry.totals))

    def summed(self, totals: dict) -> dict:
        """Metric sums over the devices: ``pmap``'s per-device sums ``[D, ...]`` added up
        (``nonfinite``, the same on every device, by its maximum); other modes unchanged."""
        if self.mode != "pmap":
            return totals
        totals = self.gathered(totals)
        return {k: (jnp.max if k == "nonfinite" else jnp.sum)(v, axis=0) for k, v in totals.items()}

    def _put(self, tree: Any, spec: P) -> Any:
        """``tree`` (the same on every process) laid out by ``spec`` over the mesh; with
        several processes, each places only the shards of its own devices."""
        sharding = NamedSharding(self.mesh, spec)
        if self.processes == 1:
            return jax.device_put(tree, sharding)
        # jax.device_put would first check, by a collective, that every process passed the same value.
        return jax.tree.map(lambda x: jax.make_array_from_callback(jnp.shape(x), sharding, lambda i: x[i]), tree)

    def _local(self, tree: Any) -> Any:
        """``tree`` (leading axis ``L``) split over this process's devices: pmap's host-local
        inputs (pmap makes them one global array over every process's devices)."""
        return jax.device_put(tree, NamedSharding(Mesh(np.asarray(jax.local_devices()), (AXIS,)), P(AXIS)))

    def batches(self, indices: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """An epoch's plan split over the devices along its last (batch) axis.

        ``indices int32 [S, ..., B]``, ``mask bool [S, ..., B]`` (``...``: a
        replica axis) are padded with masked examples to a multiple of the
        device count, then sharded on that axis (``sharding``), or reshaped to
        ``pmap``'s ``[D, S, ..., B / D]`` with example ``j`` of a batch on
        device ``j % D`` (so a padded batch's real examples spread evenly), of
        which this process keeps its ``rows``.
        """
        if self.mode == "none":
            return indices, mask
        d = self.devices
        pad = [(0, 0)] * (indices.ndim - 1) + [(0, -indices.shape[-1] % d)]
        indices, mask = jnp.pad(indices, pad), jnp.pad(mask, pad)
        if self.mode == "sharding":
            return self._put((indices, mask), P(*([None] * (indices.ndim - 1)), AXIS))

        def per_device(x):
            x = x.reshape(x.shape[:-1] + (x.shape[-1] // d, d))
            return jnp.moveaxis(x, -1, 0)
        return self._local((per_device(indices)[self.rows], per_device(mask)[self.rows]))

    def synced(self, net):
        """``net`` (a ``tinyjax.models.door.Net``) with BatchNorm statistics averaged over ``AXIS``
        under ``pmap`` (its ``bn_axis_name`` hook); else ``net``."""
        return net.synced(AXIS) if self.mode == "pmap" else net

    def describe(self) -> str:
        """E.g. ``"4 cpu devices, sharding"``, ``"8 gpu devices in 2 processes, pmap"``, ``"1 cpu device"``."""
        if self.mesh is None:
            return f"1 {jax.default_backend()} device"
        processes = f" in {self.processes} processes" if self.processes > 1 else ""
        return f"{self.devices} {jax.default_backend()} devices{processes}, {self.mode}"


def check_batch(config: Config, devices: int) -> None:
    """Refuses a global batch smaller than the device count (some device would hold only padding), and,
    with ``--accumulate K``, one that is not a multiple of ``devices * K`` (each device's share must cut
    into K equal micro-batches).

    Raises:
      ConfigError: one line naming the batch size and the device count.
    """
    for flag, size in (("--batch-size", config.batch_size), ("--eval-batch-size", config.eval_batch_size)):
        if size < devices:
            raise ConfigError(f"{flag} {size} is smaller than the {devices} devices it is split over; "
                              f"raise it to at least {devices} (a multiple is best) or pass --parallel none.")
    if config.accumulate > 1 and devices > 1 and config.batch_size % (devices * config.accumulate):
        raise ConfigError(f"--batch-size {config.batch_size} does not split into {devices} devices x --accumulate "
                          f"{config.accumulate} equal micro-batches; use a multiple of {devices * config.accumulate}.")
