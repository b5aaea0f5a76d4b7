"""What each phase minimises: the tagging loss (a softmax per corpus, or binary cross-entropy),
mixup within a corpus, a supervised contrastive term, and linear heads that start at the label prior."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from .data import ChunkDataset


def resolve_loss(name: str, dataset: ChunkDataset) -> str:
    single = all(len(clip.labels) == 1 for clip in dataset.clips)
    if name == "auto":
        return "softmax" if single else "bce"
    if name == "softmax" and not single:
        raise DataError("loss softmax needs exactly one label per training clip; use bce")
    return name


def loss_function(
    name: str, logits: torch.Tensor, targets: torch.Tensor, corpus_of_label: torch.Tensor | None = None
) -> torch.Tensor:
    """logits, targets (batch, n_classes) -> scalar loss. `corpus_of_label` (n_classes,) numbers
    each label's corpus: a softmax then runs over the labels of each chunk's own corpus only."""
    if name == "softmax":  # targets sum to 1 per chunk: one-hot, or two labels' weights after mixup
        foreign = torch.zeros_like(logits, dtype=torch.bool)
        if corpus_of_label is not None:
            own = corpus_of_label[targets.argmax(dim=1)]  # (batch,)
            foreign = corpus_of_label[None, :] != own[:, None]  # (batch, n_classes)
        log_p = F.log_softmax(logits.masked_fill(foreign, float("-inf")), dim=1).masked_fill(foreign, 0.0)
        return -(targets * log_p).sum(dim=1).mean()
    return F.binary_cross_entropy_with_logits(logits, targets)


def mixup(
    chunks: torch.Tensor, targets: torch.Tensor, alpha: float, corpus_of_label: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al.'s mixup within each corpus (their label sets differ): chunks (batch, samples)
    and targets (batch, n_classes) -> the same shapes, each chunk mixed with a random partner of
    its own corpus at a weight drawn from Beta(alpha, alpha)."""
    corpus = torch.zeros(len(chunks), device=chunks.device)
    if corpus_of_label is not None:
        corpus = corpus_of_label[targets.argmax(dim=1)].float()  # (batch,)
    # Two random orders that both list the chunks corpus by corpus: pairing them pairs within a corpus.
    order = torch.argsort(corpus + torch.rand(len(chunks), device=chunks.device))
    shuffled = torch.argsort(corpus + torch.rand(len(chunks), device=chunks.device))
    partner = torch.empty_like(order)
    partner[order] = shuffled  # (batch,)
    weight = torch.distributions.Beta(alpha, alpha).sample((len(chunks), 1)).to(chunks.device)  # (batch, 1)
    return (weight * chunks + (1 - weight) * chunks[partner], weight * targets + (1 - weight) * targets[partner])


def supervised_contrastive(embeddings: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Khosla et al.'s SupCon loss: embeddings (batch, width), targets (batch, n_classes); chunks
    that share a label are positives. Anchors without a positive in the batch are left out."""
    z = F.normalize(embeddings.float(), dim=1)
    itself = torch.eye(len(z), dtype=torch.bool, device=z.device)
    similarity = (z @ z.T / temperature).masked_fill(itself, float("-inf"))  # (batch, batch)
    log_probability = similarity - similarity.logsumexp(dim=1, keepdim=True)
    positives = ((targets @ targets.T) > 0) & ~itself
    count = positives.sum(dim=1)
    if not count.any():
        return z.sum() * 0.0  # no positive pair: nothing to pull together (keeps the graph)
    mean_positive = log_probability.masked_fill(~positives, 0.0).sum(dim=1) / count.clamp(min=1)
    return -mean_positive[count > 0].mean()


def label_prior_logits(
    dataset: ChunkDataset, loss: str = "bce", corpus_of_label: np.ndarray | None = None
) -> torch.Tensor:
    """The logits that predict each class's frequency among the training chunks: (n_classes,).
    logit(p) per class for bce, log(p) for softmax (within each label's corpus, when given)."""
    prior = np.clip(dataset.chunk_targets().mean(axis=0) if len(dataset.index) else 0.0, 1e-4, 1 - 1e-4)
    if corpus_of_label is not None and loss == "softmax":
        prior = prior / np.bincount(corpus_of_label, weights=prior)[corpus_of_label]
    logits = np.log(prior) if loss == "softmax" else np.log(prior / (1 - prior))
    return torch.from_numpy(np.asarray(logits)).float()


def new_head(width: int, prior_logits: torch.Tensor, seed: int) -> nn.Linear:
    """A linear head whose bias starts at the label prior: otherwise its first hundreds of steps
    only learn the base rates, not the audio. Drawn from `seed`, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(width, len(prior_logits))
    with torch.no_grad():
        head.bias.copy_(prior_logits)
    return head
