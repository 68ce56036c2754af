"""The on-device input pipeline: the whole dataset lives on the device.

A split is put on the device once as ``uint8`` images and ``int32`` labels.
Each epoch draws a permutation with ``jax.random`` and cuts it into a fixed
``[steps, batch]`` index plan; every batch is gathered, converted and
normalised on the device from (arrays, batch indices), so there is no
per-batch host round trip and the same function can be jitted, scanned,
vmapped or sharded.

A last partial batch is kept, as PyTorch's ``DataLoader(drop_last=False)``
does (60000 images at batch 128: 469 steps, the last of 96 images). To keep
one compiled shape it is padded to the full batch size and carries a
``mask``; losses, metrics and batch statistics ignore the padded rows.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Per-channel mean and std of the train split in [0, 1] pixel units, as used
# by torchvision's MNIST examples (0.1307, 0.3081) and for Fashion-MNIST;
# CIFAR-10's are (R, G, B) tuples of the official train split.
NORMALIZATION = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530),
                 "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
# Image shape (H, W, C) of each dataset, known before its files are read.
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


class DeviceData(NamedTuple):
    """A split on the device: ``images uint8 [N, H, W, C]``, ``labels int32 [N]``."""

    images: jax.Array
    labels: jax.Array


class Batch(NamedTuple):
    """One batch: ``image float32 [B, H, W, C]`` (normalised), ``label int32 [B]``,
    ``mask bool [B]`` (False on padding rows of a last partial batch)."""

    image: jax.Array
    label: jax.Array
    mask: jax.Array


def to_device(images: np.ndarray, labels: np.ndarray) -> DeviceData:
    """Copies host arrays to the default device once, keeping ``uint8`` images.

    Raises:
      ValueError: images are not ``uint8 [N, H, W, C]`` or labels not ``[N]``.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"expected uint8 images [N,H,W,C] and labels [N], got "
                         f"{images.dtype} {images.shape} and {labels.shape}.")
    return DeviceData(jnp.asarray(images), jnp.asarray(labels, jnp.int32))


def num_batches(num_examples: int, batch_size: int) -> int:
    """Steps per epoch with the last partial batch kept: ``ceil(N / B)``."""
    return -(-num_examples // batch_size)


def batch_plan(key: jax.Array | None, num_examples: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """The index plan of one epoch.

    Args:
      key: PRNG key for the shuffle (derive it from (seed, epoch) with
        ``fold_in``); ``None`` keeps the stored order (evaluation).
      num_examples: N, static.
      batch_size: B, static.

    Returns:
      ``(indices int32 [S, B], mask bool [S, B])`` with ``S = ceil(N / B)``;
      padding rows point at example 0 and are masked out.
    """
    steps = num_batches(num_examples, batch_size)
    order = (jnp.arange(num_examples) if key is None
             else jax.random.permutation(key, num_examples))
    pad = steps * batch_size - num_examples
    indices = jnp.concatenate([order, jnp.zeros(pad, order.dtype)]).astype(jnp.int32)
    mask = jnp.arange(steps * batch_size) < num_examples
    return indices.reshape(steps, batch_size), mask.reshape(steps, batch_size)


def make_batch(data: DeviceData, indices: jax.Array, mask: jax.Array, mean, std,
               pixels: Callable[[jax.Array], jax.Array] | None = None) -> Batch:
    """The train batch of ``indices int32 [B]``, built on the device: the images gathered, turned into
    float32 pixels in [0, 1] by ``pixels(uint8 [B, H, W, C])`` (default ``image / 255``; training
    passes the augmentation, ``tinyjax.data.augment``), then standardised (``standardize``; ``mean``
    and ``std`` in [0, 1] pixel units, scalars or per-channel sequences)."""
    images = data.images[indices]
    x = images.astype(jnp.float32) / 255.0 if pixels is None else pixels(images)
    return Batch(standardize(x, mean, std), data.labels[indices], mask)


def normalize(images: jax.Array, mean, std) -> jax.Array:
    """``uint8 [..., H, W, C]`` pixels to float32 ``(pixel / 255 - mean) / std``; ``mean`` and ``std``
    are scalars or per-channel sequences of length C (``NORMALIZATION``)."""
    return standardize(images.astype(jnp.float32) / 255.0, mean, std)


def standardize(images: jax.Array, mean, std) -> jax.Array:
    """float32 ``[..., C]`` in [0, 1] pixel units (``pixel / 255``, e.g. augmented) to ``(x - mean) / std``."""
    return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


TTA = ("none", "flip", "shift", "flip_shift")  # The test-time augmentations of ``tta_views``.


def check_tta(tta: str) -> None:
    """Raises ValueError, naming the choices, for a ``tta`` that ``tta_views`` does not know."""
    if tta not in TTA:
        raise ValueError(f"unknown test-time augmentation {tta!r}; use none, flip, shift or flip_shift.")


def tta_views(images: jax.Array, tta: str) -> list[tuple[float, jax.Array]]:
    """Test-time augmentation views of float ``[B, H, W, C]`` images, each with its weight in the
    average of the logits: ``[(weight, view), ...]``, weights summing to 1.

    ``"none"``: the images (weight 1); ``"flip"``: also their mirror (W reversed), 1/2 each;
    ``"flip_shift"``: airbench94's level-2 test-time augmentation (Jordan, arXiv:2404.00498, its
    ``infer_mirror_translate``): the image and its mirror at 1/4 each, and the image shifted by one
    pixel up-left and down-right, from a 1-pixel reflect padding (``jnp.pad`` ``mode="reflect"``, as
    PyTorch's), each with its mirror, at 1/8 each: 6 views; ``"shift"``: the same without the mirrors
    (the image at 1/2, the two shifts at 1/4 each: 3 views), for images a mirror changes, such as digits.

    Raises:
      ValueError: an unknown ``tta``.
    """
    check_tta(tta)
    if tta == "none":
        return [(1.0, images)]
    pairs = [images]
    if tta in ("shift", "flip_shift"):
        pad = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        h, w = images.shape[1:3]
        pairs += [pad[:, :h, :w], pad[:, 2:2 + h, 2:2 + w]]  # Content moves down-right, then up-left.
    if tta == "shift":
        return list(zip([0.5, 0.25, 0.25], pairs))
    weights = [0.5] if tta == "flip" else [0.25, 0.125, 0.125]
    return [(wt, v) for wt, x in zip(weights, pairs) for v in (x, x[:, :, ::-1])]


def hold_out(images: np.ndarray, labels: np.ndarray, n: int, key: jax.Array
             ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Splits a train split into ``(train, validation)`` on the host: the
    validation split is ``n`` examples drawn by ``jax.random.permutation(key, N)``,
    the rest train, both kept in their stored order.

    Args:
      images: ``uint8 [N, H, W, C]``; labels: ``int32 [N]``.
      n: validation examples, ``0 < n < N``.
      key: the subset's key (``tinyjax.streams.VALIDATION``); a fixed key gives
        a fixed subset.

    Returns:
      ``((images [N - n, ...], labels [N - n]), (images [n, ...], labels [n]))``.
    """
    held = np.zeros(len(labels), bool)
    held[subset(key, len(labels), n)] = True
    return (images[~held], labels[~held]), (images[held], labels[held])


def subset(key: jax.Array, num_examples: int, n: int) -> np.ndarray:
    """``int [min(n, N)]`` host indices of a fixed random subset of ``range(N)``, in stored
    (increasing) order: the first ``n`` of ``jax.random.permutation(key, N)``, sorted."""
    return np.sort(np.asarray(jax.random.permutation(key, num_examples)[:n]))
