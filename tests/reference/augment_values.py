"""Reference outputs for tests/test_augment.py: rotation, affine and elastic from torch, colour jitter from Pillow.

    source .venv/bin/activate && python tests/reference/augment_values.py

writes tests/reference/augment_values.npz next to this file: inputs and expected outputs, and a ``versions``
entry naming the libraries that produced them (the committed file: torch 2.13.0+cpu, Pillow 13.0.0, numpy
2.4.6). Needs torch (the CPU wheel, ``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu``); tinyjax and its tests never import it. torchvision itself does not
install here without pulling gigabytes, so each transform is computed the way torchvision computes it:

- rotation (``rotate/<case>/...``): torchvision's ``F.rotate`` on a float tensor, as ``RandomRotation(d)``
  calls it (nearest, ``expand=False``, centre None, fill 0). torchvision builds the inverse affine matrix of
  a rotation by ``-angle`` (``_get_inverse_affine_matrix``), samples output pixel centres in pixels about
  the image centre (``_gen_affine_grid``: ``linspace(-w/2 + 0.5, w/2 - 0.5)``), maps them through the
  matrix, divides by ``(w/2, h/2)`` and reads the input with ``torch.nn.functional.grid_sample(mode=
  "nearest", padding_mode="zeros", align_corners=False)``, all in float32. We do the same steps here with
  torch; the pixel lookup, rounding and zero fill are torch's own ``grid_sample``.
- affine (``affine/<case>/...``): torchvision's ``F.affine`` on a float tensor, as ``RandomAffine(degrees,
  scale=..., shear=d)`` calls it (centre None, translate 0, x shear only) but with the angle negated
  (counter-clockwise, as ``F.rotate``), through the same grid and ``grid_sample``, nearest (its default)
  and bilinear.
- elastic (``elastic/<case>/...``): torchvision's ``ElasticTransform(alpha, sigma)`` with its two
  ``torch.rand`` fields given (``noise``): the Gaussian blur (kernel ``int(8 sigma + 1)`` made odd, reflect
  padding), the scaling by ``alpha / W`` (x) and ``alpha / H`` (y) as since torchvision's PR #9300, the identity grid and bilinear ``grid_sample``, all in torch.
- colour jitter (``jitter/<op>/...``): torchvision on PIL images (the usual ``ToTensor`` after
  ``ColorJitter`` pipeline) calls Pillow's ``ImageEnhance.Brightness`` / ``Contrast`` / ``Color``
  (saturation) with the factor; here are their ``uint8`` outputs for ``uint8`` inputs. Pillow computes in
  8 bits: its grey is the rounded ITU-R 601-2 luma, Contrast's mean is rounded to an integer, and
  ``Image.blend`` truncates the result, so it lies within about 1.3 / 255 of the exact float value.
"""

import math
import os

import numpy as np
import PIL
import torch
from PIL import Image, ImageEnhance

HERE = os.path.dirname(os.path.abspath(__file__))


def inverse_affine_matrix(angle: float, scale: float, shear_x: float) -> list:
    """torchvision's ``_get_inverse_affine_matrix(center=[0, 0], -angle, translate=[0, 0], scale, [shear_x, 0])``,
    transcribed: ``F.rotate``'s call (scale 1, shear 0), and ``F.affine(img, -angle, ...)``'s (``F.affine``
    turns clockwise, ``F.rotate`` counter-clockwise; ``RandomAffine`` draws from U(-d, d) either way)."""
    rot, sx, sy = math.radians(-angle), math.radians(shear_x), 0.0
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    return [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]  # centre and translation 0: no offsets


def torchvision_affine(images: np.ndarray, angles, scales, shears, mode: str) -> np.ndarray:
    """float32 ``[B, H, W, C]`` through torchvision's tensor ``F.affine(img, -angle, ...)`` (``RandomAffine``'s
    call with the angle negated; ``F.rotate`` when scale 1 and shear 0): ``_gen_affine_grid`` then
    ``grid_sample(mode, zeros, align_corners=False)``."""
    out = []
    for image, angle, scale, shear in zip(images, angles, scales, shears):
        h, w = image.shape[:2]
        matrix = torch.tensor(inverse_affine_matrix(float(angle), float(scale), float(shear)),
                              dtype=torch.float32).reshape(2, 3)
        xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w)
        ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h)
        base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w)], -1)  # [H, W, 3]
        grid = (base.reshape(1, h * w, 3) @ (matrix.T / torch.tensor([0.5 * w, 0.5 * h]))).reshape(1, h, w, 2)
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        sampled = torch.nn.functional.grid_sample(chw, grid, mode=mode, padding_mode="zeros", align_corners=False)
        out.append(sampled[0].numpy().transpose(1, 2, 0))
        # The same grid in float64, in input pixels: for nearest, no source may lie within float32 error of a
        # rounding tie (x.5), where the last bit decides which neighbour is taken (30 degrees on a 7x9 image does).
        source = ((base.double().reshape(h * w, 3) @ matrix.double().T) + torch.tensor([(w - 1) / 2, (h - 1) / 2],
                                                                                      dtype=torch.float64))
        if mode == "nearest" and (torch.abs(source - torch.floor(source) - 0.5) < 1e-5).any():
            raise SystemExit(f"{angle} degrees, scale {scale}, shear {shear} on {h}x{w} puts a source pixel on a "
                             "rounding tie; choose another.")
    return np.stack(out).astype(np.float32)


def torchvision_rotate(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """float32 ``[B, H, W, C]`` rotated counter-clockwise by ``angles`` (degrees, ``[B]``), as torchvision."""
    ones = np.ones_like(angles)
    return torchvision_affine(images, angles, ones, 0 * ones, "nearest")


def torchvision_elastic(images: np.ndarray, noise: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """float32 ``[B, H, W, C]`` through torchvision's ``ElasticTransform(alpha, sigma)`` with its uniform draws
    replaced by ``noise`` (``[B, H, W, 2]`` in [-1, 1]; x then y): ``get_params``' blur and scaling, then
    ``F.elastic_transform``'s identity grid plus displacement through ``grid_sample(bilinear, zeros)``."""
    out = []
    for image, field in zip(images, noise):
        h, w = image.shape[:2]
        size = int(8 * sigma + 1)
        size += 1 - size % 2  # "if kernel size is even we have to make it odd"
        half = (size - 1) * 0.5  # torchvision's _get_gaussian_kernel1d
        pdf = torch.exp(-0.5 * (torch.linspace(-half, half, steps=size) / sigma).pow(2))
        k1 = pdf / pdf.sum()
        kernel = (k1[:, None] * k1[None, :])[None, None]  # _get_gaussian_kernel2d: outer product
        parts = []
        # dx * alpha / W, dy * alpha / H: torchvision since PR #9300 (pytorch/vision#9299; before it, H and W swapped).
        for axis, scale in ((0, alpha / w), (1, alpha / h)):
            d = torch.from_numpy(np.ascontiguousarray(field[..., axis]))[None, None]
            d = torch.nn.functional.pad(d, [size // 2] * 4, mode="reflect")
            parts.append(torch.nn.functional.conv2d(d, kernel) * scale)
        displacement = torch.cat(parts, 1).permute(0, 2, 3, 1)  # 1 x H x W x 2
        ys, xs = [torch.linspace((-s + 1) / s, (s - 1) / s, s) for s in (h, w)]  # _create_identity_grid
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx, gy], -1)[None] + displacement
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        sampled = torch.nn.functional.grid_sample(chw, grid, mode="bilinear", padding_mode="zeros",
                                                  align_corners=False)
        out.append(sampled[0].numpy().transpose(1, 2, 0))
    return np.stack(out).astype(np.float32)


def pil_enhance(images: np.ndarray, factors: np.ndarray, enhancer) -> np.ndarray:
    """uint8 ``[B, H, W, C]`` through ``enhancer(PIL image).enhance(factor)``, one factor per image."""
    out = []
    for image, factor in zip(images, factors):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image, "L" if image.shape[-1] == 1 else "RGB")
        out.append(np.asarray(enhancer(pil).enhance(float(factor))).reshape(image.shape))
    return np.stack(out)


def main():
    rng = np.random.default_rng(2024)
    values = {}
    rotations = {
        # A ramp on an odd, non-square image: every source pixel is identifiable; wide angles.
        "ramp_7x9": (np.arange(1, 64, dtype=np.float32).reshape(1, 7, 9, 1).repeat(6, 0),
                     np.array([29.0, -33.0, 12.5, -47.0, 135.0, 200.0], np.float32)),
        # Even sizes: the centre falls between pixels.
        "even_6x8x2": (rng.uniform(0.1, 1.0, (4, 6, 8, 2)).astype(np.float32),
                       np.array([37.0, -8.0, 61.0, -115.0], np.float32)),
        # CIFAR-sized colour images at RandomRotation(15)'s angles.
        "cifar_32x32x3": (rng.integers(1, 256, (6, 32, 32, 3)).astype(np.float32) / 255,
                          rng.uniform(-15, 15, 6).astype(np.float32)),
        # MNIST-sized.
        "mnist_28x28x1": (rng.integers(1, 256, (4, 28, 28, 1)).astype(np.float32) / 255,
                          rng.uniform(-10, 10, 4).astype(np.float32)),
    }
    for name, (images, angles) in rotations.items():
        values[f"rotate/{name}/images"] = images
        values[f"rotate/{name}/angles"] = angles
        values[f"rotate/{name}/expected"] = torchvision_rotate(images, angles)

    factors = np.array([0.0, 0.6, 1.0, 1.4, 1.8], np.float32)  # ColorJitter(0.4) spans [0.6, 1.4]; 0 and 1.8 too.
    colour = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    colour[:, 0, 0] = [255, 0, 0]  # Saturated pixels, where wrong luma weights would show most.
    colour[:, 0, 1] = [0, 255, 0]
    colour[:, 0, 2] = [0, 0, 255]
    grey = rng.integers(0, 256, (5, 6, 7, 1), dtype=np.uint8)
    values["jitter/factors"] = factors
    values["jitter/colour"] = colour
    values["jitter/grey"] = grey
    for op, enhancer in (("brightness", ImageEnhance.Brightness), ("contrast", ImageEnhance.Contrast),
                         ("saturation", ImageEnhance.Color)):
        values[f"jitter/{op}/colour"] = pil_enhance(colour, factors, enhancer)
        values[f"jitter/{op}/grey"] = pil_enhance(grey, factors, enhancer)

    rng = np.random.default_rng(2026)  # Its own stream: the cases above keep their inputs.
    affines = {
        # RandomAffine(10, scale=(0.9, 1.1), shear=10) on MNIST-sized images, both interpolations.
        "mnist_28x28x1": (rng.integers(1, 256, (6, 28, 28, 1)).astype(np.float32) / 255, rng.uniform(-10, 10, 6),
                          rng.uniform(0.9, 1.1, 6), rng.uniform(-10, 10, 6)),
        # Wide parameters on an odd, non-square ramp: every source pixel identifiable.
        "ramp_7x9": (np.arange(1, 64, dtype=np.float32).reshape(1, 7, 9, 1).repeat(4, 0),
                     np.array([17.0, -40.0, 0.0, 101.0]), np.array([0.7, 1.3, 1.0, 0.85]),
                     np.array([-25.0, 13.0, 31.0, 0.0])),
    }
    for name, (images, angles, scales, shears) in affines.items():
        for key, value in (("images", images), ("angles", angles), ("scales", scales), ("shears", shears)):
            values[f"affine/{name}/{key}"] = np.asarray(value, np.float32)
        for mode in ("nearest", "bilinear"):
            values[f"affine/{name}/{mode}"] = torchvision_affine(
                images, *(np.asarray(v, np.float32) for v in (angles, scales, shears)), mode)
    for name, shape, alpha, sigma in (("mnist_28x28x1", (4, 28, 28, 1), 50.0, 5.0),  # ElasticTransform's defaults
                                      ("simard_28x28x1", (3, 28, 28, 1), 68.0, 4.0),  # Simard et al.'s 34, 4 px
                                      ("colour_12x10x3", (3, 12, 10, 3), 30.0, 1.3)):  # non-square, small sigma
        images = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        noise = rng.uniform(-1.0, 1.0, shape[:3] + (2,)).astype(np.float32)
        values[f"elastic/{name}/images"] = images
        values[f"elastic/{name}/noise"] = noise
        values[f"elastic/{name}/alpha_sigma"] = np.array([alpha, sigma], np.float32)
        values[f"elastic/{name}/expected"] = torchvision_elastic(images, noise, alpha, sigma)

    values["versions"] = np.array(f"torch {torch.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}")
    path = os.path.join(HERE, "augment_values.npz")
    np.savez_compressed(path, **values)
    print(f"wrote {path} ({values['versions']})")


if __name__ == "__main__":
    main()
