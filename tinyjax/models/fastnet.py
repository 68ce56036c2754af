"""FastNet: the small VGG-like network of the fast CIFAR-10 recipe (NHWC).

The recipe is Keller Jordan's airbench ("94% on CIFAR-10 in 3.29 seconds on
a single GPU", arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench),
where widths ``(64, 256, 256)`` (1,971,640 parameters) reach 94% in ~10
epochs and ``(128, 384, 384)`` (4,604,728) aim at 95% in ~15. Written here
from the paper's description, not from its code. The network is

    x -> whiten: Conv(p x p, VALID, bias) -> GELU
      -> per block i: conv3x3 -> 2x2 max-pool -> BN -> GELU -> conv3x3 -> BN -> GELU
      -> global max over the map -> Dense(num_classes, no bias) * logit_scale

with 3x3 convs of padding 1 without bias, and BatchNorm without its learned
scale (its shift stays): with GELU this fixes each pre-activation's scale at 1,
as the recipe does. GELU is the exact (erf) one, PyTorch's ``nn.GELU()``
default. On 32x32 inputs the maps are 31 -> 15 -> 7 -> 3 pixels, so the final
max is over a 3x3 map. Layers are named ``whiten, block{i}_conv1,
block{i}_bn1, block{i}_conv2, block{i}_bn2, fc`` (blocks count from 1).

Initialisation: PyTorch's defaults (``torch_init``) for every conv and the
head, BatchNorm shift 0; then, as airbench94's ``Conv.reset_parameters``, the
first ``in`` filters of each 3x3 conv are set to the identity
(``torch.nn.init.dirac_``), so every block's second conv starts as the
identity map. The whitening conv's kernel is meant to be set from
data before training: ``with_whitening(variables, whitening_kernel(images))``
makes its filters whiten the 2x2 patches of the training images (eigenvectors
of the patch covariance over ``sqrt(eigenvalue + eps)``, each with its
negative so that both signs survive the GELU), and zeroes its bias.

Mixed precision: ``dtype`` is the computation dtype. With ``jnp.bfloat16`` the
input is cast to bfloat16 and the convs and the head compute in it, while
parameters stay float32; BatchNorm computes its statistics and normalisation
in float32 and keeps its running statistics in float32; logits come back
float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.typing import Dtype

from tinyjax.models.cnn import batch_norm, max_pool
from tinyjax.models.torch_init import bias_init, kernel_init


def dirac_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """PyTorch's default conv init (``torch_init.kernel_init``), then filters ``j < min(in, out)`` set to
    the identity on channel ``j`` (1 at the kernel's centre ``(kh // 2, kw // 2)``, 0 elsewhere), as
    ``torch.nn.init.dirac_(weight[:in_channels])`` in airbench94. ``shape`` is flax's ``[kh, kw, in, out]``."""
    kh, kw, cin, cout = shape
    n = min(cin, cout)
    w = kernel_init(key, shape, dtype).at[:, :, :, :n].set(0)
    return w.at[kh // 2, kw // 2, jnp.arange(n), jnp.arange(n)].set(1)


def whitening_kernel(images: np.ndarray | jax.Array, patch: int = 2, eps: float = 5e-4,
                     width: int | None = None) -> np.ndarray:
    """Patch-whitening filters computed from data, as a flax Conv kernel.

    Every ``patch x patch x C`` patch of ``images`` (``N * (H - p + 1) *
    (W - p + 1)`` of them, stride 1) is flattened in ``(row, col, channel)``
    order to a vector of ``d = p * p * C`` values; with ``Sigma`` their
    covariance (centred; sums in float32, eigendecomposition in float64) and ``Sigma = sum_k lam_k v_k v_k^T`` its
    eigendecomposition, eigenvalues descending, filter ``k`` is
    ``v_k / sqrt(lam_k + eps)``. A conv with these filters maps patches to
    outputs of covariance ``diag(lam_k / (lam_k + eps))``: the identity for
    directions well above ``eps`` (PCA whitening; ``eps`` keeps noise
    directions from being blown up). The filters follow, negated, so that
    after a GELU both signs of each component survive.

    Args:
      images: ``float [N, H, W, C]``, already normalised (per-channel mean 0,
        std 1, as the network sees them). ~5,000 CIFAR images are plenty and
        take ~0.25 s on 2 CPU cores (~0.5 s on a first call).
      patch: patch side ``p`` (pixels), the whitening conv's kernel size.
      eps: added to each eigenvalue (units of the normalised data's variance);
        keep it > 0 when the patches may be rank-deficient (eigenvalues 0).
      width: output channels to keep, even and at most ``2 * d``: the
        ``width // 2`` leading eigenvectors and their negatives. Default
        ``2 * d`` (all; 24 for 2x2 RGB patches).

    Returns:
      ``float32 [p, p, C, width]``: channel ``k < width // 2`` is filter ``k``,
      channel ``width // 2 + k`` its negative.

    Raises:
      ValueError: ``images`` not ``[N, H, W, C]`` with ``H, W >= patch``, or
        a bad ``width``.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or min(x.shape[1:3]) < patch or patch < 1:
        raise ValueError(f"images must be [N, H, W, C] with H, W >= patch {patch}, got {x.shape}.")
    d = patch * patch * x.shape[-1]
    width = 2 * d if width is None else width
    if width < 2 or width % 2 or width > 2 * d:
        raise ValueError(f"width must be even and in [2, {2 * d}] for {patch}x{patch}x{x.shape[-1]} "
                         f"patches, got {width}.")
    h, w = x.shape[1] - patch + 1, x.shape[2] - patch + 1
    # Patches in (row, col, channel) order, the flattening of a flax kernel [p, p, C, :]; filled
    # in place (3x faster than np.concatenate). Sums in float32 (BLAS, pairwise): relative
    # error ~1e-6 against float64 on 5,000 CIFAR-sized images.
    patches = np.empty((x.shape[0], h, w, patch, patch, x.shape[-1]), np.float32)
    for i in range(patch):
        for j in range(patch):
            patches[:, :, :, i, j] = x[:, i:i + h, j:j + w]
    patches = patches.reshape(-1, d)
    mean = patches.sum(axis=0).astype(np.float64) / len(patches)
    cov = (patches.T @ patches).astype(np.float64) / len(patches) - np.outer(mean, mean)
    lam, vec = np.linalg.eigh(cov)
    lam, vec = lam[::-1][:width // 2], vec[:, ::-1][:, :width // 2]
    filters = vec / np.sqrt(np.maximum(lam, 0.0) + eps)
    kernel = np.concatenate([filters, -filters], axis=1)
    return kernel.reshape(patch, patch, x.shape[-1], width).astype(np.float32)


def with_whitening(variables, kernel: np.ndarray | jax.Array):
    """``variables`` with ``params["whiten"]["kernel"]`` replaced by ``kernel`` and its bias zeroed.

    A pure function: the input tree is not modified. With bias 0 the whitened
    outputs have mean ``kernel . patch mean``, ~0 for normalised images; the
    bias stays trainable. ``kernel`` is
    ``float [p, p, C, whiten_width]`` (``whitening_kernel(..., width=whiten_width)``).

    Raises:
      ValueError: ``kernel``'s shape differs from the model's whitening kernel.
    """
    params = dict(variables["params"])
    old = params["whiten"]
    kernel = jnp.asarray(kernel, dtype=old["kernel"].dtype)
    if kernel.shape != old["kernel"].shape:
        raise ValueError(f"whitening kernel must be {old['kernel'].shape}, got {kernel.shape}; "
                         f"pass width=whiten_width to whitening_kernel.")
    params["whiten"] = {**old, "kernel": kernel, "bias": jnp.zeros_like(old["bias"])}
    return {**variables, "params": params}


class FastNet(nn.Module):
    """The airbench network; see the module docstring.

    Call: ``apply(variables, x float [B, H, W, C], train=False, mask=None)``
    returns logits ``float32 [B, num_classes]``, as ``CNN`` does. With
    ``train=True`` pass ``mutable=["batch_stats"]``; ``mask bool [B]`` leaves
    padded rows out of the BatchNorm statistics. ``H, W >= whiten_patch + 7``
    (three 2x2 pools must leave a map).

    Attributes:
      widths: channels of each block, e.g. ``(64, 256, 256)`` (airbench94) or
        ``(128, 384, 384)``.
      whiten_width: output channels of the whitening conv, even and at most
        ``2 * whiten_patch**2 * C`` (24 for RGB): half the number of leading
        eigenvectors kept, plus their negatives.
      whiten_patch: the whitening conv's kernel size (pixels), padding VALID.
      num_classes: logits.
      logit_scale: multiplies the logits (airbench: 1/9), a fixed temperature.
      bn_momentum: PyTorch convention, the weight of each batch in the running
        statistics: 0.4, as airbench94, whose ``BatchNorm(momentum=0.6)`` passes
        ``1 - 0.6`` to ``nn.BatchNorm2d`` (flax ``momentum=0.6``: the old
        statistics keep 0.6).
      bn_eps: BatchNorm epsilon. airbench's 1e-12: without learned scale the
        BN output is the standardised input, and a larger eps would shrink
        low-variance channels; a constant channel still normalises to 0.
      dtype: computation dtype (``jnp.float32``, or ``jnp.bfloat16`` for mixed
        precision); parameters and BatchNorm statistics stay float32.

    Raises (at construction; ``whiten_width`` against ``C`` at the first call):
      ValueError: an invalid spec; the message says how to fix it.
    """

    widths: tuple[int, ...]
    whiten_width: int = 24
    whiten_patch: int = 2
    num_classes: int = 10
    logit_scale: float = 1.0 / 9.0
    bn_momentum: float = 0.4
    bn_eps: float = 1e-12
    dtype: Dtype = jnp.float32
    bn_axis_name: str | None = None  # pmap's device axis for BatchNorm statistics (``cnn.batch_norm``).

    def __post_init__(self):
        widths = tuple(self.widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths needs at least one block, all >= 1, got {widths}.")
        if self.whiten_width < 2 or self.whiten_width % 2:
            raise ValueError(f"whiten_width must be even and >= 2 (filters and their negatives), "
                             f"got {self.whiten_width}.")
        if self.whiten_patch < 1:
            raise ValueError(f"whiten_patch is a kernel size >= 1, got {self.whiten_patch}.")
        if not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum (PyTorch convention) must be in [0, 1], got {self.bn_momentum}.")
        super().__post_init__()

    def frozen(self, path: tuple) -> bool:
        """The optimizer's hook (``tinyjax.models.door``): the whitening kernel gets no updates."""
        return tuple(path) == ("whiten", "kernel")

    def init_from_data(self, params: dict, images: jax.Array) -> dict:
        """The init hook (``tinyjax.models.door``): ``params`` with the whitening conv set from
        ``images`` (``float32 [N, H, W, C]``, normalised train images; ``whitening_kernel``)."""
        return with_whitening({"params": params}, whitening_kernel(images, self.whiten_patch))["params"]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, mask: jax.Array | None = None) -> jax.Array:
        p, c = self.whiten_patch, x.shape[-1]
        if self.whiten_width > 2 * p * p * c:
            raise ValueError(f"whiten_width {self.whiten_width} exceeds 2 * {p}*{p}*{c} = {2 * p * p * c} "
                             f"whitening filters for {c}-channel input; lower it.")
        bn = functools.partial(batch_norm, train=train, mask=mask, scale=False, momentum=self.bn_momentum,
                               eps=self.bn_eps, dtype=self.dtype, axis_name=self.bn_axis_name)
        gelu = functools.partial(nn.gelu, approximate=False)
        x = x.astype(self.dtype)
        x = nn.Conv(self.whiten_width, (p, p), padding="VALID", kernel_init=kernel_init,
                    bias_init=bias_init(p * p * c), dtype=self.dtype, param_dtype=jnp.float32,
                    name="whiten")(x)
        x = gelu(x)
        for i, width in enumerate(self.widths, start=1):
            conv = functools.partial(nn.Conv, width, (3, 3), padding=1, use_bias=False,
                                     kernel_init=dirac_init, dtype=self.dtype, param_dtype=jnp.float32)
            x = max_pool(conv(name=f"block{i}_conv1")(x), 2)
            x = gelu(bn(x, name=f"block{i}_bn1"))
            x = gelu(bn(conv(name=f"block{i}_conv2")(x), name=f"block{i}_bn2"))
        x = jnp.max(x, axis=(1, 2))
        x = nn.Dense(self.num_classes, use_bias=False, kernel_init=kernel_init, dtype=self.dtype,
                     param_dtype=jnp.float32, name="fc")(x)
        return x.astype(jnp.float32) * self.logit_scale
