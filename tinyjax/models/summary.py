"""Layer tables: per layer its output shape, parameters, receptive field and jump.

Receptive field (r) and jump (j, the product of strides: input pixels between
adjacent outputs) follow the standard recursion (Araujo et al., "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019):
``r_out = r_in + (k - 1) * j_in`` and ``j_out = j_in * s``, from r = j = 1 at
the input. A 2x2 max-pool is k = s = 2; global average pooling is a kernel as
large as its input map. Parameter counts come from the model's real
parameter tree, so the table cannot drift from the model.

A ``ResNet`` has one row per conv (its BatchNorm's scale and shift counted
in the same row): the stem, each block's conv1 and conv2, and the 1x1
shortcut conv of option "B" (option "A" has no parameters and no row). A
block's receptive field follows its longest path, the two 3x3 convs (the
shortcut sees less), so conv2's row gives the block's output field.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from tinyjax.models import CNN, MLP, FastNet, ResNet, count_params


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One row: ``output`` is (H, W, C) or (features,); ``receptive_field`` and
    ``jump`` are in input pixels (None for layers after flattening)."""

    name: str
    type: str
    output: tuple[int, ...]
    params: int
    receptive_field: int | str | None  # "n/a": a model whose layers tinyjax cannot read
    jump: int | str | None


@dataclasses.dataclass(frozen=True)
class LayerTable:
    """All rows plus totals: trainable parameters, batch-norm statistics
    (running means and variances, not trained), and their float32 bytes."""

    rows: tuple[LayerRow, ...]
    trainable_params: int
    batch_stats: int

    @property
    def bytes(self) -> int:
        return 4 * (self.trainable_params + self.batch_stats)

    def markdown(self) -> str:
        """The table as markdown, with a totals line."""
        lines = ["| layer | type | output | params | receptive field | jump |",
                 "|---|---|---|---:|---:|---:|"]
        for r in self.rows:
            rf = ("" if r.receptive_field is None else r.receptive_field if isinstance(r.receptive_field, str)
                  else f"{r.receptive_field}x{r.receptive_field}")
            jump = "" if r.jump is None else str(r.jump)
            lines.append(f"| {r.name} | {r.type} | {'x'.join(map(str, r.output))} | {r.params:,} | {rf} | {jump} |")
        lines.append(f"\ntrainable params: {self.trainable_params:,}; batch-norm statistics: "
                     f"{self.batch_stats:,}; size: {self.bytes:,} bytes (float32)")
        return "\n".join(lines)


def trace_shapes(net, input_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """``(trainable parameters, logits shape per image)`` of a ``tinyjax.models.door.Net`` on
    ``input_shape`` (H, W, C), from shapes only (``jax.eval_shape``, in eval mode).

    Raises:
      ConfigError: the model's init or forward pass raises (its message, naming the model).
    """
    from tinyjax.config import ConfigError
    from tinyjax.common import one_line

    x = jnp.zeros((2,) + tuple(input_shape), jnp.float32)
    try:
        variables = jax.eval_shape(lambda: net.init(jax.random.key(0), x[:1]))
        logits = jax.eval_shape(lambda v: net.apply(v, x, train=False), variables)
    except Exception as e:
        raise ConfigError(f"--model {net.name} fails on {'x'.join(map(str, input_shape))} (HxWxC) images: "
                          f"{one_line(e)}") from None
    return count_params(variables["params"]), tuple(logits.shape[1:])


def layer_table(model, input_shape: tuple[int, ...]) -> LayerTable:
    """The layer table of a model (a ``tinyjax.models.door.Net`` or a linen module) on inputs of
    ``input_shape`` (H, W, C): a ``CNN``, ``MLP``, ``ResNet`` or ``FastNet`` layer by layer with
    receptive fields; any other model one row per top-level parameter group (its parameters
    counted, receptive field "n/a").

    Shapes only (``jax.eval_shape``): nothing is compiled or allocated, so a
    parameter budget can be checked before training starts.
    """
    from tinyjax.models.door import Net

    net = model if isinstance(model, Net) else None
    model = net.module if net is not None and net.kind == "linen" else model
    init = net.init if net is not None else model.init
    variables = jax.eval_shape(lambda: init(jax.random.key(0), jnp.zeros((1,) + input_shape)))
    params = variables["params"]

    def counted(*paths: str) -> int:  # Parameters under "conv1" or "stage1_block1/conv1", summed.
        total = 0
        for path in paths:
            tree = params
            for key in path.split("/"):
                tree = tree.get(key, {})
            total += count_params(tree)
        return total

    if isinstance(model, CNN):
        rows = _cnn_rows(model, input_shape, counted)
    elif isinstance(model, MLP):
        rows = _mlp_rows(model, input_shape, counted)
    elif isinstance(model, ResNet):
        rows = _resnet_rows(model, input_shape, counted)
    elif isinstance(model, FastNet):
        rows = _fastnet_rows(model, input_shape, counted)
    else:
        rows = _generic_rows(params)
    return LayerTable(tuple(rows), count_params(params), count_params(variables.get("batch_stats", {})))


def _cnn_rows(model: CNN, input_shape, counted) -> list[LayerRow]:
    h, w, c = input_shape
    r, j = 1, 1
    rows, pools = [], 0
    for i, spec in enumerate(model.layers, start=1):
        k, p, s = spec.kernel, spec.padding, spec.stride
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        r, j = r + (k - 1) * j, j * s
        groups = f", groups={c}" if spec.depthwise else ""
        kind = f"Conv2d({c}->{spec.features}, k={k}, p={p}, s={s}{groups}{', bias' if spec.bias else ''})"
        c = spec.features
        rows.append(LayerRow(f"conv{i}", kind, (h, w, c), counted(f"conv{i}"), r, j))
        if spec.batch_norm:
            bn = f"BatchNorm2d({c}{'' if spec.bn_scale else ', no scale'})"
            rows.append(LayerRow(f"bn{i}", bn, (h, w, c), counted(f"bn{i}"), r, j))
        if spec.dropout:
            rows.append(LayerRow(f"dropout{i}", f"Dropout({spec.dropout})", (h, w, c), 0, r, j))
        if spec.pool:
            pools += 1
            h, w = h // 2, w // 2
            r, j = r + j, j * 2
            rows.append(LayerRow(f"pool{pools}", "MaxPool2d(2, 2)", (h, w, c), 0, r, j))
    r = r + (max(h, w) - 1) * j
    rows.append(LayerRow("gap", "AdaptiveAvgPool2d(1)", (1, 1, c), 0, r, j * max(h, w)))
    rows.append(LayerRow("fc", f"Linear({c}->{model.num_classes})", (model.num_classes,),
                         counted("fc"), None, None))
    return rows


def _mlp_rows(model: MLP, input_shape, counted) -> list[LayerRow]:
    width = math.prod(input_shape)
    rows = [LayerRow("flatten", "Flatten", (width,), 0, None, None)]
    for i, out in enumerate(model.hidden + (model.num_classes,), start=1):
        act = f" + {model.activation}" if i <= len(model.hidden) else ""
        rows.append(LayerRow(f"fc{i}", f"Linear({width}->{out}){act}", (out,), counted(f"fc{i}"), None, None))
        width = out
    return rows


def _resnet_rows(model: ResNet, input_shape, counted) -> list[LayerRow]:
    rows = []

    def conv(name: str, bn: str, shape, features: int, k: int, s: int, r: int, j: int):
        """A k x k conv (k odd, padding k // 2, no bias, stride s) + BatchNorm on a map of ``shape``."""
        (h, w, c), p = shape, k // 2
        out = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, features)
        r, j = r + (k - 1) * j, j * s
        rows.append(LayerRow(name, f"Conv2d({c}->{features}, k={k}, p={p}, s={s}) + BatchNorm2d",
                             out, counted(name, bn), r, j))
        return out, r, j

    shape, r, j = conv("stem_conv", "stem_bn", input_shape, model.stem_width, 3, 1, 1, 1)
    for block in model.block_plan():
        n, s = block.name, block.stride
        block_in = shape, r, j
        shape, r, j = conv(f"{n}/conv1", f"{n}/bn1", shape, block.features, 3, s, r, j)
        shape, r, j = conv(f"{n}/conv2", f"{n}/bn2", shape, block.features, 3, 1, r, j)
        if model.shortcut == "B" and (s != 1 or block.in_features != block.features):
            conv(f"{n}/shortcut_conv", f"{n}/shortcut_bn", block_in[0], block.features, 1, s, *block_in[1:])
    (h, w, c) = shape
    r = r + (max(h, w) - 1) * j
    rows.append(LayerRow("gap", "AdaptiveAvgPool2d(1)", (1, 1, c), 0, r, j * max(h, w)))
    if model.dropout:
        rows.append(LayerRow("dropout", f"Dropout({model.dropout})", (c,), 0, None, None))
    rows.append(LayerRow("fc", f"Linear({c}->{model.num_classes})", (model.num_classes,),
                         counted("fc"), None, None))
    return rows


def _fastnet_rows(model: FastNet, input_shape, counted) -> list[LayerRow]:
    (h, w, c), k = input_shape, model.whiten_patch
    h, w, r, j = h - k + 1, w - k + 1, k, 1
    rows = [LayerRow("whiten", f"Conv2d({c}->{model.whiten_width}, k={k}, bias; frozen kernel) + GELU",
                     (h, w, model.whiten_width), counted("whiten"), r, j)]
    c = model.whiten_width
    for i, width in enumerate(model.widths, start=1):
        r, j = r + 2 * j, j  # conv1 3x3
        h, w, r, j = h // 2, w // 2, r + j, 2 * j  # 2x2 max-pool
        rows.append(LayerRow(f"block{i}_conv1", f"Conv2d({c}->{width}, k=3, p=1) + MaxPool2d(2) + BatchNorm2d"
                             " (no scale) + GELU", (h, w, width), counted(f"block{i}_conv1", f"block{i}_bn1"), r, j))
        r = r + 2 * j
        rows.append(LayerRow(f"block{i}_conv2", f"Conv2d({width}->{width}, k=3, p=1) + BatchNorm2d (no scale) + GELU",
                             (h, w, width), counted(f"block{i}_conv2", f"block{i}_bn2"), r, j))
        c = width
    r = r + (max(h, w) - 1) * j
    rows.append(LayerRow("gmp", "AdaptiveMaxPool2d(1)", (1, 1, c), 0, r, j * max(h, w)))
    rows.append(LayerRow("fc", f"Linear({c}->{model.num_classes}, no bias) x {model.logit_scale:.4g}",
                         (model.num_classes,), counted("fc"), None, None))
    return rows


def _generic_rows(params: dict) -> list[LayerRow]:
    """One row per top-level parameter group of a model tinyjax cannot read layer by layer: its
    name, parameter shapes and count."""
    rows = []
    for name, tree in params.items():
        shapes = ", ".join(f"{'/'.join(str(getattr(k, 'key', k)) for k in path)} {'x'.join(map(str, leaf.shape))}"
                           for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0])
        rows.append(LayerRow(str(name), shapes, (), count_params(tree), "n/a", "n/a"))
    return rows
