"""Clip-level tagging metrics (scikit-learn underneath) and query-by-example retrieval metrics.

Tagging metrics take `targets` (n_clips, n_classes) of 0/1 and `scores` (n_clips, n_classes),
higher = more likely. Retrieval metrics take FAISS neighbours and the same multi-hot targets.
"""

from __future__ import annotations

from statistics import NormalDist

import faiss
import numpy as np
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score


def _with_positives(targets: np.ndarray) -> np.ndarray:
    return targets.sum(axis=0) > 0  # classes that can be scored


def macro_map(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean over classes (those with positives) of each class's average precision."""
    keep = _with_positives(targets)
    return float(average_precision_score(targets[:, keep], scores[:, keep], average="macro"))


def micro_map(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision over all (clip, class) pairs pooled."""
    return float(average_precision_score(targets, scores, average="micro"))


def d_prime(targets: np.ndarray, scores: np.ndarray) -> float:
    """AudioSet's d': sqrt(2) * Phi^-1(mean ROC AUC over classes with positives and negatives)."""
    keep = _with_positives(targets) & _with_positives(1 - targets)
    auc = roc_auc_score(targets[:, keep], scores[:, keep], average="macro")
    auc = min(max(auc, 1e-6), 1 - 1e-6)  # a perfect ranking gives a large d', not infinity
    return float(np.sqrt(2.0) * NormalDist().inv_cdf(auc))


def lwlrap(targets: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (DCASE 2019 task 2): scikit-learn's LRAP
    with each clip weighted by its number of labels, so that every label counts once."""
    keep = targets.sum(axis=1) > 0
    return float(
        label_ranking_average_precision_score(targets[keep], scores[keep], sample_weight=targets[keep].sum(axis=1))
    )


def accuracy(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """Top-1 accuracy, when every clip has exactly one label (ESC-50); None otherwise."""
    if not (targets.sum(axis=1) == 1).all():
        return None
    return float((scores.argmax(axis=1) == targets.argmax(axis=1)).mean())


def tagging_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    targets = (np.asarray(targets) > 0.5).astype(np.int64)  # scikit-learn wants 0/1 integers
    return {
        "macro_map": macro_map(targets, scores),
        "micro_map": micro_map(targets, scores),
        "d_prime": d_prime(targets, scores),
        "lwlrap": lwlrap(targets, scores),
        "accuracy": accuracy(targets, scores),
    }


def leave_one_out_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """Each vector's k nearest others by cosine, exact search: (n, k) indices, best first, -1 where
    fewer than k others exist. The query itself is left out."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x, min(k + 1, len(x)))  # I: (n, k + 1)
    rows = []
    for query, row in enumerate(found):
        others = [h for h in row if h != query and h >= 0][:k]  # ties may put the query second
        rows.append(others + [-1] * (k - len(others)))
    return np.array(rows)


def retrieval_metrics(hits: np.ndarray, targets: np.ndarray) -> dict:
    """hits (n, k) from leave_one_out_neighbours, targets (n, classes) multi-hot -> P@1, P@10,
    mAP@10, recall@10 and P@k over queries that have a relevant clip, overall and per class index.
    Relevant: the two clips share a label."""
    shared = targets @ targets.T > 0  # (n, n): clip pairs that share a label
    np.fill_diagonal(shared, False)
    relevant_total = shared.sum(axis=1)  # (n,)
    relevant = np.take_along_axis(shared, np.maximum(hits, 0), axis=1) & (hits >= 0)  # (n, k)
    k = hits.shape[1]
    precision_at = np.cumsum(relevant, axis=1) / np.arange(1, k + 1)  # (n, k)
    top10 = relevant[:, :10]
    ap10 = (precision_at[:, :10] * top10).sum(axis=1) / np.maximum(1, np.minimum(10, relevant_total))
    per_query = {
        "P@1": relevant[:, 0].astype(float),
        "P@10": top10.mean(axis=1),
        "mAP@10": ap10,
        "recall@10": top10.sum(axis=1) / np.maximum(1, relevant_total),
    }
    has_relevant = relevant_total > 0  # a query with no relevant clip cannot be scored
    overall = {name: float(v[has_relevant].mean()) for name, v in per_query.items()}
    overall["P@k"] = [float(v) for v in precision_at[has_relevant].mean(axis=0)]
    overall["queries"] = int(has_relevant.sum())
    per_class = {}
    for c in range(targets.shape[1]):
        queries = (targets[:, c] > 0) & has_relevant
        if queries.any():
            per_class[c] = {name: float(v[queries].mean()) for name, v in per_query.items()}
    return {"overall": overall, "per_class": per_class}
