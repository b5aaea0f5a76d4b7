"""DiverseEmbedder: four feature branches, each a small transformer, fused by concatenation.

chunks (batch, 16000) ──front end──▶ frames ──Linear──▶ (batch, frames, 64) ──+position──▶
6 transformer blocks ──mean over frames──▶ (batch, 64) per branch ──concat──▶ (batch, 256)
──Linear──▶ logits (batch, num_labels)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HFValidationError, HfHubHTTPError, LocalEntryNotFoundError
from torch import nn

from .audio import AudioLoadError, audio_info, chunk, load_audio, num_chunks, prepare_waveform, stream_audio
from .features import LogMel, MFCCFrames, SpectralPeaks, WaveformPatches
from .neuralogram import MobileNetV1

LOG = logging.getLogger(__name__)

BRANCHES = ("pitch", "timbre", "waveform", "neuralogram")
SAFETENSORS_FILE = "model.safetensors"

# Checkpoints that ship inside the package (diverse_embed/pretrained/<name>/), loadable by name
# with no network. DEFAULT_MODEL is what the CLI, the demo and the HEAR API use unless told.
BUNDLED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = "diverse-embed-esc50"

# 1-s chunks per forward pass unless told. 64 rather than 32: on the project's 2-core CPU, 32
# 10-s clips through embed_batch went at 160 s of audio per second with 64, 147 with 32 (same
# model, one process, alternating); 128 was no faster. Memory stays small (tens of MB).
DEFAULT_BATCH_SIZE = 64


def bundled_models() -> dict[str, Path]:
    """Name -> folder of every checkpoint shipped with the package."""
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_DIR.iterdir()) if (p / "config.json").is_file()}


class CheckpointError(ValueError):
    """Weights that do not fit the model their config describes."""


@dataclass
class DiverseEmbedConfig:
    """Every number of the model. Saved as config.json next to the weights."""

    branches: list[str] = field(default_factory=lambda: list(BRANCHES))  # which branches to build, in order
    num_labels: int = 200  # classes of the linear head (FSD-50K has 200)
    id2label: dict[int, str] | None = None  # class index -> name; None means "LABEL_<i>"

    # Audio and chunking
    sample_rate: int = 16000  # input is resampled to this
    chunk_seconds: float = 1.0  # each branch sees one chunk of this length
    hop_seconds: float = 1.0  # step between chunks when embedding a clip
    min_final_chunk_seconds: float = 0.1  # a shorter leftover at the end of a clip is dropped, not padded
    # Frame step of the spectral front ends (pitch, timbre, log-mel). 25 ms, the waveform patch
    # length, so every transformer sees about 40 frames a chunk: a 10-ms step (101 frames) made
    # the forward pass about 2.3x slower (README, "Size and speed").
    frame_hop_ms: float = 25.0

    # Transformer, the same shape in every branch
    d_model: int = 64  # width; each branch embedding has this size
    n_layers: int = 6  # encoder blocks per branch
    n_heads: int = 12  # attention heads
    head_dim: int = 8  # width of one head (Keras-style key_dim: 64 is not divisible by 12)
    ff_dim: int = 128  # hidden width of the feed-forward layer
    dropout: float = 0.1  # in attention and feed-forward, training only

    # pitch: binary spectral peaks (see features.SpectralPeaks)
    pitch_n_fft: int = 2048  # 128 ms window: 7.8 Hz bins
    pitch_fmin_hz: float = 50.0  # lowest kept bin
    pitch_fmax_hz: float = 4000.0  # highest kept bin
    pitch_max_peaks: int = 8  # at most this many peaks per frame
    pitch_threshold_db: float = -30.0  # a peak is within this of the frame's loudest bin
    pitch_floor_dbfs: float = -70.0  # and above this absolute level

    # timbre: MFCCs
    n_mfcc: int = 12  # coefficients per frame
    mfcc_window_ms: float = 50.0  # STFT window: two frame steps, so consecutive windows overlap by half
    mfcc_n_mels: int = 40  # mel bands before the DCT

    # waveform: raw patches
    waveform_patch_ms: float = 25.0  # 400 samples at 16 kHz

    # neuralogram: MobileNet over log-mel (see neuralogram.py)
    mel_bins: int = 64  # YAMNet's log-mel settings
    mel_window_ms: float = 50.0  # two frame steps, as for the MFCCs
    mel_fmin_hz: float = 125.0
    mel_fmax_hz: float = 7500.0
    mobilenet_width: float = 1.0  # channel multiplier; 1.0 gives 1024-d activations
    mobilenet_time_stride: int = 16  # one 1024-d vector every 16 log-mel frames (400 ms at 25-ms frames)

    def __post_init__(self):
        unknown = [name for name in self.branches if name not in BRANCHES]
        if unknown or not self.branches or len(set(self.branches)) != len(self.branches):
            raise ValueError(f"branches must be distinct names among {BRANCHES}, got {self.branches}")
        if self.id2label is not None:
            # JSON turns integer keys into strings; bring them back.
            self.id2label = {int(index): str(label) for index, label in self.id2label.items()}
            if sorted(self.id2label) != list(range(self.num_labels)):
                raise ValueError(f"id2label must name classes 0..{self.num_labels - 1}, got {len(self.id2label)} entries")
        if self.chunk_samples % self.waveform_patch_samples:
            raise ValueError("chunk_seconds must hold a whole number of waveform patches")

    @property
    def chunk_samples(self) -> int:
        return round(self.chunk_seconds * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_seconds * self.sample_rate)

    @property
    def min_final_chunk_samples(self) -> int:
        return max(1, round(self.min_final_chunk_seconds * self.sample_rate))

    @property
    def frame_hop_samples(self) -> int:
        return round(self.frame_hop_ms * self.sample_rate / 1000)

    @property
    def waveform_patch_samples(self) -> int:
        return round(self.waveform_patch_ms * self.sample_rate / 1000)

    @property
    def embedding_dim(self) -> int:
        return self.d_model * len(self.branches)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in (self.id2label or {}).items()}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DiverseEmbedConfig":
        """Build from a config.json dict; an unknown key is an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(f"config has fields this version of diverse-embed does not know: {unknown}")
        return cls(**values)

    def fingerprint(self) -> str:
        """A short hash of the config: two models with the same fingerprint embed alike in shape and kind."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, written out; q, k, v and the result (B, heads, T, head_dim).

    The same function as F.scaled_dot_product_attention, faster on CPU at this model's ~40 frames
    and 8-wide heads, where PyTorch's fused kernel (built for long sequences) lags. The last
    product is computed transposed, v^T weights^T: MKL's batched matmul was ~2.8x faster with a
    41-wide output than with an 8-wide one. One self-attention layer, 64 chunks of 41 frames, on the
    project's 2-core CPU: 5.5 ms through SDPA, 4.5 ms written out, 3.7 ms with the transposed
    product (torch 2.9.1, medians of 50 calls; benchmarks/results/speed.md has the end-to-end figures).
    """
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # (B, heads, T, T)
    weights = scores.softmax(dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    return torch.matmul(v.transpose(-1, -2), weights.transpose(-1, -2)).transpose(-1, -2)  # (B, heads, T, head_dim)


class SelfAttention(nn.Module):
    """Multi-head self-attention whose head width is its own setting (n_heads * head_dim != d_model)."""

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = config.n_heads, config.head_dim, config.dropout
        inner = config.n_heads * config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * inner)
        self.out = nn.Linear(inner, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = x.shape
        qkv = self.qkv(x).view(batch, frames, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, head_dim)
        dropout = self.dropout if self.training else 0.0
        if x.device.type == "cpu":
            y = explicit_attention(q, k, v, dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(batch, frames, self.n_heads * self.head_dim)  # (B, T, heads * head_dim)
        return self.out(y)


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, config: DiverseEmbedConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.d_model, config.ff_dim),
            nn.GELU(),
            nn.Linear(config.ff_dim, config.d_model),
            nn.Dropout(config.dropout),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.feed_forward(self.norm2(x))


class Branch(nn.Module):
    """One feature branch: chunks (batch, samples) -> embedding (batch, d_model)."""

    def __init__(self, front_end: nn.Module, config: DiverseEmbedConfig):
        super().__init__()
        self.front_end = front_end
        frames, in_features = self._frame_shape(front_end, config.chunk_samples)
        self.input_projection = nn.Linear(in_features, config.d_model)
        self.input_norm = nn.LayerNorm(config.d_model)  # puts binary peaks, MFCCs and samples on one scale
        self.position = nn.Parameter(torch.randn(1, frames, config.d_model) * 0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(config) for _ in range(config.n_layers)])
        self.final_norm = nn.LayerNorm(config.d_model)

    @staticmethod
    def _frame_shape(front_end: nn.Module, chunk_samples: int) -> tuple[int, int]:
        # Ask the front end itself rather than re-deriving its padding arithmetic here.
        was_training = front_end.training
        with torch.no_grad():
            frames = front_end.eval()(torch.zeros(1, chunk_samples))
        front_end.train(was_training)
        return frames.shape[1], frames.shape[2]

    def frames(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (batch, samples) -> the front end's frames (batch, frames, features)."""
        return self.front_end(chunks)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(self.input_projection(self.frames(chunks)))  # (B, T, d_model)
        x = self.blocks(x + self.position)
        return self.final_norm(x).mean(dim=1)  # (B, d_model)


def _fixed(module: nn.Module) -> nn.Module:
    """Keep a front end's computed buffers (windows, filter banks) out of the checkpoint:
    they follow from the config, and saving them would tie checkpoints to torchaudio internals."""
    for sub in module.modules():
        sub._non_persistent_buffers_set.update(sub._buffers)
    return module


def build_front_end(name: str, config: DiverseEmbedConfig) -> nn.Module:
    rate, hop = config.sample_rate, config.frame_hop_samples
    if name == "pitch":
        return _fixed(
            SpectralPeaks(
                rate, config.pitch_n_fft, hop, config.pitch_fmin_hz, config.pitch_fmax_hz,
                config.pitch_max_peaks, config.pitch_threshold_db, config.pitch_floor_dbfs,
            )
        )
    if name == "timbre":
        window = round(config.mfcc_window_ms * rate / 1000)
        return _fixed(MFCCFrames(rate, config.n_mfcc, window, hop, config.mfcc_n_mels))
    if name == "waveform":
        return WaveformPatches(config.waveform_patch_samples)
    if name == "neuralogram":
        window = round(config.mel_window_ms * rate / 1000)
        n_fft = 1 << (window - 1).bit_length()  # next power of two above the window
        log_mel = _fixed(LogMel(rate, n_fft, window, hop, config.mel_bins, config.mel_fmin_hz, config.mel_fmax_hz))
        return nn.Sequential(log_mel, MobileNetV1(config.mobilenet_time_stride, config.mobilenet_width))
    raise ValueError(f"unknown branch {name!r}; expected one of {BRANCHES}")


@dataclass
class ChunkOutput:
    """What `DiverseEmbedder.forward` returns for a batch of chunks."""

    embeddings: torch.Tensor  # (batch, embedding_dim), branch embeddings concatenated
    branch_embeddings: dict[str, torch.Tensor]  # name -> (batch, d_model)
    logits: torch.Tensor  # (batch, num_labels)


@dataclass
class EmbeddingOutput:
    """The embedding of one clip, as numpy float32 arrays."""

    embedding: np.ndarray  # (embedding_dim,) mean of the chunk embeddings, L2-normalised
    branch_embeddings: dict[str, np.ndarray]  # name -> (d_model,) mean over chunks, L2-normalised
    chunk_embeddings: np.ndarray  # (n_chunks, embedding_dim) per chunk, not normalised
    chunk_times: np.ndarray  # (n_chunks,) start of each chunk in seconds
    logits: np.ndarray  # (num_labels,) mean of the chunk logits
    duration: float  # seconds of audio embedded


class DiverseEmbedder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="diverse-embed",
    tags=["audio", "audio-embedding", "audio-classification", "diverse-embed"],
    pipeline_tag="audio-classification",
    license="apache-2.0",
):
    """Four feature branches fused into one embedding. Build from a config or `from_pretrained`."""

    def __init__(self, config: DiverseEmbedConfig | dict | None = None):
        super().__init__()
        if isinstance(config, dict):  # as read from config.json
            config = DiverseEmbedConfig.from_dict(config)
        self.config = config if config is not None else DiverseEmbedConfig()
        self._hub_mixin_config = self.config  # what save_pretrained / push_to_hub write as config.json
        self.branches = nn.ModuleDict({name: Branch(build_front_end(name, self.config), self.config)
                                       for name in self.config.branches})
        self.head = nn.Linear(self.config.embedding_dim, self.config.num_labels)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameters per branch, for the head, and in total."""
        counts = {name: sum(p.numel() for p in branch.parameters()) for name, branch in self.branches.items()}
        counts["head"] = sum(p.numel() for p in self.head.parameters())
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts

    def fingerprint(self) -> str:
        """A hash of the config and every weight: equal fingerprints, equal embeddings.
        Indexes record it so that vectors from two different models are never mixed."""
        digest = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def forward(self, chunks: torch.Tensor) -> ChunkOutput:
        """chunks: (batch, chunk_samples) float32 at config.sample_rate."""
        if chunks.ndim != 2 or chunks.shape[1] != self.config.chunk_samples:
            raise ValueError(f"expected chunks of shape (batch, {self.config.chunk_samples}), got {tuple(chunks.shape)}")
        branch_embeddings = {name: branch(chunks) for name, branch in self.branches.items()}  # each (B, d_model)
        embeddings = torch.cat(list(branch_embeddings.values()), dim=1)  # (B, embedding_dim)
        return ChunkOutput(embeddings, branch_embeddings, self.head(embeddings))

    # ----- embedding clips -------------------------------------------------------------------

    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None = None) -> EmbeddingOutput:
        """Embed one clip of any length: audio (samples,) mono, float in [-1, 1] or int16."""
        return self.embed_batch([audio], sample_rate)[0]

    def embed_batch(
        self,
        clips: list[np.ndarray | torch.Tensor],
        sample_rate: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[EmbeddingOutput]:
        """Embed clips of any lengths together; each result equals what `embed` gives for that clip.

        `batch_size` is the number of 1-s chunks per forward pass.
        """
        waveforms = [prepare_waveform(clip, sample_rate, self.config.sample_rate, source=f"clip {i}")
                     for i, clip in enumerate(clips)]
        return self._embed_waveforms(waveforms, batch_size)

    def _embed_waveforms(self, waveforms: list[np.ndarray], batch_size: int) -> list[EmbeddingOutput]:
        cfg = self.config
        chunked = [chunk(w, cfg.hop_samples, cfg.chunk_samples, cfg.min_final_chunk_samples, cfg.sample_rate)
                   for w in waveforms]
        all_chunks = torch.cat([chunks for chunks, _ in chunked])  # (total_chunks, chunk_samples)
        embeddings, logits = self._forward_chunks(all_chunks, batch_size)
        counts = [len(chunks) for chunks, _ in chunked]
        return [self._clip_output(e, l, starts, len(w))
                for e, l, (_, starts), w in zip(embeddings.split(counts), logits.split(counts), chunked, waveforms)]

    @torch.inference_mode()
    def _forward_chunks(self, chunks: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """chunks (n, chunk_samples) -> embeddings (n, D) and logits (n, num_labels), float32 on CPU."""
        was_training = self.training
        self.eval()  # embeddings are deterministic: no dropout, batch-norm running statistics
        try:
            outputs = [self(batch.to(self.device)) for batch in chunks.split(batch_size)]
        finally:
            self.train(was_training)
        embeddings = torch.cat([o.embeddings for o in outputs]).float().cpu()
        logits = torch.cat([o.logits for o in outputs]).float().cpu()
        return embeddings, logits

    def embed_file(self, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE) -> EmbeddingOutput:
        """Embed one audio file of any length, decoding it block by block: an hour-long recording
        never sits in memory whole. Gives what `embed(load_audio(path), 16000)` gives."""
        cfg = self.config
        size, hop = cfg.chunk_samples, cfg.hop_samples
        buffer, buffer_start, next_start, total = np.zeros(0, np.float32), 0, 0, 0
        pending: list[np.ndarray] = []  # full chunks waiting for a batch
        results: list[tuple[torch.Tensor, torch.Tensor]] = []

        def run(final: bool = False):
            if pending and (final or len(pending) >= batch_size):
                results.append(self._forward_chunks(torch.from_numpy(np.stack(pending)), batch_size))
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
        n_chunks = num_chunks(total, hop, size, cfg.min_final_chunk_samples)
        for start in range(next_start, n_chunks * hop, hop):
            piece = buffer[start - buffer_start : start - buffer_start + size]
            pending.append(np.pad(piece, (0, size - len(piece))))
        run(final=True)
        embeddings = torch.cat([e for e, _ in results])[:n_chunks]  # (n_chunks, D)
        logits = torch.cat([l for _, l in results])[:n_chunks]
        starts = np.arange(n_chunks, dtype=np.float64) * hop / cfg.sample_rate
        return self._clip_output(embeddings, logits, starts, total)

    def _clip_output(self, chunk_embeddings: torch.Tensor, chunk_logits: torch.Tensor, starts: np.ndarray,
                     num_samples: int):
        mean = chunk_embeddings.mean(dim=0)  # (D,)
        d = self.config.d_model
        branches = {name: F.normalize(mean[i * d : (i + 1) * d], dim=0).numpy()
                    for i, name in enumerate(self.config.branches)}
        return EmbeddingOutput(
            embedding=F.normalize(mean, dim=0).numpy(),
            branch_embeddings=branches,
            chunk_embeddings=chunk_embeddings.numpy(),
            chunk_times=starts,
            logits=chunk_logits.mean(dim=0).numpy(),
            duration=num_samples / self.config.sample_rate,
        )

    def iter_embed_files(
        self,
        paths: list[str | os.PathLike],
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int = 2,
        progress: bool = True,
        max_seconds_in_memory: float = 600.0,
    ) -> Iterator[tuple[Path, EmbeddingOutput | AudioLoadError]]:
        """Yield (path, output) in the order given; a file that cannot be loaded yields its AudioLoadError
        instead, so one bad file never stops a collection.

        Files are decoded by `num_workers` processes and embedded together in batches of
        `batch_size` chunks; files longer than `max_seconds_in_memory` are streamed (`embed_file`).
        """
        from tqdm.auto import tqdm

        files = _AudioFiles(list(paths), self.config.sample_rate, max_seconds_in_memory)
        loader = torch.utils.data.DataLoader(files, batch_size=None, num_workers=num_workers, collate_fn=_as_is)
        pending: list[tuple[Path, np.ndarray]] = []
        pending_chunks = 0
        with tqdm(total=len(files), desc="embedding", unit="file", disable=not progress) as bar:
            for path, waveform in loader:
                if isinstance(waveform, np.ndarray):
                    pending.append((path, waveform))
                    pending_chunks += num_chunks(len(waveform), self.config.hop_samples, self.config.chunk_samples)
                    if pending_chunks < batch_size:
                        continue
                yield from self._flush(pending, batch_size, bar)  # keeps the order of the paths
                pending, pending_chunks = [], 0
                if isinstance(waveform, str):  # STREAM_IT
                    try:
                        waveform = self.embed_file(path, batch_size)
                    except AudioLoadError as err:
                        waveform = err
                if not isinstance(waveform, np.ndarray):
                    bar.update(1)
                    yield path, waveform
            yield from self._flush(pending, batch_size, bar)

    def _flush(self, pending: list[tuple[Path, np.ndarray]], batch_size: int, bar) -> Iterator:
        if not pending:
            return
        outputs = self._embed_waveforms([waveform for _, waveform in pending], batch_size)
        bar.update(len(pending))
        yield from ((path, output) for (path, _), output in zip(pending, outputs))

    def embed_files(
        self,
        paths: list[str | os.PathLike],
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int = 2,
        progress: bool = True,
    ) -> np.ndarray:
        """Embed audio files. Returns (len(paths), embedding_dim) float32, rows in the order given.

        Raises AudioLoadError (naming the file) for a file that cannot be loaded; use
        `iter_embed_files` to skip such files and keep going.
        """
        rows = []
        for path, output in self.iter_embed_files(paths, batch_size, num_workers, progress):
            if isinstance(output, AudioLoadError):
                raise output
            rows.append(output.embedding)
        return np.stack(rows) if rows else np.zeros((0, self.embedding_dim), dtype=np.float32)

    # ----- Hub integration -------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> "DiverseEmbedder":
        """Load a bundled checkpoint by name (see `bundled_models()`; `DEFAULT_MODEL` is the one
        trained on ESC-50), a `save_pretrained` folder, or a Hugging Face Hub id.

        Keyword arguments as in huggingface_hub: revision, cache_dir, local_files_only, token,
        force_download, map_location. Loading is strict (see `load_weights`).
        """
        name = str(pretrained_model_name_or_path)
        bundled = bundled_models()
        if name in bundled and not os.path.exists(name):  # a local folder of that name wins
            name = str(bundled[name])
        if os.path.isfile(name):
            raise CheckpointError(f"{name}: give the folder that holds config.json and {SAFETENSORS_FILE}, not a file")
        try:
            return super().from_pretrained(name, **kwargs)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{name}: config.json is not valid JSON ({err})") from None
        except (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            if os.path.isdir(name):
                raise
            raise CheckpointError(
                f"{name}: no such model folder, and not loadable from the Hugging Face Hub ({type(err).__name__}: {err})"
            ) from None

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        config: DiverseEmbedConfig | dict | None = None,
        **unused,
    ) -> "DiverseEmbedder":
        # Replaces the mixin's loader, which loads non-strictly, prints, and falls back to pickle.
        # `strict` is accepted for compatibility and ignored: loading is always strict.
        if config is None:
            raise CheckpointError(f"{model_id}: no config.json found, so the model's shape is unknown")
        model = cls(config)
        if os.path.isdir(model_id):
            model_file = Path(model_id) / SAFETENSORS_FILE
            if not model_file.is_file():
                raise CheckpointError(f"{model_id}: no {SAFETENSORS_FILE} in this folder (only safetensors weights are loaded)")
        else:
            model_file = hf_hub_download(
                repo_id=model_id, filename=SAFETENSORS_FILE, revision=revision, cache_dir=cache_dir,
                force_download=force_download, local_files_only=local_files_only, token=token,
            )
        load_weights(model, model_file)
        return model.to(map_location).eval()

    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        tensors = {name: t.detach().contiguous() for name, t in self.state_dict().items()}
        safetensors.torch.save_file(tensors, str(save_directory / SAFETENSORS_FILE), metadata={"format": "pt"})
        (save_directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, sort_keys=True))


UNTRAINED = "untrained-seed0"


def untrained_model(seed: int = 0) -> DiverseEmbedder:
    """The default-size model with random weights drawn from `seed`, in eval mode: the same weights
    every time (so indexes built with it stay searchable), without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DiverseEmbedder(DiverseEmbedConfig()).eval()


def load_weights(model: nn.Module, model_file: str | os.PathLike) -> None:
    """Load safetensors weights strictly: every key present, none extra, every shape equal.

    Tensors stored in another float precision (e.g. float16) are cast to the model's.
    """
    try:
        state = safetensors.torch.load_file(str(model_file))
    except (OSError, safetensors.SafetensorError) as err:
        raise CheckpointError(f"{model_file}: cannot read safetensors weights ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
                  for key in sorted(set(state) & set(expected)) if state[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch {_short(mismatched)}")
    if problems:
        raise CheckpointError(f"{model_file} does not match the model its config.json describes: " + "; ".join(problems))
    state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    model.load_state_dict(state, strict=True)


def _short(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}]"


def _as_is(item):
    return item


class _AudioFiles(torch.utils.data.Dataset):
    """Decodes files in DataLoader workers. A failure comes back as a value, not an exception, so
    the caller can name the file and go on; a file too long to hand over whole comes back as
    STREAM_IT, for the caller to stream with `embed_file`."""

    def __init__(self, paths: list, sample_rate: int, max_seconds_in_memory: float):
        self.paths, self.sample_rate, self.max_seconds = paths, sample_rate, max_seconds_in_memory

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = Path(self.paths[index])
        try:
            if audio_info(path).duration > self.max_seconds:
                return path, STREAM_IT
            return path, load_audio(path, self.sample_rate)
        except AudioLoadError as err:
            return path, err


STREAM_IT = "stream"
