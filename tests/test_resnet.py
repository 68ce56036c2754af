import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax import models
from tinyjax.models.resnet import BasicBlock, ResNet, pad_shortcut
from tinyjax.models.summary import layer_table

CIFAR = (32, 32, 3)


def shapes(model, batch=1, size=32):
    """Variables of ``model`` as shapes and dtypes only (nothing compiled)."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((batch, size, size, 3))))


def apply(model, variables, x, **kwargs):
    """``model.apply`` under jit: on CPU one compile is faster than compiling op by op."""
    return jax.jit(functools.partial(model.apply, **kwargs))(variables, x)


# Real values come from one small ResNet with both kinds of block: identity
# (stage 1) and 16 -> 64 with stride 2 and a 1x1-conv shortcut (stage 2),
# whose 3x3x64x64 conv2 is big enough for init statistics. 8x8 inputs keep it
# fast, and so does the "rbg" key: the same initialisers, but a program that
# compiles in ~2 s on CPU instead of ~5 s with the default threefry key.
SMALL = ResNet((1, 1), (16, 64), stem_width=16, shortcut="B", dropout=0.5)
X = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))


@pytest.fixture(scope="module")
def small_variables():
    return jax.jit(SMALL.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 3)))


@pytest.mark.parametrize("name,params", [
    ("resnet_7x3", 4_985_390),  # reference 004, as its report states
    ("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586), ("resnet56", 853_018),
    ("resnet110", 1_727_962),  # He et al. 2015 (option A): 0.27M ... 1.7M
    ("resnet18", 11_173_962),  # the usual CIFAR ResNet-18
])
def test_preset_parameter_counts_and_logits_shape(name, params):
    model = models.create(name)
    assert models.count_params(shapes(model)["params"]) == params
    logits = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), jnp.ones((3,) + CIFAR)),
                                                jnp.ones((3,) + CIFAR)))
    chex.assert_shape(logits, (3, 10))
    assert logits.dtype == jnp.float32


def test_logits_are_finite_and_dropout_acts_in_train_mode_only(small_variables):
    logits = apply(SMALL, small_variables, X)
    chex.assert_shape(logits, (4, 10))
    chex.assert_tree_all_finite(logits)
    np.testing.assert_array_equal(apply(SMALL, small_variables, X), logits)
    train = lambda key: apply(SMALL, small_variables, X, train=True, mutable=["batch_stats"],
                              rngs={"dropout": jax.random.key(key)})
    (a, state), (b, _) = train(0), train(1)
    chex.assert_tree_all_finite((a, state))
    assert not np.allclose(a, b)


def test_pad_shortcut_subsamples_and_zero_pads_channels():
    x = jnp.arange(2 * 5 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 5, 3)
    y = pad_shortcut(x, 8, 2)
    chex.assert_shape(y, (2, 3, 3, 8))  # ceil(5 / 2), as a 3x3 conv with padding 1 and stride 2.
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0.0)
    with pytest.raises(ValueError, match="cannot reduce 8 channels to 3; use shortcut='B'"):
        pad_shortcut(y, 3, 1)


def test_option_a_block_adds_the_padded_input():
    # With bn2's scale at 0 the residual branch gives 0 (bias 0), so a
    # downsampling block returns relu(shortcut(x)) = the padded input for x >= 0.
    block = BasicBlock(8, stride=2, shortcut="A")
    x = jnp.abs(X[:, :4, :4, :]).repeat(2, axis=-1)  # [4, 4, 4, 6]
    variables = jax.eval_shape(lambda: block.init(jax.random.key(0), x))
    assert set(variables["params"]) == {"conv1", "bn1", "conv2", "bn2"}  # No shortcut parameters.
    rng = np.random.default_rng(0)
    draw = lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32)
    variables = jax.tree_util.tree_map(draw, variables)  # Train mode leaves the running statistics unused.
    variables["params"]["bn2"]["scale"] = jnp.zeros(8)
    variables["params"]["bn2"]["bias"] = jnp.zeros(8)
    out = apply(block, variables, x, train=True, mutable=["batch_stats"])[0]
    np.testing.assert_allclose(out, jnp.pad(x[:, ::2, ::2], ((0, 0), (0, 0), (0, 0), (0, 2))), atol=1e-6)


def test_shortcut_parameters_only_where_the_shape_changes():
    he = shapes(models.create("resnet20"))["params"]
    assert set(he["stage2_block1"]) == {"conv1", "bn1", "conv2", "bn2"}  # Option A: none.
    seed = shapes(models.create("resnet_7x3"))["params"]
    assert set(seed["stage1_block1"]) == {"conv1", "bn1", "conv2", "bn2"}  # 32 -> 32, stride 1: identity.
    assert seed["stage2_block1"]["shortcut_conv"]["kernel"].shape == (1, 1, 32, 64)
    assert seed["stage3_block1"]["shortcut_bn"]["scale"].shape == (190,)
    assert "shortcut_conv" not in seed["stage3_block2"]
    assert seed["stem_conv"]["kernel"].shape == (3, 3, 3, 32) and "bias" not in seed["stem_conv"]


def test_downsampling_halves_the_map():
    model = models.create("resnet20")
    x = jnp.ones((2,) + CIFAR)
    _, state = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x, train=True,
                                                  mutable=["batch_stats"]))
    stats = state["batch_stats"]
    assert stats["stage1_block3"]["bn2"]["mean"].shape == (16,)
    assert stats["stage3_block1"]["bn1"]["var"].shape == (64,)


def test_kaiming_normal_fan_out_init(small_variables):
    params = small_variables["params"]
    # torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / (3 * 3 * 64)).
    w = np.asarray(params["stage2_block1"]["conv2"]["kernel"])  # 36,864 draws: std within ~1%.
    np.testing.assert_allclose(w.std(), np.sqrt(2 / (9 * 64)), rtol=0.03)
    assert abs(w.mean()) < 0.05 * w.std()
    assert 0.035 < np.mean(np.abs(w) > 2 * w.std()) < 0.055  # Plain normal: 4.6% beyond 2 std (truncated: 0).
    # Dense kernel fan_out = 10 classes; bias PyTorch's U(-1/sqrt(64), 1/sqrt(64)).
    np.testing.assert_allclose(np.asarray(params["fc"]["kernel"]).std(), np.sqrt(2 / 10), rtol=0.15)
    bias = np.abs(np.asarray(params["fc"]["bias"]))
    assert 0 < bias.max() <= 1 / 8
    for name in ("stem_bn", "stage1_block1/bn2", "stage2_block1/shortcut_bn"):
        bn = params
        for key in name.split("/"):
            bn = bn[key]
        np.testing.assert_array_equal(bn["scale"], 1.0)
        np.testing.assert_array_equal(bn["bias"], 0.0)


@pytest.mark.parametrize("name,mode", [("resnet20", "fan_in"), ("resnet56", "fan_in"), ("resnet_7x3", "fan_out"),
                                       ("resnet18", "fan_out")])
def test_presets_init_mode(name, mode):
    # He et al.'s presets: the common PyTorch CIFAR-ResNet code's kaiming_normal_ (fan_in); the others
    # torchvision's fan_out.
    assert models.create(name).init_mode == mode


def test_kaiming_normal_fan_in_init():
    model = SMALL.clone(init_mode="fan_in")
    params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 3)))["params"]
    # Stage 2's first conv maps 16 -> 64 channels: fan_in 3*3*16, fan_out 3*3*64 (2x the std apart).
    w = np.asarray(params["stage2_block1"]["conv1"]["kernel"])  # 9,216 draws
    np.testing.assert_allclose(w.std(), np.sqrt(2 / (9 * 16)), rtol=0.04)
    np.testing.assert_allclose(np.asarray(params["stem_conv"]["kernel"]).std(), np.sqrt(2 / (9 * 3)), rtol=0.15)
    # Dense 64 -> 10: std sqrt(2 / 64), 2.5x below fan_out's sqrt(2 / 10).
    np.testing.assert_allclose(np.asarray(params["fc"]["kernel"]).std(), np.sqrt(2 / 64), rtol=0.15)


def test_unknown_init_mode_raises():
    with pytest.raises(ValueError, match="init_mode"):
        ResNet((1,), (16,), init_mode="xavier")


def test_mask_keeps_padding_out_of_batch_statistics(small_variables):
    model = SMALL.clone(dropout=0.0)  # Same parameters; dropout masks depend on the batch size.
    padded = jnp.concatenate([X, 100.0 * jnp.ones((2, 8, 8, 3))])
    mask = jnp.array([True] * 4 + [False] * 2)
    logits, stats = apply(model, small_variables, X, train=True, mutable=["batch_stats"])
    logits_p, stats_p = apply(model, small_variables, padded, train=True, mask=mask, mutable=["batch_stats"])
    np.testing.assert_allclose(logits_p[:4], logits, rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(stats_p, stats, rtol=1e-4, atol=1e-5)


def test_bfloat16_computes_in_bf16_and_keeps_float32_state(small_variables):
    f32 = SMALL.clone(dropout=0.0)
    bf16 = f32.clone(dtype=jnp.bfloat16)
    assert {a.dtype for a in jax.tree_util.tree_leaves(shapes(bf16, size=8))} == {jnp.dtype(jnp.float32)}
    logits, inter = apply(bf16, small_variables, X, capture_intermediates=True)
    assert logits.dtype == jnp.float32
    inter = inter["intermediates"]
    assert inter["stem_conv"]["__call__"][0].dtype == jnp.bfloat16
    assert inter["stage2_block1"]["shortcut_bn"]["__call__"][0].dtype == jnp.bfloat16
    assert inter["fc"]["__call__"][0].dtype == jnp.bfloat16
    # bf16 keeps 8 significant bits (relative step 2^-8 = 0.4%): a few layers stay within ~3%.
    reference = apply(f32, small_variables, X)
    np.testing.assert_allclose(logits, reference, atol=0.03 * np.abs(reference).max())
    (_, stats), (_, stats32) = (apply(m, small_variables, X, train=True, mutable=["batch_stats"])
                                for m in (bf16, f32))
    assert {a.dtype for a in jax.tree_util.tree_leaves(stats)} == {jnp.dtype(jnp.float32)}
    chex.assert_trees_all_close(stats, stats32, rtol=0.03, atol=0.03)


def test_create_with_a_dtype():
    model = models.create("resnet56", dtype="bfloat16")
    assert isinstance(model, ResNet) and model.dtype == jnp.bfloat16 and model.stage_blocks == (9, 9, 9)
    assert models.create("resnet20", dtype=jnp.float32) == models.create("resnet20")
    assert models.create("mnist_cnn_7k", dtype=jnp.float32) == models.create("mnist_cnn_7k")
    with pytest.raises(ValueError, match="mnist_cnn_7k \\(CNN\\) supports only float32"):
        models.create("mnist_cnn_7k", dtype=jnp.bfloat16)


@pytest.mark.parametrize("kwargs,message", [
    (dict(stage_blocks=(3, 3), stage_widths=(16, 32, 64)), "same non-zero length; give one width per stage"),
    (dict(stage_blocks=(), stage_widths=()), "same non-zero length"),
    (dict(stage_blocks=(3, 0), stage_widths=(16, 32)), "drop empty stages"),
    (dict(stage_blocks=(3,), stage_widths=(16,), shortcut="C"), "unknown shortcut 'C'; use 'A'"),
    (dict(stage_blocks=(3, 3), stage_widths=(32, 16)), "shortcut 'A' needs non-decreasing widths"),
    (dict(stage_blocks=(3,), stage_widths=(16,), dropout=1.0), "dropout is a rate in \\[0, 1\\)"),
])
def test_invalid_specs_raise_with_a_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet(**kwargs)


def test_layer_table_of_resnet20():
    table = layer_table(models.create("resnet20"), CIFAR)
    rows = {r.name: r for r in table.rows}
    assert len(rows) == 1 + 2 * 9 + 2  # stem, 18 block convs, gap, fc; option A adds no rows.
    assert sum(r.params for r in table.rows) == table.trainable_params == 269_722
    assert table.batch_stats == 2 * (16 + 2 * 3 * (16 + 32 + 64))
    assert rows["stem_conv"].params == 3 * 3 * 3 * 16 + 2 * 16  # conv + BatchNorm scale and shift
    # Receptive field r += 2 * jump per 3x3 conv, jump *= stride. Stem: r = 3, j = 1.
    # Stage 1, six convs at j = 1: 3 + 12 = 15. Stage 2: conv1 (s=2) 15 + 2 = 17, j = 2,
    # then five convs at j = 2: 17 + 20 = 37. Stage 3: conv1 (s=2) 37 + 4 = 41, j = 4,
    # then five convs at j = 4: 41 + 40 = 81. GAP over the 8x8 map: 81 + 7 * 4 = 109.
    last = rows["stage3_block3/conv2"]
    assert (last.output, last.receptive_field, last.jump) == ((8, 8, 64), 81, 4)
    assert (rows["stage2_block1/conv1"].receptive_field, rows["stage2_block1/conv1"].jump) == (17, 2)
    assert (rows["gap"].receptive_field, rows["gap"].jump) == (109, 32)
    assert rows["stage2_block1/conv1"].type == "Conv2d(16->32, k=3, p=1, s=2) + BatchNorm2d"


def test_layer_table_of_the_seed_004_resnet():
    table = layer_table(models.create("resnet_7x3"), CIFAR)
    rows = {r.name: r for r in table.rows}
    assert sum(r.params for r in table.rows) == table.trainable_params == 4_985_390
    shortcut = rows["stage3_block1/shortcut_conv"]
    # A 1x1 stride-2 conv on the block's input (r = 85, j = 2 after stage 2): r stays, j doubles.
    assert (shortcut.output, shortcut.params, shortcut.receptive_field, shortcut.jump) == (
        (8, 8, 190), 64 * 190 + 2 * 190, 85, 4)
    assert rows["stage3_block1/conv2"].receptive_field == 97
    assert rows["dropout"].type == "Dropout(0.3)" and rows["fc"].params == 190 * 10 + 10
    row = "| stage3_block1/shortcut_conv | Conv2d(64->190, k=1, p=0, s=2) + BatchNorm2d | 8x8x190 | 12,540 |"
    assert row in table.markdown()
