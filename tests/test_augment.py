"""tinyjax.data.augment: each transform on known patterns, draws, determinism, jit and vmap.

Rotation, affine, elastic and colour jitter are compared with torchvision's definitions, computed once by
``python tests/reference/augment_values.py`` into tests/reference/augment_values.npz (torch's grid_sample
for the warps, Pillow's ImageEnhance for jitter; its docstring and ``versions`` entry say which versions).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax import streams
from tinyjax.config import AugmentConfig
from tinyjax.data import augment as aug
from tinyjax.data import warp
from tinyjax.data.pipeline import standardize

ROOT = jax.random.key(0)
REFERENCE = dict(np.load(os.path.join(os.path.dirname(__file__), "reference", "augment_values.npz")))
ALL_ON = AugmentConfig(crop_padding=4, flip="random", rotation=15.0, scale=0.1, shear=10.0,
                       interpolation="bilinear", elastic_alpha=40.0, elastic_sigma=3.0, brightness=0.4,
                       contrast=0.4, saturation=0.4)


def images(n=8, shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


_augment = jax.jit(aug.augment, static_argnums=0)  # as the train step calls it: config static


def run(cfg, imgs, step=0, epoch=0, root=ROOT, indices=None):
    idx = jnp.arange(len(imgs), dtype=jnp.int32) if indices is None else indices
    return np.asarray(_augment(cfg, root, jnp.int32(step), jnp.int32(epoch), idx, jnp.asarray(imgs)))


def test_disabled_is_pixels_over_255():
    imgs = images(4)
    assert not aug.is_enabled(AugmentConfig())
    out = run(AugmentConfig(), imgs)
    # The same op as the pipeline's normalisation; XLA divides by multiplying with 1/255 (within 1 ulp).
    np.testing.assert_array_equal(out, jnp.asarray(imgs).astype(jnp.float32) / 255.0)
    np.testing.assert_allclose(out, imgs.astype(np.float32) / 255, rtol=1.2e-7, atol=0)
    assert aug.is_enabled(AugmentConfig(contrast=0.1))


def test_flip_reverses_width_where_chosen():
    x = jnp.asarray(images(2, (3, 4, 2)), jnp.float32)
    out = np.asarray(aug.flip(x, jnp.array([True, False])))
    np.testing.assert_array_equal(out[0], np.asarray(x)[0, :, ::-1])
    np.testing.assert_array_equal(out[1], np.asarray(x)[1])


@pytest.mark.parametrize("dy,dx", [(0, 0), (3, 1), (6, 6), (2, 5)])
def test_crop_moves_a_pixel_and_fills_zeros(dy, dx):
    p, h, w = 3, 8, 10
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, 4, 5, 0] = 1.0
    out = np.asarray(aug.crop_shift(jnp.asarray(x + 0.5 * (x == 0)), jnp.array([dy]), jnp.array([dx]), p))
    # Output (y, x) reads input (y + dy - p, x + dx - p): content moves by (p - dy, p - dx).
    expected = np.zeros((h, w), np.float32)
    for y in range(h):
        for xx in range(w):
            sy, sx = y + dy - p, xx + dx - p
            if 0 <= sy < h and 0 <= sx < w:
                expected[y, xx] = 1.0 if (sy, sx) == (4, 5) else 0.5
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    assert out[0, 4 + p - dy, 5 + p - dx, 0] == 1.0


@pytest.mark.parametrize("dy,dx", [(0, 0), (3, 1), (6, 6)])
def test_crop_fill_per_channel(dy, dx):
    p, h, w = 3, 8, 10
    x = np.random.default_rng(0).uniform(0.1, 1.0, (1, h, w, 3)).astype(np.float32)
    fill = np.array([0.49, 0.48, 0.45], np.float32)
    out = np.asarray(aug.crop_shift(jnp.asarray(x), jnp.array([dy]), jnp.array([dx]), p, jnp.asarray(fill)))
    for y in range(h):
        for xx in range(w):
            sy, sx = y + dy - p, xx + dx - p
            inside = 0 <= sy < h and 0 <= sx < w
            np.testing.assert_array_equal(out[0, y, xx], x[0, sy, sx] if inside else fill)  # Exact, both.


def test_crop_fill_mean_is_zero_after_normalisation_with_the_same_draws():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    imgs = np.random.default_rng(1).integers(1, 256, (64, 8, 8, 3), dtype=np.uint8)  # No black pixel.
    idx = jnp.arange(len(imgs), dtype=jnp.int32)
    black = run(AugmentConfig(crop_padding=4, flip="random"), imgs)
    out = np.asarray(_augment(AugmentConfig(crop_padding=4, flip="random", crop_fill="mean"), ROOT, jnp.int32(0),
                              jnp.int32(0), idx, jnp.asarray(imgs), jnp.asarray(mean)))
    padding = black == 0.0  # The same offsets and flips: the fill is not a random draw.
    assert 0.1 < padding.mean() < 0.6
    np.testing.assert_array_equal(out[~padding], black[~padding])
    normalised = np.asarray(standardize(jnp.asarray(out), mean, std))
    np.testing.assert_allclose(normalised[padding], 0.0, atol=1e-6)


def test_crop_fill_reflect_mirrors_about_the_edge():
    x = np.random.default_rng(2).uniform(0, 1, (1, 6, 7, 3)).astype(np.float32)
    pad = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")  # PyTorch's F.pad(mode="reflect")
    for dy, dx in ((0, 0), (4, 1), (2, 3)):
        out = np.asarray(aug.crop_shift(jnp.asarray(x), jnp.array([dy]), jnp.array([dx]), 2, "reflect"))
        np.testing.assert_array_equal(out[0], pad[0, dy:dy + 6, dx:dx + 7])


def test_unknown_crop_fill_raises():
    with pytest.raises(ValueError, match="crop_fill"):
        run(AugmentConfig(crop_padding=2, crop_fill="grey"), images(1))
    out = run(AugmentConfig(crop_padding=2, crop_fill="reflect"), images(4))  # Reflection keeps [0, 1].
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_crop_offsets_cover_range_uniformly():
    # One bright pixel per image at a known place: its new position gives (dy, dx).
    p, n = 2, 4000
    x = np.zeros((n, 9, 9, 1), np.uint8)
    x[:, 4, 4, 0] = 255
    out = run(AugmentConfig(crop_padding=p), x)
    _, ys, xs, _ = np.nonzero(out)
    assert len(ys) == n                     # the pixel never leaves a 9x9 image at p=2
    dy, dx = 4 + p - ys, 4 + p - xs
    for d in (dy, dx):
        counts = np.bincount(d, minlength=2 * p + 1)
        assert len(counts) == 2 * p + 1 and counts.min() > 0
        np.testing.assert_allclose(counts / n, 1 / (2 * p + 1), atol=0.03)
    assert np.corrcoef(dy, dx)[0, 1] < 0.1


def test_rotation_90_is_rot90_counter_clockwise_and_0_is_identity():
    for shape in [(6, 6, 1), (5, 5, 3)]:          # even and odd sizes
        x = jnp.asarray(images(1, shape, seed=3), jnp.float32)
        np.testing.assert_array_equal(warp.rotate(x, jnp.array([0.0])), x)
        np.testing.assert_array_equal(warp.rotate(x, jnp.array([90.0]))[0], np.rot90(np.asarray(x)[0], 1))
        np.testing.assert_array_equal(warp.rotate(x, jnp.array([-90.0]))[0], np.rot90(np.asarray(x)[0], -1))
        np.testing.assert_array_equal(warp.rotate(x, jnp.array([180.0]))[0], np.rot90(np.asarray(x)[0], 2))


@pytest.mark.parametrize("case", ["ramp_7x9", "even_6x8x2", "cifar_32x32x3", "mnist_28x28x1"])
def test_rotation_matches_torchvision(case):
    # torchvision's F.rotate (nearest, zero fill, about the centre) through torch's grid_sample, computed by
    # tests/reference/augment_values.py; its angles put no source pixel on a rounding tie (x.5), where
    # float32 error alone decides (30 degrees on a 7x9 image does), so every pixel must agree.
    images, angles = REFERENCE[f"rotate/{case}/images"], REFERENCE[f"rotate/{case}/angles"]
    out = np.asarray(warp.rotate(jnp.asarray(images), jnp.asarray(angles)))
    np.testing.assert_array_equal(out, REFERENCE[f"rotate/{case}/expected"])
    assert (out == 0).all(-1).any()  # Corners fall outside: fill 0.


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("case", ["mnist_28x28x1", "ramp_7x9"])
def test_affine_matches_torchvision(case, mode):
    # torchvision's F.affine (RandomAffine's call: rotation, scale, x shear about the centre, zero fill)
    # through torch's grid_sample, from tests/reference/augment_values.py; nearest sources are off ties.
    ref = {k: jnp.asarray(REFERENCE[f"affine/{case}/{k}"]) for k in ("images", "angles", "scales", "shears")}
    matrices = warp.inverse_affine(ref["angles"], ref["scales"], ref["shears"])
    out = np.asarray(warp.affine(ref["images"], matrices, mode))
    expected = REFERENCE[f"affine/{case}/{mode}"]
    if mode == "nearest":
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5 * float(expected.max()))
    assert (out == 0).any()  # Zoomed out or turned: some outputs read outside the image.


def test_affine_identity_and_pure_zoom():
    x = jnp.asarray(images(2, (9, 9, 1), seed=4), jnp.float32)
    none = warp.inverse_affine(jnp.zeros(2), jnp.ones(2), jnp.zeros(2))
    np.testing.assert_array_equal(warp.affine(x, none, "bilinear"), x)
    np.testing.assert_array_equal(warp.affine(x, none, "nearest"), x)
    # Scale 2 about the centre of a 9x9 image: output (y, x) reads input (4 + (y - 4) / 2, ...); even offsets
    # from the centre land on pixels, so bilinear reads them exactly.
    zoom = np.asarray(warp.affine(x, warp.inverse_affine(jnp.zeros(2), jnp.full(2, 2.0)), "bilinear"))
    for y in (0, 2, 4, 6, 8):
        for x_ in (0, 2, 4, 6, 8):
            np.testing.assert_allclose(zoom[:, y, x_], np.asarray(x)[:, 4 + (y - 4) // 2, 4 + (x_ - 4) // 2],
                                       rtol=1e-6)
    np.testing.assert_allclose(zoom[:, 4, 1], (np.asarray(x)[:, 4, 2] + np.asarray(x)[:, 4, 3]) / 2, rtol=1e-6)


@pytest.mark.parametrize("case", ["mnist_28x28x1", "simard_28x28x1", "colour_12x10x3"])
def test_elastic_matches_torchvision(case):
    # torchvision's ElasticTransform(alpha, sigma) with its uniform fields given: blur (reflect padding),
    # scaling, identity grid plus displacement, bilinear grid_sample; from tests/reference/augment_values.py.
    alpha, sigma = (float(v) for v in REFERENCE[f"elastic/{case}/alpha_sigma"])
    field = warp.elastic_displacement(jnp.asarray(REFERENCE[f"elastic/{case}/noise"]), alpha, sigma)
    out = np.asarray(warp.elastic(jnp.asarray(REFERENCE[f"elastic/{case}/images"]), field))
    np.testing.assert_allclose(out, REFERENCE[f"elastic/{case}/expected"], rtol=0, atol=2e-5)
    assert 0.2 < np.abs(np.asarray(field)).max() <= alpha / 2  # |smoothed noise| <= 1: alpha / 2 pixels at most


def test_elastic_zero_field_is_identity_and_blur_keeps_constants():
    x = jnp.asarray(images(2, (12, 10, 3), seed=5), jnp.float32)
    np.testing.assert_allclose(warp.elastic(x, jnp.zeros((2, 12, 10, 2))), x, rtol=1e-6)
    for n, sigma in ((28, 5.0), (10, 1.0), (28, 6.8)):
        np.testing.assert_allclose(warp.blur_matrix(n, sigma).sum(1), 1.0, rtol=1e-5)  # rows: weights sum to 1
    with pytest.raises(ValueError, match="elastic-sigma 7.0 needs a blur kernel of 57 pixels.*below 6.875"):
        warp.blur_matrix(28, 7.0)


def _lit(out):
    """(y, x) of every lit pixel over a batch of one-pixel images, as offsets from the centre of 29x29."""
    _, ys, xs, _ = np.nonzero(out > 0.5)
    return ys - 14, xs - 14


def test_scale_and_shear_draws_span_their_ranges():
    # One pixel 8 to the right of the centre of a 29x29 image: RandomAffine(0, scale=(0.5, 1.5)) moves it to
    # 8 s pixels right (nearest: where round(x / s) = 8), so over 400 draws from about 4 to 12, never off row.
    x = np.zeros((400, 29, 29, 1), np.uint8)
    x[:, 14, 22] = 255
    ys, xs = _lit(run(AugmentConfig(scale=0.5), x))
    assert (ys == 0).all() and xs.min() in (4, 5) and xs.max() in (11, 12)
    # One pixel 8 below the centre under an x shear by U(-40, 40) degrees: it moves along its row by
    # -8 tan(shear), at most 8 tan(40) = 6.7 pixels either way.
    x = np.zeros((400, 29, 29, 1), np.uint8)
    x[:, 22, 14] = 255
    ys, xs = _lit(run(AugmentConfig(shear=40.0), x))
    assert (ys == 8).all() and xs.min() in (-7, -6) and xs.max() in (6, 7)
    # Elastic: ElasticTransform(50, 5) moves the centre pixel by a few pixels at most, most of the time a bit.
    x = np.zeros((400, 29, 29, 1), np.uint8)
    x[:, 14, 14] = 255
    moved = run(AugmentConfig(elastic_alpha=50.0, elastic_sigma=5.0), x)
    ys, xs = np.nonzero(moved[..., 0].max(0) > 0)
    assert ys.min() >= 14 - 4 and ys.max() <= 14 + 4 and xs.min() >= 14 - 4 and xs.max() <= 14 + 4
    assert (moved[:, 14, 14, 0] < 0.999).mean() > 0.5


def test_scale_and_shear_keep_the_rotation_draws():
    # Switching scale and shear on changes the warp, not the angles: each transform draws from its own stream.
    imgs, step = images(6, (28, 28, 1)), 3
    keys = lambda t: jax.vmap(lambda i: streams.key(streams.key(ROOT, streams.AUGMENT, step), t, i))(jnp.arange(6))
    draw = lambda t, lo, hi: jax.vmap(lambda k: jax.random.uniform(k, (), minval=lo, maxval=hi))(keys(t))
    angles = draw(aug._ROTATION, -10.0, 10.0)
    x = jnp.asarray(imgs, jnp.float32) / 255
    np.testing.assert_array_equal(run(AugmentConfig(rotation=10.0), imgs, step=step), warp.rotate(x, angles))
    both = warp.inverse_affine(angles, draw(aug._SCALE, 0.8, 1.2), draw(aug._SHEAR, -5.0, 5.0))
    np.testing.assert_allclose(run(AugmentConfig(rotation=10.0, scale=0.2, shear=5.0, interpolation="bilinear"),
                                   imgs, step=step), warp.affine(x, both, "bilinear"), atol=1e-5)  # jit vs eager


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
@pytest.mark.parametrize("kind", ["colour", "grey"])
def test_colour_jitter_matches_pillow(name, kind):
    # Pillow's ImageEnhance (what torchvision's ColorJitter calls on PIL images), uint8 in and out, from
    # tests/reference/augment_values.py; factors 0 to 1.8, saturated red, green and blue pixels included.
    # Pillow works in 8 bits: it truncates (< 1) and rounds its grey or mean (<= 0.5 * |1 - f| each), so
    # ours * 255 lies within 1.5 of it; a wrong luma weight, mean or blend is tens of levels off.
    fn = {"brightness": aug.adjust_brightness, "contrast": aug.adjust_contrast,
          "saturation": aug.adjust_saturation}[name]
    x = jnp.asarray(REFERENCE[f"jitter/{kind}"], jnp.float32) / 255
    out = np.asarray(fn(x, jnp.asarray(REFERENCE["jitter/factors"])))
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out * 255, REFERENCE[f"jitter/{name}/{kind}"], rtol=0, atol=1.5)
    if name == "saturation" and kind == "grey":  # One channel: the identity, as torchvision.
        np.testing.assert_array_equal(out, x)


def test_jitter_factors_in_range():
    # A constant grey image: brightness output / input is the factor, which lies in [1 - b, 1 + b].
    x = np.full((2000, 2, 2, 1), 100, np.uint8)
    f = run(AugmentConfig(brightness=0.5), x)[:, 0, 0, 0] / (100 / 255)
    assert 0.5 - 1e-5 <= f.min() < 0.55 and 1.45 < f.max() <= 1.5 + 1e-5
    assert abs(f.mean() - 1.0) < 0.02


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_everything_on_stays_in_range_and_is_deterministic(shape):
    imgs = images(16, shape)
    out = run(ALL_ON, imgs, step=5)
    assert out.shape == imgs.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out, run(ALL_ON, imgs, step=5))
    assert not np.array_equal(out, run(ALL_ON, imgs, step=6))
    assert not np.array_equal(out, run(ALL_ON, imgs, step=5, root=jax.random.key(1)))
    assert not np.allclose(out, imgs / 255, atol=0.05)


def test_switching_one_transform_off_keeps_the_others_draws():
    imgs = images(8)
    both = AugmentConfig(crop_padding=3, brightness=0.5)
    crop_then = run(AugmentConfig(crop_padding=3), imgs, step=2)
    f = np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (), minval=0.5, maxval=1.5))(
        jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(
            jax.random.fold_in(jax.random.fold_in(ROOT, streams.AUGMENT), 2), aug._BRIGHTNESS), i))(
            jnp.arange(8))))
    np.testing.assert_allclose(run(both, imgs, step=2), np.clip(crop_then * f[:, None, None, None], 0, 1),
                               atol=1e-6)


def test_random_flip_about_half():
    x = np.zeros((2000, 1, 2, 1), np.uint8)
    x[:, 0, 0, 0] = 255
    out = run(AugmentConfig(flip="random"), x)
    flipped = out[:, 0, 1, 0] == 1.0
    assert np.all(out[:, 0, 0, 0] == 1.0 - flipped)
    assert 0.45 < flipped.mean() < 0.55


def test_alternate_flip_epochs():
    n = 1000
    x = np.zeros((n, 1, 2, 1), np.uint8)
    x[:, 0, 0, 0] = 255
    idx = jnp.asarray(np.random.default_rng(0).permutation(5000)[:n], jnp.int32)
    cfg = AugmentConfig(flip="alternate")
    by_epoch = [run(cfg, x, step=e * 7, epoch=e, indices=idx)[:, 0, 1, 0] == 1.0 for e in range(4)]
    assert np.all(by_epoch[0] != by_epoch[1]) and np.all(by_epoch[1] != by_epoch[2])
    np.testing.assert_array_equal(by_epoch[0], by_epoch[2])
    np.testing.assert_array_equal(by_epoch[1], by_epoch[3])
    assert 0.45 < by_epoch[0].mean() < 0.55
    # The choice follows the example index, not its batch position.
    perm = np.random.default_rng(1).permutation(n)
    np.testing.assert_array_equal(run(cfg, x, epoch=0, indices=idx[perm])[:, 0, 1, 0] == 1.0, by_epoch[0][perm])


def test_jit_and_vmap_over_roots():
    imgs = jnp.asarray(images(4, (28, 28, 1)))
    idx = jnp.arange(4, dtype=jnp.int32)
    cfg = AugmentConfig(crop_padding=2, flip="alternate", rotation=10.0, scale=0.1, shear=5.0,
                        interpolation="bilinear", elastic_alpha=30.0, elastic_sigma=4.0, contrast=0.3)
    roots = jax.random.split(jax.random.key(7), 3)
    out = jax.jit(jax.vmap(lambda r, s: aug.augment(cfg, r, s, jnp.int32(1), idx, imgs),
                           in_axes=(0, None)))(roots, jnp.int32(3))
    assert out.shape == (3, 4, 28, 28, 1)
    for r in range(3):
        np.testing.assert_allclose(out[r], run(cfg, imgs, step=3, epoch=1, root=roots[r]), atol=1e-6)
    assert not np.array_equal(out[0], out[1])


def test_negative_amount_raises():
    with pytest.raises(ValueError, match=">= 0"):
        run(AugmentConfig(rotation=-1.0), images(1))
    for bad in (AugmentConfig(scale=1.0), AugmentConfig(shear=90.0), AugmentConfig(elastic_sigma=0.0)):
        with pytest.raises(ValueError, match=r"scale must be in \[0, 1\)"):
            run(bad, images(1))
    with pytest.raises(ValueError, match="interpolation must be nearest or bilinear"):
        run(AugmentConfig(rotation=5.0, interpolation="cubic"), images(1))
