"""Per-example training augmentation on the device, inside the compiled step.

``augment(config, root, step, epoch, indices, images)`` turns a ``uint8``
batch into ``float32`` pixels in ``[0, 1]`` (``pixel / 255``) and applies, in
this fixed order, the transforms that ``AugmentConfig`` switches on:

1. crop      torchvision ``RandomCrop(size, padding=p)``; the padding is black
             (pixel 0, ``crop_fill="black"``: torchvision's order, crop before
             ``Normalize``), the mean colour (``"mean"``: 0 after
             normalisation, as fb.resnet.torch crops after ``ColorNormalize``)
             or the image reflected about its edge (``"reflect"``: airbench)
2. flip      ``RandomHorizontalFlip(0.5)``, or the ``alternate`` schedule
3. affine    ``RandomAffine(degrees=d, scale=(1-s, 1+s), shear=k)`` about the
             centre, zero fill, ``interpolation`` nearest (torchvision's
             default) or bilinear, one resampling; rotation alone is
             ``RandomRotation(d)`` (``tinyjax.data.warp``)
4. elastic   ``ElasticTransform(alpha, sigma)`` (Simard et al. 2003), bilinear
5. jitter    ``ColorJitter(brightness, contrast, saturation)``, applied in this
             fixed order; torchvision's ColorJitter shuffles the order of its
             ops per call (``torch.randperm(4)``), we do not.

Random draws depend only on (root, step, position in the batch) -- and, for
``alternate`` flips, on (root, example index, epoch):
``step_key = streams.key(root, AUGMENT, step)``; each transform
folds in its own id, then each example its batch position, so switching one
transform off leaves the draws of the others unchanged. The config is static
(Python level): a transform that is off adds no operation to the graph.

Costs (per batch of ``B`` images ``H x W x C``): crop is ``2(2p+1)``
elementwise selects over fixed shifted slices of the padded batch (rows, then
columns), which XLA fuses into one loop -- no per-example ``dynamic_slice``,
which under ``vmap`` would become a gather. Flip is one select. The affine warp is one
gather of ``B*H*W`` pixels (all ``C`` channels at once) for nearest neighbour,
four for bilinear; elastic is four gathers plus two small matrix products per
image and axis (the Gaussian blur); jitter is elementwise plus one mean per
image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tinyjax import streams
from tinyjax.config import AugmentConfig
from tinyjax.data.warp import affine, elastic, elastic_displacement, inverse_affine

# Sub-streams of the step key, one per transform.
_CROP, _FLIP, _ROTATION, _BRIGHTNESS, _CONTRAST, _SATURATION, _SCALE, _SHEAR, _ELASTIC = range(9)
# ITU-R 601-2 luma weights, as PIL's "L" conversion (where torchvision's ColorJitter runs in the usual
# PIL pipelines); torchvision's tensor rgb_to_grayscale uses 0.2989 for R (a difference below 1e-4).
_LUMA = (0.299, 0.587, 0.114)


def is_enabled(config: AugmentConfig) -> bool:
    """Whether any transform is on (``augment`` is then more than ``images / 255``)."""
    return (config.crop_padding > 0 or config.flip != "none" or _warps(config) or config.elastic_alpha > 0
            or config.brightness > 0 or config.contrast > 0 or config.saturation > 0)


def _warps(config: AugmentConfig) -> bool:
    """Whether the affine step (rotation, scale, shear) is on."""
    return config.rotation > 0 or config.scale > 0 or config.shear > 0


def augment(config: AugmentConfig, root: jax.Array, step: jax.Array, epoch: jax.Array,
            indices: jax.Array, images: jax.Array, mean=0.0) -> jax.Array:
    """Augments a train batch.

    Args:
      config: which transforms, static.
      root: the run's root PRNG key (typed key); may carry a vmapped replica axis.
      step: int32 scalar, the optimizer step (0-based).
      epoch: int32 scalar (0-based); used by ``flip="alternate"`` only.
      indices: int32 ``[B]``, the examples' indices in the train split.
      images: uint8 ``[B, H, W, C]`` (any H, W; C = 1 or 3).
      mean: the dataset's mean in [0, 1] pixel units, a scalar or ``[C]``
        (``data.NORMALIZATION``); the crop's padding with ``crop_fill="mean"``.

    Returns:
      float32 ``[B, H, W, C]`` in ``[0, 1]`` pixel units (``pixel / 255``), augmented.

    Raises:
      ValueError: a negative field, a scale of 1 or more, a shear of 90 degrees or more, an unknown flip
        mode, crop fill or interpolation, an elastic sigma too wide for the image.
    """
    if min(config.crop_padding, config.rotation, config.scale, config.shear, config.elastic_alpha,
           config.brightness, config.contrast, config.saturation) < 0:
        raise ValueError(f"augmentation amounts must be >= 0, got {config}.")
    if config.scale >= 1 or config.shear >= 90 or config.elastic_sigma <= 0:
        raise ValueError(f"scale must be in [0, 1), shear in [0, 90) degrees, elastic_sigma > 0; got {config}.")
    if config.interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be nearest or bilinear, got {config.interpolation!r}.")
    if config.flip not in ("none", "random", "alternate"):
        raise ValueError(f"flip must be none, random or alternate, got {config.flip!r}.")
    if config.crop_fill not in ("black", "mean", "reflect"):
        raise ValueError(f"crop_fill must be black, mean or reflect, got {config.crop_fill!r}.")
    x = images.astype(jnp.float32) / 255.0
    if not is_enabled(config):
        return x
    n = images.shape[0]
    step_key = streams.key(root, streams.AUGMENT, step)

    def keys(transform):  # [B] keys: streams.key(step_key, transform, position)
        return jax.vmap(lambda i: streams.key(step_key, transform, i))(jnp.arange(n))

    def uniform(transform, low, high):  # [B] draws ~ U(low, high)
        return jax.vmap(lambda k: jax.random.uniform(k, (), minval=low, maxval=high))(keys(transform))

    def factors(transform, v):  # [B] factors ~ U(max(0, 1-v), 1+v), ColorJitter's range
        return uniform(transform, max(0.0, 1.0 - v), 1.0 + v)

    if config.crop_padding > 0:
        p = config.crop_padding
        d = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, 2 * p + 1))(keys(_CROP))
        fill = {"black": 0.0, "mean": mean, "reflect": "reflect"}[config.crop_fill]
        x = crop_shift(x, d[:, 0], d[:, 1], p, fill)
    if config.flip == "random":
        x = flip(x, jax.vmap(jax.random.bernoulli)(keys(_FLIP)))
    elif config.flip == "alternate":
        x = flip(x, alternate_flips(root, epoch, indices))
    if _warps(config):  # Each draw only where its transform is on: the others' draws stay the same.
        d, s, k = config.rotation, config.scale, config.shear
        angles = uniform(_ROTATION, -d, d) if d > 0 else jnp.zeros((n,), jnp.float32)
        matrices = inverse_affine(angles, uniform(_SCALE, 1 - s, 1 + s) if s > 0 else None,
                                  uniform(_SHEAR, -k, k) if k > 0 else None)
        x = affine(x, matrices, config.interpolation)
    if config.elastic_alpha > 0:
        noise = jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:3] + (2,), minval=-1.0, maxval=1.0))(
            keys(_ELASTIC))
        x = elastic(x, elastic_displacement(noise, config.elastic_alpha, config.elastic_sigma))
    if config.brightness > 0:
        x = adjust_brightness(x, factors(_BRIGHTNESS, config.brightness))
    if config.contrast > 0:
        x = adjust_contrast(x, factors(_CONTRAST, config.contrast))
    if config.saturation > 0:
        x = adjust_saturation(x, factors(_SATURATION, config.saturation))
    return x


def crop_shift(images: jax.Array, dy: jax.Array, dx: jax.Array, padding: int, fill=0.0) -> jax.Array:
    """Random crop with explicit offsets (torchvision ``RandomCrop(size, padding)``).

    Pads each image by ``padding`` pixels of ``fill`` on every side and takes the
    ``H x W`` window whose top-left corner is at ``(dy, dx)`` of the padded
    image: output pixel ``(y, x)`` is input ``(y + dy - p, x + dx - p)`` (``fill``
    outside), so content moves by ``(p - dy, p - dx)`` pixels.

    Cost: ``2p + 1`` selects among the static row shifts of the padded batch,
    then ``2p + 1`` among the column shifts; elementwise, fused by XLA, no gather.

    Args:
      images: ``[B, H, W, C]`` float.
      dy, dx: int ``[B]`` offsets in ``[0, 2 * padding]`` (pixels).
      padding: ``p``, static, pixels.
      fill: the padding's value, a scalar or per channel ``[C]`` (0: black), or
        ``"reflect"``: the image mirrored about its edge pixels (``jnp.pad``'s
        and PyTorch's ``reflect``; needs ``padding < H, W``).

    Returns:
      ``[B, H, W, C]``, same dtype.
    """
    p = padding
    _, h, w, _ = images.shape
    if isinstance(fill, str):
        padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode=fill)
    else:  # Inside pixels get + fill * 0: exactly themselves.
        border = jnp.pad(jnp.zeros((h, w, 1), images.dtype), ((p, p), (p, p), (0, 0)), constant_values=1)
        padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0))) + jnp.asarray(fill, images.dtype) * border
    dy = dy.reshape(dy.shape + (1, 1, 1))
    dx = dx.reshape(dx.shape + (1, 1, 1))
    rows = padded[:, 0:h]
    for s in range(1, 2 * p + 1):
        rows = jnp.where(dy == s, padded[:, s:s + h], rows)
    out = rows[:, :, 0:w]
    for s in range(1, 2 * p + 1):
        out = jnp.where(dx == s, rows[:, :, s:s + w], out)
    return out


def flip(images: jax.Array, which: jax.Array) -> jax.Array:
    """Horizontal flip (reverses the W axis) where ``which`` (bool ``[B]``) is set; a select, no gather."""
    return jnp.where(which.reshape(which.shape + (1, 1, 1)), images[:, :, ::-1], images)


def alternate_flips(root: jax.Array, epoch: jax.Array, indices: jax.Array) -> jax.Array:
    """The ``alternate`` schedule: bool ``[B]``, ``b_i XOR (epoch is odd)`` with the base bit
    ``b_i = bernoulli(streams.key(root, FLIP, index_i))``, p = 0.5.

    Each example is seen flipped in exactly one of any two consecutive epochs.
    """
    base = jax.vmap(lambda i: jax.random.bernoulli(streams.key(root, streams.FLIP, i)))(indices)
    return base ^ (epoch % 2 == 1)


def _blend(x: jax.Array, other: jax.Array, f: jax.Array) -> jax.Array:
    """torchvision's ``_blend`` on float images: ``clip(f x + (1 - f) other, 0, 1)``, ``f`` per image ``[B]``."""
    f = f.reshape(f.shape + (1, 1, 1))
    return jnp.clip(f * x + (1.0 - f) * other, 0.0, 1.0)


def grayscale(x: jax.Array) -> jax.Array:
    """ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B`` (``rgb_to_grayscale``): ``[B, H, W, 1]``;
    a 1-channel image is returned as is."""
    if x.shape[-1] == 1:
        return x
    return _LUMA[0] * x[..., 0:1] + _LUMA[1] * x[..., 1:2] + _LUMA[2] * x[..., 2:3]


def adjust_brightness(x: jax.Array, f: jax.Array) -> jax.Array:
    """``clip(f x, 0, 1)`` (``F.adjust_brightness``); x float ``[B, H, W, C]`` in [0, 1], f ``[B]``."""
    return _blend(x, jnp.zeros((), x.dtype), f)


def adjust_contrast(x: jax.Array, f: jax.Array) -> jax.Array:
    """``clip(f x + (1 - f) m, 0, 1)`` with ``m`` the mean of the image's greyscale
    (``F.adjust_contrast``); x float ``[B, H, W, C]`` in [0, 1], f ``[B]``."""
    return _blend(x, jnp.mean(grayscale(x), axis=(1, 2, 3), keepdims=True), f)


def adjust_saturation(x: jax.Array, f: jax.Array) -> jax.Array:
    """``clip(f x + (1 - f) grey(x), 0, 1)`` (``F.adjust_saturation``); the identity for
    1 channel, as torchvision; x float ``[B, H, W, C]`` in [0, 1], f ``[B]``."""
    if x.shape[-1] == 1:
        return x
    return _blend(x, grayscale(x), f)
