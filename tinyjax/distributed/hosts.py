"""Several processes, one run: ``jax.distributed`` (multi-controller JAX).

Every process runs the same command; ``jax.distributed.initialize`` joins
them, after which ``jax.devices()`` lists the devices of all processes and a
``tinyjax.distributed.parallel`` mesh spans them. The train step is unchanged: each
process places only its own devices' shards of the state, the data and every
global batch (``Placement``), and XLA's collectives (gloo between CPU
processes, NCCL between GPUs, ICI/DCN between TPU hosts) do the rest.

Which process does what:

- every process loads the dataset from its own ``--data-dir`` (or TFDS
  cache) and keeps it on its devices; each device gathers only its shard of
  every global batch from it (the on-device pipeline);
- only process 0 writes the run directory (``tinyjax.runs``) and prints;
  every process takes part in each checkpoint save and restore, as orbax
  requires (orbax writes the replicated state from process 0). ``--out``
  must therefore be one folder that every process sees (a shared file
  system);
- a stop (SIGINT / SIGTERM to any process) is agreed at the next host sync
  (every ``tinyjax.train.progress.SYNC_EVERY`` steps of the ``step`` loop, the
  end of the epoch with ``scan``), so all processes save and stop at the
  same step; the loading of the data is agreed too (``together``). A process
  that fails later on its own (a full disk on process 0) leaves the others
  waiting until jax's coordination service ends them (its heartbeat timeout,
  100 s) or the launcher does (``srun --kill-on-bad-exit=1``).

Written against jax 0.10 (``jax.distributed.initialize``'s cluster
auto-detection, ``jax.experimental.multihost_utils``).
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from tinyjax.common import one_line
from tinyjax.config import ConfigError

_TEXT_BYTES = 4096  # The longest text ``agree`` carries (a run directory's path).
T = TypeVar("T")


def cluster_environment() -> str | None:
    """The launcher that names a coordinator in this process's environment, or None:
    SLURM with more than one task (``srun``), Open MPI with more than one rank
    (``mpirun``), or a multi-host Cloud TPU slice that lists its workers."""
    env = os.environ
    # What jax's own detection reads (jax._src.clusters): inside an srun step; Open MPI's ORTE.
    if "SLURM_STEP_NODELIST" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    if "," in env.get("TPU_PROCESS_ADDRESSES", env.get("TPU_WORKER_HOSTNAMES", "")) \
            or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "Cloud TPU slice"
    return None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> str | None:
    """Joins this process to the others: ``jax.distributed.initialize`` with the
    three flags (``--coordinator HOST:PORT --num-processes N --process-id I``),
    or with jax's own detection of the cluster (SLURM, Open MPI, Cloud TPU VMs
    through their metadata, Kubernetes) when ``--coordinator auto`` is given
    alone or ``cluster_environment()`` names a launcher; else does nothing (one process). Must run before any JAX
    computation; blocks until every process has joined (jax's timeout: 5 min).
    A second call in the same process (a notebook) does nothing.

    Returns:
      what was joined (``"process 1 of 2 via 127.0.0.1:1234"``), or None.

    Raises:
      ConfigError: some of the three flags but not all, values out of range,
        or the processes could not join (jax's reason in the line).
    """
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if coordinator == "auto" and num_processes is None and process_id is None:
        _join("jax's cluster detection")
        return f"process {jax.process_index()} of {jax.process_count()} via jax's cluster detection"
    if any(v is not None for v in given.values()):
        missing = [flag for flag, v in given.items() if v is None]
        if missing:
            raise ConfigError(f"{', '.join(missing)} missing: a process of a multi-process run needs "
                              "--coordinator HOST:PORT, --num-processes N and --process-id I (0 .. N-1).")
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--coordinator {coordinator!r} is not HOST:PORT (e.g. 10.0.0.1:1234): "
                              "process 0's address and a free port that every process can reach.")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id {process_id} with --num-processes {num_processes}: "
                              f"give --num-processes >= 1 and --process-id from 0 to {num_processes - 1}.")
        _join(coordinator, coordinator, num_processes, process_id)
        return f"process {process_id} of {num_processes} via {coordinator}"
    launcher = cluster_environment()
    if launcher is None:
        return None
    _join(launcher)  # jax reads the coordinator, the count and this process's id from the launcher.
    return f"process {jax.process_index()} of {jax.process_count()} via {launcher}"


def _join(where: str, *args) -> None:
    if jax.distributed.is_initialized():
        return
    try:
        jax.distributed.initialize(*args)
    except Exception as e:  # jax raises RuntimeError, ValueError or its XlaRuntimeError here.
        raise ConfigError(f"this process could not join the run's processes via {where} "
                          f"({one_line(e)}); start every process "
                          "with the same --coordinator and --num-processes, each with its own --process-id.") from e


def primary() -> bool:
    """Whether this is process 0, the one that writes the run directory and prints."""
    return jax.process_index() == 0


def printer(print_fn: Callable[[str], None]) -> Callable[[str], None]:
    """``print_fn`` on process 0, a function that prints nothing on the others."""
    return print_fn if primary() else lambda _: None


def agree(text: str) -> str:
    """Process 0's ``text`` on every process (e.g. the run directory it named
    from its clock); ``text`` itself with one process.

    Raises:
      ValueError: ``text`` is longer than 4,096 bytes in UTF-8.
    """
    if jax.process_count() == 1:
        return text
    raw = text.encode()
    if len(raw) > _TEXT_BYTES:
        raise ValueError(f"agree: {len(raw)} bytes, at most {_TEXT_BYTES}")
    buffer = np.zeros(_TEXT_BYTES + 4, np.uint8)
    buffer[:4] = np.frombuffer(np.uint32(len(raw)).tobytes(), np.uint8)
    buffer[4:4 + len(raw)] = np.frombuffer(raw, np.uint8)
    got = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return bytes(got[4:4 + int(got[:4].view(np.uint32)[0])]).decode()


def largest(value: int) -> int:
    """The largest of every process's ``value`` (a collective: every process must
    call it at the same point); ``value`` itself with one process."""
    if jax.process_count() == 1:
        return value
    return int(np.max(multihost_utils.process_allgather(np.int32(value))))


def together(fn: Callable[[], T]) -> T:
    """``fn()``, failing on every process when it fails on any (a collective: every
    process must call it at the same point), so that no process waits for one
    that has stopped (e.g. its data missing); with one process, just ``fn()``.

    Raises:
      what ``fn`` raised, on the processes where it did; ConfigError on the others.
    """
    try:
        result, failed = fn(), None
    except Exception as e:
        if jax.process_count() == 1:
            raise
        result, failed = None, e
    if largest(int(failed is not None)):
        if failed is not None:
            raise failed
        raise ConfigError("another process of this run could not start (see its error above); fix it there "
                          "and start every process again.")
    return result


def sync(name: str) -> None:
    """Waits until every process reaches the barrier ``name``; nothing with one process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
