"""tinyjax: small image classifiers trained fast, exactly and reproducibly in pure JAX.

Data flows ``data`` -> ``models`` -> ``optim`` -> ``train``; experiments are
``Config`` instances under ``experiments/`` run by ``tinyjax.cli.main``.
"""

__version__ = "0.1.0"
