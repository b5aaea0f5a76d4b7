"""The HEAR 2021 common API (https://hearbenchmark.com/hear-api.html), so that the HEAR evaluation
kit (hear-eval-kit) can evaluate DiverseEmbedder like any other audio representation:

    from diverse_embed import hear
    model = hear.load_model()                                   # the default bundled checkpoint
    scene = hear.get_scene_embeddings(audio, model)             # (n_sounds, 512)
    frames, times_ms = hear.get_timestamp_embeddings(audio, model)  # (n, n_times, 256), (n, n_times)

Input: float32 (n_sounds, n_samples) in [-1, 1] at 16 kHz, any length from 0.5 s, on any device;
outputs are float32 on the input's device.

Scene embedding (512-d): the mean of the clip's 1-s chunk embeddings (the fused 256-d vector, as
`DiverseEmbedder.embed` computes it before normalising) and their standard deviation over the
chunks (zero for a clip of one chunk): the spread helps a little in the linear probe and retrieval,
unevenly across folds (benchmarks/results/linear_probe_esc50.md, "fused mean+std over chunks").

Timestamp embedding (256-d): the fused embedding of the 1-s window centred on each timestamp
(zero-padded past the clip's edges), one every `timestamp_hop_ms` (default 50 ms). Timestamps are
the windows' centres, k * hop samples for k = 0, 1, ... while within the clip, computed from
integer sample positions, so they are evenly spaced without drift, and the last one lies within
one hop of the end and never past it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .audio import cut, joined_blocks
from .embed import EmbeddingOutput, forward_blocks
from .model import DiverseEmbedder
from .resolve import resolve_model

TIMESTAMP_HOP_MS = 50
WINDOWS_PER_BATCH = 128  # 1-s windows per forward pass: bounds memory on long clips


class HearModel(nn.Module):
    """A DiverseEmbedder with the attributes the HEAR API asks for."""

    def __init__(self, embedder: DiverseEmbedder, timestamp_hop_ms: int = TIMESTAMP_HOP_MS):
        super().__init__()
        self.embedder = embedder.eval()
        self.sample_rate = int(embedder.config.sample_rate)
        self.timestamp_embedding_size = int(embedder.config.embedding_dim)
        self.scene_embedding_size = 2 * self.timestamp_embedding_size
        hop = self.sample_rate * timestamp_hop_ms / 1000
        if hop != int(hop) or hop <= 0:
            raise ValueError(
                f"timestamp_hop_ms={timestamp_hop_ms} is not a whole number of samples at {self.sample_rate} Hz"
            )
        self.timestamp_hop_samples = int(hop)

    @property
    def device(self) -> torch.device:
        return self.embedder.device


def load_model(model_file_path: str = "", timestamp_hop_ms: int = TIMESTAMP_HOP_MS) -> HearModel:
    """The bundled checkpoint (""), a bundled name, a from_pretrained folder or Hub id, or a
    .safetensors file with its config.json beside it (resolve.resolve_model)."""
    return HearModel(resolve_model(model_file_path or None)[0], timestamp_hop_ms)


def _check(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        shape = f" of shape {tuple(audio.shape)}" if hasattr(audio, "shape") else ""
        raise ValueError(
            f"audio must be a torch.Tensor (n_sounds, n_samples), got a {type(audio).__module__}."
            f"{type(audio).__name__}{shape}: convert it with torch.as_tensor(audio)"
        )
    if audio.ndim != 2:
        raise ValueError(
            f"audio must have shape (n_sounds, n_samples), got shape {tuple(audio.shape)}: one sound is audio[None]"
        )
    if audio.shape[1] == 0:
        raise ValueError("audio has no samples")
    bad = int((~torch.isfinite(audio)).sum())
    if bad:  # refused by both functions alike, never passed through as non-finite vectors
        raise ValueError(f"audio holds {bad} NaN or infinite samples")
    return audio.to(model.device, torch.float32)


@torch.inference_mode()
def _embed_windows(windows: torch.Tensor, model: HearModel) -> torch.Tensor:
    """windows (n, window_samples) of one sound, every timestamp hop, possibly an overlapping view ->
    fused chunk embeddings (n, 256), WINDOWS_PER_BATCH at a time (only those are copied out of the
    view); a model whose neuralogram hears blocks hears blocks of these windows spanning what its
    blocks of chunks span when embedding (30 chunks a second apart: 600 windows 50 ms apart)."""
    config, hop = model.embedder.config, model.timestamp_hop_samples
    if config.block_chunks > 1:
        size = max(1, round(config.block_chunks * config.hop_samples / hop))
        spans = joined_blocks(windows, hop, size)
        return forward_blocks(model.embedder, windows, spans, hop, WINDOWS_PER_BATCH)[0]
    return torch.cat([model.embedder(part.contiguous()).embeddings for part in windows.split(WINDOWS_PER_BATCH)])


def scene_vector(output: EmbeddingOutput) -> np.ndarray:
    """The scene embedding of one clip from what `embed` gives: the mean and the (population)
    standard deviation of its chunk embeddings, (512,)."""
    return np.concatenate([output.chunk_embeddings.mean(axis=0), output.chunk_embeddings.std(axis=0)])


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """audio (n_sounds, n_samples) -> (n_sounds, 512): mean and std of the 1-s chunk embeddings."""
    x = _check(audio, model)
    if len(x) == 0:
        return torch.zeros((0, model.scene_embedding_size), device=audio.device)
    outputs = model.embedder.embed_batch(list(x), model.sample_rate)  # the same chunks as `embed`
    return torch.from_numpy(np.stack([scene_vector(o) for o in outputs])).float().to(audio.device)


def timestamps_ms(n_samples: int, model: HearModel) -> torch.Tensor:
    """Window centres in ms: k * hop for k = 0.. while k * hop <= n_samples. (n_times,) float32."""
    hop = model.timestamp_hop_samples
    positions = torch.arange(0, n_samples // hop + 1, dtype=torch.int64) * hop  # integer samples: no drift
    return positions.double().mul(1000.0 / model.sample_rate).float()


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """audio (n_sounds, n_samples) -> embeddings (n_sounds, n_times, 256), timestamps (n_sounds, n_times) in ms."""
    x = _check(audio, model)
    n_sounds, n_samples = x.shape
    config = model.embedder.config
    window, hop = config.window_samples, model.timestamp_hop_samples
    times = timestamps_ms(n_samples, model)
    # Half a chunk (and the context) of zeros in front, so the window centred on timestamp k starts at k * hop.
    front = config.chunk_samples // 2 + config.context_samples
    padded = nn.functional.pad(x, (front, 0))  # (n_sounds, front + n_samples)
    windows = cut(padded, window, hop, len(times))  # (n_sounds, n_times, window), a view
    embeddings = (
        torch.stack([_embed_windows(w, model) for w in windows])
        if n_sounds
        else torch.zeros((0, len(times), model.timestamp_embedding_size))
    )  # (n_sounds, n_times, 256)
    return embeddings.float().to(audio.device), times.unsqueeze(0).expand(n_sounds, -1).to(audio.device)
