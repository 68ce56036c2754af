"""Train state, pure steps and the epoch loop; the runs built on them, each taking ``model=`` and
``data=``: ``train_and_evaluate`` (one model), ``train_seeds`` (``--seeds``), ``train_grid``
(``--grid``), ``train_halving`` (``--grid ... --halving``) and ``find_lr`` (``--find-lr``)."""

from tinyjax.train.epochs import epoch_driver, make_epoch_fns, resolve_loop
from tinyjax.train.loop import train_and_evaluate, train_members
from tinyjax.train.state import TrainState, create_train_state
from tinyjax.train.steps import batch_metrics, cross_entropy_loss, per_example_loss, train_step
from tinyjax.train.seeds import train_seeds
from tinyjax.train.grid import train_grid
from tinyjax.train.halving import train_halving
from tinyjax.train.lr_find import find_lr

__all__ = ["epoch_driver", "make_epoch_fns", "resolve_loop", "train_and_evaluate", "train_members", "train_seeds",
           "train_grid", "train_halving", "find_lr", "TrainState",
           "create_train_state", "batch_metrics", "cross_entropy_loss",
           "per_example_loss", "train_step"]
