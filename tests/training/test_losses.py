import numpy as np
import torch

from deepfever.training.losses import SoftCrossEntropy


def naive_soft_ce(logits: np.ndarray, target: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    values = []
    for row, goal in zip(logits.astype(np.float64), target.astype(np.float64)):
        log_z = np.log(np.sum(np.exp(row - row.max()))) + row.max()
        value = -sum(g * (r - log_z) for g, r in zip(goal, row))
        if weights is not None:
            value *= float(goal @ weights)
        values.append(value)
    return np.array(values)


def test_soft_cross_entropy_matches_naive_loop():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 8, generator=generator, dtype=torch.float64)
    target = torch.rand(16, 8, generator=generator, dtype=torch.float64)
    target /= target.sum(1, keepdim=True)
    weights = torch.rand(8, generator=generator, dtype=torch.float64) + 0.5
    for class_weights in (None, weights):
        loss = SoftCrossEntropy(class_weights)
        expected = naive_soft_ce(logits.numpy(), target.numpy(), None if class_weights is None else weights.numpy())
        np.testing.assert_allclose(loss.compute(logits, target).numpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(loss(logits, target).item(), expected.mean(), rtol=1e-6)


def test_hard_labels_equal_one_hot_targets():
    logits = torch.randn(5, 8)
    labels = torch.tensor([0, 3, 7, 2, 2])
    loss = SoftCrossEntropy()
    assert torch.allclose(loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))


def test_empty_batch_gives_a_graph_carrying_zero():
    logits = torch.zeros(0, 8, requires_grad=True)
    value = SoftCrossEntropy()(logits, torch.zeros(0, 8))
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None
