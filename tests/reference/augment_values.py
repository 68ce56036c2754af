"""Reference outputs for tests/test_augment.py: rotation from torch, colour jitter from Pillow.

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


def torchvision_rotate(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """float32 ``[B, H, W, C]`` rotated counter-clockwise by ``angles`` (degrees, ``[B]``), as torchvision."""
    out = []
    for image, angle in zip(images, angles):
        h, w = image.shape[:2]
        rot = math.radians(-float(angle))  # torchvision's rotate passes -angle to the inverse-matrix helper.
        matrix = torch.tensor([[math.cos(rot), math.sin(rot), 0.0],  # [d, -b, 0, -c, a, 0] without shear
                               [-math.sin(rot), math.cos(rot), 0.0]], dtype=torch.float32)
        xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w)
        ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h)
        base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w)], -1)  # [H, W, 3]
        grid = (base.reshape(1, h * w, 3) @ (matrix.T / torch.tensor([0.5 * w, 0.5 * h]))).reshape(1, h, w, 2)
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        sampled = torch.nn.functional.grid_sample(chw, grid, mode="nearest", padding_mode="zeros",
                                                  align_corners=False)
        out.append(sampled[0].numpy().transpose(1, 2, 0))
        # The same grid in float64, in input pixels: no source may lie within float32 error of a rounding
        # tie (x.5), where the last bit decides which neighbour is taken (30 degrees on a 7x9 image does).
        source = ((base.double().reshape(h * w, 3) @ matrix.double().T) + torch.tensor([(w - 1) / 2, (h - 1) / 2],
                                                                                      dtype=torch.float64))
        if (torch.abs(source - torch.floor(source) - 0.5) < 1e-5).any():
            raise SystemExit(f"{angle} degrees on {h}x{w} puts a source pixel on a rounding tie; choose another.")
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

    values["versions"] = np.array(f"torch {torch.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}")
    path = os.path.join(HERE, "augment_values.npz")
    np.savez_compressed(path, **values)
    print(f"wrote {path} ({values['versions']})")


if __name__ == "__main__":
    main()
