import jax.numpy as jnp
import numpy as np

from tinyjax.train import cross_entropy_loss

LOGITS = jnp.array([[2.0, 1.0, 0.0], [0.5, -1.0, 3.0]])
LABELS = jnp.array([0, 1])


def test_label_smoothing_hand_computed():
    # PyTorch CrossEntropyLoss(label_smoothing=0.1), K=3: targets (1-0.1)*onehot + 0.1/3.
    # Example 0: lse = log(e^2 + e + 1) = 2.40760596444438;
    # loss = (0.9 + 0.1/3)*(lse - 2) + 0.1/3*(lse - 1) + 0.1/3*lse = 0.50760596444438.
    loss = cross_entropy_loss(LOGITS[:1], LABELS[:1], label_smoothing=0.1)
    np.testing.assert_allclose(loss, 0.50760596444438, rtol=1e-6)


def test_batch_mean_matches_pytorch():
    # torch.nn.functional.cross_entropy(LOGITS, LABELS, label_smoothing=eps), float64.
    np.testing.assert_allclose(cross_entropy_loss(LOGITS, LABELS, 0.1), 2.209973480262715, rtol=1e-6)
    np.testing.assert_allclose(cross_entropy_loss(LOGITS, LABELS, 0.0), 2.2516401469293816, rtol=1e-6)


def test_mask_averages_over_real_examples_only():
    loss = cross_entropy_loss(LOGITS, LABELS, 0.1, mask=jnp.array([True, False]))
    np.testing.assert_allclose(loss, 0.50760596444438, rtol=1e-6)
