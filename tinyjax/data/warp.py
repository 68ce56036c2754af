"""Geometric warps of a batch on the device: rotation, scale and shear (one affine map), elastic distortion.

Each warp maps every output pixel back to a source point in the input and reads the input there
(nearest neighbour or bilinear, zero outside), as torchvision's tensor transforms do through
``torch.nn.functional.grid_sample(padding_mode="zeros", align_corners=False)``: pixel centres are
measured from the image centre ``((W - 1) / 2, (H - 1) / 2)``, x to the right, y down.

- ``affine`` / ``inverse_affine``: torchvision ``F.affine`` (``RandomAffine(degrees, scale, shear)``,
  ``RandomRotation``), about the centre, no translation (``augment``'s crop shifts). Angles are
  counter-clockwise, as ``F.rotate``'s; ``F.affine``'s run the other way (torchvision says so: "incoherence
  of rotation angle direction between affine and rotate"), so ours is ``F.affine(img, -angle, ...)``; drawn
  from U(-d, d), the two are the same distribution.
- ``elastic`` / ``elastic_displacement``: torchvision ``ElasticTransform(alpha, sigma)``, itself Simard,
  Steinkraus & Platt, "Best practices for convolutional neural networks applied to visual document
  analysis", ICDAR 2003: uniform noise in [-1, 1] per pixel and axis, smoothed by a Gaussian of ``sigma``
  pixels, scaled by ``alpha``; x scaled by the width and y by the height, as torchvision since its fix
  for non-square images (pytorch/vision#9299, PR #9300, 2026; before it the two were swapped).

Costs per batch of ``B`` images ``H x W x C``: nearest is one gather of ``B*H*W`` pixel indices (all
channels at once), bilinear four; the elastic field's Gaussian blur is two ``[H, H]`` / ``[W, W]``
matrix products per image and axis (the reflect padding folded into the matrices).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def inverse_affine(angles: jax.Array, scales: jax.Array | None = None,
                   shears: jax.Array | None = None) -> jax.Array:
    """The inverse map (output pixel -> input point) of torchvision's ``F.affine(img, -angle, (0, 0),
    scale, (shear, 0))`` on a tensor, about the image centre: float32 ``[B, 2, 2]``, rows (x, y).

    torchvision builds the forward map ``R S ShX`` and inverts it (``_get_inverse_affine_matrix(center=(0,
    0), -angle, ...)``, as ``F.rotate`` calls it); with ``t = tan(shear)`` the inverse is
    ``[[cos a + t sin a, t cos a - sin a], [sin a, cos a]] / scale``. Positive angles turn the picture
    counter-clockwise as displayed; a positive shear slants vertical strokes (x shear only, as
    ``RandomAffine(shear=d)``).

    Args:
      angles: float ``[B]``, degrees.
      scales: float ``[B]``, the zoom factor (> 1 enlarges the digit); None: 1.
      shears: float ``[B]``, degrees, in (-90, 90); None: 0.
    """
    a = angles.astype(jnp.float32) * (math.pi / 180.0)
    cos, sin = jnp.cos(a), jnp.sin(a)
    m00, m01 = cos, -sin
    if shears is not None:
        t = jnp.tan(shears.astype(jnp.float32) * (math.pi / 180.0))
        m00, m01 = cos + t * sin, t * cos - sin
    matrix = jnp.stack([jnp.stack([m00, m01], -1), jnp.stack([sin, cos], -1)], -2)
    if scales is not None:
        matrix = matrix / scales.astype(jnp.float32)[:, None, None]
    return matrix


def affine(images: jax.Array, matrices: jax.Array, interpolation: str = "nearest") -> jax.Array:
    """Warps each image through its inverse affine map about the centre (torchvision ``F.affine``).

    Output pixel centre ``(x, y)`` (from the centre) reads the input at ``matrices @ (x, y)`` (from the
    centre); nearest rounds half to even, as ``grid_sample``'s nearest mode.

    Args:
      images: ``[B, H, W, C]`` float.
      matrices: float ``[B, 2, 2]``, ``inverse_affine``'s.
      interpolation: ``"nearest"`` (RandomRotation's and RandomAffine's default) or ``"bilinear"``.

    Returns:
      ``[B, H, W, C]``, same dtype; zero where the source lies outside the image.
    """
    _, h, w, _ = images.shape
    y = jnp.arange(h, dtype=jnp.float32)[:, None] - (h - 1) / 2.0
    x = jnp.arange(w, dtype=jnp.float32)[None, :] - (w - 1) / 2.0
    m = matrices.astype(jnp.float32)[:, :, :, None, None]  # [B, 2, 2, 1, 1]
    xs = m[:, 0, 0] * x + m[:, 0, 1] * y + (w - 1) / 2.0  # [B, H, W], input pixels
    ys = m[:, 1, 0] * x + m[:, 1, 1] * y + (h - 1) / 2.0
    return sample(images, xs, ys, interpolation)


def rotate(images: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotation by explicit angles (torchvision ``F.rotate``, as in ``RandomRotation``): nearest
    neighbour, zero fill, about the centre, same size (``expand=False``).

    Positive angles turn the picture counter-clockwise as displayed (row 0 at the top): 90 degrees
    equals ``np.rot90(image, 1)`` on ``[H, W]`` axes. Checked against torchvision 0.28's tensor rotate:
    equal but for rare pixels whose source lies within float32 error of a rounding tie.

    Args:
      images: ``[B, H, W, C]`` float.
      angles: float ``[B]``, degrees.
    """
    return affine(images, inverse_affine(angles), "nearest")


def sample(images: jax.Array, xs: jax.Array, ys: jax.Array, interpolation: str) -> jax.Array:
    """Reads ``images`` (``[B, H, W, C]``) at input points ``(xs, ys)`` (float ``[B, H, W]``, pixels),
    zero outside: ``grid_sample(padding_mode="zeros", align_corners=False)`` in pixel units."""
    if interpolation == "nearest":
        return _gather(images, jnp.round(xs).astype(jnp.int32), jnp.round(ys).astype(jnp.int32))
    if interpolation != "bilinear":
        raise ValueError(f"interpolation must be nearest or bilinear, got {interpolation!r}.")
    x0, y0 = jnp.floor(xs), jnp.floor(ys)
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    top = _gather(images, x0, y0) * (1 - fx) + _gather(images, x0 + 1, y0) * fx
    bottom = _gather(images, x0, y0 + 1) * (1 - fx) + _gather(images, x0 + 1, y0 + 1) * fx
    return (top * (1 - fy) + bottom * fy).astype(images.dtype)


def _gather(images: jax.Array, xi: jax.Array, yi: jax.Array) -> jax.Array:
    """``images[b, yi, xi, :]`` for int ``[B, H, W]`` indices, 0 outside the image; one gather."""
    b, h, w, c = images.shape
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    flat = (jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)).reshape(b, h * w, 1)
    out = jnp.take_along_axis(images.reshape(b, h * w, c), flat, axis=1).reshape(b, h, w, c)
    return jnp.where(inside[..., None], out, 0).astype(images.dtype)


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """float32 ``[n, n]`` matrix ``K`` with ``K @ v`` = torchvision's ``gaussian_blur`` of ``v`` along one
    axis: kernel size ``int(8 sigma + 1)`` made odd (as ``ElasticTransform``), reflect padding.

    Raises:
      ValueError: the kernel's half width is not below ``n`` (reflect padding needs it; PyTorch
        refuses the same), i.e. ``sigma`` is too large for an image of ``n`` pixels.
    """
    size = int(8 * sigma + 1)
    size += 1 - size % 2
    half = size // 2
    if half >= n:
        raise ValueError(f"--elastic-sigma {sigma} needs a blur kernel of {size} pixels, too wide for a {n}-pixel "
                         f"image (reflect padding): use a sigma below {(2 * n - 1) / 8:g} pixels.")
    taps = np.exp(-0.5 * (np.linspace(-half, half, size) / sigma) ** 2)
    taps /= taps.sum()
    matrix = np.zeros((n, n))
    for i in range(n):
        for t, weight in enumerate(taps):
            j = abs(i + t - half)  # reflect about pixel 0 ...
            matrix[i, j if j < n else 2 * (n - 1) - j] += weight  # ... and about pixel n - 1
    return matrix.astype(np.float32)


def elastic_displacement(noise: jax.Array, alpha: float, sigma: float) -> jax.Array:
    """torchvision ``ElasticTransform.get_params``' field, in input pixels: float32 ``[B, H, W, 2]`` (x, y).

    Each axis of ``noise`` (uniform in [-1, 1], ``[B, H, W, 2]``) is blurred by ``blur_matrix`` and
    scaled as torchvision scales it in ``grid_sample``'s units (x by ``alpha / W``, y by ``alpha / H``,
    since PR #9300), then converted to pixels (x ``* W / 2``, y ``* H / 2``): ``alpha / 2`` pixels per
    unit of smoothed noise on both axes. (Simard et al.'s ``alpha`` is in pixels: their alpha 34, sigma 4
    is torchvision's alpha 68, sigma 4.)
    """
    _, h, w, _ = noise.shape
    kh, kw = jnp.asarray(blur_matrix(h, sigma)), jnp.asarray(blur_matrix(w, sigma))
    smooth = jnp.einsum("ij,bjkc,lk->bilc", kh, noise.astype(jnp.float32), kw)
    return smooth * (alpha / 2.0)


def elastic(images: jax.Array, displacement: jax.Array) -> jax.Array:
    """torchvision ``F.elastic_transform`` (bilinear, zero fill): output pixel ``(x, y)`` reads the input
    at ``(x + dx, y + dy)``; ``images`` ``[B, H, W, C]`` float, ``displacement`` ``[B, H, W, 2]`` pixels."""
    _, h, w, _ = images.shape
    xs = jnp.arange(w, dtype=jnp.float32)[None, None, :] + displacement[..., 0]
    ys = jnp.arange(h, dtype=jnp.float32)[None, :, None] + displacement[..., 1]
    return sample(images, xs, ys, "bilinear")
