"""FLOPs of a train step from XLA's cost analysis, achieved FLOP/s and model FLOPs utilisation.

    flops = step_flops(config, state, train_split, members)  # one optimizer step, all members
    peak, source = peak_flops(jax.devices()[0].device_kind, config.dtype)
    mfu = achieved / peak                                    # when the device's peak is known

FLOPs are what XLA's cost analysis counts in the train step's program
(``jax.stages.Lowered.cost_analysis()["flops"]``, jax 0.10: a dict; before
jax 0.4.36 a list of one dict per program; on GPU and TPU, whose lowered
programs have none, the compiled program's): the forward and backward pass,
the on-device augmentation, the loss and the optimizer update, a multiply-add
counted as 2 FLOPs, a convolution's zero padding not counted. It is the
program as lowered, before XLA's optimisations, where the backend has it
(CPU): compiling it once more only to count would add ~10-25 s to every run
on CPU, and the compiled program's
count differs by under 2% (reference 000's CNN: 6.34e8 compiled vs 6.27e8
lowered per step of 128; reference 001's: 2.03e9 vs 1.99e9; jax 0.10.2 CPU).
XLA counts a loop's body once, so the step is costed with ``accumulate=1``:
K micro-batches of B / K images do the arithmetic of one batch of B, the
optimizer update once either way.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax.config import Config
from tinyjax.data import DeviceData
from tinyjax.train.carry import TrainCarry
from tinyjax.train.epochs import batch_fns
from tinyjax.train.replicas import Members

# Dense peak FLOP/s of one JAX device (device_kind prefix -> compute dtype -> (FLOP/s, source)).
# float32 on NVIDIA: XLA's default precision runs float32 matmuls and convolutions as TF32 on
# Ampere and later (jax_default_matmul_precision=None), so the TF32 tensor-core peak is the ceiling.
# float32 on TPU: the MXU runs bfloat16 passes; the bfloat16 peak is the ceiling.
# A device kind matches a name exactly or as a prefix followed by " " or "-" (so "NVIDIA L40S" is not an
# "NVIDIA L4"); the first match wins (a PCIe or NVL card before the SXM module of its name).
PEAK_FLOPS = {
    "NVIDIA H200 NVL": {"bfloat16": (835e12, "NVIDIA H200 NVL datasheet, BF16 tensor core dense"),
                        "float32": (417.5e12, "NVIDIA H200 NVL datasheet, TF32 tensor core dense")},
    "NVIDIA H200": {"bfloat16": (989e12, "NVIDIA H200 datasheet, BF16 tensor core dense (SXM)"),
                    "float32": (494.5e12, "NVIDIA H200 datasheet, TF32 tensor core dense (SXM)")},
    "NVIDIA H100 PCIe": {"bfloat16": (756e12, "NVIDIA H100 datasheet, BF16 tensor core dense (PCIe)"),
                         "float32": (378e12, "NVIDIA H100 datasheet, TF32 tensor core dense (PCIe)")},
    "NVIDIA H100 NVL": {"bfloat16": (835e12, "NVIDIA H100 NVL datasheet, BF16 tensor core dense"),
                        "float32": (417.5e12, "NVIDIA H100 NVL datasheet, TF32 tensor core dense")},
    "NVIDIA H100": {"bfloat16": (989e12, "NVIDIA H100 datasheet, BF16 tensor core dense (SXM5)"),
                    "float32": (494.5e12, "NVIDIA H100 datasheet, TF32 tensor core dense (SXM5)")},
    "NVIDIA A100": {"bfloat16": (312e12, "NVIDIA A100 datasheet, BF16 tensor core dense"),
                    "float32": (156e12, "NVIDIA A100 datasheet, TF32 tensor core dense")},
    "NVIDIA L40S": {"bfloat16": (362e12, "NVIDIA L40S datasheet, BF16 tensor core dense"),
                    "float32": (183e12, "NVIDIA L40S datasheet, TF32 tensor core dense")},
    "NVIDIA L4": {"bfloat16": (121e12, "NVIDIA L4 datasheet, BF16 tensor core dense"),
                  "float32": (60e12, "NVIDIA L4 datasheet, TF32 tensor core dense")},
    "Tesla T4": {"bfloat16": (8.1e12, "NVIDIA T4 datasheet, FP32 (no bfloat16 tensor cores)"),
                 "float32": (8.1e12, "NVIDIA T4 datasheet, single precision")},
    "TPU v2": {"bfloat16": (22.5e12, "Google Cloud TPU v2: 45 TFLOP/s per chip of 2 cores (a JAX device is a core)")},
    "TPU v3": {"bfloat16": (61.5e12, "Google Cloud TPU v3: 123 TFLOP/s per chip of 2 cores (a JAX device is a core)")},
    "TPU v4 lite": {"bfloat16": (137.5e12, "Google TPU v4i: 137.5 TFLOP/s bf16 per chip")},
    "TPU v4": {"bfloat16": (275e12, "Google Cloud TPU v4: 275 TFLOP/s bf16 per chip")},
    "TPU v5 lite": {"bfloat16": (197e12, "Google Cloud TPU v5e: 197 TFLOP/s bf16 per chip")},
    "TPU v5e": {"bfloat16": (197e12, "Google Cloud TPU v5e: 197 TFLOP/s bf16 per chip")},
    "TPU v5p": {"bfloat16": (459e12, "Google Cloud TPU v5p: 459 TFLOP/s bf16 per chip")},
    "TPU v6 lite": {"bfloat16": (918e12, "Google Cloud TPU v6e (Trillium): 918 TFLOP/s bf16 per chip")},
}


def peak_flops(device_kind: str, dtype: str) -> tuple[float | None, str]:
    """``(peak FLOP/s, its source)`` of one device of ``device_kind`` (``jax.Device.device_kind``,
    e.g. ``"NVIDIA H100 80GB HBM3"``, ``"TPU v4"``) computing in ``dtype`` (``"float32"`` or
    ``"bfloat16"``), from ``PEAK_FLOPS``; ``(None, why)`` for a device not in it (every CPU:
    its peak depends on the chip and its vector units, so there is no MFU)."""
    for name, peaks in PEAK_FLOPS.items():
        if re.match(re.escape(name) + r"([ -]|$)", device_kind):
            peak, source = peaks.get(dtype, peaks["bfloat16"])
            return peak, source
    return None, f"peak FLOP/s of '{device_kind}' unknown: no MFU"


def step_flops(config: Config, state, train_images: np.ndarray, members: Members | None = None,
               normalization=None) -> float | None:
    """FLOPs of one optimizer step of ``config`` (all ``members`` together, as one program, default
    one model; ``state`` is one member's), from XLA's cost analysis of the train batch function lowered for one
    device on abstract inputs (nothing compiles or runs; the global batch, whatever the devices):
    ``train_images`` uint8 ``[N, H, W, C]`` (only its shape and dtype are read). None when
    the backend's cost analysis gives no FLOP count (a warning says why when it fails). On GPU and
    TPU the lowered program has no cost analysis in jax 0.10, so it is compiled once more for the
    count there (seconds). ``normalization``: the data's ``(mean, std)`` (``batch_fns``)."""
    single = dataclasses.replace(config, accumulate=1)  # A loop's body would be counted once.
    members = Members.of([config]) if members is None else members
    train_batch = members.batch_fns(*batch_fns(single, normalization=normalization))[0]
    carry = jax.eval_shape(lambda s: TrainCarry(members.stack([s] * members.n), members.zeros(True),
                                                jnp.zeros((), jnp.int32), jnp.asarray(members.carried_smoothing())),
                           state)  # Shapes only; stacked: [N, ...].
    carry = carry._replace(epoch=jax.ShapeDtypeStruct((), jnp.int32))  # Shared by the members.
    device_data = DeviceData(jax.ShapeDtypeStruct(train_images.shape, jnp.uint8),
                             jax.ShapeDtypeStruct(train_images.shape[:1], jnp.int32))
    batch = members.lead + (config.batch_size,)
    try:
        lowered = jax.jit(train_batch).lower(carry, device_data, jax.ShapeDtypeStruct(batch, jnp.int32),
                                             jax.ShapeDtypeStruct(batch, jnp.bool_))
        flops = _flops(lowered.cost_analysis())
        if flops is None:  # Backends behind the PJRT C API (GPU, TPU; jax 0.10): only a compiled program
            flops = _flops(lowered.compile().cost_analysis())  # has a cost analysis (jax-ml/jax#22713).
    except Exception as e:  # A count that only observes must not stop a run.
        print(f"warning: no FLOP count for this step ({type(e).__name__}: {e}); no FLOP/s or MFU.",
              file=sys.stderr)
        return None
    return flops


def _flops(cost) -> float | None:
    """The ``"flops"`` of a cost analysis: a dict (jax 0.10), a list of one dict per program (jax <
    0.4.36), or None (none made); None when it has no positive count."""
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix, 3 significant digits: ``si(6.27e8, "FLOP")`` -> ``"627 MFLOP"``."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def describe(flops: float | None, images: int, peak: tuple[float | None, str], devices: int) -> str:
    """The header's line on the step's cost: FLOPs per image and per step (``images`` per step, all
    members), and the devices' peak (``devices`` x one device's) or why there is no MFU."""
    if flops is None:
        return "compute: the backend's cost analysis counts no FLOPs: no FLOP/s or MFU"
    value, source = peak
    ceiling = (f"peak {si(value * devices, 'FLOP/s')} ({devices} x {source})" if value is not None else source)
    return f"compute: {si(flops / images, 'FLOP')} per image, {si(flops, 'FLOP')} per step (XLA cost analysis); {ceiling}"


def rates(flops: float | None, steps: int, seconds: float, peak: float | None, devices: int) -> dict:
    """An epoch's ``train_flop_per_s`` (``flops`` per step x ``steps`` trained / their ``seconds``
    of wall time, all members and devices together) and ``train_mfu`` (that over ``devices`` x
    ``peak``, a fraction); None where unknown."""
    achieved = flops * steps / seconds if flops is not None and steps and seconds > 0 else None
    return {"train_flop_per_s": achieved, "train_mfu": _mfu(achieved, peak, devices)}


def _mfu(achieved: float | None, peak: float | None, devices: int) -> float | None:
    """Model FLOPs utilisation, a fraction: ``achieved`` FLOP/s over ``devices`` x one device's ``peak``;
    None where either is unknown."""
    return achieved / (peak * devices) if achieved is not None and peak is not None else None


def results(flops: float | None, images: int, history: list[dict], peak: tuple[float | None, str],
            devices: int) -> dict:
    """``results.json``'s compute fields: ``flops_per_step``, ``flops_per_image`` (``images`` per
    step), ``train_flop_per_s`` and ``train_mfu``: the median of the epochs' after the first (the
    first compiles; the median also keeps out a resumed run's or a ``--halving`` rung's first epoch,
    which compiles again; the one epoch when there is one), ``peak_flop_per_s`` (all ``devices``)
    and ``peak_source``."""
    measured = [h["train_flop_per_s"] for h in (history[1:] or history) if h.get("train_flop_per_s")]
    achieved = statistics.median(measured) if measured else None
    value, source = peak
    return {"flops_per_step": flops, "flops_per_image": None if flops is None else flops / images,
            "train_flop_per_s": achieved,
            "train_mfu": _mfu(achieved, value, devices),
            "peak_flop_per_s": None if value is None else value * devices, "peak_source": source}
