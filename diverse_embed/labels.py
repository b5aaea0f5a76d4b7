"""Labels: a model's label names and their corpus groups, the scores a head gives them, and the
labelled collections they come from (any `path,labels[,split[,corpus]]` manifest, FSD-50K's layout).

A manifest with a corpus column names each label "corpus/label": every corpus keeps its own label
space, trained with a softmax of its own, so its scores are read per corpus too. Training,
evaluation, `tag` and the benchmarks all read labels through this module.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def multi_hot(label_lists: list[list[int]], n_classes: int) -> np.ndarray:
    """Class indices per row -> (n_rows, n_classes) float32 of 0/1."""
    targets = np.zeros((len(label_lists), n_classes), np.float32)
    for row, labels in enumerate(label_lists):
        targets[row, labels] = 1.0
    return targets


@dataclass
class Clip:
    path: Path
    labels: list[int]  # class indices
    split: str
    corpus: str = ""  # the manifest's corpus column ("" without one)


@dataclass
class Dataset:
    vocabulary: list[str]  # class index -> name
    clips: list[Clip]


def read_fsd50k(root: str | os.PathLike) -> Dataset:
    """FSD-50K's official layout: splits "train" and "val" (from dev.csv) and "eval"."""
    root = Path(root)
    truth = root / "FSD50K.ground_truth"
    for needed in [truth / "vocabulary.csv", truth / "dev.csv", truth / "eval.csv"]:
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: is {root} an FSD-50K folder?")
    with open(truth / "vocabulary.csv", newline="") as f:
        rows = [row for row in csv.reader(f) if row]  # no header: index,label,mid
    vocabulary = [label for _, label, _ in sorted(rows, key=lambda row: int(row[0]))]
    index = {label: i for i, label in enumerate(vocabulary)}
    clips = []
    for table, audio, fixed_split in [("dev.csv", "FSD50K.dev_audio", None), ("eval.csv", "FSD50K.eval_audio", "eval")]:
        with open(truth / table, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                unknown = [name for name in row["labels"].split(",") if name not in index]
                if unknown:
                    raise ValueError(f"{truth / table}, line {line}: labels not in vocabulary.csv: {unknown}")
                labels = [index[name] for name in row["labels"].split(",")]
                clips.append(Clip(root / audio / f"{row['fname']}.wav", labels, fixed_split or row["split"]))
    return Dataset(vocabulary, clips)


def read_manifest(
    manifest: str | os.PathLike, audio_root: str | os.PathLike | None = None, allow_outside_root: bool = False
) -> Dataset:
    """A CSV with a header `path,labels[,split[,corpus]]`; labels separated by "," or ";" (quote the
    field when it holds commas). Paths are relative to `audio_root` (default: the manifest's folder);
    absolute paths and paths escaping the root are refused unless `allow_outside_root`. With a
    corpus column every corpus keeps its own label space: labels become "corpus/label"."""
    manifest = Path(manifest)
    root = Path(audio_root) if audio_root else manifest.parent
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "labels"} <= set(rows[0]):
        raise ValueError(f"{manifest}: needs a header with the columns path,labels[,split]")
    corpora = "corpus" in rows[0]
    if corpora and not all((row.get("corpus") or "").strip() for row in rows):
        raise ValueError(f"{manifest}: the corpus column must name a corpus on every line")
    split_names = lambda field: [n.strip() for n in field.replace(";", ",").split(",") if n.strip()]  # noqa: E731
    names = lambda row: [f"{row['corpus'].strip()}/{n}" if corpora else n for n in split_names(row["labels"])]  # noqa: E731
    vocabulary = sorted({name for row in rows for name in names(row)})
    index = {label: i for i, label in enumerate(vocabulary)}
    clips = []
    for line, row in enumerate(rows, start=2):
        path = Path(row["path"])
        resolved = (root / path).resolve()
        if not allow_outside_root and (path.is_absolute() or not resolved.is_relative_to(root.resolve())):
            raise ValueError(
                f"{manifest}, line {line}: {row['path']} lies outside the audio root {root} "
                "(pass allow_outside_root / --allow-outside-root to accept it)"
            )
        clips.append(
            Clip(
                resolved,
                [index[n] for n in names(row)],
                (row.get("split") or "train").strip(),
                (row.get("corpus") or "").strip(),
            )
        )
    return Dataset(vocabulary, clips)


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
