import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax.models import count_params
from tinyjax.models.fastnet import FastNet, whitening_kernel, with_whitening

SMALL = dict(widths=(8, 16))  # 16x16 input: 15 -> 7 -> 3 pixels.


def init(model, size=16):
    # Jitted: eager init compiles a random sampler per kernel shape, ~1 s each on a loaded CPU.
    return jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, size, size, 3)))


def shapes(model, size=32):
    return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))


@functools.lru_cache(maxsize=None)
def small():
    return init(FastNet(**SMALL))


def train_apply(model, variables, x, **kwargs):
    apply = functools.partial(model.apply, train=True, mutable=["batch_stats"])
    return jax.jit(apply)(variables, x, **kwargs)


def correlated_images(n=64, size=16, seed=0):
    """Spatially smooth, channel-mixed noise: a patch covariance far from the identity
    whose smallest eigenvalue still sits well above eps = 5e-4."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, size + 1, size + 1, 3)).astype(np.float32)
    x = z[:, :-1, :-1] + 0.6 * z[:, 1:, :-1] + 0.3 * z[:, :-1, 1:]
    mix = np.eye(3, dtype=np.float32) + 0.5 * rng.standard_normal((3, 3)).astype(np.float32)
    return x @ mix + 0.2


def conv(x, kernel):
    return jax.lax.conv_general_dilated(jnp.asarray(x), jnp.asarray(kernel), (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def covariance(y):
    y = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
    return np.cov(y, rowvar=False, bias=True)


# Hand counts: conv k*k*in*out, BatchNorm shift only (= width), whiten 2*2*3*24 + 24 = 312, fc no bias.
# (64, 256, 256):  block1 9*24*64 + 64 + 9*64*64 + 64 = 13,824 + 36,864 + 128 = 50,816
#                  block2 9*64*256 + 9*256*256 + 512 = 147,456 + 589,824 + 512 = 737,792
#                  block3 2 * 589,824 + 512 = 1,180,160; fc 256*10 = 2,560
#                  312 + 50,816 + 737,792 + 1,180,160 + 2,560 = 1,971,640
# (128, 384, 384): block1 9*24*128 + 9*128*128 + 256 = 27,648 + 147,456 + 256 = 175,360
#                  block2 9*128*384 + 9*384*384 + 768 = 442,368 + 1,327,104 + 768 = 1,770,240
#                  block3 2 * 1,327,104 + 768 = 2,654,976; fc 384*10 = 3,840
#                  312 + 175,360 + 1,770,240 + 2,654,976 + 3,840 = 4,604,728
@pytest.mark.parametrize("widths, params", [((64, 256, 256), 1_971_640), ((128, 384, 384), 4_604_728)])
def test_counts_and_logits(widths, params):
    model = FastNet(widths)
    variables = shapes(model)
    assert count_params(variables["params"]) == params
    assert count_params(variables["batch_stats"]) == 2 * 2 * sum(widths)  # mean + var, 2 BNs a block.
    assert variables["params"]["whiten"]["kernel"].shape == (2, 2, 3, 24)
    assert variables["params"]["fc"]["kernel"].shape == (widths[-1], 10)
    assert "bias" not in variables["params"]["fc"] and "bias" not in variables["params"]["block1_conv1"]
    # PyTorch-like random weights from numpy (init itself is tested on the small net, faster).
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda a: rng.uniform(-1, 1, a.shape).astype(a.dtype)
                             / np.sqrt(np.prod(a.shape[:-1]) if len(a.shape) > 1 else 1), variables)
    variables["batch_stats"] = jax.tree.map(np.abs, variables["batch_stats"])  # variances >= 0.
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    logits = jax.jit(model.apply)(variables, x)
    chex.assert_shape(logits, (2, 10))
    chex.assert_type(logits, jnp.float32)
    chex.assert_tree_all_finite(logits)


def test_batch_norm_has_shift_but_no_scale():
    params = small()["params"]
    for name in ("block1_bn1", "block1_bn2", "block2_bn1", "block2_bn2"):
        assert set(params[name]) == {"bias"}


def test_whitening_kernel_whitens_patches():
    x = correlated_images()
    assert np.linalg.eigvalsh(covariance(conv(x, np.eye(12).reshape(2, 2, 3, 12)))).min() > 0.05
    kernel = whitening_kernel(x)
    assert kernel.shape == (2, 2, 3, 24) and kernel.dtype == np.float32
    y = conv(x, kernel)
    pos, neg = y[..., :12], y[..., 12:]
    np.testing.assert_allclose(neg, -pos, rtol=0, atol=0)
    # Covariance diag(lam / (lam + eps)): the identity within eps / lam_min < 1%.
    np.testing.assert_allclose(covariance(pos), np.eye(12), atol=0.01)
    # Without eps it is the identity up to float32 rounding.
    np.testing.assert_allclose(covariance(conv(x, whitening_kernel(x, eps=0.0)[..., :12])), np.eye(12),
                               atol=1e-3)


def test_whitening_width_keeps_the_leading_eigenvectors():
    x = correlated_images()
    full, kept = whitening_kernel(x), whitening_kernel(x, width=8)
    np.testing.assert_allclose(kept, np.concatenate([full[..., :4], full[..., 12:16]], -1), atol=1e-6)
    with pytest.raises(ValueError, match="width"):
        whitening_kernel(x, width=7)


def test_with_whitening_replaces_the_kernel_and_the_model_applies_it():
    model = FastNet(**SMALL)
    variables = small()
    x = correlated_images(n=4)
    kernel = whitening_kernel(x)
    new = with_whitening(variables, kernel)
    np.testing.assert_array_equal(new["params"]["whiten"]["kernel"], kernel)
    np.testing.assert_array_equal(new["params"]["whiten"]["bias"], np.zeros(24))
    assert not np.allclose(variables["params"]["whiten"]["kernel"], kernel)  # input tree untouched.
    assert new["params"]["block1_conv1"] is variables["params"]["block1_conv1"]
    _, state = jax.jit(functools.partial(model.apply, capture_intermediates=True,
                                         mutable=["intermediates"]))(new, x)
    np.testing.assert_allclose(state["intermediates"]["whiten"]["__call__"][0], conv(x, kernel),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="whitening kernel must be"):
        with_whitening(variables, kernel[..., :8])


def test_mask_keeps_padding_out_of_batch_statistics():
    model = FastNet(**SMALL)
    variables = small()
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    padded = jnp.concatenate([x, 100.0 * jnp.ones((2, 16, 16, 3))])
    mask = jnp.array([True] * 4 + [False] * 2)
    logits, stats = train_apply(model, variables, x)
    logits_p, stats_p = train_apply(model, variables, padded, mask=mask)
    np.testing.assert_allclose(logits_p[:4], logits, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(stats_p, stats, rtol=1e-4, atol=1e-6)
    _, unmasked = train_apply(model, variables, padded)
    assert not np.allclose(unmasked["batch_stats"]["block1_bn1"]["mean"],
                           stats["batch_stats"]["block1_bn1"]["mean"])


def test_bn_momentum_is_pytorch_convention():
    # Momentum 0.4 = weight of the batch (airbench94's nn.BatchNorm2d(momentum=1 - 0.6)): from 0 the
    # running mean goes to 0.4 m, then on the same batch (same m: train mode normalises with batch
    # statistics) to 0.6 * 0.4 m + 0.4 m = 1.6 * 0.4 m.
    model = FastNet(**SMALL)
    assert model.bn_momentum == 0.4
    variables = small()
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3)) + 1.0
    _, one = train_apply(model, variables, x)
    _, two = train_apply(model, {**variables, **one}, x)
    m1, m2 = one["batch_stats"]["block1_bn1"]["mean"], two["batch_stats"]["block1_bn1"]["mean"]
    np.testing.assert_allclose(m2, 1.6 * m1, rtol=1e-4, atol=1e-6)


def test_bfloat16_keeps_float32_params_and_logits():
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    model32, model16 = FastNet(**SMALL), FastNet(**SMALL, dtype=jnp.bfloat16)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(shapes(model16, size=16)))
    variables = small()
    out32, stats32 = train_apply(model32, variables, x)
    out16, stats16 = train_apply(model16, variables, x)
    chex.assert_type(out16, jnp.float32)
    chex.assert_trees_all_equal_dtypes(stats16, stats32)
    assert np.abs(out16 - out32).max() <= 0.05 * np.abs(out32).max()


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="widths"):
        FastNet(())
    with pytest.raises(ValueError, match="whiten_width"):
        FastNet((8,), whiten_width=5)
    with pytest.raises(ValueError, match="exceeds"):  # 1 channel: at most 2*2*2*1 = 8 filters.
        jax.eval_shape(FastNet((8,)).init, jax.random.key(0), jnp.zeros((1, 16, 16, 1)))


def test_dirac_init_as_airbench():
    # The first min(in, out) filters of each 3x3 conv are the identity; the rest keep PyTorch's default.
    params = small()["params"]
    w = np.asarray(params["block2_conv2"]["kernel"])  # 16 -> 16: all filters identity
    expected = np.zeros_like(w)
    expected[1, 1, np.arange(16), np.arange(16)] = 1.0
    np.testing.assert_array_equal(w, expected)
    w = np.asarray(params["block1_conv1"]["kernel"])  # 24 whitening channels -> 8: all 8 identity
    expected = np.zeros_like(w)
    expected[1, 1, np.arange(8), np.arange(8)] = 1.0
    np.testing.assert_array_equal(w, expected)
    w = np.asarray(params["block2_conv1"]["kernel"])  # 8 -> 16: filters 0-7 identity, 8-15 random
    np.testing.assert_array_equal(w[1, 1, np.arange(8), np.arange(8)], 1.0)
    assert np.count_nonzero(w[..., :8]) == 8
    bound = 1 / np.sqrt(9 * 8)
    assert np.all(np.abs(w[..., 8:]) <= bound) and np.abs(w[..., 8:]).max() > 0.8 * bound
