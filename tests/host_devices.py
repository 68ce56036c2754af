"""The environment of a subprocess with several XLA host-platform CPU devices."""

import os


def device_env(devices: int) -> dict[str, str]:
    """``os.environ`` plus ``devices`` CPU devices (``--xla_force_host_platform_device_count``), keeping
    the session's other ``XLA_FLAGS`` (tests/conftest.py's optimisation level)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
