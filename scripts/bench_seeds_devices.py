"""N seeds on D devices: split each batch over the devices, or the seeds over the devices? Side by side in one run.

    python scripts/bench_seeds_devices.py                       # 4 CPU host devices when only a CPU is there
    python scripts/bench_seeds_devices.py --seeds 4,8 --steps 20 --repeats 3

Three layouts of the same vmapped program of N seed replicas
(``make_epoch_fns`` with N label-smoothing values, the path ``--seeds N
--replicas vmap`` takes):

- ``one device``: ``--parallel none``;
- ``batch over devices``: what tinyjax does (``--parallel sharding``): every
  device holds all N replicas and 1/D of each batch; gradients and BatchNorm
  statistics are all-reduced over the ``data`` axis every step;
- ``seeds over devices``: the replica axis sharded instead, each device
  training N/D whole replicas on whole batches, with no communication
  (``ReplicasOverDevices`` below: a placement for this measurement only).

Images/s counts every seed's images (seeds x batch x steps / s). On a machine
with no accelerator the devices are XLA's host-platform devices
(``--xla_force_host_platform_device_count``), which share the CPU's cores:
the table then shows what each layout costs on top of the computation, not
what D real devices gain.
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules and "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"

import argparse  # noqa: E402
import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import repo  # noqa: F401, E402  (scripts/repo.py: the clone's root on sys.path, for experiments)
from bench import RECIPES, tinyjax_runner  # noqa: E402  scripts/bench.py, beside this file
from timing import interleaved_medians  # noqa: E402
from tinyjax import runs  # noqa: E402
from tinyjax.distributed import parallel  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ReplicasOverDevices(parallel.Placement):
    """The replica axis ``[N, ...]`` of the carry and of the plans ``[S, N, B]`` split over the mesh;
    everything else (the dataset, scalars) replicated. N must divide by the device count."""

    replicas: int = 1

    def replicated(self, tree):
        def put(x):
            spec = P(parallel.AXIS) if jnp.ndim(x) and jnp.shape(x)[0] == self.replicas else P()
            return jax.device_put(x, NamedSharding(self.mesh, spec))
        return jax.tree.map(put, tree)

    def batches(self, indices, mask):
        return jax.device_put((indices, mask), NamedSharding(self.mesh, P(None, parallel.AXIS, None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mnist_cnn_7k,mlp_2hl_50", help="comma-separated presets of bench.RECIPES")
    parser.add_argument("--seeds", default="4,8", help="comma-separated seed counts N (multiples of the devices)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median reported)")
    args = parser.parse_args()
    d = jax.device_count()
    mesh = parallel.Placement.create("sharding").mesh
    layouts = {"one device": lambda n: parallel.Placement(),
               "batch over devices": lambda n: parallel.Placement("sharding", mesh),
               "seeds over devices": lambda n: ReplicasOverDevices("sharding", mesh, n)}
    runners = {}
    for model in args.models.split(","):
        for n in (int(s) for s in args.seeds.split(",")):
            for name, layout in layouts.items():
                runners[(model, n, name)] = tinyjax_runner(RECIPES[model][0], args.steps, n, layout(n))[0]
    medians = interleaved_medians(runners, args.repeats)
    print(f"# {runs.describe()}")
    print(f"# {d} {jax.default_backend()} devices; {args.steps} steps x {args.repeats} repeats, rows interleaved, "
          "median\n")
    print("| model | batch | seeds N | layout | seeds x img/s | vs one device |")
    print("|---|---:|---:|---|---:|---:|")
    for (model, n, name), seconds in medians.items():
        batch = RECIPES[model][0].batch_size
        rate = n * batch * args.steps / seconds
        base = n * batch * args.steps / medians[(model, n, "one device")]
        print(f"| {model} | {batch} | {n} | {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
