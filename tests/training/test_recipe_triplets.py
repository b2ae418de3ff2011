"""FER+ vote triplets, triplet accuracy and the mixing sampler."""
import numpy as np
import pytest

from deepfever.data.sampling import MixingSampler, allocate
from deepfever.data.triplets import TripletSet, triplet_types, vote_triplets
from deepfever.evaluation.triplets import predicted_odd_one_out, triplet_accuracy


def votes(seed=0, n=300):
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(10, [0.4, 0.25, 0.1, 0.1, 0.05, 0.04, 0.04, 0.02], size=n).astype(float)
    majority = rng.integers(0, 8, n)
    counts[np.arange(n), majority] += rng.integers(0, 8, n)
    return counts / counts.sum(1, keepdims=True)


def tv(p, q):
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def test_vote_triplets_are_clear_oriented_typed_and_deterministic():
    distributions = votes()
    triplets = vote_triplets(distributions, 500, seed=3, margin=0.2)
    assert len(triplets) == 500
    for (a, b, c), kind in zip(triplets.indices, triplets.types):
        assert len({a, b, c}) == 3
        pair = tv(distributions[a], distributions[b])
        assert min(tv(distributions[a], distributions[c]), tv(distributions[b], distributions[c])) - pair >= 0.2 - 1e-9
        assert kind == len({int(distributions[i].argmax()) for i in (a, b, c)})
    again = vote_triplets(distributions, 500, seed=3, margin=0.2)
    assert np.array_equal(triplets.indices, again.indices)
    assert not np.array_equal(triplets.indices, vote_triplets(distributions, 500, seed=4, margin=0.2).indices)


def test_balanced_types_and_impossible_requests():
    balanced = vote_triplets(votes(), 300, seed=0, margin=0.1, balance_types=True)
    assert balanced.type_counts() == {"one_class": 100, "two_class": 100, "three_class": 100}
    identical = np.tile(np.eye(8)[0], (10, 1))
    with pytest.raises(ValueError, match="lower margin"):
        vote_triplets(identical, 5, margin=0.1, max_rounds=3)


def test_triplet_types_counts_distinct_labels():
    assert triplet_types(np.array([[1, 1, 1], [1, 2, 1], [2, 2, 3], [0, 1, 2]])).tolist() == [1, 2, 2, 3]


def test_triplet_accuracy_picks_the_face_outside_the_closest_pair():
    embeddings = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [0.0, 1.0]])
    indices = np.array([[0, 1, 2], [2, 0, 1], [0, 1, 3], [3, 1, 0]])
    assert predicted_odd_one_out(embeddings, indices).tolist() == [2, 0, 2, 0]
    result = triplet_accuracy(embeddings, TripletSet(indices, np.array([1, 2, 3, 3], dtype=np.int8)))
    assert result["accuracy"] == 0.5
    assert result["per_type"]["one_class"] == {"n": 1, "accuracy": 1.0}
    assert result["per_type"]["two_class"] == {"n": 1, "accuracy": 0.0}
    assert result["per_type"]["three_class"] == {"n": 2, "accuracy": 0.5}


def test_vote_embeddings_beat_random_embeddings_on_vote_triplets():
    distributions = votes()
    triplets = vote_triplets(distributions, 2000, seed=1, margin=0.2)
    assert triplet_accuracy(np.sqrt(distributions), triplets)["accuracy"] > 0.9
    random = triplet_accuracy(np.random.default_rng(0).normal(size=(len(distributions), 16)), triplets)["accuracy"]
    assert 0.28 < random < 0.39


def test_allocate_splits_by_ratio_in_whole_units():
    assert allocate(64, [1.0]) == [64]
    assert allocate(64, [0.5, 0.25, 0.25]) == [32, 16, 16]
    assert allocate(64, [0.5, 0.25, 0.25], [1, 3, 1]) == [33, 5, 16]  # 16 images -> 5 triplets, the 16th image moves
    with pytest.raises(ValueError, match="ratio"):
        allocate(8, [0.0, 0.0])


def test_sampler_shards_are_disjoint_and_cover_the_single_process_batches():
    sizes, counts = [48, 7], [4, 2]
    ranks = [MixingSampler(sizes, counts, seed=5, rank=r, world_size=2) for r in range(2)]
    single = MixingSampler(sizes, counts, seed=5)
    first_pass = []
    for step in range(20):
        shards = [next(sampler) for sampler in ranks]
        together = [next(single), next(single)]
        for source in range(2):
            assert np.array_equal(np.concatenate([shard[source] for shard in shards]),
                                  np.concatenate([batch[source] for batch in together]))
        if step < 6:  # 6 steps x 2 ranks x 4 = one pass over source 0
            first_pass += [shards[0][0], shards[1][0]]
    assert sorted(np.concatenate(first_pass).tolist()) == list(range(48))


def test_sampler_visits_every_index_once_per_cycle_and_resumes_exactly():
    sampler = MixingSampler([30, 12], [5, 3], seed=1)
    seen = np.concatenate([next(sampler)[0] for _ in range(6)])
    assert sorted(seen.tolist()) == list(range(30))
    fresh = MixingSampler([30, 12], [5, 3], seed=1)
    expected = [next(fresh) for _ in range(10)]
    resumed = MixingSampler([30, 12], [5, 3], seed=1)
    resumed.load_state_dict({"position": 7})
    for want in expected[7:]:
        got = next(resumed)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert resumed.state_dict() == {"position": 10}
