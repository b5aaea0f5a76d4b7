"""ONNX export: one graph from 16-kHz chunks (batch, chunk_samples) to the fused embedding, the
branch vectors and the logits, with the four front ends inside, and the clip rule in its metadata.

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
from .errors import CommandError
from .features import stft_in_float64
from .files import atomic_write

PARITY = 1e-4  # the largest difference from the package's vectors that an export may have
OPSET = 20  # the first with Gelu, which the transformer blocks use
INPUT = "chunks"


def output_names(config) -> list[str]:
    """The graph's outputs in order: the fused embedding, each branch's vector, the logits."""
    return ["embedding", *config.branches, "logits"]


class ExportGraph(nn.Module):
    """The model as the exported graph sees it: chunks (batch, window_samples) -> a tuple of
    embedding (batch, embedding_dim), each branch's (batch, d_model), logits (batch, num_labels)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = stft_in_float64(copy.deepcopy(model).float().eval().cpu())

    def forward(self, chunks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(chunks)
        return (output.embeddings, *output.branch_embeddings.values(), output.logits)


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
    if model.config.block_chunks > 1:
        raise CommandError(
            f"{name} hears blocks of {model.config.block_chunks} chunks (neuralogram.block_chunks), which a "
            "graph of single chunks cannot: export a model whose block_chunks is 1"
        )
    require_exporter()
    import onnx

    graph = ExportGraph(model)
    example = torch.zeros(2, model.config.window_samples)  # (batch, window_samples); batch becomes dynamic
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
            input_names=[INPUT],
            output_names=output_names(model.config),
            dynamic_shapes={"chunks": {0: torch.export.Dim("batch")}},
        )
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata(model, name))
    proto.doc_string = (
        f"diverse-embed {name}: 1-s chunks at {model.config.sample_rate} Hz -> {output_names(model.config)}"
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

    from .audio import chunk
    from .embed import clip_output, forward_chunks

    worst: dict[str, float] = {}

    def note(key: str, a, b) -> None:
        worst[key] = max(worst.get(key, 0.0), float(np.abs(np.asarray(a) - np.asarray(b)).max()))

    names = output_names(model.config)
    for waveform in waveforms:
        chunks, _ = chunk(waveform, model.config)  # (n_chunks, window_samples)
        outputs = dict(zip(names, session.run(None, {INPUT: chunks.numpy()})))
        embeddings, logits = forward_chunks(model, chunks, batch_size=64)
        note("embedding", outputs["embedding"], embeddings)
        note("logits", outputs["logits"], logits)
        for name in model.config.branches:
            note(name, outputs[name], embeddings[:, model.config.branch_slice(name)])
        exported = clip_output(
            model, torch.from_numpy(outputs["embedding"]), torch.from_numpy(outputs["logits"]), len(waveform)
        )
        note("clip embedding", exported.embedding, clip_output(model, embeddings, logits, len(waveform)).embedding)
    return worst
