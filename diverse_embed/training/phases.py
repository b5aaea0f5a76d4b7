"""The phases of training as the method describes them, and what each one trains:

1. `neuralogram`: the MobileNet learns to tag log-mel (a temporary linear head on its time-pooled
   1024-d activations), then is frozen.
2. `branch:<name>`: each branch's transformer learns alone, with its own temporary linear head.
3. `fusion`: branches frozen, their embeddings concatenated, the linear head trained; beside it a
   head for every single branch and every leave-one-out subset, for the ablation (evaluate.py).
4. `finetune` (optional): everything together through the fused head; then the ablation heads are
   trained again on the fine-tuned branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..model import DiverseEmbedder
from .config import TrainConfig
from .losses import new_head


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float  # peak learning rate


def plan_phases(cfg: TrainConfig, branches: list[str]) -> list[Phase]:
    """The phases cfg asks for, in order, each with its epochs and learning rate: decided here only."""
    phases = []
    if not cfg.init_from:  # a pretrained model's branches are trained already
        if "neuralogram" in branches and not cfg.mobilenet_weights:
            phases.append(Phase("neuralogram", cfg.neuralogram_epochs, cfg.lr))
        phases += [Phase(f"branch:{b}", cfg.branch_epochs, cfg.lr) for b in branches]
    phases.append(fusion_phase(cfg))
    if cfg.finetune_epochs > 0:
        phases.append(Phase("finetune", cfg.finetune_epochs, cfg.finetune_lr))
    if cfg.stage == "all":
        return phases
    return [p for p in phases if p.name == cfg.stage or (cfg.stage == "branches" and p.name.startswith("branch:"))]


def fusion_phase(cfg: TrainConfig) -> Phase:
    """The heads on frozen embeddings: in the fusion phase, and again after fine-tuning."""
    return Phase("fusion", cfg.fusion_epochs, cfg.head_lr)


class Tagger(nn.Module):
    """A part of the model with a temporary linear head: chunks -> logits (batch, n_classes), and
    with `with_embedding` also the embedding the head reads (batch, width)."""

    def __init__(self, body: nn.Module, head: nn.Linear, pool_time: bool):
        super().__init__()
        self.body, self.head, self.pool_time = body, head, pool_time

    def forward(self, chunks: torch.Tensor, with_embedding: bool = False):
        features = self.body(chunks)  # (B, width), or (B, T, width) for the MobileNet
        embedding = features.mean(dim=1) if self.pool_time else features
        return (self.head(embedding), embedding) if with_embedding else self.head(embedding)


class FusedTagger(nn.Module):
    """The whole model through its fused head (joint fine-tuning)."""

    def __init__(self, model: DiverseEmbedder):
        super().__init__()
        self.model = model

    def forward(self, chunks: torch.Tensor, with_embedding: bool = False):
        output = self.model(chunks)
        return (output.logits, output.embeddings) if with_embedding else output.logits


def phase_module(name: str, model: DiverseEmbedder, prior_logits: torch.Tensor, seed: int) -> nn.Module:
    """The module a phase trains, its trainable parameters unfrozen and everything else frozen."""
    model.requires_grad_(False)
    if name == "neuralogram":
        mobilenet = model.branches["neuralogram"].front_end
        module = Tagger(mobilenet, new_head(mobilenet[1].out_features, prior_logits, seed), pool_time=True)
    elif name.startswith("branch:"):
        module = Tagger(model.branches[name.split(":", 1)[1]], new_head(model.config.d_model, prior_logits, seed), False)
    else:
        module = FusedTagger(model)
    module.requires_grad_(True)
    if name == "branch:neuralogram":
        model.branches["neuralogram"].front_end.requires_grad_(False)  # the MobileNet stays as stage 1 left it
    return module


def set_train_mode(module: nn.Module, phase: str, model: DiverseEmbedder) -> None:
    module.train()
    if phase == "branch:neuralogram":
        model.branches["neuralogram"].front_end.eval()  # frozen batch-norm statistics too
