"""Recipe losses (CCC, FEC triplet, distillation) against naive float64 loops."""
import math

import numpy as np
import pytest
import torch

from deepfever.training.losses import (
    ConcordanceLoss, EmbeddingDistillation, FecTripletLoss, SoftenedKLDivergence, squared_euclidean,
)


def naive_ccc_per_sample(prediction, target):
    n, k = prediction.shape
    denominators = []
    for column in range(k):
        pairs = [(prediction[i, column], target[i, column]) for i in range(n) if not math.isnan(target[i, column])]
        p = [a for a, _ in pairs]
        t = [b for _, b in pairs]
        mp, mt = sum(p) / len(p), sum(t) / len(t)
        vp = sum((x - mp) ** 2 for x in p) / len(p)
        vt = sum((x - mt) ** 2 for x in t) / len(t)
        denominators.append(vp + vt + (mp - mt) ** 2)
    values = []
    for i in range(n):
        parts = [(prediction[i, c] - target[i, c]) ** 2 / denominators[c] for c in range(k) if not math.isnan(target[i, c])]
        if parts:
            values.append(sum(parts) / len(parts))
    return np.array(values)


def naive_ccc(p, t):
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    return 2 * cov / (p.var() + t.var() + (mp - mt) ** 2)


def test_ccc_per_sample_values_match_naive_loop_and_average_to_one_minus_ccc():
    rng = np.random.default_rng(0)
    prediction = rng.uniform(-1, 1, (20, 2))
    target = np.clip(prediction * 0.5 + rng.normal(0, 0.3, (20, 2)), -1, 1)
    target[[3, 7, 11]] = np.nan  # samples without valence/arousal
    target[5, 1] = np.nan  # a sample with valence only
    loss = ConcordanceLoss(eps=0)
    values = loss.compute(torch.from_numpy(prediction), torch.from_numpy(target)).double().numpy()
    np.testing.assert_allclose(values, naive_ccc_per_sample(prediction, target), rtol=1e-5)
    shared = ~np.isnan(target).any(axis=1)
    both = torch.from_numpy(np.where(shared[:, None], target, np.nan))
    expected = np.mean([1 - naive_ccc(prediction[shared, c], target[shared, c]) for c in range(2)])
    assert loss(torch.from_numpy(prediction), both).item() == pytest.approx(expected, rel=1e-5)


def test_ccc_of_a_perfect_prediction_is_zero_and_unlabelled_batch_keeps_the_graph():
    target = torch.tensor([[0.1, -0.5], [0.7, 0.2], [-0.3, 0.9]])
    assert ConcordanceLoss()(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)
    prediction = torch.zeros(4, 2, requires_grad=True)
    value = ConcordanceLoss()(prediction, torch.full((4, 2), float("nan")))
    value.backward()
    assert value.item() == 0.0 and prediction.grad is not None


def naive_triplet(embeddings, triplets, types, margins):
    values = []
    for (a, b, c), kind in zip(triplets, types):
        d = lambda i, j: sum((x - y) ** 2 for x, y in zip(embeddings[i], embeddings[j]))  # noqa: E731
        m = margins[kind]
        values.append(max(0.0, d(a, b) - d(a, c) + m) + max(0.0, d(a, b) - d(b, c) + m))
    return np.array(values)


def test_fec_triplet_loss_matches_naive_loop_with_type_margins():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(12, 6, generator=generator, dtype=torch.float64), dim=1)
    triplets = torch.randint(0, 12, (30, 3), generator=generator)
    types = torch.randint(1, 4, (30,), generator=generator)
    loss = FecTripletLoss()
    expected = naive_triplet(embeddings.numpy(), triplets.numpy(), types.numpy(), {1: 0.1, 2: 0.2, 3: 0.2})
    np.testing.assert_allclose(loss.compute(embeddings, triplets, types).double().numpy(), expected, rtol=1e-5, atol=1e-7)
    assert loss(embeddings, triplets, types).item() == pytest.approx(expected.mean(), rel=1e-5)
    assert squared_euclidean(embeddings[:1], embeddings[1:2]).item() == pytest.approx(float(((embeddings[0] - embeddings[1]) ** 2).sum()))


def test_empty_triplet_set_returns_a_graph_carrying_zero_and_unknown_types_are_refused():
    embeddings = torch.randn(4, 3, requires_grad=True)
    value = FecTripletLoss()(embeddings, torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and embeddings.grad is not None
    with pytest.raises(ValueError, match="no margin"):
        FecTripletLoss()(embeddings, torch.tensor([[0, 1, 2]]), torch.tensor([7]))


def naive_kl(student, teacher, temperature):
    values = []
    for s, t in zip(student, teacher):
        ps = np.exp(s / temperature) / np.exp(s / temperature).sum()
        pt = np.exp(t / temperature) / np.exp(t / temperature).sum()
        values.append(sum(q * math.log(q / p) for p, q in zip(ps, pt)) * temperature ** 2)
    return np.array(values)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_softened_kl_matches_naive_loop(temperature):
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(10, 8, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(10, 8, generator=generator, dtype=torch.float64) * 3
    expected = naive_kl(student.numpy(), teacher.numpy(), temperature)
    np.testing.assert_allclose(SoftenedKLDivergence(temperature).compute(student, teacher).double().numpy(), expected, rtol=1e-4)
    assert SoftenedKLDivergence(temperature)(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_embedding_distillation_matches_naive_loop():
    generator = torch.Generator().manual_seed(2)
    student = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    teacher = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    cosine = [1 - float(s @ t) / (np.linalg.norm(s) * np.linalg.norm(t)) for s, t in zip(student.numpy(), teacher.numpy())]
    mse = [float(((s - t) ** 2).mean()) for s, t in zip(student.numpy(), teacher.numpy())]
    np.testing.assert_allclose(EmbeddingDistillation("cosine").compute(student, teacher).double().numpy(), cosine, rtol=1e-5)
    np.testing.assert_allclose(EmbeddingDistillation("mse").compute(student, teacher).double().numpy(), mse, rtol=1e-5)
    with pytest.raises(ValueError, match="cosine"):
        EmbeddingDistillation("l1")
