"""One train-mode step of a CIFAR ResNet in tinyjax and in its PyTorch twin, from the same weights, in float64.

Run through ``python scripts/parity_cifar.py --check-step [--recipe default] [--init fan_in]``.
tinyjax's initial weights are copied into ``scripts/torch_reference.py``'s
network; both take the same 128 standardised train images (no augmentation,
dropout off) and the loss, every parameter's gradient and the new BatchNorm
running statistics are compared; then tinyjax's gradients and statistics of
80 images padded to 128 with masked rows (a last partial batch) against those
of the 80 alone. Prints the largest relative difference of
each (``max |a - b| / max |b|``) and exits 1 when one exceeds ``--rtol``'s
1e-5 (flax reduces batch statistics in float32: ~1e-7 is expected; the
running variance differs by PyTorch's unbiased factor n / (n - 1), which is
reported, not judged).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

RTOL = 1e-5


def _kernel(k) -> np.ndarray:
    """flax conv kernel ``[kh, kw, in, out]`` -> PyTorch ``[out, in, kh, kw]``."""
    return np.asarray(k).transpose(3, 2, 0, 1)


def pairs(flax_model, torch_model):
    """``(flax path, torch module, kind)`` for each conv, BatchNorm and the head, in the same order."""
    import torch_reference

    layers = list(torch_model)
    out = [(("stem_conv",), layers[0], "conv"), (("stem_bn",), layers[1], "bn")]
    blocks = [m for m in layers if isinstance(m, torch_reference.BasicBlock)]
    for block, twin in zip(flax_model.block_plan(), blocks, strict=True):
        out += [((block.name, "conv1"), twin.conv1, "conv"), ((block.name, "bn1"), twin.bn1, "bn"),
                ((block.name, "conv2"), twin.conv2, "conv"), ((block.name, "bn2"), twin.bn2, "bn")]
        if twin.projection is not None:
            out += [((block.name, "shortcut_conv"), twin.projection[0], "conv"),
                    ((block.name, "shortcut_bn"), twin.projection[1], "bn")]
    return out + [(("fc",), layers[-1], "dense")]


def main(config, twin: str) -> int:
    """Compares ``config.model`` with ``torch_reference.MODELS[twin]``; returns the exit status."""
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import torch
    import torch_reference

    from tinyjax import data, models
    from tinyjax.data.splits import load_splits
    from tinyjax.train.steps import cross_entropy_loss

    torch.set_default_dtype(torch.float64)
    model = models.create(config.model).clone(dtype=jnp.float64, dropout=0.0)
    mean, std = data.NORMALIZATION["cifar10"]
    images, labels = load_splits(config)["train"]
    x = (jnp.asarray(images[:128], jnp.float64) / 255 - jnp.asarray(mean)) / jnp.asarray(std)
    y = jnp.asarray(labels[:128], jnp.int32)
    variables = jax.tree.map(lambda a: a.astype(jnp.float64),
                             model.init(jax.random.key(config.seed), x[:1], train=False))

    def loss_fn(params):
        logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                      mutable=["batch_stats"])
        return cross_entropy_loss(logits, y), updates["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    twin = torch_reference.MODELS[twin]().double()
    for module in twin.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    layers = pairs(model, twin)

    def at(tree, path):
        for key in path:
            tree = tree[key]
        return tree

    with torch.no_grad():
        for path, module, kind in layers:
            p = at(variables["params"], path)
            if kind == "conv":
                module.weight.copy_(torch.from_numpy(_kernel(p["kernel"]).copy()))
            elif kind == "dense":
                module.weight.copy_(torch.from_numpy(np.asarray(p["kernel"]).T.copy()))
                module.bias.copy_(torch.from_numpy(np.asarray(p["bias"])))
            else:
                module.weight.copy_(torch.from_numpy(np.asarray(p["scale"])))
                module.bias.copy_(torch.from_numpy(np.asarray(p["bias"])))
    twin.train()
    torch_loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2)),
                                                   torch.from_numpy(np.asarray(y, np.int64)))
    torch_loss.backward()

    def rel(a, b) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    worst = {"loss": rel(loss, torch_loss.item())}
    for path, module, kind in layers:
        g, name = at(grads, path), "/".join(path)
        if kind == "conv":
            worst[name] = rel(_kernel(g["kernel"]), module.weight.grad)
        elif kind == "dense":
            worst[name] = max(rel(np.asarray(g["kernel"]).T, module.weight.grad), rel(g["bias"], module.bias.grad))
        else:
            worst[name] = max(rel(g["scale"], module.weight.grad), rel(g["bias"], module.bias.grad),
                              rel(at(stats, path)["mean"], module.running_mean))
    var = max(rel(at(stats, path)["var"], module.running_var) for path, module, kind in layers if kind == "bn")
    # A last partial batch: 80 images padded to 128 with masked rows must train as the 80 alone.
    mask = jnp.arange(128) < 80
    padded = jnp.where(mask[:, None, None, None], x, x[0])

    def masked_loss(params, images, labels, m):
        logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, images,
                                      train=True, mask=m, mutable=["batch_stats"])
        return cross_entropy_loss(logits, labels, 0.0, m), updates["batch_stats"]

    (_, stats_p), grads_p = jax.value_and_grad(masked_loss, has_aux=True)(variables["params"], padded, y, mask)
    (_, stats_80), grads_80 = jax.value_and_grad(masked_loss, has_aux=True)(variables["params"], x[:80], y[:80], None)
    worst["masked batch (80 of 128)"] = max(rel(a, b) for a, b in zip(jax.tree.leaves((grads_p, stats_p)),
                                                                      jax.tree.leaves((grads_80, stats_80))))
    print(f"{config.model}: one train step from the same weights, float64, 128 images; largest relative difference")
    for name, value in worst.items():
        print(f"  {name:28s} {value:.2e}{'  > rtol' if value > RTOL else ''}")
    print(f"  running variance (biased vs PyTorch's unbiased, not judged): {var:.2e}")
    failed = [name for name, value in worst.items() if value > RTOL]
    print("equal within rtol 1e-5" if not failed else f"DIFFERENT: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit("run as: python scripts/parity_cifar.py --check-step")
