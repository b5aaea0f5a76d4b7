"""Training, as the method describes it, in phases:

1. `neuralogram`: the MobileNet learns to tag log-mel (a temporary linear head on its time-pooled
   1024-d activations), then is frozen.
2. `branch:<name>`: each branch's transformer learns alone, with its own temporary linear head.
3. `fusion`: branches frozen, their 64-d embeddings concatenated, the linear head trained. The
   same step trains a head for every single branch and every leave-one-out subset, for the ablation.
4. `finetune` (optional, `finetune_epochs`): everything together through the fused head; then the
   ablation heads are trained again on the fine-tuned branches.

Several corpora train one model (a manifest with a corpus column): each corpus's labels get their
own softmax, and with `chunks_per_epoch` every epoch is that many chunks balanced across corpora,
so a big corpus does not swamp a small one.

Every phase and every head goes through one loop, `Trainer.fit`. `train(TrainConfig(...))` runs it
all (the command line fills the TrainConfig); the output folder loads with `from_pretrained`, and
its checkpoint/last.pt lets `resume=True` go on exactly where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from .config import BRANCHES, DiverseEmbedConfig
from .data import ChunkDataset, DataConfig, DataError, epoch_loader, label_corpora, load_splits
from .distributed import Runtime
from .evaluate import (ABLATION_HEADS, chunk_outputs, clip_metrics, columns, embed_chunks, evaluate, head_logits,
                       load_ablation_heads, metrics_markdown, save_ablation_heads, subsets)
from .files import atomic_write
from .model import DiverseEmbedder
from .parallel import plan

LOG = logging.getLogger(__name__)
CHECKPOINT = Path("checkpoint") / "last.pt"
STAGES = ("all", "neuralogram", "branches", "fusion", "finetune")


@dataclass
class TrainConfig(DataConfig):
    """A training run: the data (DataConfig's fields), what to train, and how. Saved as hparams.json."""

    output: str = "runs/train"  # output folder (a from_pretrained folder when done)
    stage: str = "all"  # one of STAGES; a later stage builds on what `output` already holds
    resume: bool = False  # continue from output/checkpoint/last.pt
    branches: list[str] = field(default_factory=lambda: list(BRANCHES))
    mobilenet_weights: str | None = None  # safetensors of a trained MobileNet: skips the neuralogram stage
    seed: int = 0
    device: str | None = None  # default: CUDA when present
    precision: str = "auto"  # auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU; or fp32, bf16, fp16
    checkpoint_every: int = 200  # steps between checkpoints
    log_every: int = 20  # steps between log lines
    stop_after_steps: int = 0  # stop (checkpointed) after this many steps in all: for testing resume
    max_steps_per_phase: int = 0  # cap each phase's steps (0: no cap)
    neuralogram_epochs: int = 10
    branch_epochs: int = 10
    fusion_epochs: int = 30  # epochs of every fusion and ablation head
    finetune_epochs: int = 0  # joint fine-tuning after fusion (0: none)
    lr: float = 1e-3  # peak learning rate of the transformers and the MobileNet
    head_lr: float = 3e-3  # peak learning rate of the fusion heads
    finetune_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of each phase spent warming up
    grad_clip: float = 1.0
    loss: str = "auto"  # bce (multi-label), softmax (one label per clip), auto: softmax when every clip has one
    gain_augment_db: float = 0.0  # random gain of +-N dB per training chunk
    noise_augment_snr_db: float | None = None  # add white noise at a random SNR from this to 40 dB per training chunk
    mixup_alpha: float = 0.0  # mix each training chunk with another of its corpus, weight ~ Beta(a, a) (0: off)
    chunks_per_epoch: int = 0  # an epoch of this many training chunks, balanced across corpora (0: every chunk once)
    corpus_weights: dict[str, float] = field(default_factory=dict)  # corpus -> its share of an epoch (default 1 each)
    contrastive_weight: float = 0.0  # weight of a supervised contrastive loss on the embedding a phase trains
    contrastive_temperature: float = 0.1
    crop_jitter: bool = False  # move each training chunk by up to half a second
    min_train_chunk_peak_db: float | None = None  # leave out training chunks whose peak is below this (dBFS)
    select_on_val: bool = True  # keep the best epoch on validation macro mAP (else the last)


def warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


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


def resolve_loss(name: str, dataset: ChunkDataset) -> str:
    single = all(len(clip.labels) == 1 for clip in dataset.clips)
    if name == "auto":
        return "softmax" if single else "bce"
    if name == "softmax" and not single:
        raise DataError("loss softmax needs exactly one label per training clip; use bce")
    return name


def loss_function(name: str, logits: torch.Tensor, targets: torch.Tensor,
                  corpus_of_label: torch.Tensor | None = None) -> torch.Tensor:
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


def mixup(chunks: torch.Tensor, targets: torch.Tensor, alpha: float,
          corpus_of_label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
    return (weight * chunks + (1 - weight) * chunks[partner],
            weight * targets + (1 - weight) * targets[partner])


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


def label_prior_logits(dataset: ChunkDataset, loss: str = "bce", corpus_of_label: np.ndarray | None = None) -> torch.Tensor:
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


def phase_names(cfg: TrainConfig) -> list[str]:
    names = ["neuralogram"] if "neuralogram" in cfg.branches and not cfg.mobilenet_weights else []
    names += [f"branch:{b}" for b in cfg.branches] + ["fusion"]
    if cfg.finetune_epochs > 0:
        names.append("finetune")
    if cfg.stage == "all":
        return names
    return [n for n in names if n == cfg.stage or (cfg.stage == "branches" and n.startswith("branch:"))]


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


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy_state = np.random.get_state()
    state["numpy"] = (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StoppedEarly(Exception):
    """Raised by the loop at `stop_after_steps`, after the checkpoint is written."""


class Trainer:
    def __init__(self, cfg: TrainConfig, rt: Runtime, model: DiverseEmbedder, data: dict, output: Path):
        self.cfg, self.rt, self.model, self.data, self.output = cfg, rt, model, data, output
        self.steps_done = 0  # across phases, for stop_after_steps
        self.throughput: dict[str, float] = {}  # phase -> training chunks per second
        self.completed: list[str] = []  # phases done
        self.loss_name = resolve_loss(cfg.loss, data["train"])
        corpora = label_corpora(model.config.label_names())
        corpus_of_label = None if corpora is None else np.unique(corpora, return_inverse=True)[1]  # (n_classes,)
        self.corpus_of_label = None if corpus_of_label is None else torch.from_numpy(corpus_of_label).to(rt.device)
        self.prior_logits = label_prior_logits(data["train"], self.loss_name, corpus_of_label)  # (n_classes,)
        self.embeddings: dict[str, np.ndarray] = {}  # split -> fused chunk embeddings, once branches are frozen

    def log(self, **record):
        record["time"] = round(time.time(), 3)
        if self.rt.main:
            with open(self.output / "train_log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            LOG.info(" ".join(f"{k}={v}" for k, v in record.items() if k != "time"))

    def chunk_batches(self, epoch: int, skip_batches: int):
        """The training chunks of one epoch, (chunks, targets) on the device, shuffled by (seed, epoch)."""
        cfg, rt, dataset = self.cfg, self.rt, self.data["train"]
        loader = epoch_loader(dataset, epoch, skip_batches, cfg.batch_size, cfg.loader_workers(rt.device), rt.rank, rt.world, cfg.seed,
                              pin_memory=rt.device.type == "cuda", chunks=cfg.chunks_per_epoch, corpus_weights=cfg.corpus_weights)
        for chunks, targets, _ in loader:
            chunks, targets = chunks.to(rt.device, non_blocking=True), targets.to(rt.device, non_blocking=True)
            if cfg.gain_augment_db:
                gain_db = (torch.rand(len(chunks), 1, device=rt.device) * 2 - 1) * cfg.gain_augment_db
                chunks = (chunks * 10 ** (gain_db / 20)).clamp(-1, 1)
            if cfg.noise_augment_snr_db is not None:
                snr_db = cfg.noise_augment_snr_db + torch.rand(len(chunks), 1, device=rt.device) * (40 - cfg.noise_augment_snr_db)
                level = chunks.pow(2).mean(dim=1, keepdim=True).sqrt() * 10 ** (-snr_db / 20)  # (B, 1) noise RMS
                chunks = (chunks + torch.randn_like(chunks) * level).clamp(-1, 1)
            if cfg.mixup_alpha:
                chunks, targets = mixup(chunks, targets, cfg.mixup_alpha, self.corpus_of_label)
            yield chunks, targets

    def steps_per_epoch(self) -> int:
        chunks = self.cfg.chunks_per_epoch or len(self.data["train"])
        return math.ceil(math.ceil(chunks / self.rt.world) / self.cfg.batch_size)

    def loss(self, module: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The phase's loss on a batch: the task loss, plus the contrastive term on the embedding
        the phase trains when asked (the fusion heads have none)."""
        cfg = self.cfg
        contrastive = cfg.contrastive_weight and isinstance(getattr(module, "module", module), (Tagger, FusedTagger))
        output = module(x, with_embedding=True) if contrastive else module(x)
        logits, embeddings = output if contrastive else (output, None)
        loss = loss_function(self.loss_name, logits.float(), targets, self.corpus_of_label)
        if contrastive:
            loss = loss + cfg.contrastive_weight * supervised_contrastive(embeddings, targets, cfg.contrastive_temperature)
        return loss

    def fit(self, phase: str, module: nn.Module, batches, steps_per_epoch: int, epochs: int, lr: float,
            score=None, resume: dict | None = None, distributed: bool = True, checkpoints: bool = True) -> float:
        """Train `module` on batches(epoch, skip_batches) -> (x, targets); keep the epoch that
        `score(module)` rates best. Without `distributed`, every rank trains the same copy.
        Returns the training throughput in examples per second."""
        cfg, rt = self.cfg, self.rt
        params = [p for p in module.parameters() if p.requires_grad]
        total = epochs * steps_per_epoch
        if cfg.max_steps_per_phase:
            total = min(total, cfg.max_steps_per_phase)
        trained = module
        if distributed and rt.world > 1:
            trained = nn.parallel.DistributedDataParallel(module, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, cfg.warmup))
        dtype = autocast_dtype(cfg.precision, rt.device)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        step, best = 0, {"score": -1.0, "state": None, "epoch": -1}
        if resume:
            module.load_state_dict(resume["module"])
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            step, best = resume["step"], resume["best"]
            set_rng_state(resume["rng"])
        seen, started = 0, time.perf_counter()
        while step < total:
            epoch, batch_in_epoch = divmod(step, steps_per_epoch)
            set_train_mode(module, phase, self.model)
            for x, targets in batches(epoch, batch_in_epoch):
                with torch.autocast(rt.device.type, dtype=dtype) if dtype else nullcontext():
                    loss = self.loss(trained, x, targets)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                self.steps_done += checkpoints  # stop_after_steps counts the resumable loops' steps
                seen += len(x) * (rt.world if distributed else 1)
                if step % cfg.log_every == 0 or step == total:
                    self.log(phase=phase, step=step, of=total, epoch=epoch, loss=round(loss.item(), 5),
                             lr=float(f"{scheduler.get_last_lr()[0]:.3g}"))
                if (step % steps_per_epoch == 0 or step == total) and score is not None and cfg.select_on_val:
                    module.eval()
                    value = score(module)
                    self.log(phase=phase, epoch=epoch, val_macro_map=round(value, 5))
                    if value > best["score"]:
                        best = {"score": value, "epoch": epoch,
                                "state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}}
                    set_train_mode(module, phase, self.model)
                stop = checkpoints and cfg.stop_after_steps and self.steps_done >= cfg.stop_after_steps
                if checkpoints and (step % cfg.checkpoint_every == 0 or step == total or stop):
                    self.checkpoint(phase, {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                                            "scheduler": scheduler.state_dict(), "step": step, "best": best})
                if stop:
                    self.log(phase=phase, stopped_at_step=step)
                    raise StoppedEarly(step)
                if step >= total:
                    break
        elapsed = time.perf_counter() - started
        throughput = round(seen / elapsed, 1) if elapsed > 0 else 0.0
        if best["state"] is not None:
            module.load_state_dict(best["state"])
            self.log(phase=phase, selected_epoch=best["epoch"], val_macro_map=round(best["score"], 5))
        self.log(phase=phase, done=True, chunks_per_second=throughput)
        return throughput

    def train_phase(self, name: str, epochs: int, lr: float, resume: dict | None) -> None:
        cfg, rt = self.cfg, self.rt
        module = phase_module(name, self.model, self.prior_logits, cfg.seed).to(rt.device)
        steps_per_epoch = self.steps_per_epoch()
        score = None
        if "val" in self.data:
            val = self.data["val"]
            score = lambda m: clip_metrics(  # noqa: E731
                chunk_outputs(m, val, cfg.batch_size, cfg.loader_workers(rt.device), rt), val)["macro_map"]
        self.throughput[name] = self.fit(name, module, self.chunk_batches, steps_per_epoch, epochs, lr, score, resume)

    def fusion(self, fused: bool = True) -> dict[str, nn.Linear]:
        """Train the fused head (into the model) and the ablation heads on frozen chunk embeddings;
        without `fused`, the ablation heads only (after finetune, which trained the fused head)."""
        cfg, model = self.cfg, self.model
        started = time.perf_counter()
        train_set = self.data["train"].without_augmentation()
        x = embed_chunks(model, train_set, cfg, self.rt)  # (n_chunks, D)
        self.throughput["fusion (embedding the training set)"] = round(len(x) / (time.perf_counter() - started), 1)
        y = torch.from_numpy(train_set.chunk_targets()).to(self.rt.device)  # (n_chunks, n_classes)
        if "val" in self.data:
            self.embeddings["val"] = embed_chunks(model, self.data["val"], cfg, self.rt)
        heads = {}
        for number, (name, names) in enumerate(subsets(model.config.branches).items()):
            if name == "fused" and not fused:
                continue
            cols = columns(model.config, names)
            features = torch.from_numpy(x[:, cols]).to(self.rt.device)

            def batches(epoch, skip, features=features):
                order = torch.randperm(len(features), generator=torch.Generator().manual_seed(cfg.seed * 1009 + epoch))
                for batch in order.split(cfg.batch_size)[skip:]:
                    yield features[batch.to(features.device)], y[batch.to(y.device)]

            score = None
            if "val" in self.embeddings:
                val_x = self.embeddings["val"][:, cols]
                score = lambda head, val_x=val_x: clip_metrics(  # noqa: E731
                    head_logits(head, val_x), self.data["val"])["macro_map"]
            head = new_head(len(cols), self.prior_logits, cfg.seed + number).to(self.rt.device)
            self.fit(f"fusion:{name}", head, batches, math.ceil(len(x) / cfg.batch_size), cfg.fusion_epochs,
                     cfg.head_lr, score, distributed=False, checkpoints=False)
            heads[name] = head
        if fused:
            model.head.load_state_dict(heads.pop("fused").state_dict())
        return heads

    def checkpoint(self, phase: str | None = None, loop_state: dict | None = None) -> None:
        """Save what resume needs; `phase` None marks the gap between two phases."""
        if self.rt.main:
            state = {"phase": phase, "model": self.model.state_dict(), "rng": rng_state(), "completed": self.completed,
                     "throughput": self.throughput, "steps_done": self.steps_done, **(loop_state or {})}
            (self.output / CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.output / CHECKPOINT, lambda f: torch.save(state, f))
        self.rt.barrier()


def build_model(cfg: TrainConfig, vocabulary: list[str], output: Path, resume: dict | None,
                loss: str) -> DiverseEmbedder:
    config = DiverseEmbedConfig(branches=list(cfg.branches), num_labels=len(vocabulary),
                                id2label=dict(enumerate(vocabulary)),
                                problem_type="single_label_classification" if loss == "softmax" else "multi_label_classification")
    model = DiverseEmbedder(config)
    if cfg.mobilenet_weights:
        model.branches["neuralogram"].front_end[1].load_state_dict(safetensors.torch.load_file(cfg.mobilenet_weights))
    if resume:
        model.load_state_dict(resume["model"])
    elif cfg.stage != "all" and (output / "model.safetensors").is_file():
        model = DiverseEmbedder.from_pretrained(output)  # a later stage on top of earlier ones
    return model


def train(cfg: TrainConfig) -> dict:
    """Run the phases cfg asks for; returns the metrics (also written to output/metrics.json), or
    {"stopped_at_step": n} when cfg.stop_after_steps ended the run early."""
    if cfg.stage not in STAGES:
        raise DataError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    with Runtime(cfg.device) as rt:
        torch.set_num_threads(plan(rt.device.type).train_threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        output = Path(cfg.output)
        if rt.main:
            output.mkdir(parents=True, exist_ok=True)
            (output / "hparams.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        rt.barrier()
        shape = DiverseEmbedConfig()  # chunking as the model's default; the labels come from the data
        data, vocabulary, failures = load_splits(cfg, rt, shape.chunk_samples, shape.hop_samples,
                                                 shape.min_final_chunk_samples, cfg.crop_jitter,
                                                 cfg.min_train_chunk_peak_db, cfg.seed)
        if "train" not in data:
            raise DataError(f"no training clips in splits {cfg.train_splits}")
        resume = torch.load(output / CHECKPOINT, map_location="cpu", weights_only=True) \
            if cfg.resume and (output / CHECKPOINT).is_file() else None  # weights_only: runs no code on load
        model = build_model(cfg, vocabulary, output, resume, resolve_loss(cfg.loss, data["train"])).to(rt.device)
        trainer = Trainer(cfg, rt, model, data, output)
        if resume:
            trainer.completed, trainer.throughput = list(resume["completed"]), dict(resume["throughput"])
            trainer.steps_done = resume["steps_done"]
        trainer.log(event="start", train_chunks=len(data["train"]), failures=len(failures), world=rt.world,
                    device=str(rt.device), resumed=bool(resume))
        started = time.perf_counter()
        try:
            heads = run_phases(trainer, resume)
        except StoppedEarly as stop:
            return {"stopped_at_step": stop.args[0]}
        if not heads:
            heads = {n: h.to(rt.device) for n, h in load_ablation_heads(output / ABLATION_HEADS, model.config).items()}
        metrics = {
            "results": evaluate(model, heads, data, cfg, rt, trainer.embeddings), "throughput": trainer.throughput,
            "wall_seconds": round(time.perf_counter() - started, 1), "failures": [{"path": p, "reason": r} for p, r in failures],
            "parameters": model.num_parameters(), "world_size": rt.world, "device": str(rt.device),
        }
        if rt.main:
            (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
            (output / "metrics.md").write_text(metrics_markdown(metrics))
            trainer.log(event="done", wall_seconds=metrics["wall_seconds"])
    return metrics


def run_phases(trainer: Trainer, resume: dict | None) -> dict[str, nn.Linear]:
    cfg, model, output = trainer.cfg, trainer.model, trainer.output
    heads: dict[str, nn.Linear] = {}
    epochs = {"neuralogram": cfg.neuralogram_epochs, "finetune": cfg.finetune_epochs}
    for name in phase_names(cfg):
        if name in trainer.completed:
            continue
        if name == "fusion":
            heads = trainer.fusion()
        else:
            lr = cfg.finetune_lr if name == "finetune" else cfg.lr
            trainer.train_phase(name, epochs.get(name, cfg.branch_epochs), lr,
                                resume if resume and resume["phase"] == name else None)
            trainer.embeddings.clear()  # the weights moved
            if name == "finetune":
                heads = trainer.fusion(fused=False)  # heads fitted to the branches before finetune no longer match them
        trainer.completed.append(name)
        if trainer.rt.main:
            model.save_pretrained(output)
            if heads:
                save_ablation_heads(heads, output / ABLATION_HEADS)
        trainer.checkpoint()
    return heads
