"""The compiled train and eval programs would run on an accelerator: each lowers for CUDA and TPU
with ``jax.export`` (StableHLO, no device needed) and calls no custom call at all: a CPU-only
kernel (``lapack_ssyevd_ffi`` for ``eigh`` on CPU, a host callback) would reach the program as one,
and so would a platform's own (``cusolver_syevd_ffi`` on CUDA), which would need a look first. One
model, N stacked members (vmapped) and a step sharded over a mesh of 4 host devices (``--parallel
sharding``; pmap cannot be exported); the exported predict artifact is tested alike in
test_export.py."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax import data
from tinyjax.config import AugmentConfig, Config
from tinyjax.data import builtin_info
from tinyjax.distributed import parallel
from tinyjax.models.door import resolve
from tinyjax.train import replicas
from tinyjax.train.carry import EvalCarry, TrainCarry, zero_metrics
from tinyjax.train.epochs import batch_fns
from tinyjax.train.replicas import over_replicas
from tinyjax.train.state import init_state

# The reference-000 CNN (convolutions, BatchNorm) with every on-device augmentation, EMA and flip TTA.
CONFIG = Config(model="mnist_cnn_7k", batch_size=8, ema=0.99, tta="flip", label_smoothing=0.1,
                augment=AugmentConfig(crop_padding=2, rotation=10.0, scale=0.1, shear=5.0, elastic_alpha=8.0,
                                      elastic_sigma=2.0, brightness=0.2, contrast=0.2))
ACCELERATORS = ("cuda", "tpu")


def custom_calls(exported: jax.export.Exported) -> set[str]:
    return set(re.findall(r"custom_call @([\w.]+)", exported.mlir_module()))


def programs(members: int, placement: parallel.Placement = parallel.Placement()):
    """``(train, eval)``: ``(jitted fn, args)`` of one train step and one eval step of ``CONFIG``, as
    a run compiles them (``placement.compile``), for one model (``members=0``) or N stacked ones."""
    info = builtin_info("mnist")
    net = resolve(CONFIG.model, num_classes=info.num_classes)
    images, labels = np.zeros((16, 28, 28, 1), np.uint8), np.zeros(16, np.int32)
    state = init_state(CONFIG, 2, images, net=net, info=info)[1]
    train_batch, eval_batch = batch_fns(CONFIG, normalization=(info.mean, info.std))
    smoothing, plan = jnp.float32(CONFIG.label_smoothing), (jnp.zeros((8,), jnp.int32), jnp.ones((8,), bool))
    if members:
        train_batch, eval_batch = over_replicas(train_batch, eval_batch)
        state, smoothing = replicas.stack([state] * members), jnp.full((members,), smoothing)
        plan = tuple(jnp.stack([x] * members) for x in plan)  # Each member its own [B] row.
    train = TrainCarry(state, zero_metrics(True, members or None), jnp.int32(0), smoothing)
    evaluation = EvalCarry(state, zero_metrics(False, members or None), smoothing)
    device_data = placement.replicated(data.to_device(images, labels))
    indices, mask = placement.batches(*plan)
    eval_plan = placement.batches(*(x[0] for x in plan)) if members else (indices, mask)
    return [(placement.compile(train_batch, True), (placement.carry(train), device_data, indices, mask)),
            (placement.compile(eval_batch, False), (placement.carry(evaluation), device_data, *eval_plan))]


@pytest.mark.parametrize("members", [0, 3], ids=["one model", "3 stacked members"])
def test_train_and_eval_steps_lower_for_cuda_and_tpu(members):
    for fn, args in programs(members):
        exported = jax.export.export(fn, platforms=ACCELERATORS)(*args)
        assert exported.platforms == ACCELERATORS and custom_calls(exported) == set()


SHARDED = """
import jax
from tinyjax.distributed import parallel
from test_lowering import ACCELERATORS, custom_calls, programs

placement = parallel.Placement.create("sharding")
assert placement.devices == 4
for fn, args in programs(0, placement):
    exported = jax.export.export(fn, platforms=ACCELERATORS)(*args)
    assert exported.nr_devices == 4 and custom_calls(exported) == set(), custom_calls(exported)
print("lowered")
"""


@pytest.mark.slow  # A subprocess: 4 host devices must be set before jax starts.
def test_a_step_sharded_over_a_mesh_lowers_for_cuda_and_tpu():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "lowered" in result.stdout, result.stderr[-2000:]
