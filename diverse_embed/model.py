"""DiverseEmbedder: four feature branches, each a small transformer, fused by concatenation.

chunks (batch, 16000) ──front end──▶ frames ──Linear──▶ (batch, frames, 64) ──+position──▶
6 transformer blocks ──mean over frames──▶ (batch, 64) per branch ──concat──▶ (batch, 256)
──Linear──▶ logits (batch, num_labels)

This file is the network. What uses it lives beside it and is bound to the class here, as whisper
does: embedding clips and files in `embed.py`, loading and saving in `checkpoint.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from . import checkpoint, labels
from . import embed as embedding
from .config import BRANCHES, NOT_FINGERPRINTED, DiverseEmbedConfig
from .features import LogMel, MFCCFrames, SpectralPeaks, WaveformPatches
from .neuralogram import MobileNetV1


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, written out; q, k, v and the result (B, heads, T, head_dim).

    The same function as F.scaled_dot_product_attention, faster on CPU at this model's ~40 frames
    and 8-wide heads, where PyTorch's fused kernel (built for long sequences) lags. Everything is
    computed transposed, keys by queries: CPU softmax is faster over a middle dimension than over
    a short last one, and MKL's batched matmul is faster with a T-wide output than an 8-wide one.
    """
    scores = torch.matmul(k, q.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # (B, heads, T keys, T queries)
    weights = scores.softmax(dim=-2)
    if dropout:
        weights = F.dropout(weights, dropout)
    return torch.matmul(v.transpose(-1, -2), weights).transpose(-1, -2)  # (B, heads, T, head_dim)


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
        # Frames of a chunk's whole window (more than `frames` with the neuralogram's context).
        self.window_frames = (
            self._frame_shape(front_end, config.window_samples)[0] if config.context_samples else frames
        )
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

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.front_end(chunks))

    def transformer(self, frames: torch.Tensor) -> torch.Tensor:
        """The front end's frames (B, T', features), T' >= T with context around the chunk -> (B, d_model)."""
        if frames.shape[1] > self.position.shape[1]:  # the chunk's own frames, the central ones
            first = (frames.shape[1] - self.position.shape[1]) // 2
            frames = frames[:, first : first + self.position.shape[1]]
        x = self.input_norm(self.input_projection(frames))  # (B, T, d_model)
        x = self.blocks(x + self.position)
        return self.final_norm(x).mean(dim=1)  # (B, d_model)


def build_front_end(name: str, config: DiverseEmbedConfig) -> nn.Module:
    if name == "pitch":
        return SpectralPeaks(config)
    if name == "timbre":
        return MFCCFrames(config)
    if name == "waveform":
        return WaveformPatches(config)
    if name == "neuralogram":
        settings = config.neuralogram
        return nn.Sequential(LogMel(config), MobileNetV1(settings.mobilenet_time_stride, settings.mobilenet_width))
    raise ValueError(f"unknown branch {name!r}; expected one of {BRANCHES}")


@dataclass
class ChunkOutput:
    """What `DiverseEmbedder.forward` returns for a batch of chunks."""

    embeddings: torch.Tensor  # (batch, embedding_dim), branch embeddings concatenated
    branch_embeddings: dict[str, torch.Tensor]  # name -> (batch, d_model)
    logits: torch.Tensor  # (batch, num_labels)


class DiverseEmbedder(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="diverse-embed",
    tags=["audio", "audio-embedding", "audio-classification", "diverse-embed"],
    pipeline_tag="audio-classification",
):
    """Four feature branches fused into one embedding. Build from a config or `from_pretrained`."""

    def __init__(self, config: DiverseEmbedConfig | dict | None = None):
        super().__init__()
        if isinstance(config, dict):  # as read from config.json
            config = DiverseEmbedConfig.from_dict(config)
        self.config = config if config is not None else DiverseEmbedConfig()
        self._hub_mixin_config = self.config  # what save_pretrained / push_to_hub write as config.json
        self.name_or_path: str | None = None  # how it was loaded (from_pretrained sets it), for indexes to record
        self.branches = nn.ModuleDict(
            {name: Branch(build_front_end(name, self.config), self.config) for name in self.config.branches}
        )
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
        """A hash of what the vectors depend on: the config's shape and the branches' weights. Equal
        fingerprints, equal embeddings. Indexes and embedding files record it, so that vectors of
        two different models are never mixed; the head and its labels are left out, so a new head
        on the same branches keeps its indexes."""
        return self._hash(NOT_FINGERPRINTED, lambda name: not name.startswith("head."))

    def fingerprint_0_1(self) -> str:
        """The fingerprint diverse-embed 0.1 recorded (the head's weights and labels included), for
        opening the indexes it wrote."""
        return self._hash(("problem_type",), lambda name: True)

    def _hash(self, left_out: tuple[str, ...], weighed) -> str:
        shape = {k: v for k, v in self.config.to_dict().items() if k not in left_out}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            if weighed(name):
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def forward(self, chunks: torch.Tensor, tokens: torch.Tensor | None = None) -> ChunkOutput:
        """chunks: (batch, window_samples) float32 at config.sample_rate: each chunk with
        config.context_samples of audio on both sides (`audio.chunk` cuts them; without context,
        window_samples is chunk_samples). The neuralogram hears the whole window, the others the chunk.
        tokens: the neuralogram's front-end output for each chunk, (batch, T, features), computed
        over blocks of chunks (`block_tokens`); the chunks may then come without their context."""
        context = self.config.context_samples
        widths = (
            (self.config.window_samples, self.config.chunk_samples)
            if tokens is not None
            else (self.config.window_samples,)
        )
        if chunks.ndim != 2 or chunks.shape[1] not in widths:
            around = f" with {context} samples of context each side" if context else ""
            raise ValueError(
                f"expected chunks of shape (batch, {self.config.window_samples}){around}, got {tuple(chunks.shape)}"
            )
        alone = self.chunk_alone(chunks)  # (B, chunk_samples)
        branch_embeddings = {}  # each (B, d_model)
        for name, branch in self.branches.items():
            if name != "neuralogram":
                branch_embeddings[name] = branch(alone)
            else:  # the whole window, or the tokens its front end gave over a block
                branch_embeddings[name] = branch(chunks) if tokens is None else branch.transformer(tokens)
        embeddings = torch.cat(list(branch_embeddings.values()), dim=1)  # (B, embedding_dim)
        return ChunkOutput(embeddings, branch_embeddings, self.head(embeddings))

    def block_tokens(self, block: torch.Tensor, n_chunks: int, hop: int) -> torch.Tensor:
        """The neuralogram's tokens for `n_chunks` consecutive chunks `hop` samples apart, from one
        pass of its front end over their block (`audio.blocks`): block (samples,) = (n_chunks - 1) *
        hop + window_samples, the chunks' windows joined -> (n_chunks, T, features).

        Chunk j's tokens are the block's tokens nearest where its own window's central tokens would
        sit, j * hop samples into the block (400-ms steps by default, so with 1-s chunks every
        other chunk's fall halfway and take the earlier ones, 200 ms early): tokens the network
        made, not blends of two (interpolated, the ESC-50 fold-5 probe was 0.657 instead of 0.683;
        benchmarks/results/research/multi_corpus/context.md). One chunk alone gives exactly its
        window's tokens.
        """
        branch = self.branches["neuralogram"]
        tokens = branch.front_end(block[None])[0]  # (T_block, features)
        steps = self.config.frame_hop_samples * self.config.neuralogram.mobilenet_time_stride  # samples a token
        own = branch.position.shape[1]
        first = (branch.window_frames - own) // 2  # what Branch.transformer keeps of a window's tokens
        chunks, own_tokens = torch.arange(n_chunks, device=tokens.device), torch.arange(own, device=tokens.device)
        positions = chunks[:, None] * (hop / steps) + first + own_tokens  # (n_chunks, own)
        nearest = torch.ceil(positions - 0.5).long()  # halfway: the earlier token
        return tokens[nearest.clamp(max=tokens.shape[0] - 1)]  # (n_chunks, own, features); shape, not len: exportable

    def chunk_alone(self, chunks: torch.Tensor) -> torch.Tensor:
        """(batch, window_samples) -> (batch, chunk_samples): each chunk without its context, what
        every branch but the neuralogram hears."""
        context = self.config.context_samples
        if not context or chunks.shape[1] == self.config.chunk_samples:
            return chunks
        return chunks[:, context : chunks.shape[1] - context].contiguous()

    # Embedding clips and files (embed.py)
    embed = embedding.embed
    embed_batch = embedding.embed_batch
    embed_file = embedding.embed_file
    embed_files = embedding.embed_files
    iter_embed_files = embedding.iter_embed_files
    tag = labels.tag  # the head's best labels (labels.py), as `diverse-embed tag` prints them

    # Loading and saving (checkpoint.py): strict, safetensors only, bundled checkpoints by name
    from_pretrained = classmethod(checkpoint.from_pretrained)
    _from_pretrained = classmethod(checkpoint.load_pretrained)
    save_pretrained = checkpoint.save_pretrained
    _save_pretrained = checkpoint.write_weights
    generate_model_card = checkpoint.model_card
    # The networks' float format when embedding (precision.py): "float32", "bfloat16" or "auto".
    precision = "float32"
    loaded_float16 = False  # set by loading: weights stored in float16 are saved back in float16
