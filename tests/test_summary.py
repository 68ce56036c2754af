import contextlib

import jax
import jax.numpy as jnp

from tinyjax import models
from tinyjax.models.summary import layer_table

# Reference 001's layer table, its "Parameters" and "Output Size" columns. Its
# receptive-field column has mistakes (e.g. 14x14 after the first pool); the
# expected values here follow r_out = r_in + (k - 1) * j_in, j_out = j_in * s.
REFERENCE_001 = [
    # name, params, output, receptive field, jump
    ("conv1", 140, (26, 26, 14), 3, 1), ("bn1", 28, (26, 26, 14), 3, 1),
    ("conv2", 1778, (24, 24, 14), 5, 1), ("bn2", 28, (24, 24, 14), 5, 1),
    ("conv3", 2032, (22, 22, 16), 7, 1), ("bn3", 32, (22, 22, 16), 7, 1),
    ("pool1", 0, (11, 11, 16), 8, 2),
    ("conv4", 2610, (9, 9, 18), 12, 2), ("bn4", 36, (9, 9, 18), 12, 2),
    ("conv5", 3260, (7, 7, 20), 16, 2), ("bn5", 40, (7, 7, 20), 16, 2),
    ("pool2", 0, (3, 3, 20), 18, 4),
    ("conv6", 3982, (3, 3, 22), 26, 4), ("bn6", 44, (3, 3, 22), 26, 4),
    ("conv7", 4378, (1, 1, 22), 34, 4), ("bn7", 44, (1, 1, 22), 34, 4),
    ("gap", 0, (1, 1, 22), 34, 4),
    ("fc", 230, (10,), None, None),
]


def test_reference_001_table():
    table = layer_table(models.create("mnist_cnn_18k"), (28, 28, 1))
    got = [(r.name, r.params, r.output, r.receptive_field, r.jump) for r in table.rows]
    assert got == REFERENCE_001
    assert table.trainable_params == 18_662
    assert table.batch_stats == 2 * (14 + 14 + 16 + 18 + 20 + 22 + 22)
    assert table.bytes == 4 * (18_662 + 252)


def test_reference_000_receptive_field_covers_the_digit():
    table = layer_table(models.create("mnist_cnn_7k"), (28, 28, 1))
    by_name = {r.name: r for r in table.rows}
    assert by_name["conv7"].output == (3, 3, 18)
    assert (by_name["pool2"].receptive_field, by_name["pool2"].jump) == (18, 4)
    assert by_name["gap"].receptive_field == 26 + 2 * 4 + 2 * 4
    assert sum(r.params for r in table.rows) == table.trainable_params == 7_784


def test_depthwise_pointwise_and_mlp_rows():
    ds = {r.name: r for r in layer_table(models.create("mnist_dsconv_2k"), (28, 28, 1)).rows}
    assert ds["conv2"].type == "Conv2d(16->16, k=3, p=1, s=1, groups=16)" and ds["conv2"].params == 144
    assert ds["conv3"].params == 928 and ds["conv3"].output == (14, 14, 58)
    mlp = layer_table(models.create("mlp_2hl_50"), (28, 28, 1))
    assert [(r.name, r.params) for r in mlp.rows] == [("flatten", 0), ("fc1", 39_250), ("fc2", 2_550),
                                                      ("fc3", 510)]
    assert mlp.batch_stats == 0


def test_markdown_has_a_row_per_layer_and_totals():
    text = layer_table(models.create("mnist_cnn_7k"), (28, 28, 1)).markdown()
    assert "| conv1 | Conv2d(1->7, k=3, p=0, s=1) | 26x26x7 | 63 | 3x3 | 1 |" in text
    assert "trainable params: 7,784; batch-norm statistics: 160; size: 31,776 bytes (float32)" in text


# jax.monitoring's duration events that jax 0.10.2 records when it lowers a traced program to MLIR and when
# it asks XLA for an executable (jax._src.dispatch.JAXPR_TO_MLIR_MODULE_EVENT and BACKEND_COMPILE_EVENT; the
# latter also on a persistent-cache hit, as in this suite). Tracing alone (eval_shape) records neither.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def compiles():
    """The names of the functions jax lowers or compiles inside the block, one per event."""
    seen = []

    def listener(event, duration_secs, **kwargs):
        if event in COMPILE_EVENTS:
            seen.append(kwargs.get("fun_name", "?"))
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_table_of_a_large_model_needs_no_compile():
    model = models.create("mlp_3hl_1000")
    with compiles() as seen:
        table = layer_table(model, (28, 28, 1))
    assert seen == [] and table.trainable_params == 2_797_010
    with compiles() as seen:  # The listener does see a compile: a function jax has not seen before.
        jax.jit(lambda x: x * 3.0 + 1.0)(jnp.zeros(3))
    assert len(seen) >= 1, seen


def test_other_models_get_a_row_per_parameter_group():
    """A model tinyjax cannot read layer by layer (a user's): one row per top-level parameter group,
    its shapes and count, receptive field "n/a"; the totals from the real parameter tree."""
    from flax import linen as nn

    class Two(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3, 3), name="conv")(x)
            return nn.Dense(3, name="head")(x.reshape(x.shape[0], -1))

    table = layer_table(Two(), (6, 6, 1))
    assert [(r.name, r.params, r.receptive_field) for r in table.rows] == [("conv", 40, "n/a"), ("head", 435, "n/a")]
    assert table.trainable_params == 475 and "| conv | bias 4, kernel 3x3x1x4 |  | 40 | n/a | n/a |" in table.markdown()


def test_batch_norm_without_scale_keeps_only_the_shift():
    from tinyjax.models import CNN, ConvSpec
    with_scale = layer_table(CNN((ConvSpec(8), ConvSpec(8, depthwise=True))), (12, 12, 1))
    no_scale = layer_table(CNN((ConvSpec(8, bn_scale=False), ConvSpec(8, depthwise=True, bn_scale=False))),
                           (12, 12, 1))
    rows = {r.name: r for r in no_scale.rows}
    assert rows["bn1"].type == "BatchNorm2d(8, no scale)" and rows["bn1"].params == 8
    assert with_scale.trainable_params - no_scale.trainable_params == 16
    assert no_scale.batch_stats == with_scale.batch_stats == 32
