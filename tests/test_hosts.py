"""tinyjax.distributed.hosts in one process: the launch flags, the launchers it recognises, the collectives' one-process case.

The real two-process run (jax.distributed over gloo) is in test_parallel.py.
"""

import pytest

from experiments import mnist_onecycle
from tinyjax.distributed import hosts
from tinyjax.cli import main

LAUNCHERS = ("JAX_COORDINATOR_ADDRESS", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri",
             "OMPI_COMM_WORLD_SIZE", "TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")


@pytest.mark.parametrize("flags, message", [
    (["--num-processes", "2"], "--coordinator, --process-id missing"),
    (["--coordinator", "10.0.0.1", "--num-processes", "2", "--process-id", "0"], "is not HOST:PORT"),
    (["--coordinator", "10.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "--process-id from 0 to 1"),
    (["--num-processes", "two"], "argument --num-processes: invalid int value: 'two'"),
])
def test_bad_launch_flags_are_one_error_line(flags, message, capsys, tmp_path):
    assert main(mnist_onecycle.VARIANTS, flags + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())  # Nothing written.


@pytest.mark.parametrize("env, launcher", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, None),  # jax reads no process count from the environment.
    ({"SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "8"}, "SLURM"),
    ({"SLURM_STEP_NODELIST": "node1", "SLURM_NTASKS": "1"}, None),  # One task: one process, nothing to join.
    ({"SLURM_NTASKS": "8"}, None),  # sbatch's shell outside srun: jax could not read the step.
    ({"OMPI_MCA_orte_hnp_uri": "1234.0;tcp://10.0.0.1:5678", "OMPI_COMM_WORLD_SIZE": "4"}, "Open MPI"),
    ({"TPU_WORKER_HOSTNAMES": "t1v-0,t1v-1"}, "Cloud TPU slice"),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),  # A single-host TPU VM (Colab's v5e).
])
def test_launchers_that_name_a_coordinator(env, launcher, monkeypatch):
    for name in LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hosts.cluster_environment() == launcher


def test_one_process_joins_nothing_and_its_collectives_are_identities(monkeypatch):
    for name in LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    assert hosts.initialize() is None
    assert hosts.primary()
    assert hosts.agree("runs/x-é") == "runs/x-é"
    assert hosts.largest(15) == 15 and hosts.largest(0) == 0


def test_sync_is_a_named_barrier_of_all_processes_and_nothing_with_one(monkeypatch):
    barriers = []
    monkeypatch.setattr(hosts.multihost_utils, "sync_global_devices", barriers.append)
    hosts.sync("saved 64")
    assert barriers == []  # One process: nobody to wait for.
    monkeypatch.setattr(hosts.jax, "process_count", lambda: 2)
    hosts.sync("saved 64")
    hosts.sync("stop")
    assert barriers == ["saved 64", "stop"]  # Every process waits at the barrier of that name.
