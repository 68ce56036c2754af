"""Train state, pure steps and the epoch loop."""

from tinyjax.train.epochs import epoch_driver, make_epoch_fns, resolve_loop
from tinyjax.train.loop import train_and_evaluate, train_members
from tinyjax.train.state import TrainState, create_train_state
from tinyjax.train.steps import batch_metrics, cross_entropy_loss, per_example_loss, train_step

__all__ = ["epoch_driver", "make_epoch_fns", "resolve_loop", "train_and_evaluate", "train_members", "TrainState",
           "create_train_state", "batch_metrics", "cross_entropy_loss",
           "per_example_loss", "train_step"]
