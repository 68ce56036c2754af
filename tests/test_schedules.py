"""One-cycle values against torch.optim.lr_scheduler.OneCycleLR (PyTorch 2.13).

Expected numbers were produced by stepping OneCycleLR (SGD, base_momentum 0.85,
max_momentum 0.95) and reading param_groups[0]['lr'/'momentum'] before the
k-th optimizer step; they follow the formula in its get_lr(). torch is not
needed to run this test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinyjax.optim import onecycle

CASES = [
    (dict(total_steps=9380, max_lr=0.05, pct_start=0.2, div_factor=10, final_div_factor=100,
          anneal_strategy="cos", three_phase=False),
     [(0, 0.005, 0.95), (1, 0.00500003158, 0.94999993), (2, 0.00500012633, 0.949999719),
      (1340, 0.0415495636, 0.868778748), (1874, 0.0499999684, 0.85000007), (1875, 0.05, 0.85),
      (1876, 0.0499999978, 0.850000004), (1877, 0.0499999912, 0.850000018),
      (2344, 0.0495201124, 0.850960736), (2813, 0.0480988913, 0.853806023),
      (4688, 0.0345921779, 0.880846491), (8441, 0.00195110868, 0.946193977),
      (9377, 5.00087549e-05, 0.949999982), (9378, 5.00021887e-05, 0.949999996), (9379, 5e-05, 0.95)]),
    (dict(total_steps=100, max_lr=0.1, pct_start=0.3, div_factor=25, final_div_factor=1e4,
          anneal_strategy="linear", three_phase=False),
     [(0, 0.004, 0.95), (1, 0.00731034483, 0.946551724), (14, 0.0503448276, 0.901724138),
      (24, 0.0834482759, 0.867241379), (29, 0.1, 0.85), (30, 0.0985714343, 0.851428571),
      (45, 0.0771429486, 0.872857143), (89, 0.0142860571, 0.935714286),
      (98, 0.00142896571, 0.948571429), (99, 4e-07, 0.95)]),
    (dict(total_steps=1000, max_lr=0.02, pct_start=0.25, div_factor=5, final_div_factor=50,
          anneal_strategy="cos", three_phase=True),
     [(0, 0.004, 0.95), (1, 0.00400063673, 0.94999602), (142, 0.0137520405, 0.889049747),
      (199, 0.0184602498, 0.859623439), (249, 0.02, 0.85), (299, 0.0184602498, 0.859623439),
      (449, 0.00548073219, 0.940745424), (498, 0.004, 0.95), (499, 0.00399996147, 0.95),
      (899, 0.000452883108, 0.95), (998, 8.00385344e-05, 0.95), (999, 8e-05, 0.95)]),
    (dict(total_steps=77, max_lr=1.0, pct_start=0.45, div_factor=3, final_div_factor=7,
          anneal_strategy="linear", three_phase=True),
     [(0, 0.333333333, 0.95), (1, 0.353145121, 0.947028232), (13, 0.590886578, 0.911367013),
      (33, 0.987122338, 0.851931649), (34, 0.993065874, 0.851040119), (36, 0.953442298, 0.856983655),
      (68, 0.310344828, 0.95), (75, 0.0804597701, 0.95), (76, 0.0476190476, 0.95)]),
]


@pytest.mark.parametrize("kwargs,expected", CASES)
def test_matches_pytorch_onecycle(kwargs, expected):
    policy = onecycle(**kwargs)
    steps = jnp.array([k for k, _, _ in expected])
    lr = jax.jit(jax.vmap(policy.learning_rate))(steps)
    momentum = jax.jit(jax.vmap(policy.momentum))(steps)
    np.testing.assert_allclose(lr, [v for _, v, _ in expected], rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(momentum, [m for _, _, m in expected], rtol=2e-6)


def test_momentum_off_when_not_cycled():
    assert onecycle(100, 0.1, cycle_momentum=False).momentum is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(total_steps=1, max_lr=0.1), "at least 2 total steps"),
    (dict(total_steps=100, max_lr=0.1, pct_start=1.0), "pct_start"),
    (dict(total_steps=100, max_lr=0.1, anneal_strategy="exp"), "anneal_strategy"),
    (dict(total_steps=3, max_lr=0.1, pct_start=0.2), "zero length"),
    (dict(total_steps=100, max_lr=0.0), "positive"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        onecycle(**kwargs)


# torch.optim.lr_scheduler.MultiStepLR(SGD(lr=0.1), milestones=[3, 5, 5], gamma=0.2), stepped once per
# epoch of 4 batches; param_groups[0]["lr"] read before every optimizer step (PyTorch 2.13). Every second
# step's value; a milestone listed twice decays twice.
PIECEWISE_EXPECTED = [0.1] * 6 + [0.020000000000000004] * 4 + [0.0008000000000000004] * 6


def test_piecewise_constant_matches_pytorch_multisteplr():
    from tinyjax.optim import piecewise_constant

    lr = piecewise_constant(0.1, (3, 5, 5), 0.2, steps_per_epoch=4)
    values = jax.jit(jax.vmap(lr))(jnp.arange(0, 32, 2))
    np.testing.assert_allclose(values, PIECEWISE_EXPECTED, rtol=1e-6)
    # The drop lands on the first step of the milestone's epoch, exactly.
    assert float(lr(11)) == pytest.approx(0.1) and float(lr(12)) == pytest.approx(0.02)


# torch.optim.lr_scheduler.CosineAnnealingLR(SGD(lr=0.05), T_max=37, eta_min=1e-4) stepped per batch.
COSINE_EXPECTED = [(0, 0.05), (1, 0.049910117339136036), (5, 0.04778515083518398), (12, 0.038131466724752934),
                   (18, 0.026108908019743905), (19, 0.023991091980256105), (30, 0.004378684251366141),
                   (36, 0.0001898826608639633), (37, 0.0001)]


def test_cosine_matches_pytorch_cosineannealinglr():
    from tinyjax.optim import cosine

    lr = cosine(0.05, 37, min_lr=1e-4)
    steps = jnp.array([t for t, _ in COSINE_EXPECTED])
    np.testing.assert_allclose(jax.jit(jax.vmap(lr))(steps), [v for _, v in COSINE_EXPECTED], rtol=2e-6)
    assert float(lr(50)) == pytest.approx(1e-4)  # Past T_max: stays at eta_min.


@pytest.mark.parametrize("args,match", [
    ((0.1, (5, 3), 0.1, 10), "increasing"), ((0.1, (-1,), 0.1, 10), "non-negative"),
    ((0.1, (3,), 0.0, 10), "gamma"), ((0.1, (3,), 0.1, 0), "steps_per_epoch"),
])
def test_piecewise_bad_arguments_raise(args, match):
    from tinyjax.optim import piecewise_constant

    with pytest.raises(ValueError, match=match):
        piecewise_constant(*args)
