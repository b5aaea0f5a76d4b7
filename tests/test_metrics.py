"""Tagging and retrieval metrics against their definitions, worked by hand."""

import numpy as np
import pytest

from diverse_embed.metrics import d_prime, leave_one_out_neighbours, lwlrap, macro_map, retrieval_metrics


def test_metrics_match_their_definitions():
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7], [0.1, 0.3]])
    assert macro_map(targets, scores) == pytest.approx(1.0)
    # lwlrap by hand: each (clip, label) pair's precision at its rank, averaged over pairs.
    assert lwlrap(targets, np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.7], [0, 0]])) == pytest.approx(
        (0.5 + 1 + 1 + 1) / 4
    )


def test_d_prime_of_a_perfect_and_a_chance_ranking():
    targets = np.array([[1], [0], [1], [0]])
    assert d_prime(targets, np.array([[0.6], [0.4], [0.4], [0.6]])) == pytest.approx(0.0)  # AUC 0.5
    assert d_prime(targets, np.array([[0.9], [0.1], [0.8], [0.2]])) > 5  # AUC 1: the top of the scale


def test_retrieval_metrics_by_hand():
    # 4 clips: 0 and 1 share class A, 2 and 3 share class B; clip 3 also has A.
    targets = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    hits = np.array([[2, 1, 3], [0, 3, 2], [0, 1, 3], [2, 0, 1]])
    m = retrieval_metrics(hits, targets)["overall"]
    # relevant flags: q0 [0,1,1] (2 relevant), q1 [1,1,0] (2), q2 [0,0,1] (1), q3 [1,1,1] (3)
    assert m["P@1"] == pytest.approx((0 + 1 + 0 + 1) / 4)
    ap = [(1 / 2 + 2 / 3) / 2, (1 + 1) / 2, (1 / 3) / 1, (1 + 1 + 1) / 3]
    assert m["mAP@10"] == pytest.approx(np.mean(ap))
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["P@k"][:3] == pytest.approx([0.5, (1 + 2 + 0 + 2) / 8, (2 + 2 + 1 + 3) / 12])


def test_search_leaves_the_query_out():
    vectors = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    hits = leave_one_out_neighbours(vectors, 5)
    assert hits.shape == (30, 5) and not (hits == np.arange(30)[:, None]).any()
    assert leave_one_out_neighbours(vectors[:3], 5)[0].tolist()[2:] == [-1, -1, -1]  # fewer clips than k
