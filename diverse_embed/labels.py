"""Labels: a model's label names and their corpus groups, and the scores a head gives them.

A label named "corpus/label" belongs to a corpus (datasets.py reads a manifest's corpus column that
way): every corpus keeps its own label space, trained with a softmax of its own, so its scores are
read per corpus too. Training, evaluation, `tag` and the benchmarks all read labels through this module.
"""

from __future__ import annotations

import csv
import os

import numpy as np


def multi_hot(label_lists: list[list[int]], n_classes: int) -> np.ndarray:
    """Class indices per row -> (n_rows, n_classes) float32 of 0/1."""
    targets = np.zeros((len(label_lists), n_classes), np.float32)
    for row, labels in enumerate(label_lists):
        targets[row, labels] = 1.0
    return targets


def label_corpora(vocabulary: list[str]) -> list[str] | None:
    """Each label's corpus when the labels are "corpus/label" (a manifest with a corpus column),
    else None: the columns a corpus's own softmax runs over."""
    if not vocabulary or not all("/" in label for label in vocabulary):
        return None
    return [label.split("/", 1)[0] for label in vocabulary]


def corpus_ids(vocabulary: list[str]) -> np.ndarray | None:
    """Each label's corpus as a number (n_classes,), in sorted corpus order; None for one label space."""
    corpora = label_corpora(vocabulary)
    return None if corpora is None else np.unique(corpora, return_inverse=True)[1]


def label_scores(logits: np.ndarray, vocabulary: list[str], problem_type: str | None) -> np.ndarray:
    """A head's logits (n, n_classes) as scores (n, n_classes): sigmoids for a multi-label head;
    otherwise softmaxes, as a Hugging Face pipeline reads a single-label or unstated head, one per
    corpus for a multi-corpus head (as it was trained), so each corpus's scores are its own probabilities."""
    from scipy.special import expit, softmax

    if problem_type == "multi_label_classification":
        return expit(logits)
    groups = label_corpora(vocabulary) or [""] * logits.shape[1]
    scores = np.empty_like(logits)
    for group in set(groups):
        columns = np.array(groups) == group
        scores[:, columns] = softmax(logits[:, columns], axis=1)
    return scores


GENERAL = "general"  # the corpus of broad labels (scripts/general_labels.py)
ESC50_CATEGORIES = ("animal", "nature", "human", "domestic", "urban")  # ESC-50's major categories: its classes by tens


def esc50_categories(meta_csv: str | os.PathLike) -> dict[str, str]:
    """ESC-50's meta/esc50.csv -> each class name's major category (general label)."""
    with open(meta_csv, newline="") as f:
        return {row["category"]: ESC50_CATEGORIES[int(row["target"]) // 10] for row in csv.DictReader(f)}


def largest_corpus(vocabulary: list[str]) -> str | None:
    """The corpus with the most labels (ties: the last by name); None for one label space."""
    corpora = label_corpora(vocabulary)
    return None if corpora is None else max(set(corpora), key=lambda name: (corpora.count(name), name))


def default_corpora(vocabulary: list[str]) -> list[str]:
    """The corpora `tag` shows unless told: the general one (speech, music, animal, ...: the kind of
    sound) where the model has it, and the largest (each corpus's softmax is sure of its own labels,
    so mixing them misleads)."""
    largest = largest_corpus(vocabulary)
    return [GENERAL, largest] if GENERAL in set(label_corpora(vocabulary)) and largest != GENERAL else [largest]


def label_groups(vocabulary: list[str], corpus: str | None = None) -> dict[str, np.ndarray]:
    """The labels to rank, grouped {corpus: label indices}: the default corpora (see
    `default_corpora`) unless `corpus` names one, or every corpus's with corpus="all"; a model with
    one label space gives {"": all}. ValueError says which corpora there are."""
    corpora = label_corpora(vocabulary)
    if corpora is None:
        if corpus not in (None, "all"):
            raise ValueError(f"no corpus {corpus!r}: the model has one label space")
        return {"": np.arange(len(vocabulary))}
    names = sorted(set(corpora))
    if corpus not in (None, "all", *names):
        raise ValueError(f"no corpus {corpus!r}: the model's corpora are {', '.join(names)}")
    shown = names if corpus == "all" else [corpus] if corpus else default_corpora(vocabulary)
    return {name: np.flatnonzero(np.array(corpora) == name) for name in shown}


def top_labels(
    scores: np.ndarray, vocabulary: list[str], groups: dict[str, np.ndarray], k: int
) -> dict[str, list[tuple[str, float]]]:
    """One clip's or chunk's scores (n_classes,) -> each group's k best (label, score), best first."""
    best = {name: shown[np.argsort(-scores[shown], kind="stable")[:k]] for name, shown in groups.items()}
    return {name: [(vocabulary[int(i)], float(scores[i])) for i in found] for name, found in best.items()}


def named_labels(config) -> list[str]:
    """A config's label names, or ValueError when its head has none to tag with."""
    vocabulary = config.label_names()
    if not vocabulary:
        raise ValueError(
            "no label names (id2label): the model's head was not trained on named classes, "
            "so there is nothing to tag with"
        )
    return vocabulary


def clip_tags(output, config, k: int = 5, corpus: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """An EmbeddingOutput's k best labels per group (see label_groups): the clip's scores are the
    mean of its chunks' (the method's rule), each chunk's logits read as the head was trained."""
    vocabulary = named_labels(config)
    scores = label_scores(output.chunk_logits, vocabulary, config.problem_type)  # (chunks, labels)
    return top_labels(scores.mean(axis=0), vocabulary, label_groups(vocabulary, corpus), k)


def tag(model, audio, sample_rate: int | None = None, k: int = 5, corpus: str | None = None) -> list[dict]:
    """The head's k best labels for one clip, best first, as a Hugging Face audio-classification
    pipeline gives them: [{"label": "esc50/dog", "score": 0.93}, ...]. A multi-corpus model's scores
    are probabilities within each corpus (each corpus has its own softmax), so each corpus is ranked
    on its own, corpus by corpus: by default its general labels (speech, music, animal, ...) where
    it has them, then its largest corpus's; `corpus` names one; corpus="all" gives every corpus's k
    best. `diverse-embed tag` prints the same."""
    groups = clip_tags(model.embed(audio, sample_rate), model.config, k, corpus)
    return [{"label": label, "score": score} for found in groups.values() for label, score in found]
