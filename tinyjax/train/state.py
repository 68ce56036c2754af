"""The train state: one pytree with everything a step reads and writes."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from tinyjax import streams


class TrainState(train_state.TrainState):
    """flax's ``TrainState`` (step, apply_fn, params, tx, opt_state) plus the
    model's ``batch_stats`` collection and ``rng``, the run's root PRNG key.

    Random draws inside a step use ``fold_in(rng, step)``, never consumed
    generator state, so a state can be vmapped over seeds, sharded or
    restored and continue bit-identically.
    """

    batch_stats: Any
    rng: jax.Array
    ema: Any = None  # {"params", "batch_stats"}: their moving average with --ema, else None.

    def eval_variables(self) -> dict:
        """The variables evaluation uses: the moving average when kept, else the live weights."""
        if self.ema is not None:
            return dict(self.ema)
        return {"params": self.params, "batch_stats": self.batch_stats}


def create_train_state(model, tx: optax.GradientTransformation, rng: jax.Array,
                       input_shape: tuple[int, ...], ema: bool = False) -> TrainState:
    """Initialises the model (a ``tinyjax.models.door.Net`` or a linen module) on zeros of
    ``input_shape`` (``[1, H, W, C]``).

    Args:
      rng: the run's root key (``jax.random.key(seed)``); parameters are drawn
        from ``streams.key(rng, INIT)`` and the state keeps ``rng`` for later draws.
      ema: keep a moving average of params and batch statistics (``update_ema``),
        starting from the initial values.
    """
    variables = model.init(streams.key(rng, streams.INIT), jnp.zeros(input_shape, jnp.float32))
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=batch_stats, rng=rng,
                              ema=copy_buffers({"params": params, "batch_stats": batch_stats}) if ema else None)
    # flax starts `step` as a Python int, whose weak type differs from the int32
    # the first update returns: the second call would compile again.
    return state.replace(step=jnp.zeros((), jnp.int32))


def update_ema(state: TrainState, decay: float) -> TrainState:
    """``ema <- decay * ema + (1 - decay) * (params, batch_stats)``, once per step (Polyak averaging, as
    timm's ``ModelEmaV2`` and Keras's ``use_ema``); a state without ``ema`` is returned as it is."""
    if state.ema is None:
        return state
    live = {"params": state.params, "batch_stats": state.batch_stats}
    return state.replace(ema=jax.tree.map(lambda e, x: decay * e + (1.0 - decay) * x, state.ema, live))


WHITENING_IMAGES = 5000  # Train images that a model's init_from_data hook sees (FastNet's whitening layer).


class Init(NamedTuple):
    """What ``init_state`` builds: the model (a ``tinyjax.models.door.Net``), the fresh ``TrainState``
    and the learning rate as a function of the 0-based step (unpacks as ``net, state, lr_fn``)."""

    net: Any
    state: TrainState
    lr_fn: Callable


def init_state(config, steps_per_epoch: int, train_images=None, *, net=None, info=None) -> Init:
    """The model, fresh train state and learning-rate schedule of a config.

    Builds the model (``net``, else ``config.model`` through ``tinyjax.models.door.resolve`` in
    ``config.dtype``), its optimizer (see ``tinyjax.optim.make_optimizer``) and the state, seeded by
    ``config.seed``. The model's hooks apply: parameters its ``frozen(path)`` names get no updates,
    and its ``init_from_data(params, images)`` sets parameters from ``WHITENING_IMAGES`` normalised
    ``train_images`` drawn by ``streams.key(key(seed), WHITEN)`` (a ``FastNet``'s patch whitening).

    Args:
      config: a ``tinyjax.config.Config``.
      steps_per_epoch: optimizer steps per epoch (sets the schedule's length).
      train_images: ``uint8 [N, H, W, C]``, or None to leave the random init
        (enough for a state that a checkpoint will overwrite).
      net: the run's ``tinyjax.models.door.Net``; default ``config.model``'s.
      info: the data's ``tinyjax.data.DataInfo`` (image shape, classes, normalisation); default the
        built-in ``config.data.name``'s.

    Returns:
      ``Init(net, state, lr_fn)``: the model, the ``TrainState`` and the
      learning rate as a function of the 0-based step.

    Raises:
      ValueError: an optimizer or schedule that cannot be built (e.g. one-cycle
        with too few steps).
    """

    from tinyjax import data
    from tinyjax.models.door import resolve
    from tinyjax.optim.optimizers import make_optimizer

    info = data.builtin_info(config.data.name) if info is None else info
    net = resolve(config.model, num_classes=info.num_classes, dtype=config.dtype) if net is None else net
    tx, lr_fn = make_optimizer(config.optim, config.schedule, config.epochs * steps_per_epoch, steps_per_epoch,
                               frozen=net.frozen())
    state = create_train_state(net, tx, jax.random.key(config.seed), (1,) + tuple(info.image_shape),
                               ema=config.ema > 0)
    from_data = net.init_from_data()
    if from_data is not None and train_images is not None:  # A random subset: some sources sort by class.
        key = streams.key(jax.random.key(config.seed), streams.WHITEN)
        pick = data.pipeline.subset(key, len(train_images), WHITENING_IMAGES)
        params = from_data(state.params, data.pipeline.normalize(jnp.asarray(train_images[pick]), info.mean, info.std))
        state = state.replace(params=params)
        if state.ema is not None:
            state = state.replace(ema={**state.ema, "params": copy_buffers(params)})
    return Init(net, state, lr_fn)


def copy_buffers(tree):
    """New buffers for every array of ``tree``: a copy that must outlive the train state's own
    buffers, which each step donates (the moving average's start, a held replica's state)."""
    return jax.tree.map(jnp.copy, tree)
