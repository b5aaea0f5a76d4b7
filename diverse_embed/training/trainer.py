"""The one training loop, `Trainer.fit`, that every phase and every head goes through; its
batches, loss, log lines and resumable checkpoints."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..distributed import Runtime
from ..files import atomic_write
from ..labels import corpus_ids
from ..model import DiverseEmbedder
from .config import TrainConfig
from .data import epoch_loader
from .distill import neighbour_distillation, regression_distillation
from .evaluate import chunk_outputs, clip_macro_map, embed_chunks, fit_ablation_heads, head_logits
from .losses import label_prior_logits, loss_function, mixup, new_head, supervised_contrastive
from .phases import Phase, phase_module, set_train_mode

LOG = logging.getLogger(__name__)
CHECKPOINT = Path("checkpoint") / "last.pt"


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
    """One loop (`fit`) for every phase and head, with what it shares: the data, the loss, the log,
    the checkpoint."""

    def __init__(
        self,
        cfg: TrainConfig,
        rt: Runtime,
        model: DiverseEmbedder,
        data: dict,
        output: Path,
        loss: str,
        teacher: np.ndarray | None = None,
    ):
        self.cfg, self.rt, self.model, self.data, self.output = cfg, rt, model, data, output
        # The teachers' vector of each training chunk (n_chunks, width), centred: aisfx's raw vectors
        # (after a ReLU and a max) all point one way, and their cosines would barely differ.
        self.teacher = None if teacher is None else torch.from_numpy(teacher - teacher.mean(axis=0))
        self.distill_term: torch.Tensor | None = None  # the last step's distillation term
        self.steps_done = 0  # across phases, for stop_after_steps
        self.throughput: dict[str, float] = {}  # phase -> training chunks per second
        self.completed: list[str] = []  # phases done
        self.loss_name = loss
        corpus_of_label = corpus_ids(model.config.label_names())  # (n_classes,) or None
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
        """The training chunks of one epoch, (chunks, targets, teacher vectors or None) on the
        device, shuffled by (seed, epoch)."""
        cfg, rt, dataset = self.cfg, self.rt, self.data["train"]
        loader = epoch_loader(
            dataset,
            epoch,
            skip_batches,
            cfg.batch_size,
            cfg.loader_workers(rt.device),
            rt.rank,
            rt.world,
            cfg.seed,
            pin_memory=rt.device.type == "cuda",
            chunks=cfg.chunks_per_epoch,
            corpus_weights=cfg.corpus_weights,
        )
        for chunks, targets, items in loader:
            chunks, targets = chunks.to(rt.device, non_blocking=True), targets.to(rt.device, non_blocking=True)
            teacher = None if self.teacher is None else self.teacher[items].to(rt.device)  # (B, width)
            if cfg.gain_augment_db:
                gain_db = (torch.rand(len(chunks), 1, device=rt.device) * 2 - 1) * cfg.gain_augment_db
                chunks = (chunks * 10 ** (gain_db / 20)).clamp(-1, 1)
            if cfg.noise_augment_snr_db is not None:
                snr_db = cfg.noise_augment_snr_db + torch.rand(len(chunks), 1, device=rt.device) * (
                    40 - cfg.noise_augment_snr_db
                )
                level = chunks.pow(2).mean(dim=1, keepdim=True).sqrt() * 10 ** (-snr_db / 20)  # (B, 1) noise RMS
                chunks = (chunks + torch.randn_like(chunks) * level).clamp(-1, 1)
            if cfg.mixup_alpha:
                chunks, targets = mixup(chunks, targets, cfg.mixup_alpha, self.corpus_of_label)
            yield chunks, targets, teacher

    def steps_per_epoch(self) -> int:
        chunks = self.cfg.chunks_per_epoch or len(self.data["train"])
        return math.ceil(math.ceil(chunks / self.rt.world) / self.cfg.batch_size)

    def loss(
        self, module: nn.Module, x: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None, contrastive: bool
    ) -> torch.Tensor:
        """The phase's loss on a batch: the task loss, plus with `contrastive` the contrastive term and
        with `teacher` vectors the distillation term, both on the embedding the phase trains (a
        Tagger's or FusedTagger's)."""
        cfg = self.cfg
        embedded = contrastive or teacher is not None
        logits, embeddings, predicted = module(x, with_embedding=True) if embedded else (module(x), None, None)
        loss = loss_function(self.loss_name, logits.float(), targets, self.corpus_of_label)
        if contrastive:
            loss = loss + cfg.contrastive_weight * supervised_contrastive(
                embeddings, targets, cfg.contrastive_temperature
            )
        if teacher is not None:
            term = (
                regression_distillation(predicted, teacher)
                if predicted is not None
                else neighbour_distillation(embeddings, teacher, cfg.distill_temperature)
            )
            self.distill_term = term.detach()  # logged beside the loss: how near the teacher the student is
            loss = loss + cfg.distill_weight * term
        return loss

    def fit(
        self,
        phase: str,
        module: nn.Module,
        batches,
        steps_per_epoch: int,
        epochs: int,
        lr: float,
        score=None,
        resume: dict | None = None,
        distributed: bool = True,
        checkpoints: bool = True,
    ) -> float:
        """Train `module` on batches(epoch, skip_batches) -> (x, targets, teacher vectors or None);
        keep the epoch that `score(module)` rates best. Without `distributed` (a head on frozen
        embeddings), every rank trains the same copy, without checkpoints or the contrastive and
        distillation terms.
        Returns the training throughput in examples per second."""
        cfg, rt = self.cfg, self.rt
        contrastive = bool(cfg.contrastive_weight) and distributed
        params = [p for p in module.parameters() if p.requires_grad]
        total = epochs * steps_per_epoch
        if cfg.max_steps_per_phase:
            total = min(total, cfg.max_steps_per_phase)
        trained = module
        if distributed and rt.world > 1:
            trained = nn.parallel.DistributedDataParallel(
                module, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
            )
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
        self.distill_term = None
        while step < total:
            epoch, batch_in_epoch = divmod(step, steps_per_epoch)
            set_train_mode(module, phase, self.model)
            for x, targets, teacher in batches(epoch, batch_in_epoch):
                with torch.autocast(rt.device.type, dtype=dtype) if dtype else nullcontext():
                    loss = self.loss(trained, x, targets, teacher if distributed else None, contrastive)
                self.step(loss, params, optimizer, scaler)
                scheduler.step()
                step += 1
                if checkpoints:  # stop_after_steps counts the resumable loops' steps
                    self.steps_done += 1
                seen += len(x) * (rt.world if distributed else 1)
                if step % cfg.log_every == 0 or step == total:
                    terms = {"distill": round(self.distill_term.item(), 5)} if self.distill_term is not None else {}
                    self.log(
                        phase=phase,
                        step=step,
                        of=total,
                        epoch=epoch,
                        loss=round(loss.item(), 5),
                        **terms,
                        lr=float(f"{scheduler.get_last_lr()[0]:.3g}"),
                    )
                if (step % steps_per_epoch == 0 or step == total) and score is not None and cfg.select_on_val:
                    best = self.keep_if_best(phase, module, epoch, score, best)
                stop = checkpoints and cfg.stop_after_steps and self.steps_done >= cfg.stop_after_steps
                if checkpoints and (step % cfg.checkpoint_every == 0 or step == total or stop):
                    self.checkpoint(
                        phase,
                        {
                            "module": module.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "step": step,
                            "best": best,
                        },
                    )
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

    def step(self, loss: torch.Tensor, params: list, optimizer, scaler) -> None:
        """One optimiser step on `loss`, its gradients clipped (and unscaled first under fp16)."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    def keep_if_best(self, phase: str, module: nn.Module, epoch: int, score, best: dict) -> dict:
        """Score the module on validation at an epoch's end; its weights become `best` if they beat it."""
        module.eval()
        value = score(module)
        self.log(phase=phase, epoch=epoch, val_macro_map=round(value, 5))
        if value > best["score"]:
            best = {
                "score": value,
                "epoch": epoch,
                "state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
            }
        set_train_mode(module, phase, self.model)
        return best

    def train_phase(self, phase: Phase, resume: dict | None) -> None:
        cfg, rt = self.cfg, self.rt
        regression = self.teacher is not None and cfg.distill_loss == "regression"
        module = phase_module(
            phase.name, self.model, self.prior_logits, cfg.seed, self.teacher.shape[1] if regression else 0
        ).to(rt.device)
        score = None
        if "val" in self.data:
            val = self.data["val"]
            score = lambda m: clip_macro_map(  # noqa: E731
                chunk_outputs(m, val, cfg.batch_size, cfg.loader_workers(rt.device), rt), val
            )
        self.throughput[phase.name] = self.fit(
            phase.name, module, self.chunk_batches, self.steps_per_epoch(), phase.epochs, phase.lr, score, resume
        )

    def fusion(self, phase: Phase, fused: bool = True) -> dict[str, nn.Linear]:
        """Train the fused head (into the model) and, with --ablation-heads, the ablation heads on frozen
        chunk embeddings; without `fused`, the ablation heads only (after finetune, which trained the fused head)."""
        cfg, model, rt = self.cfg, self.model, self.rt
        started = time.perf_counter()
        train_set = self.data["train"].without_augmentation()
        x = embed_chunks(model, train_set, cfg, rt)  # (n_chunks, D)
        self.throughput["fusion (embedding the training set)"] = round(len(x) / (time.perf_counter() - started), 1)
        y = torch.from_numpy(train_set.chunk_targets()).to(rt.device)  # (n_chunks, n_classes)
        if "val" in self.data:
            self.embeddings["val"] = embed_chunks(model, self.data["val"], cfg, rt)

        def fit_head(name: str, columns: list[int], number: int) -> nn.Linear:
            features = torch.from_numpy(x[:, columns]).to(rt.device)  # (n_chunks, width)

            def batches(epoch, skip):
                order = torch.randperm(len(features), generator=torch.Generator().manual_seed(cfg.seed * 1009 + epoch))
                for batch in order.split(cfg.batch_size)[skip:]:
                    yield features[batch.to(features.device)], y[batch.to(y.device)], None

            score = None
            if "val" in self.embeddings:
                val_x = self.embeddings["val"][:, columns]
                score = lambda head: clip_macro_map(head_logits(head, val_x), self.data["val"])  # noqa: E731
            head = new_head(len(columns), self.prior_logits, cfg.seed + number).to(rt.device)
            self.fit(
                f"fusion:{name}",
                head,
                batches,
                math.ceil(len(x) / cfg.batch_size),
                phase.epochs,
                phase.lr,
                score,
                distributed=False,
                checkpoints=False,
            )
            return head

        heads = fit_ablation_heads(fit_head, model.config, fused, cfg.ablation_heads)
        if fused:
            model.head.load_state_dict(heads.pop("fused").state_dict())
        return heads

    def checkpoint(self, phase: str | None = None, loop_state: dict | None = None) -> None:
        """Save what resume needs; `phase` None marks the gap between two phases."""
        if self.rt.main:
            state = {
                "phase": phase,
                "model": self.model.state_dict(),
                "rng": rng_state(),
                "completed": self.completed,
                "throughput": self.throughput,
                "steps_done": self.steps_done,
                **(loop_state or {}),
            }
            (self.output / CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.output / CHECKPOINT, lambda f: torch.save(state, f))
        self.rt.barrier()
