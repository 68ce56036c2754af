import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax import models
from tinyjax.models import torch_init


def init(model, batch=1):
    return model.init(jax.random.key(0), jnp.zeros((batch, 28, 28, 1)))


def test_seed_000_cnn_has_7784_params_and_10_logits():
    model = models.create("mnist_cnn_7k")
    variables = init(model)
    assert models.count_params(variables["params"]) == 7784
    # 7 BatchNorms over 7+7+10+10+12+16+18 = 80 channels: mean and var each.
    assert models.count_params(variables["batch_stats"]) == 160
    logits = model.apply(variables, jnp.ones((5, 28, 28, 1)))
    chex.assert_shape(logits, (5, 10))
    chex.assert_tree_all_finite(logits)


def test_layer_shapes_follow_the_seed():
    params = init(models.create("mnist_cnn_7k"))["params"]
    kernels = [params[f"conv{i}"]["kernel"].shape for i in range(1, 8)]
    assert kernels == [(3, 3, 1, 7), (3, 3, 7, 7), (3, 3, 7, 10), (3, 3, 10, 10), (3, 3, 10, 12),
                       (3, 3, 12, 16), (3, 3, 16, 18)]
    assert all("bias" not in params[f"conv{i}"] for i in range(1, 8))
    assert params["fc"]["kernel"].shape == (18, 10)


def test_pytorch_default_init_bounds():
    # kaiming_uniform(a=sqrt(5)) and the Linear bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    params = init(models.create("mnist_cnn_7k"))["params"]
    for name, fan_in in [("conv1", 9), ("conv7", 16 * 9)]:
        w = np.asarray(params[name]["kernel"])
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    dense = params["fc"]
    assert np.abs(dense["kernel"]).max() <= 1 / np.sqrt(18)
    assert np.abs(dense["bias"]).max() <= 1 / np.sqrt(18) and np.abs(dense["bias"]).max() > 0


def test_mask_keeps_padding_out_of_batch_statistics():
    model = models.create("mnist_cnn_7k")
    variables = init(model)
    x = jax.random.normal(jax.random.key(1), (4, 28, 28, 1))
    padded = jnp.concatenate([x, 100.0 * jnp.ones((2, 28, 28, 1))])
    mask = jnp.array([True] * 4 + [False] * 2)
    apply = jax.jit(lambda x, mask: model.apply(variables, x, train=True, mask=mask, mutable=["batch_stats"]))
    logits, stats = apply(x, None)
    logits_p, stats_p = apply(padded, mask)
    np.testing.assert_allclose(logits_p[:4], logits, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(stats_p, stats, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("size", [22, 7, 4])
def test_max_pool_matches_flax_in_value_and_gradient(size):
    from flax import linen as nn
    from tinyjax.models.cnn import max_pool
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
    reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
    chex.assert_shape(max_pool(x), (2, size // 2, size // 2, 3))
    np.testing.assert_array_equal(max_pool(x), reference(x))
    weights = jax.random.normal(jax.random.key(1), (2, size // 2, size // 2, 3))
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * weights))(x)
    np.testing.assert_array_equal(grad(max_pool), grad(reference))


@pytest.mark.parametrize("channels,features,kernel,stride,padding,bias", [
    (16, 16, 3, 1, 0, False), (16, 16, 3, 1, 1, True), (8, 16, 3, 2, 1, False), (4, 12, 5, 2, 0, True),
])
def test_depthwise_conv_matches_grouped_conv(channels, features, kernel, stride, padding, bias):
    from flax import linen as nn
    from tinyjax.models.cnn import DepthwiseConv
    from tinyjax.models.torch_init import bias_init, kernel_init
    x = jax.random.normal(jax.random.key(0), (2, 11, 11, channels))
    ours = DepthwiseConv(features, kernel, stride, padding, bias)
    grouped = nn.Conv(features, (kernel, kernel), strides=stride, padding=padding, use_bias=bias,
                      feature_group_count=channels, kernel_init=kernel_init, bias_init=bias_init(kernel ** 2))
    # Each computation one jitted program: op by op, every shape compiles on its own (seconds each on 2 cores).
    variables = jax.jit(ours.init)(jax.random.key(1), x)
    chex.assert_trees_all_equal(variables, jax.jit(grouped.init)(jax.random.key(1), x))  # Same init draw.
    out = jax.jit(ours.apply)(variables, x)
    chex.assert_trees_all_close(out, jax.jit(grouped.apply)(variables, x), rtol=1e-5, atol=1e-5)
    weights = jax.random.normal(jax.random.key(2), out.shape)
    grad = lambda m: jax.jit(jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * weights), argnums=(0, 1)))(variables, x)
    chex.assert_trees_all_close(grad(ours), grad(grouped), rtol=1e-4, atol=1e-4)


def test_depthwise_conv_rejects_features_not_a_multiple_of_channels():
    from tinyjax.models.cnn import DepthwiseConv
    with pytest.raises(ValueError, match="multiple of its 16 input channels"):
        DepthwiseConv(24).init(jax.random.key(0), jnp.zeros((1, 8, 8, 16)))


@pytest.mark.parametrize("name,params", [
    ("mnist_cnn_7k", 7_784), ("mnist_cnn_7k_dropout", 7_784),  # reference 000
    ("mnist_cnn_18k", 18_662),                                  # reference 001
    ("mnist_dsconv_2k", 1_986),                                 # reference 002
    ("mnist_tiny_2k", 2_031),                                   # ours, under 2,048
    ("mlp_2hl_50", 42_310), ("mlp_3hl_1000", 2_797_010),        # reference 003, as it states
    ("mlp_1hl_50", 784 * 50 + 50 + 50 * 10 + 10),               # and by the formula
    ("mlp_3hl_10", 784 * 10 + 10 + 2 * (10 * 10 + 10) + 10 * 10 + 10),
    ("mlp_3hl_50", 784 * 50 + 50 + 2 * (50 * 50 + 50) + 50 * 10 + 10),
    ("mlp_3hl_50_sigmoid", 784 * 50 + 50 + 2 * (50 * 50 + 50) + 50 * 10 + 10),
    ("mlp_3hl_100", 784 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10),
])
def test_preset_parameter_counts(name, params):
    model = models.create(name)
    variables = jax.eval_shape(lambda: init(model))
    assert models.count_params(variables["params"]) == params
    chex.assert_shape(jax.eval_shape(lambda: model.apply(init(model), jnp.ones((3, 28, 28, 1)))), (3, 10))


def test_seed_001_layers_have_bias_and_reach_1x1():
    model = models.create("mnist_cnn_18k")
    params = jax.eval_shape(lambda: init(model))["params"]
    assert params["conv1"]["bias"].shape == (14,) and params["conv7"]["kernel"].shape == (3, 3, 22, 22)
    _, state = jax.eval_shape(lambda: model.apply(init(model), jnp.ones((2, 28, 28, 1)), train=True,
                                                 mutable=["batch_stats"]))
    assert state["batch_stats"]["bn7"]["mean"].shape == (22,)


@pytest.mark.slow
def test_dropout_variant_differs_in_train_mode_only():
    model = models.create("mnist_cnn_7k_dropout")
    variables = init(model)
    x = jax.random.normal(jax.random.key(2), (4, 28, 28, 1))
    evaluate = jax.jit(model.apply)
    np.testing.assert_array_equal(evaluate(variables, x), evaluate(variables, x))
    train = jax.jit(lambda key: model.apply(variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": key}))
    a, _ = train(jax.random.key(0))
    b, _ = train(jax.random.key(1))
    assert not np.allclose(a, b)


def test_unknown_model_raises():
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        models.create("resnet9")


@pytest.mark.parametrize("mode,distribution", [("fan_in", "uniform"), ("fan_out", "normal")])
def test_flat_draw_initialisers_equal_jax_variance_scaling_bit_for_bit(mode, distribution):
    """tinyjax.models.torch_init.variance_scaling draws on the flat shape (a fast compile) and must give
    jax's values exactly: a conv kernel [kh, kw, in, out], a Dense kernel [in, out]."""
    ours = torch_init.variance_scaling(2.0, mode, distribution)
    theirs = jax.nn.initializers.variance_scaling(2.0, mode, distribution)
    for shape in [(3, 3, 7, 10), (288, 10)]:
        key = jax.random.key(sum(shape))
        np.testing.assert_array_equal(ours(key, shape), theirs(key, shape, jnp.float32))
    with pytest.raises(ValueError, match="not supported"):
        torch_init.variance_scaling(1.0, "fan_avg", "uniform")


@pytest.mark.parametrize("shape", [(2, 5, 5, 3), (8, 190)])
def test_flat_draw_dropout_equals_flax_dropout_bit_for_bit(shape):
    """tinyjax.models.dropout.Dropout draws its mask on the flat shape (a fast compile) and must give
    flax's nn.Dropout's output exactly, inside a model too (its auto-name, so its rng stream, is flax's)."""
    from flax import linen as nn
    from tinyjax.models.dropout import Dropout

    class Twice(nn.Module):
        layer: type

        @nn.compact
        def __call__(self, x):
            return self.layer(0.3, deterministic=False)(self.layer(0.5, deterministic=False)(x))

    x = jax.random.normal(jax.random.key(1), shape)
    rngs = {"dropout": jax.random.key(7)}
    ours, theirs = Twice(Dropout).apply({}, x, rngs=rngs), Twice(nn.Dropout).apply({}, x, rngs=rngs)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < np.mean(np.asarray(ours) == 0) < 1
    assert Dropout(0.3).apply({}, x, deterministic=True) is x
