"""Embedding clips and files with a DiverseEmbedder: chunking, batching, streaming, decoding ahead.

Each function takes the model (a DiverseEmbedder: model.py binds them to it as methods,
`model.embed(...)`, `model.embed_files(...)`) first. How they use the cores is `parallel.plan`'s call.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio import (
    AudioLoadError,
    audio_info,
    blocks,
    chunk,
    cut,
    joined_blocks,
    load_audio,
    prepare_waveform,
    stream_audio,
)
from .files import find_audio_files
from .parallel import DEFAULT_BATCH_SIZE, chunks_in_memory, plan, torch_threads
from .precision import autocast_dtype, networks_in


@dataclass
class EmbeddingOutput:
    """The embedding of one clip, as numpy float32 arrays."""

    embedding: np.ndarray  # (embedding_dim,) mean of the chunk embeddings, L2-normalised
    branch_embeddings: dict[str, np.ndarray]  # name -> (d_model,) mean over chunks, L2-normalised
    chunk_embeddings: np.ndarray  # (n_chunks, embedding_dim) per chunk, not normalised
    chunk_times: np.ndarray  # (n_chunks,) start of each chunk in seconds
    chunk_ends: np.ndarray  # (n_chunks,) end of each chunk in seconds: a chunk, or the clip's end before it
    logits: np.ndarray  # (num_labels,) mean of the chunk logits
    duration: float  # seconds of audio embedded
    chunk_logits: np.ndarray | None = None  # (n_chunks, num_labels) per chunk

    def rows(self, segments: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What an index or a table stores for this clip: starts (r,), ends (r,) in seconds and
        vectors (r, D) float32; the clip vector first (NaN start and end), then with `segments`
        each chunk's vector, L2-normalised."""
        vectors, starts, ends = [self.embedding[None]], [np.nan], [np.nan]
        if segments:
            norms = np.linalg.norm(self.chunk_embeddings, axis=1, keepdims=True)
            vectors.append(self.chunk_embeddings / np.maximum(norms, 1e-12))
            starts += self.chunk_times.tolist()
            ends += self.chunk_ends.tolist()
        return np.array(starts), np.array(ends), np.concatenate(vectors).astype(np.float32)


def embed(model: nn.Module, audio: np.ndarray | torch.Tensor, sample_rate: int | None = None) -> EmbeddingOutput:
    """Embed one clip of any length: audio (samples,) mono, float in [-1, 1] or int16."""
    return embed_batch(model, [audio], sample_rate)[0]


def embed_batch(
    model: nn.Module,
    clips: list[np.ndarray | torch.Tensor],
    sample_rate: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[EmbeddingOutput]:
    """Embed clips of any lengths together; each result equals what `embed` gives for that clip.

    `batch_size` is the number of 1-s chunks per forward pass.
    """
    waveforms = [
        prepare_waveform(clip, sample_rate, model.config.sample_rate, source=f"clip {i}")
        for i, clip in enumerate(clips)
    ]
    if not waveforms:
        return []
    outputs = embed_waveforms(model, waveforms, batch_size)
    return [finite(output, f"clip {i}", waveform) for i, (output, waveform) in enumerate(zip(outputs, waveforms))]


def finite(output: EmbeddingOutput, source, waveform: np.ndarray | None = None) -> EmbeddingOutput:
    """The output, or AudioLoadError naming the source when the model gave NaN or infinity (finite
    samples so large that the front ends overflow): never a NaN vector in an index or a table."""
    if np.isfinite(output.embedding).all() and np.isfinite(output.logits).all():
        return output
    peak = f": its samples reach {float(np.abs(waveform).max()):.3g}" if waveform is not None else ""
    raise AudioLoadError(source, f"the model's output is not finite{peak} (audio is expected in [-1, 1])")


def embed_waveforms(model: nn.Module, waveforms: list[np.ndarray], batch_size: int) -> list[EmbeddingOutput]:
    """Validated waveforms (samples,) at the model's rate -> one output each, chunks batched across clips."""
    cfg = model.config
    counts = [cfg.num_chunks(len(w)) for w in waveforms]
    if cfg.block_chunks == 1:
        all_chunks = torch.cat([chunk(w, cfg)[0] for w in waveforms])  # (total_chunks, window_samples)
        embeddings, logits = forward_chunks(model, all_chunks, batch_size)
    else:  # the chunks alone, and the neuralogram's blocks: no window is ever cut
        all_chunks = torch.cat([cut(w, cfg.chunk_samples, cfg.hop_samples, n) for w, n in zip(waveforms, counts)])
        spans = [span for w in waveforms for span in blocks(w, cfg)]
        embeddings, logits = forward_blocks(model, all_chunks, spans, cfg.hop_samples, batch_size)
    return [
        clip_output(model, e, g, len(w)) for e, g, w in zip(embeddings.split(counts), logits.split(counts), waveforms)
    ]


@torch.inference_mode()
def forward_chunks(model: nn.Module, chunks: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """chunks (n, window_samples) -> embeddings (n, D) and logits (n, num_labels), float32 on CPU.

    On CPU the chunks are cut into one slice per compute thread (at most `batch_size` each) and
    each thread embeds its slices with single-threaded operations.
    """
    threads = plan(model.device.type).compute_threads
    size = max(1, min(batch_size, math.ceil(len(chunks) / threads), chunk_budget(model) // threads))
    slices = chunks.split(size)
    with embedding_pool(model, len(slices)) as (pool, dtype):
        return _concatenated(list(pool.map(lambda part: _forward(model, part, dtype=dtype), slices)))


@torch.inference_mode()
def forward_blocks(
    model: nn.Module, chunks: torch.Tensor, spans: list[tuple[torch.Tensor, int]], hop: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """forward_chunks for a model whose neuralogram hears blocks: chunks (n, chunk_samples or
    window_samples), `hop` samples apart, and their blocks in order (`audio.blocks`: each block's
    audio and chunk count). One pool runs each block's front-end pass (model.block_tokens), then
    the chunks' passes in slices, each as soon as its blocks are done: a block cannot be split
    between threads, and a thread done with its blocks goes on with chunks instead of waiting
    (from files 0-5% faster than two rounds; benchmarks/results/research/multi_corpus/context.md)."""
    if hop > model.config.window_samples:
        raise ValueError(
            f"the neuralogram hears blocks of chunks joined: chunks {hop} samples apart would leave "
            f"gaps between their {model.config.window_samples}-sample windows"
        )
    threads = plan(model.device.type).compute_threads
    size = max(1, min(batch_size, math.ceil(len(chunks) / (2 * threads)), chunk_budget(model) // threads))
    ends = np.cumsum([n for _, n in spans])  # the chunk after each block
    with embedding_pool(model, threads) as (pool, dtype):
        blocks_done = [pool.submit(_block_tokens, model, span, dtype, hop) for span in spans]  # queued first

        def run(start: int) -> tuple[torch.Tensor, torch.Tensor]:  # waits only on blocks already running
            stop = min(start + size, len(chunks))
            first, last = np.searchsorted(ends, [start, stop - 1], side="right")
            tokens = torch.cat([blocks_done[b].result() for b in range(first, last + 1)])
            offset = start - (ends[first - 1] if first else 0)
            return _forward(model, chunks[start:stop], dtype=dtype, tokens=tokens[offset : offset + stop - start])

        return _concatenated([job.result() for job in [pool.submit(run, i) for i in range(0, len(chunks), size)]])


@contextlib.contextmanager
def embedding_pool(model: nn.Module, jobs: int):
    """(a pool of up to `jobs` of the plan's threads, the networks' dtype), the model in eval mode
    meanwhile: embeddings are deterministic (no dropout, batch-norm running statistics). Each
    thread runs single-threaded operations."""
    threads = min(plan(model.device.type).compute_threads, max(1, jobs))
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch_threads(1), ThreadPoolExecutor(threads, thread_name_prefix="embed") as pool:
            yield pool, autocast_dtype(model.precision, model.device)
    finally:
        if was_training:
            model.train()


def _concatenated(outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([e for e, _ in outputs]), torch.cat([g for _, g in outputs])


@torch.inference_mode()  # a mode of each thread: the pool's threads need it set again
def _forward(
    model: nn.Module, chunks: torch.Tensor, dtype: torch.dtype | None, tokens: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    with networks_in(dtype, model.device):  # autocast is per thread too
        output = model(chunks.to(model.device), None if tokens is None else tokens.to(model.device))
    return output.embeddings.float().cpu(), output.logits.float().cpu()


@torch.inference_mode()
def _block_tokens(model: nn.Module, span: tuple, dtype: torch.dtype | None, hop: int) -> torch.Tensor:
    block, n_chunks = span  # the block's audio (samples,) and its chunks
    with networks_in(dtype, model.device):
        return model.block_tokens(block.to(model.device), n_chunks, hop).float().cpu()


def chunk_budget(model: nn.Module) -> int:
    """At most this many chunks in memory at once, whatever batch size is asked for (parallel.py)."""
    return chunks_in_memory(model.config.size_estimate()[1])


def clip_output(
    model: nn.Module, chunk_embeddings: torch.Tensor, chunk_logits: torch.Tensor, num_samples: int
) -> EmbeddingOutput:
    """A clip's output from its chunks' embeddings (n, D) and logits (n, labels), n = num_chunks(num_samples)."""
    starts, ends = model.config.chunk_spans(num_samples)
    mean = chunk_embeddings.mean(dim=0)  # (D,)
    branches = {
        name: F.normalize(mean[model.config.branch_slice(name)], dim=0).numpy() for name in model.config.branches
    }
    return EmbeddingOutput(
        embedding=F.normalize(mean, dim=0).numpy(),
        branch_embeddings=branches,
        chunk_embeddings=chunk_embeddings.numpy(),
        chunk_times=np.array(starts, dtype=np.float64),
        chunk_ends=np.array(ends, dtype=np.float64),
        logits=chunk_logits.mean(dim=0).numpy(),
        duration=num_samples / model.config.sample_rate,
        chunk_logits=chunk_logits.numpy(),
    )


def embed_file(model: nn.Module, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE) -> EmbeddingOutput:
    """Embed one audio file of any length, decoding it block by block: an hour-long recording
    never sits in memory whole. Gives what `embed(load_audio(path), 16000)` gives."""
    cfg = model.config
    size, hop = cfg.window_samples, cfg.hop_samples
    batch_size = min(batch_size, chunk_budget(model))  # the chunks waiting for a pass are held too
    # Positions count from the start of the context zeros before the file (audio.with_context).
    buffer, buffer_start, next_start, total = np.zeros(cfg.context_samples, np.float32), 0, 0, cfg.context_samples
    pending: list[np.ndarray] = []  # full chunks waiting for a batch
    results: list[tuple[torch.Tensor, torch.Tensor]] = []

    block_size = cfg.block_chunks  # the neuralogram's blocks count from the first chunk: never split one
    # A pass of whole blocks, at most batch_size chunks where a block fits (a pass past it held more).
    flush_at = block_size * max(1, batch_size // block_size)

    def run(final: bool = False):
        if pending and (final or len(pending) >= flush_at):
            windows = torch.from_numpy(np.stack(pending))
            if block_size == 1:
                results.append(forward_chunks(model, windows, batch_size))
            else:
                results.append(forward_blocks(model, windows, joined_blocks(windows, hop, block_size), hop, batch_size))
            pending.clear()

    for block in stream_audio(path, cfg.sample_rate):
        buffer = np.concatenate([buffer, block])
        total += len(block)
        while next_start + size <= total:
            offset = next_start - buffer_start
            pending.append(buffer[offset : offset + size])
            next_start += hop
            run()
        consumed = min(next_start - buffer_start, len(buffer))
        buffer, buffer_start = buffer[consumed:], buffer_start + consumed
    # The chunks that run past the end: zero-padded, by the same rule as `chunk`.
    total -= cfg.context_samples  # the file's samples
    n_chunks = cfg.num_chunks(total)
    done = next_start // hop
    if n_chunks > done:
        pending.extend(cut(buffer[next_start - buffer_start :], size, hop, n_chunks - done).numpy())
    run(final=True)
    embeddings = torch.cat([e for e, _ in results])[:n_chunks]  # (n_chunks, D)
    logits = torch.cat([g for _, g in results])[:n_chunks]
    return finite(clip_output(model, embeddings, logits, total), path)


def iter_embed_files(
    model: nn.Module,
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    progress: bool = True,
    max_seconds_in_memory: float = 600.0,
) -> Iterator[tuple[Path, EmbeddingOutput | AudioLoadError]]:
    """Yield (path, output) in the order given; a file that cannot be loaded yields its AudioLoadError
    instead, so one bad file never stops a collection. `paths`: a file, a folder (its audio files,
    searched recursively and sorted, as the command line takes it) or a list of either.

    `num_workers` threads decode files ahead of the model (default: the plan's; 0 decodes in this
    thread), and files are embedded together in batches of `batch_size` chunks; files longer than
    `max_seconds_in_memory` are streamed (`embed_file`).
    """
    from tqdm.auto import tqdm

    cfg = model.config
    batch_size = min(batch_size, chunk_budget(model))  # the chunks waiting for a pass are held too
    if num_workers is None:
        num_workers = plan(model.device.type).decode_threads
    files = AudioFiles(audio_paths(paths), cfg.sample_rate, max_seconds_in_memory)
    ahead_seconds = 2 * batch_size * cfg.hop_samples / cfg.sample_rate  # two batches ready while one runs
    pending: list[Decoded] = []
    pending_chunks = 0
    # No bar for nothing to do (a sync that finds every file unchanged).
    with (
        torch_threads(1),
        tqdm(total=len(files), desc="embedding", unit="file", disable=not progress or not files) as bar,
    ):
        for decoded in decode_ahead(files, num_workers, ahead_seconds):
            if decoded.waveform is not None:
                pending.append(decoded)
                pending_chunks += cfg.num_chunks(len(decoded.waveform))
                if pending_chunks < batch_size:
                    continue
            yield from _flush(model, pending, batch_size, bar)  # keeps the order of the paths
            pending, pending_chunks = [], 0
            if decoded.waveform is None:
                bar.update(1)
                yield decoded.path, decoded.error or _streamed(model, decoded.path, batch_size)
        yield from _flush(model, pending, batch_size, bar)


def _streamed(model: nn.Module, path: Path, batch_size: int) -> EmbeddingOutput | AudioLoadError:
    try:
        return embed_file(model, path, batch_size)
    except AudioLoadError as err:
        return err


def decode_ahead(files: AudioFiles, threads: int, ahead_seconds: float) -> Iterator[Decoded]:
    """files[0], files[1], ... in order, decoded by `threads` threads that keep about `ahead_seconds`
    of audio decoded ahead of the caller (threads=0: each decoded when it is asked for)."""
    if threads <= 0:
        yield from (files[i] for i in range(len(files)))
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")
    in_flight: deque[Future] = deque()
    submitted, seconds, decoded = 0, 0.0, 0
    try:
        while in_flight or submitted < len(files):
            mean_seconds = seconds / decoded if decoded else 10.0
            wanted = max(threads + 1, min(1024, int(ahead_seconds / max(mean_seconds, 0.1))))
            while len(in_flight) < wanted and submitted < len(files):
                in_flight.append(pool.submit(files.__getitem__, submitted))
                submitted += 1
            item = in_flight.popleft().result()
            if item.waveform is not None:
                seconds, decoded = seconds + len(item.waveform) / files.sample_rate, decoded + 1
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _flush(model: nn.Module, pending: list[Decoded], batch_size: int, bar) -> Iterator:
    if not pending:
        return
    outputs = embed_waveforms(model, [d.waveform for d in pending], batch_size)
    bar.update(len(pending))
    for decoded, output in zip(pending, outputs):
        try:
            yield decoded.path, finite(output, decoded.path, decoded.waveform)
        except AudioLoadError as err:
            yield decoded.path, err


def embed_files(model: nn.Module, paths: str | os.PathLike | Iterable[str | os.PathLike], **options) -> np.ndarray:
    """Embed audio files (a file, a folder or a list of either, as for `iter_embed_files`). Returns
    (files, embedding_dim) float32, rows in the order of `audio_paths(paths)`; `options` as for
    `iter_embed_files` (batch_size, num_workers, progress).

    Raises AudioLoadError (naming the file) for a file that cannot be loaded; use
    `iter_embed_files` to skip such files and keep going.
    """
    rows = []
    for _, output in iter_embed_files(model, paths, **options):
        if isinstance(output, AudioLoadError):
            raise output
        rows.append(output.embedding)
    return np.stack(rows) if rows else np.zeros((0, model.embedding_dim), dtype=np.float32)


def audio_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list:
    """The files to embed: a list of files as given; a folder, or a list holding folders, expanded
    as the command line expands it (a string is one path, never a list of characters)."""
    listed = [paths] if isinstance(paths, (str, bytes, os.PathLike)) else list(paths)
    return find_audio_files(listed) if any(Path(os.fsdecode(p)).is_dir() for p in listed) else listed


@dataclass
class Decoded:
    """One file as `AudioFiles` hands it over: its waveform, or the error that stopped it, or
    neither when it is too long to hand over whole and is to be streamed."""

    path: Path
    waveform: np.ndarray | None = None  # (samples,) float32 at the model's rate
    error: AudioLoadError | None = None


class AudioFiles:
    """Decodes files by index, for `decode_ahead`'s threads. A failure comes back as a value, not an
    exception, so the caller can name the file and go on."""

    def __init__(self, paths: list, sample_rate: int, max_seconds_in_memory: float):
        self.paths, self.sample_rate, self.max_seconds = paths, sample_rate, max_seconds_in_memory

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Decoded:
        path = Path(self.paths[index])
        try:
            if audio_info(path).duration > self.max_seconds:
                return Decoded(path)
            return Decoded(path, waveform=load_audio(path, self.sample_rate))
        except AudioLoadError as err:
            return Decoded(path, error=err)
