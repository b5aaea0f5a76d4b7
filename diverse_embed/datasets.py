"""Labelled collections: any `path,labels[,split[,corpus]]` manifest, and FSD-50K's own layout,
read into clips with label indices into one vocabulary (labels.py names and scores those labels)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path


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
