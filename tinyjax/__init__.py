"""tinyjax: small image classifiers trained fast, exactly and reproducibly in pure JAX.

Data flows ``data`` -> ``models`` -> ``optim`` -> ``train``, which writes ``runs`` (devices and
hosts: ``distributed``); experiments are ``Config`` instances under ``experiments/`` run by
``tinyjax.cli.main``. ``tinyjax.load(run_dir)`` and ``tinyjax.predict(...)`` serve inference.
"""

from tinyjax.common import VERSION as __version__


def __getattr__(name):
    # ``tinyjax.predict`` and ``tinyjax.load`` without importing jax on ``import tinyjax`` (the CLI's
    # --help stays fast).
    if name == "predict":
        from tinyjax.runs.inference import predict
        return predict
    if name == "load":
        from tinyjax.runs.loading import load
        return load
    raise AttributeError(f"module 'tinyjax' has no attribute {name!r}")
