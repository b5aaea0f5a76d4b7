"""Clip-level tagging metrics, scikit-learn underneath.

All take `targets` (n_clips, n_classes) of 0/1 and `scores` (n_clips, n_classes), higher = more likely.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
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
    return float(np.sqrt(2.0) * norm.ppf(auc))


def lwlrap(targets: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (DCASE 2019 task 2): scikit-learn's LRAP
    with each clip weighted by its number of labels, so that every label counts once."""
    keep = targets.sum(axis=1) > 0
    return float(label_ranking_average_precision_score(targets[keep], scores[keep], sample_weight=targets[keep].sum(axis=1)))


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
