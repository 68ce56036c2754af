"""The hardware and library versions a run or a benchmark table names: ``environment()`` for
results.json, ``describe()`` for the line heading the tables of ``scripts/bench.py``,
``parity.py``, ``gpu_targets.py`` and others."""

from __future__ import annotations

import os
import platform
import sys

import flax
import jax
import numpy as np
import optax

from tinyjax.common import VERSION


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, where ``platform.processor()`` is empty;
    ``sysctl`` on macOS), else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Hardware and library versions, for results.json and the benchmark tables: the CPU model and
    its logical cores, the accelerator (``device``: e.g. ``"NVIDIA H100 80GB HBM3"``, ``"TPU v4"``,
    ``"cpu"``) and how many."""
    device = jax.devices()[0]
    return {"hardware": {"machine": platform.machine(), "processor": cpu_model(),
                         "cpu_count": os.cpu_count(), "backend": jax.default_backend(),
                         "device": getattr(device, "device_kind", str(device)),
                         "device_count": jax.device_count()},
            "versions": {"tinyjax": VERSION, "python": platform.python_version(),
                         "jax": jax.__version__, "jaxlib": _version("jaxlib"), "flax": flax.__version__,
                         "optax": optax.__version__, "orbax-checkpoint": _version("orbax-checkpoint"),
                         "numpy": np.__version__}}


def describe(env: dict | None = None) -> str:
    """One line naming the hardware and versions of ``environment()``, for tables."""
    env = env or environment()
    h, v = env["hardware"], env["versions"]
    accelerator = "" if h["backend"] == "cpu" else f", {h['device_count']} x {h['device']} ({h['backend']})"
    return (f"{h['processor']} ({h['cpu_count']} logical cores){accelerator}; "
            + ", ".join(f"{k} {v}" for k, v in v.items()))


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
