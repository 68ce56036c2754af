"""Many runs as one program: seeds or grid points as replicas of one train state.

A replicated run stacks its N members' train states along a leading replica
axis and ``jax.vmap``s every batch function over it
(``Members``, which ``tinyjax.train.epochs.make_epoch_fns`` takes): one
compiled program steps all N models, each with its own init, data order,
dropout and augmentation (all drawn from its own ``state.rng`` by
``fold_in``), so replica k trains exactly what a run of its own config
would (same values up to float rounding: tests/test_replicas.py).

Members may differ in ``REPLICA_FIELDS`` only: the seed, the label smoothing
(a value in the loop's carry), and the peak learning rate and weight decay
(arrays of the optimizer state, see ``tinyjax.optim.optimizers``). Configs
that differ in anything else (a model, a batch size, a schedule's shape)
cannot share a program and train one after another.

``--replicas auto`` vmaps except for convolutional models on CPU: there a
vmapped convolution becomes a grouped one (``feature_group_count = N``),
whose gradient XLA:CPU runs slowly; ``scripts/bench.py`` measures both.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import data
from tinyjax.config import Config
from tinyjax.flags import flag, flat
from tinyjax.train.carry import EvalCarry, TrainCarry, zero_metrics

REPLICA_FIELDS = ("seed", "label_smoothing", "optim.weight_decay", "optim.lr", "schedule.max_lr")


@dataclasses.dataclass(frozen=True)
class Members:
    """The member axis of one program, and the one place that knows how many members it has: the
    N >= 1 members' label smoothings (``smoothing``, a per-member value of the loop's carry; the
    other ``REPLICA_FIELDS`` are in each member's train state). N > 1 members are stacked on a
    leading axis of the train state, the metric sums, the label smoothing and the batch plan, and
    the batch functions are vmapped over it; N = 1, one model, is not stacked, so that its compiled
    program, numbers and checkpoints are a plain single-model run's (a vmap over a size-1 axis
    compiles other convolutions). Everything that differs between the two goes through here.
    """

    smoothing: tuple[float, ...]

    @classmethod
    def of(cls, configs: Sequence[Config]) -> "Members":
        """The members of a program of ``configs`` (one per member; they differ in ``REPLICA_FIELDS`` only)."""
        return cls(tuple(float(c.label_smoothing) for c in configs))

    @property
    def n(self) -> int:
        return len(self.smoothing)

    @property
    def stacked(self) -> bool:
        """Whether the members are stacked on a leading axis (N > 1)."""
        return self.n > 1

    @property
    def lead(self) -> tuple[int, ...]:
        """The leading shape a member axis adds to an array: ``(N,)``, or ``()`` when not stacked."""
        return (self.n,) if self.stacked else ()

    @property
    def axis(self) -> int | None:
        """The leading axis's length, None when not stacked (``zero_metrics``' ``replicas``)."""
        return self.n if self.stacked else None

    def stack(self, trees: Sequence):
        """The members' pytrees (one per member, in order) as the program holds them."""
        return stack(trees) if self.stacked else trees[0]

    def take(self, tree, k: int):
        """Member ``k``'s part of a tree the program holds."""
        return take(tree, k) if self.stacked else tree

    def each(self, fn: Callable, tree):
        """``fn`` of one member's ``tree`` (e.g. its rng key), applied to every member's."""
        return jax.vmap(fn)(tree) if self.stacked else fn(tree)

    def carried_smoothing(self) -> np.ndarray:
        """The label smoothing as the loop's carry holds it: float32 ``[N]``, or a scalar."""
        return np.asarray(self.smoothing if self.stacked else self.smoothing[0], np.float32)

    def zeros(self, train: bool) -> dict[str, jax.Array]:
        """Zero metric sums, one per member (``zero_metrics``)."""
        return zero_metrics(train, self.axis)

    def batch_fns(self, train_batch: Callable, eval_batch: Callable) -> tuple[Callable, Callable]:
        """One model's batch functions (``tinyjax.train.epochs.batch_fns``) over the members
        (``over_replicas`` when stacked)."""
        return over_replicas(train_batch, eval_batch) if self.stacked else (train_batch, eval_batch)

    def plan(self) -> Callable:
        """The compiled batch plan of an epoch, ``(key, examples, batch_size) -> (indices int32, mask
        bool)`` (``tinyjax.data.batch_plan``): ``[S, B]`` from one key; stacked, one shuffle per
        member from ``key [N]``, step-major ``[S, N, B]`` (step i's batches of every member together)."""
        if not self.stacked:
            return jax.jit(data.batch_plan, static_argnums=(1, 2))
        plans = jax.jit(jax.vmap(data.batch_plan, in_axes=(0, None, None)), static_argnums=(1, 2))

        def step_major(key, examples, batch_size):
            return tuple(jnp.swapaxes(x, 0, 1) for x in plans(key, examples, batch_size))
        return step_major

    def active(self, flags: Sequence[bool]) -> list[bool] | None:
        """Which members still train, as the epoch functions take it (``active``; None: one model)."""
        return list(flags) if self.stacked else None

    def describe(self) -> str:
        """The run header's words for the members (empty for one model)."""
        return f", {self.n} replicas vmapped as one program" if self.stacked else ""


def over_replicas(train_batch: Callable, eval_batch: Callable) -> tuple[Callable, Callable]:
    """The batch functions of N replicas as one program: ``jax.vmap`` over the leading replica axis
    of the state, the sums and the label smoothing; each replica reads its own ``[B]`` row of the
    plan when training, and every replica the same batch when evaluating."""
    train = jax.vmap(train_batch, in_axes=(TrainCarry(0, 0, None, 0), None, 0, 0),
                     out_axes=TrainCarry(0, 0, None, 0))
    return train, jax.vmap(eval_batch, in_axes=(EvalCarry(0, 0, 0), None, None, None))


def expand(config: Config) -> list[Config]:
    """The member configs of a ``--seeds`` config: one per seed, in order (``seeds=()``, ``seed=k``);
    ``[config]`` when it has no ``seeds``."""
    if not config.seeds:
        return [config]
    return [dataclasses.replace(config, seed=s, seeds=()) for s in config.seeds]


def program_key(config: Config) -> Config:
    """``config`` with its ``REPLICA_FIELDS`` set to fixed values: configs with equal keys can be
    replicas of one program. The learning rate is ``peak * shape(step)``: only the peak is
    replaced; a cosine schedule's floor is kept as a fraction of the peak, which is its shape."""
    optim, schedule = config.optim, config.schedule
    if schedule.name == "cosine":
        schedule = dataclasses.replace(schedule, min_lr=schedule.min_lr / optim.lr)
    return dataclasses.replace(config, seed=0, seeds=(), label_smoothing=0.0,
                               optim=dataclasses.replace(optim, lr=1.0, weight_decay=0.0),
                               schedule=dataclasses.replace(schedule, max_lr=1.0))


def groups(configs: Sequence[Config]) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``program_key``, each group in order, the groups in the
    order of their first member."""
    found: dict[Config, list[int]] = {}
    for i, config in enumerate(configs):
        found.setdefault(program_key(config), []).append(i)
    return list(found.values())


def resolve(mode: str, model, image_shape: tuple[int, ...] = (28, 28, 1)) -> str:
    """``--replicas`` -> ``"vmap"`` or ``"sequential"``; ``"auto"`` is ``"sequential"`` for a
    convolutional model on CPU (grouped convolutions: see the module docstring) and ``"vmap"``
    otherwise (an MLP on CPU; every model on GPU/TPU). ``model``: a ``tinyjax.models.door.Net`` or
    a ``--model`` name or reference; convolutional means a parameter of rank 4 (a conv kernel,
    ``[kh, kw, in, out]``) on ``image_shape`` (H, W, C) images."""
    if mode != "auto" or jax.default_backend() != "cpu":
        return "vmap" if mode == "auto" else mode
    from tinyjax.models.door import Net, resolve as door

    net = model if isinstance(model, Net) else door(model)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1,) + tuple(image_shape))))
    return "sequential" if any(x.ndim == 4 for x in jax.tree.leaves(variables["params"])) else "vmap"


def stack(trees: Sequence) -> object:
    """One pytree with a leading replica axis ``[N]`` on every leaf, from N pytrees of equal
    shapes. Static fields (a ``TrainState``'s ``apply_fn`` and ``tx``) are the first one's: the
    members' own may be other instances of the same module and optimizer."""
    structure = jax.tree.structure(trees[0])
    leaves = [jax.tree.leaves(t) for t in trees]
    return jax.tree.unflatten(structure, [jnp.stack(xs) for xs in zip(*leaves)])


def take(tree, k: int):
    """Replica ``k`` of a stacked pytree (new buffers)."""
    return jax.tree.map(lambda x: x[k], tree)


def differences(configs: Sequence[Config]) -> list[str]:
    """A short label per config naming the fields in which the configs differ (``"seed 3"``,
    ``"lr 0.05 seed 0"``); ``""`` for each when they are all equal."""
    flats = [flat(c) for c in configs]
    keys = [k for k in flats[0] if k not in ("seeds",) and len({repr(f[k]) for f in flats}) > 1]
    return [" ".join(f"{flag(k)[2:]} {f[k]}" for k in keys) for f in flats]


def spread(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample standard deviation)``; the deviation is 0.0 for one value."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
