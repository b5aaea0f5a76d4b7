"""ONNX export: one graph from 16-kHz chunks (batch, chunk_samples) to the fused embedding, the
branch vectors and the logits, with the four front ends inside, and the clip rule in its metadata.
A model whose neuralogram hears blocks of chunks (`neuralogram.block_chunks`) gets a graph from one
block's audio (`audio.blocks`) to the outputs of the block's chunks instead.

torch's exporter turns each torchaudio STFT into ONNX's STFT operator, and the rest of the
network into plain operators. The graph computes its three STFTs in float64
(features.PowerSpectrogram): onnxruntime's float32 STFT is far less exact than torch's FFT, its
float64 one as exact. The package computes the log-mel's in float64 too, the two others in float32
(where torch's float32 FFT is as good as exact for the vectors).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .config import RANGES, NeuralogramConfig
from .errors import CommandError
from .features import stft_in_float64
from .files import atomic_write

PARITY = 1e-4  # the largest difference from the package's vectors that an export may have
OPSET = 20  # the first with Gelu, which the transformer blocks use
INPUT = "chunks"
BLOCK_INPUT = "block"  # the input of a model with blocks: one block's audio


def output_names(config) -> list[str]:
    """The graph's outputs in order: the fused embedding, each branch's vector, the logits."""
    return ["embedding", *config.branches, "logits"]


class ExportGraph(nn.Module):
    """The model as the exported graph sees it: chunks (batch, window_samples) -> a tuple of
    embedding (batch, embedding_dim), each branch's (batch, d_model), logits (batch, num_labels).
    With blocks: one block's audio ((n - 1) * hop_samples + window_samples,) -> the same for its n chunks."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = stft_in_float64(copy.deepcopy(model).float().eval().cpu())

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(audio) if self.model.config.block_chunks == 1 else self.block(audio)
        return (output.embeddings, *output.branch_embeddings.values(), output.logits)

    def block(self, block: torch.Tensor):
        config = self.model.config
        n = (block.shape[0] - config.window_samples) // config.hop_samples + 1
        starts = torch.arange(n) * config.hop_samples + config.context_samples  # each chunk, without its context
        chunks = block[starts[:, None] + torch.arange(config.chunk_samples)]  # (n, chunk_samples): a gather exports
        return self.model(chunks, self.model.block_tokens(block, n, config.hop_samples))


def metadata(model: nn.Module, name: str) -> dict[str, str]:
    """What the file says about itself (ONNX metadata_props: strings): enough to apply the clip rule
    and to tell which model made a vector."""
    config = model.config
    return {
        "model": str(name),
        "fingerprint": model.fingerprint(),
        "diverse_embed_version": __version__,
        "sample_rate": str(config.sample_rate),
        "chunk_samples": str(config.chunk_samples),
        "context_samples": str(config.context_samples),  # zeros before the clip, then a window every hop
        "window_samples": str(config.window_samples),
        "hop_samples": str(config.hop_samples),
        "min_final_chunk_samples": str(config.min_final_chunk_samples),
        "block_chunks": str(config.block_chunks),  # above 1: the input is one block of that many chunks at most
        "embedding_dim": str(config.embedding_dim),
        "branches": json.dumps(config.branches),
        "outputs": json.dumps(output_names(config)),
        "labels": json.dumps(config.label_names()),
        "problem_type": str(config.problem_type or ""),
        "config": json.dumps(config.to_dict()),
    }


def require_exporter() -> None:
    """CommandError naming the extra when onnx, onnxscript (torch's exporter) or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f'exporting needs {", ".join(missing)}: pip install "diverse-embed[export]"')


def export_onnx(model: nn.Module, path: str | os.PathLike, name: str | None = None) -> Path:
    """Write `model` as one self-contained ONNX file at `path` (weights inside, batch dynamic);
    `name` (default: how the model was loaded) goes into its metadata."""
    name = name or model.name_or_path or "unnamed"
    require_exporter()
    import onnx

    config = model.config
    graph = ExportGraph(model)
    if config.block_chunks == 1:  # (batch, window_samples); batch becomes dynamic
        example, input_name, dynamic = torch.zeros(2, config.window_samples), INPUT, {0: torch.export.Dim("batch")}
    else:  # one block of 3 chunks; its length becomes (n - 1) * hop + window for any n
        # Bounded by the config's range, not block_chunks: an upper bound as small as the example's
        # count fixed a reshape to it in the graph.
        chunks = torch.export.Dim("chunks", min=1, max=RANGES[NeuralogramConfig]["block_chunks"][2])
        example, input_name = torch.zeros(2 * config.hop_samples + config.window_samples), BLOCK_INPUT
        dynamic = {0: config.hop_samples * chunks + (config.window_samples - config.hop_samples)}
    # Without torchvision the exporter warns about each of its operators it cannot register.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
            external_data=False,
            input_names=[input_name],
            output_names=output_names(config),
            dynamic_shapes={"audio": dynamic},
        )
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata(model, name))
    proto.doc_string = (
        f"diverse-embed {name}: {'1-s chunks' if config.block_chunks == 1 else 'a block of 1-s chunks'} at "
        f"{config.sample_rate} Hz -> {output_names(config)}"
    )
    path = Path(path)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path


def onnx_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session of an exported file, on `threads` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_differences(model: nn.Module, session, waveforms: list) -> dict[str, float]:
    """The largest absolute difference between the package's outputs and the file's over every chunk
    of `waveforms` (each (samples,) at the model's rate), per output, and for the clip vectors
    (`clip embedding`: L2-normalised means, as `embed` returns them)."""
    import numpy as np

    from .audio import blocks, chunk, cut
    from .embed import clip_output, forward_blocks, forward_chunks

    worst: dict[str, float] = {}

    def note(key: str, a, b) -> None:
        worst[key] = max(worst.get(key, 0.0), float(np.abs(np.asarray(a) - np.asarray(b)).max()))

    config, names = model.config, output_names(model.config)
    for waveform in waveforms:
        if config.block_chunks == 1:
            chunks, _ = chunk(waveform, config)  # (n_chunks, window_samples)
            runs = [session.run(None, {INPUT: chunks.numpy()})]
            embeddings, logits = forward_chunks(model, chunks, batch_size=64)
        else:  # a run per block, as embed cuts them
            spans = blocks(waveform, config)
            runs = [session.run(None, {BLOCK_INPUT: block.numpy()}) for block, _ in spans]
            alone = cut(waveform, config.chunk_samples, config.hop_samples, config.num_chunks(len(waveform)))
            embeddings, logits = forward_blocks(model, alone, spans, config.hop_samples, batch_size=64)
        outputs = {name: np.concatenate(parts) for name, parts in zip(names, zip(*runs))}
        note("embedding", outputs["embedding"], embeddings)
        note("logits", outputs["logits"], logits)
        for name in config.branches:
            note(name, outputs[name], embeddings[:, config.branch_slice(name)])
        exported = clip_output(
            model, torch.from_numpy(outputs["embedding"]), torch.from_numpy(outputs["logits"]), len(waveform)
        )
        note("clip embedding", exported.embedding, clip_output(model, embeddings, logits, len(waveform)).embedding)
    return worst
