"""Scores of a trained model on labelled chunks: clip-level tagging metrics of the fused head and of
the ablation heads (each branch alone, each leave-one-branch-out fusion: which heads exist, how they
are trained on frozen embeddings, saved and read back), and their report.

Clip scores are the mean of the clip's chunk logits, as the method defines them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ..config import DiverseEmbedConfig
from ..distributed import Runtime
from ..labels import label_corpora
from ..metrics import tagging_metrics
from ..model import DiverseEmbedder
from .config import DataConfig
from .data import ChunkDataset, load_splits

ABLATION_HEADS = "ablation_heads.safetensors"


def fit_ablation_heads(
    fit_head: Callable[[str, list[int], int], nn.Linear],
    config: DiverseEmbedConfig,
    fused: bool = True,
    ablation: bool = True,
) -> dict[str, nn.Linear]:
    """A head for every subset of the model's branches (config.branch_subsets), each trained by
    `fit_head(name, columns of the fused embedding it reads, seed offset)`; without `fused`, all
    but the fused head; without `ablation`, the fused head only."""
    return {
        name: fit_head(name, config.branch_columns(names), number)
        for number, (name, names) in enumerate(config.branch_subsets().items())
        if (fused or name != "fused") and (ablation or name == "fused")
    }


def subset_title(name: str) -> str:
    """How reports name a subset."""
    if name == "fused":
        return "fused (all branches)"
    return f"without {name[1:]}" if name.startswith("-") else f"{name} alone"


@torch.no_grad()
def chunk_outputs(function, dataset: ChunkDataset, batch_size: int, num_workers: int, rt: Runtime) -> np.ndarray:
    """function(chunks) -> (B, width) over every chunk of the dataset, gathered from all ranks in
    chunk order: (n_chunks, width)."""
    mine = np.arange(rt.rank, len(dataset), rt.world)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, mine),
        batch_size=batch_size,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )
    rows = [function(chunks.to(rt.device)).float().cpu().numpy() for chunks, _, _ in loader]
    gathered = rt.gather((mine, np.concatenate(rows) if rows else None))
    order = np.concatenate([m for m, _ in gathered])
    values = np.concatenate([v for _, v in gathered if v is not None])
    return values[np.argsort(order)]


def embed_chunks(model: DiverseEmbedder, dataset: ChunkDataset, cfg: DataConfig, rt: Runtime) -> np.ndarray:
    """The fused embedding of every chunk: (n_chunks, D)."""
    model.eval()
    return chunk_outputs(
        lambda chunks: model(chunks).embeddings, dataset, cfg.batch_size, cfg.loader_workers(rt.device), rt
    )


def clip_means(chunk_values: np.ndarray, dataset: ChunkDataset) -> np.ndarray:
    """Chunk values (n_chunks, width) averaged per clip: (n_clips, width)."""
    clip_of_chunk = dataset.index[:, 0]
    n_clips = len(dataset.clips)
    sums = np.zeros((n_clips, chunk_values.shape[1]))
    np.add.at(sums, clip_of_chunk, chunk_values)
    return sums / np.bincount(clip_of_chunk, minlength=n_clips)[:, None]


def clip_macro_map(chunk_logits: np.ndarray, dataset: ChunkDataset) -> float:
    """Macro mAP of clip scores (the mean of each clip's chunk logits): what training selects on."""
    return tagging_metrics(dataset.clip_targets(), clip_means(chunk_logits, dataset))["macro_map"]


def corpus_clip_metrics(
    scores: np.ndarray, targets: np.ndarray, dataset: ChunkDataset, vocabulary: list[str]
) -> dict[str, dict]:
    """Tagging metrics of each corpus on its own clips and its own labels (a model trained on a
    manifest with a corpus column), from clip scores and targets (n_clips, n_classes): corpus ->
    metrics. Empty for a single label space."""
    corpora = label_corpora(vocabulary)
    if corpora is None:
        return {}
    clip_corpus = np.array([clip.corpus for clip in dataset.clips])
    found = {}
    for corpus in sorted(set(clip_corpus)):
        rows, cols = clip_corpus == corpus, np.array(corpora) == corpus
        present = targets[rows][:, cols].sum(axis=0)
        if not ((present > 0) & (present < rows.sum())).any():
            continue  # no label both on and off some clip (one label, or one class in the split): nothing to rank
        found[corpus] = tagging_metrics(targets[rows][:, cols], scores[rows][:, cols])
    return found


def head_logits(head: nn.Module, embeddings: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(embeddings).float().to(head.weight.device)).float().cpu().numpy()


def evaluate(
    model: DiverseEmbedder,
    heads: dict[str, nn.Linear],
    data: dict[str, ChunkDataset],
    cfg: DataConfig,
    rt: Runtime,
    embeddings: dict[str, np.ndarray] | None = None,
) -> dict:
    """Metrics of the fused head and every ablation head on the val and test splits. `embeddings`
    holds chunk embeddings already computed, by split name."""
    results = {}
    for split in ("val", "test"):
        if split not in data:
            continue
        dataset = data[split]
        x = (embeddings or {}).get(split)
        if x is None:
            x = embed_chunks(model, dataset, cfg, rt)  # (n_chunks, D)
        vocabulary = model.config.label_names()
        logits = {"fused": head_logits(model.head, x)}
        subsets = model.config.branch_subsets()
        for name, head in heads.items():
            logits[name] = head_logits(head, x[:, model.config.branch_columns(subsets[name])])
        targets = dataset.clip_targets()
        scores = {n: clip_means(v, dataset) for n, v in logits.items()}  # (n_clips, n_classes) per head
        results[split] = {
            "clips": len(dataset.clips),
            "systems": {n: tagging_metrics(targets, s) for n, s in scores.items()},
        }
        per_corpus = {n: corpus_clip_metrics(s, targets, dataset, vocabulary) for n, s in scores.items()}
        if any(per_corpus.values()):  # corpus -> system -> metrics
            results[split]["corpora"] = {c: {n: per_corpus[n][c] for n in logits} for c in per_corpus["fused"]}
    return results


def metrics_table(title: str, systems: dict[str, dict]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| system | macro mAP | micro mAP | d' | lwlrap | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in systems.items():
        acc = "" if m["accuracy"] is None else f"{m['accuracy']:.3f}"
        lines.append(
            f"| {subset_title(name)} | {m['macro_map']:.3f} | {m['micro_map']:.3f} | {m['d_prime']:.3f} | "
            f"{m['lwlrap']:.3f} | {acc} |"
        )
    return lines + [""]


def metrics_markdown(metrics: dict) -> str:
    lines = []
    for split, result in metrics["results"].items():
        lines += metrics_table(f"{split} ({result['clips']} clips)", result["systems"])
        for corpus, systems in result.get("corpora", {}).items():
            lines += metrics_table(f"{split}, {corpus} alone (its clips, its labels)", systems)
    if metrics.get("throughput"):
        lines += ["Training throughput (1-s chunks per second):", ""]
        lines += [f"- {phase}: {rate}" for phase, rate in metrics["throughput"].items()]
    return "\n".join(lines) + "\n"


def write_metrics(metrics: dict, folder: Path) -> None:
    """metrics.json and its report metrics.md, into a training output folder."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "metrics.md").write_text(metrics_markdown(metrics))


def save_ablation_heads(heads: dict[str, nn.Linear], folder: Path) -> None:
    safetensors.torch.save_file(
        {f"{n}.{k}": v.detach().cpu().contiguous() for n, h in heads.items() for k, v in h.state_dict().items()},
        str(folder / ABLATION_HEADS),
    )


def load_ablation_heads(folder: Path, config: DiverseEmbedConfig) -> dict[str, nn.Linear]:
    """The ablation heads a training run saved in `folder` ({} when it has none)."""
    path = Path(folder) / ABLATION_HEADS
    if not path.is_file():
        return {}
    tensors = safetensors.torch.load_file(str(path))
    heads = {}
    for name, names in config.branch_subsets().items():
        if f"{name}.weight" in tensors:
            head = nn.Linear(len(names) * config.d_model, config.num_labels)
            head.load_state_dict({"weight": tensors[f"{name}.weight"], "bias": tensors[f"{name}.bias"]})
            heads[name] = head
    return heads


def evaluate_run(run_dir: str | Path, cfg: DataConfig) -> dict:
    """`diverse-embed evaluate RUN`: metrics of a training output folder on cfg's val and test splits."""
    with Runtime(cfg.device) as rt:
        model = DiverseEmbedder.from_pretrained(run_dir).to(rt.device)
        data, _, failures = load_splits(cfg, rt, model.config)
        heads = {n: h.to(rt.device) for n, h in load_ablation_heads(Path(run_dir), model.config).items()}
        results = evaluate(model, heads, data, cfg, rt)
    return {"results": results, "failures": [{"path": p, "reason": r} for p, r in failures]}
