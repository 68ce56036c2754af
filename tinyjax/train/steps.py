"""Pure, jittable train and eval steps.

Metrics are returned as sums over the unmasked examples of a batch
(``loss_sum``, ``correct``, ``count``), so they add up over steps and devices
exactly; divide at the end.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from tinyjax import streams
from tinyjax.data.pipeline import Batch
from tinyjax.train.state import TrainState, update_ema


def cross_entropy_loss(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
                       mask: jax.Array | None = None) -> jax.Array:
    """Mean softmax cross-entropy with label smoothing, PyTorch semantics.

    Targets are ``(1 - eps) * onehot + eps / K`` as in
    ``torch.nn.CrossEntropyLoss(label_smoothing=eps)`` (Szegedy et al.,
    arXiv:1512.00567); the loss is ``-sum_k target_k * log_softmax(logits)_k``,
    averaged over the unmasked examples.

    Args:
      logits: ``float32 [B, K]``.
      labels: ``int32 [B]`` class indices.
      mask: ``bool [B]`` or None (all examples count).

    Returns:
      A float32 scalar.
    """
    per_example = per_example_loss(logits, labels, label_smoothing)
    if mask is None:
        return per_example.mean()
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1)


def per_example_loss(logits: jax.Array, labels: jax.Array, label_smoothing: float) -> jax.Array:
    """``float32 [B]`` smoothed cross-entropy of each example (see ``cross_entropy_loss``)."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def batch_metrics(logits: jax.Array, batch: Batch, label_smoothing: float) -> dict[str, jax.Array]:
    """Sums over the unmasked examples: ``loss_sum`` (float32), ``correct`` and ``count`` (int32)."""
    mask = batch.mask
    loss = per_example_loss(logits, batch.label, label_smoothing)
    return {"loss_sum": jnp.sum(loss * mask),
            "correct": jnp.sum((jnp.argmax(logits, -1) == batch.label) & mask, dtype=jnp.int32),
            "count": jnp.sum(mask, dtype=jnp.int32)}


def train_step(state: TrainState, batch: Batch, label_smoothing: float = 0.0, ema_decay: float = 0.0,
               axis_name: str | None = None, accumulate: int = 1) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step in train mode; updates params, optimizer state,
    batch statistics (from the unmasked examples only) and, when the state
    keeps one, the weights' moving average with ``ema_decay``.

    Returns:
      ``(new_state, metrics)``; metrics as ``batch_metrics``, computed from the
      train-mode logits of this step (what PyTorch loops report as train
      accuracy), plus ``nonfinite`` (int32 0 or 1): 1 when the loss, a
      gradient, or a new parameter, batch statistic or optimizer moment is
      NaN or infinite. The
      step does not act on it: the caller keeps or drops ``new_state``
      (``tinyjax.train.epochs``, ``--on-nan``).

    ``axis_name``: under ``jax.pmap`` (``tinyjax.distributed.parallel``), the device axis:
    gradients are averaged over it (``lax.pmean``), ``nonfinite`` is 1 on every
    device when it is on one, each device draws its own dropout mask, and the
    metrics stay this device's sums. The model's BatchNorm must average over
    the same axis (``Placement.synced``).

    ``accumulate = K > 1`` (gradient accumulation, ``--accumulate``): the batch is cut into K
    micro-batches of ``B / K`` rows, micro-batch k holding rows k, k + K, k + 2K, ... (so each
    device of a sharded batch holds part of every one, and a last partial batch's padding spreads
    over them), run one after another in a ``lax.scan`` (only one
    micro-batch's activations live at a time; unrolled it would be faster on XLA:CPU, whose loop
    bodies run convolutions slowly, jax-ml/jax#12868, but would keep all K alive:
    ``scripts/bench_accumulate.py``), and their gradients summed into one optimizer update
    of the mean loss over the whole batch: without BatchNorm that equals the K = 1 step to float
    tolerance. BatchNorm normalises each micro-batch by its own statistics and updates the running
    statistics once per micro-batch, as K train-mode forward passes do in PyTorch; a micro-batch
    with no unmasked row (the padding of a last partial batch) changes nothing. Dropout draws a
    mask per micro-batch. ``B`` is the batch this call sees: the global batch under ``jit`` with
    shardings; ``--accumulate`` is refused under ``pmap`` (``tinyjax.validation``).

    Raises:
      ValueError: ``B`` is not a multiple of ``accumulate``.
    """
    dropout_rng = streams.key(state.rng, streams.DROPOUT, state.step)
    if axis_name is not None:
        dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
    if accumulate > 1:
        loss, batch_stats, logits, grads = _accumulated_grads(state, batch, label_smoothing, dropout_rng, accumulate)
    else:
        def loss_fn(params):
            logits, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats}, batch.image, train=True,
                mask=batch.mask, mutable=["batch_stats"], rngs={"dropout": dropout_rng})
            loss = cross_entropy_loss(logits, batch.label, label_smoothing, batch.mask)
            return loss, (updates["batch_stats"], logits)

        (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
    state = update_ema(state.apply_gradients(grads=grads, batch_stats=batch_stats), ema_decay)
    finite = (jnp.isfinite(loss) & all_finite(grads) & all_finite(state.params) & all_finite(batch_stats)
              & all_finite(state.opt_state) & all_finite(state.ema))
    nonfinite = (~finite).astype(jnp.int32)
    if axis_name is not None:
        nonfinite = jax.lax.pmax(nonfinite, axis_name)
    return state, {**batch_metrics(logits, batch, label_smoothing), "nonfinite": nonfinite}


def _accumulated_grads(state: TrainState, batch: Batch, label_smoothing: float, dropout_rng: jax.Array,
                       accumulate: int):
    """``(loss, batch_stats, logits, grads)`` of ``batch`` cut into ``accumulate`` micro-batches
    (``train_step``): ``loss`` float32 ``[]``, the batch's mean loss over its unmasked rows;
    ``batch_stats`` after the last micro-batch; ``logits [B, classes]`` in the batch's row order;
    ``grads`` float32, shaped like the params. Each micro-batch's summed loss is divided by the whole
    batch's unmasked count, so the summed gradients are those of the batch's mean loss.

    Raises:
      ValueError: ``B`` is not a multiple of ``accumulate``.
    """
    size = batch.image.shape[0]
    if size % accumulate:
        raise ValueError(f"a batch of {size} does not split into {accumulate} equal micro-batches; "
                         "use a --batch-size (per device) that is a multiple of --accumulate.")
    micro = jax.tree.map(lambda x: x.reshape((size // accumulate, accumulate) + x.shape[1:]).swapaxes(0, 1), batch)
    total = jnp.maximum(jnp.sum(batch.mask), 1).astype(jnp.float32)

    def loss_fn(params, batch_stats, part: Batch, rng):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": batch_stats}, part.image, train=True,
            mask=part.mask, mutable=["batch_stats"], rngs={"dropout": rng})
        per_example = jnp.where(part.mask, per_example_loss(logits, part.label, label_smoothing), 0.0)
        return jnp.sum(per_example.astype(jnp.float32)) / total, (updates["batch_stats"], logits)

    def one(carry, inputs):
        loss_sum, batch_stats, grad_sum = carry
        part, index = inputs
        (loss, (new_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch_stats, part, jax.random.fold_in(dropout_rng, index))
        used = jnp.any(part.mask)  # an all-padding micro-batch: BatchNorm of nothing is NaN; drop it whole

        def keep(new, old):
            return jnp.where(used, new, old)
        carry = (loss_sum + keep(loss, 0.0), jax.tree.map(keep, new_stats, batch_stats),
                 jax.tree.map(lambda s, g: s + keep(g, jnp.zeros_like(g)), grad_sum, grads))
        return carry, keep(logits, jnp.zeros_like(logits))

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (loss, batch_stats, grads), logits = jax.lax.scan(
        one, (jnp.float32(0.0), state.batch_stats, zeros), (micro, jnp.arange(accumulate)))
    return loss, batch_stats, logits.swapaxes(0, 1).reshape((size,) + logits.shape[2:]), grads


def all_finite(tree) -> jax.Array:
    """``bool []``: every floating-point element of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)

