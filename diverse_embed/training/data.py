"""Labelled audio for training: the clips of a manifest or FSD-50K (labels.py reads them), decoded
once into a cache of 16 kHz audio and served as the model's chunks with multi-hot targets, an epoch
at a time or as corpus-balanced epochs of a set size."""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioLoadError, cut, load_audio
from ..config import SAMPLE_RATE, DiverseEmbedConfig
from ..datasets import Clip, Dataset, read_fsd50k, read_manifest
from ..errors import DataError
from ..files import atomic_write
from ..labels import multi_hot
from ..parallel import available_cores
from .config import DataConfig

LOG = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused


class AudioCache:
    """16 kHz mono audio decoded once into int16 .npy files, one per clip, read back memory-mapped.

    A clip's file is named by a hash of its path, size and modification time; the folder by the
    sample rate and CACHE_VERSION, so changing either the source or the decoding uses new files.
    """

    def __init__(self, folder: str | os.PathLike, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = sample_rate
        self.folder = Path(folder) / f"{sample_rate}hz-v{CACHE_VERSION}"
        self.folder.mkdir(parents=True, exist_ok=True)

    def file_for(self, path: Path) -> Path:
        stat = path.stat()
        key = hashlib.sha1(os.fsencode(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def prepare(
        self, clips: list[Clip], num_workers: int = 2, progress: bool = True
    ) -> tuple[list[Clip], list[tuple[str, str]]]:
        """Decode what is not cached yet. Returns the usable clips and the failures (path, reason)."""
        from tqdm.auto import tqdm

        failures, todo = [], []
        for clip in clips:
            try:
                if not self.file_for(clip.path).is_file():
                    todo.append(clip)
            except OSError as err:
                failures.append((str(clip.path), f"cannot read ({err.strerror})"))
        if todo:
            # Threads, not processes: decoding and resampling run in C without the GIL, and a spawned
            # process would import the user's script again (which then needs a __main__ guard).
            with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
                jobs = pool.map(_decode_into_cache, [(c.path, self.file_for(c.path), self.sample_rate) for c in todo])
                for clip, error in tqdm(
                    zip(todo, jobs), total=len(todo), desc="caching 16 kHz audio", unit="clip", disable=not progress
                ):
                    if error:
                        failures.append((str(clip.path), error))
        failed = {path for path, _ in failures}
        for path, reason in failures:
            LOG.warning("skipping %s: %s", path, reason)
        return [clip for clip in clips if str(clip.path) not in failed], failures

    def load(self, path: Path) -> np.ndarray:
        """The cached clip as int16 (samples,), memory-mapped."""
        return np.load(self.file_for(path), mmap_mode="r")


def _decode_into_cache(job: tuple[Path, Path, int]) -> str | None:
    source, target, sample_rate = job
    try:
        audio = load_audio(source, sample_rate)
    except AudioLoadError as err:
        return err.reason
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda f: np.save(f, np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)))
    return None


class ChunkDataset(torch.utils.data.Dataset):
    """Every chunk of every clip, cut by the model config's rule, with its clip's multi-hot target
    (weak labels).

    Item: (chunk with its context (window_samples,) float32, target (n_classes,) float32, the item's number).

    Training options: `crop_jitter` moves each chunk by a random offset of up to half a hop either
    way (drawn from (seed, epoch, item), so a resumed run sees the same crops; call `set_epoch`);
    `min_peak_db` leaves out chunks whose peak is below that level (digital silence carries its
    clip's label without any of its sound).
    """

    def __init__(
        self,
        clips: list[Clip],
        cache: AudioCache,
        n_classes: int,
        config: DiverseEmbedConfig,
        crop_jitter: bool = False,
        min_peak_db: float | None = None,
        seed: int = 0,
    ):
        self.clips, self.cache, self.n_classes = clips, cache, n_classes
        self.config, self.chunk_samples, self.hop_samples = config, config.chunk_samples, config.hop_samples
        self.crop_jitter, self.seed, self.epoch = crop_jitter, seed, 0
        min_peak = None if min_peak_db is None else round(32767 * 10 ** (min_peak_db / 20))
        index = []
        for i, clip in enumerate(clips):
            audio = cache.load(clip.path)
            for k, start in enumerate(config.chunk_starts(len(audio))):
                piece = audio[start : start + self.chunk_samples]
                if min_peak is None or np.abs(piece.astype(np.int32)).max() >= min_peak:
                    index.append((i, k))
        self.index = np.array(index, dtype=np.int64).reshape(-1, 2)  # (n_chunks, 2): clip, chunk number

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def without_augmentation(self) -> ChunkDataset:
        """The same chunks at their fixed positions (for embedding the training set)."""
        plain = copy.copy(self)
        plain.crop_jitter = False
        return plain

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int):
        clip_number, k = self.index[item]
        audio = self.cache.load(self.clips[clip_number].path)
        start = self.config.chunk_starts(len(audio))[k]
        if self.crop_jitter:
            rng = np.random.default_rng([self.seed, self.epoch, int(item)])
            shift = int(rng.integers(-(self.hop_samples // 2), self.hop_samples // 2 + 1))
            start = min(max(0, start + shift), max(0, len(audio) - self.chunk_samples))
        context = self.config.context_samples
        first = max(0, start - context)  # the window's audio; zeros before the clip and past its end
        piece = np.asarray(audio[first : start + self.chunk_samples + context], dtype=np.float32) / 32767.0
        piece = np.pad(piece, (context - (start - first), 0))
        chunk = cut(piece, self.config.window_samples, self.hop_samples, 1)[0].clone()  # (window_samples,)
        target = multi_hot([self.clips[clip_number].labels], self.n_classes)[0]  # (n_classes,)
        return chunk, torch.from_numpy(target), int(item)

    def chunk_targets(self) -> np.ndarray:
        """(n_chunks, n_classes): each chunk's clip labels."""
        return multi_hot([self.clips[clip].labels for clip, _ in self.index], self.n_classes)

    def clip_targets(self) -> np.ndarray:
        """(n_clips, n_classes)."""
        return multi_hot([clip.labels for clip in self.clips], self.n_classes)


def read_dataset(cfg: DataConfig) -> Dataset:
    if cfg.dataset == "fsd50k":
        if not cfg.data_root:
            raise DataError("--dataset fsd50k needs --data-root")
        return read_fsd50k(cfg.data_root)
    if cfg.dataset == "csv":
        if not cfg.manifest:
            raise DataError("--dataset csv needs --manifest")
        return read_manifest(cfg.manifest, cfg.audio_root, cfg.allow_outside_root)
    raise DataError(f"dataset must be fsd50k or csv, got {cfg.dataset!r}")


def load_splits(
    cfg: DataConfig,
    rt,
    shape: DiverseEmbedConfig,
    crop_jitter: bool = False,
    min_peak_db: float | None = None,
    seed: int = 0,
) -> tuple[dict[str, ChunkDataset], list[str], list[tuple[str, str]]]:
    """The train/val/test chunk datasets that have clips (chunked as `shape` says), the vocabulary,
    and the clips that failed to decode (path, reason). Augmentation settings apply to the training
    split only. `rt` is the distributed Runtime: rank 0 fills the cache while the others wait."""
    dataset = read_dataset(cfg)
    cache = AudioCache(cfg.cache_dir, shape.sample_rate)
    wanted = {"train": cfg.train_splits, "val": cfg.val_splits, "test": cfg.test_splits}
    clips = [c for c in dataset.clips if any(c.split in names for names in wanted.values())]
    if rt.main:
        usable, failures = cache.prepare(clips, available_cores(), progress=cfg.progress)  # nothing else runs yet
    rt.barrier()
    if not rt.main:
        usable, failures = cache.prepare(clips, 1, progress=False)  # all cached by rank 0 now
    data = {}
    for name, names in wanted.items():
        chosen = [c for c in usable if c.split in names]
        training = name == "train"
        if chosen:
            data[name] = ChunkDataset(
                chosen,
                cache,
                len(dataset.vocabulary),
                shape,
                crop_jitter=training and crop_jitter,
                min_peak_db=min_peak_db if training else None,
                seed=seed,
            )
    return data, dataset.vocabulary, failures


class SkipFirst(torch.utils.data.Sampler):
    """A sampler's order with its first `skip` indices left out: resuming mid-epoch neither repeats
    nor skips data."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self):
        return max(0, len(self.sampler) - self.skip)


def balanced_order(
    dataset: ChunkDataset, chunks: int, seed: int, epoch: int, weights: dict[str, float] | None = None
) -> np.ndarray:
    """`chunks` chunk numbers for one epoch, drawn from (seed, epoch): each corpus gets a share in
    proportion to its weight (default 1 each), whatever its size (a small corpus repeats, a big one
    is sampled without repeats), and the corpora are interleaved, so every batch holds each in its share."""
    corpus_of_chunk = np.array([dataset.clips[clip].corpus for clip in dataset.index[:, 0]])
    names = sorted(set(corpus_of_chunk))
    unknown = set(weights or {}) - set(names)
    if unknown:
        raise DataError(f"corpus weights name corpora not in the training data: {sorted(unknown)}; have {names}")
    share = np.array([(weights or {}).get(name, 1.0) for name in names], dtype=np.float64)
    share = share / share.sum()
    rng = np.random.default_rng([seed, epoch])
    streams, positions = [], []
    for name, fraction in zip(names, share):
        members = np.flatnonzero(corpus_of_chunk == name)
        wanted = int(round(fraction * chunks))
        repeats = -(-wanted // len(members)) if wanted else 0
        streams.append(
            np.concatenate([rng.permutation(members) for _ in range(repeats)])[:wanted] if wanted else members[:0]
        )
        positions.append((np.arange(wanted) + rng.random()) / max(wanted, 1))  # evenly spread over the epoch
    order = np.concatenate(streams)[np.argsort(np.concatenate(positions), kind="stable")]
    return order[:chunks]


class Sequence(torch.utils.data.Sampler):
    """A fixed order of indices, this rank's every world-th."""

    def __init__(self, order: np.ndarray, rank: int = 0, world: int = 1):
        self.order = order[rank::world].tolist()

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


def epoch_loader(
    dataset: ChunkDataset,
    epoch: int,
    skip_batches: int,
    batch_size: int,
    num_workers: int,
    rank: int = 0,
    world: int = 1,
    seed: int = 0,
    pin_memory: bool = False,
    chunks: int = 0,
    corpus_weights: dict[str, float] | None = None,
) -> torch.utils.data.DataLoader:
    """This rank's share of one training epoch, shuffled by (seed, epoch), its first `skip_batches`
    batches left out (a run resumed mid-epoch): (chunks, targets, item numbers) batches. With
    `chunks`, an epoch is that many chunks, balanced across corpora (`balanced_order`); else every
    training chunk once."""
    if chunks:
        sampler = Sequence(balanced_order(dataset, chunks, seed, epoch, corpus_weights), rank, world)
    else:
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    # Its own generator: creating a loader must not draw from the global RNG, or a run resumed
    # mid-epoch would see other dropout masks than the uninterrupted run.
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SkipFirst(sampler, skip_batches * batch_size),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
    )
