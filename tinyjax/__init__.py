"""tinyjax: small image classifiers trained fast, exactly and reproducibly in pure JAX.

Data flows ``data`` -> ``models`` -> ``optim`` -> ``train``; experiments are
``Config`` instances under ``experiments/`` run by ``tinyjax.cli.main``.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # ``tinyjax.predict`` without importing jax on ``import tinyjax`` (the CLI's --help stays fast).
    if name == "predict":
        from tinyjax.inference import predict
        return predict
    raise AttributeError(f"module 'tinyjax' has no attribute {name!r}")
