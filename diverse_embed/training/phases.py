"""The phases of training as the method describes them, and what each one trains:

1. `neuralogram`: the MobileNet learns to tag log-mel (a temporary linear head on its time-pooled
   1024-d activations), then is frozen.
2. `branch:<name>`: each branch's transformer learns alone, with its own temporary linear head.
3. `fusion`: branches frozen, their embeddings concatenated, the linear head trained; with
   --ablation-heads beside it a head for every single branch and every leave-one-out subset, for
   the ablation (evaluate.py).
4. `finetune` (optional): everything together through the fused head; then the ablation heads (if
   asked for) are trained again on the fine-tuned branches.
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
    phases = [
        Phase(name, cfg.neuralogram_epochs if name == "neuralogram" else cfg.branch_epochs, cfg.lr)
        for name in branch_stages(branches)
        if not (name == "neuralogram" and cfg.mobilenet_weights)
    ]
    if cfg.init_from:  # a pretrained model's branches are trained already: only those named again
        phases = [p for p in phases if p.name in cfg.retrain]
    phases.append(fusion_phase(cfg))
    if cfg.finetune_epochs > 0:
        phases.append(Phase("finetune", cfg.finetune_epochs, cfg.finetune_lr))
    if cfg.stage == "all":
        return phases
    return [p for p in phases if p.name == cfg.stage or (cfg.stage == "branches" and p.name.startswith("branch:"))]


def branch_stages(branches: list[str]) -> list[str]:
    """The stages before fusion, in order: the MobileNet's (with a neuralogram branch), then each branch's."""
    return ["neuralogram"] * ("neuralogram" in branches) + [f"branch:{b}" for b in branches]


def fusion_phase(cfg: TrainConfig) -> Phase:
    """The heads on frozen embeddings: in the fusion phase, and again after fine-tuning."""
    return Phase("fusion", cfg.fusion_epochs, cfg.head_lr)


class Tagger(nn.Module):
    """A part of the model with a temporary linear head: chunks -> logits (batch, n_classes), and
    with `with_embedding` (logits, the embedding the head reads (batch, width), the teacher's vector
    as `to_teacher` predicts it from that embedding (batch, teacher width), or None without it)."""

    def __init__(self, body: nn.Module, head: nn.Linear, pool_time: bool):
        super().__init__()
        self.body, self.head, self.pool_time = body, head, pool_time
        self.to_teacher: nn.Linear | None = None  # a temporary map for regression distillation

    def forward(self, chunks: torch.Tensor, with_embedding: bool = False):
        features = self.body(chunks)  # (B, width), or (B, T, width) for the MobileNet
        embedding = features.mean(dim=1) if self.pool_time else features
        return with_outputs(self, self.head(embedding), embedding, with_embedding)


class FusedTagger(nn.Module):
    """The whole model through its fused head (joint fine-tuning); outputs as Tagger's."""

    def __init__(self, model: DiverseEmbedder):
        super().__init__()
        self.model = model
        self.to_teacher: nn.Linear | None = None

    def forward(self, chunks: torch.Tensor, with_embedding: bool = False):
        output = self.model(chunks)
        return with_outputs(self, output.logits, output.embeddings, with_embedding)


def with_outputs(tagger: nn.Module, logits: torch.Tensor, embedding: torch.Tensor, with_embedding: bool):
    if not with_embedding:
        return logits
    return logits, embedding, None if tagger.to_teacher is None else tagger.to_teacher(embedding)


def phase_module(
    name: str, model: DiverseEmbedder, prior_logits: torch.Tensor, seed: int, teacher_width: int = 0
) -> nn.Module:
    """The module a phase trains, its trainable parameters unfrozen and everything else frozen;
    with `teacher_width`, with a `to_teacher` map from its embedding to the teacher's vectors."""
    model.requires_grad_(False)
    if name == "neuralogram":
        mobilenet = model.branches["neuralogram"].front_end
        module = Tagger(mobilenet, new_head(mobilenet[1].out_features, prior_logits, seed), pool_time=True)
    elif name.startswith("branch:"):
        module = Tagger(
            model.branches[name.split(":", 1)[1]], new_head(model.config.d_model, prior_logits, seed), False
        )
    else:
        module = FusedTagger(model)
    if teacher_width:
        width = module.head.in_features if isinstance(module, Tagger) else model.head.in_features
        with torch.random.fork_rng(devices=[]):  # drawn from the seed, leaving the global RNG alone
            torch.manual_seed(seed + 7919)
            module.to_teacher = nn.Linear(width, teacher_width)
    module.requires_grad_(True)
    if name == "branch:neuralogram":
        model.branches["neuralogram"].front_end.requires_grad_(False)  # the MobileNet stays as stage 1 left it
    return module


def set_train_mode(module: nn.Module, phase: str, model: DiverseEmbedder) -> None:
    module.train()
    if phase == "branch:neuralogram":
        model.branches["neuralogram"].front_end.eval()  # frozen batch-norm statistics too
