"""Training, as the method describes it, in phases:

1. `neuralogram`: the MobileNet learns to tag log-mel (a temporary linear head on its time-pooled
   1024-d activations), then is frozen.
2. `branch:<name>`: each branch's transformer learns alone, with its own temporary linear head.
3. `fusion`: branches frozen, their 64-d embeddings concatenated, the linear head trained. The
   same step trains a head for every single branch and every leave-one-out subset, for the ablation.
4. `finetune` (optional, `--finetune-epochs`): everything together through the fused head.

    diverse-embed train --dataset fsd50k --data-root /data/FSD50K --output runs/fsd50k
    torchrun --nproc-per-node 8 -m diverse_embed.train --dataset fsd50k --data-root /data/FSD50K --output runs/fsd50k
    diverse-embed train --dataset csv --manifest labels.csv --audio-root clips/ --output runs/mine

The output folder loads with `DiverseEmbedder.from_pretrained`; it also holds metrics.json,
metrics.md, hparams.json, train_log.jsonl and checkpoint/last.pt, from which `--resume` goes on
exactly where an interrupted run stopped (same data order, same random numbers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import AudioCache, ChunkDataset, read_fsd50k, read_manifest
from .metrics import tagging_metrics
from .model import BRANCHES, DiverseEmbedConfig, DiverseEmbedder

LOG = logging.getLogger("diverse_embed.train")
CHECKPOINT = Path("checkpoint") / "last.pt"
ABLATION_HEADS = "ablation_heads.safetensors"


# ----- arguments -------------------------------------------------------------------------------

def add_data_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=["fsd50k", "csv"], required=True)
    data.add_argument("--data-root", help="FSD-50K folder (official layout)")
    data.add_argument("--manifest", help="CSV with path,labels[,split] (for --dataset csv)")
    data.add_argument("--audio-root", help="folder the manifest's paths are relative to (default: its folder)")
    data.add_argument("--allow-outside-root", action="store_true", help="accept absolute paths or '..' in manifests")
    data.add_argument("--train-splits", default="train", help="comma-separated split names to train on")
    data.add_argument("--val-splits", default="val", help="split names to select on")
    data.add_argument("--test-splits", default="eval,test", help="split names to report on")
    data.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/diverse-embed/audio"),
                      help="where decoded 16 kHz audio is kept (default ~/.cache/diverse-embed/audio)")
    data.add_argument("--num-workers", type=int, default=2, help="data loading processes (default 2)")
    data.add_argument("--batch-size", type=int, default=64, help="1-s chunks per step, per process (default 64)")
    data.add_argument("--quiet", action="store_true", help="no progress bars or log lines on the terminal")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="diverse-embed train", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    run = p.add_argument_group("run")
    run.add_argument("--output", required=True, help="output folder (a from_pretrained folder when done)")
    run.add_argument("--stage", default="all", choices=["all", "neuralogram", "branches", "fusion", "finetune"],
                     help="run one stage only (the others' weights come from --output's checkpoint or model)")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint/last.pt")
    run.add_argument("--branches", default=",".join(BRANCHES), help="branches to build (default all four)")
    run.add_argument("--mobilenet-weights", help="safetensors of a trained MobileNet: skips the neuralogram stage")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                     help="auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU")
    run.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    run.add_argument("--log-every", type=int, default=20, help="steps between log lines (default 20)")
    run.add_argument("--stop-after-steps", type=int, default=0, help="stop (checkpointed) after this many steps in all: "
                     "for testing --resume")
    run.add_argument("--max-steps-per-phase", type=int, default=0, help="cap each phase's steps (0: no cap)")
    opt = p.add_argument_group("optimisation (defaults: documented in README)")
    opt.add_argument("--neuralogram-epochs", type=int, default=10)
    opt.add_argument("--branch-epochs", type=int, default=10)
    opt.add_argument("--fusion-epochs", type=int, default=30)
    opt.add_argument("--finetune-epochs", type=int, default=0, help="joint fine-tuning after fusion (0: none)")
    opt.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the transformers and MobileNet")
    opt.add_argument("--head-lr", type=float, default=3e-3, help="peak learning rate of the fusion heads")
    opt.add_argument("--finetune-lr", type=float, default=1e-4)
    opt.add_argument("--weight-decay", type=float, default=0.01)
    opt.add_argument("--warmup", type=float, default=0.05, help="fraction of each phase spent warming up")
    opt.add_argument("--grad-clip", type=float, default=1.0)
    opt.add_argument("--loss", default="auto", choices=["auto", "bce", "softmax"],
                     help="bce: multi-label (FSD-50K); softmax: one label per clip (ESC-50); "
                          "auto: softmax when every training clip has exactly one label")
    opt.add_argument("--gain-augment-db", type=float, default=0.0, help="random gain of +-N dB per training chunk")
    opt.add_argument("--crop-jitter", action="store_true",
                     help="move each training chunk by a random offset of up to half a second")
    opt.add_argument("--min-train-chunk-peak-db", type=float, default=None,
                     help="leave out training chunks whose peak is below this level in dBFS (e.g. -50: silence)")
    opt.add_argument("--no-select-on-val", dest="select_on_val", action="store_false",
                     help="keep the last epoch instead of the best validation macro mAP")
    return p


# ----- distributed -----------------------------------------------------------------------------

class Runtime:
    """Rank, world size and device; a process group under torchrun (NCCL on GPUs, gloo on CPU)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def gather(self, value):
        """Every rank's value, in rank order (a list of one value without a process group)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values


# ----- learning-rate schedule and precision ----------------------------------------------------

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


# ----- what each phase trains --------------------------------------------------------------------

class Tagger(nn.Module):
    """A part of the model with a temporary linear head: chunks -> logits (batch, n_classes)."""

    def __init__(self, body: nn.Module, width: int, n_classes: int, pool_time: bool):
        super().__init__()
        self.body, self.pool_time = body, pool_time
        self.head = nn.Linear(width, n_classes)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        features = self.body(chunks)  # (B, width), or (B, T, width) for the MobileNet
        return self.head(features.mean(dim=1) if self.pool_time else features)


class FusedTagger(nn.Module):
    """The whole model through its fused head (joint fine-tuning)."""

    def __init__(self, model: DiverseEmbedder):
        super().__init__()
        self.model = model

    def forward(self, chunks):
        return self.model(chunks).logits


def single_label(dataset: ChunkDataset) -> bool:
    return all(len(clip.labels) == 1 for clip in dataset.clips)


def resolve_loss(name: str, dataset: ChunkDataset) -> str:
    if name == "auto":
        return "softmax" if single_label(dataset) else "bce"
    if name == "softmax" and not single_label(dataset):
        raise SystemExit("--loss softmax needs exactly one label per training clip; use --loss bce")
    return name


def loss_function(name: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits, targets (batch, n_classes) -> scalar loss."""
    if name == "softmax":
        return F.cross_entropy(logits, targets.argmax(dim=1))
    return F.binary_cross_entropy_with_logits(logits, targets)


def label_prior_logits(dataset: ChunkDataset, loss: str = "bce") -> torch.Tensor:
    """The logits that predict each class's frequency among the training chunks: (n_classes,).
    logit(p) per class for bce, log(p) for softmax."""
    counts = np.zeros(dataset.n_classes)
    for clip, _ in dataset.index:
        counts[dataset.clips[clip].labels] += 1
    prior = np.clip(counts / max(1, len(dataset.index)), 1e-4, 1 - 1e-4)
    logits = np.log(prior) if loss == "softmax" else np.log(prior / (1 - prior))
    return torch.from_numpy(logits).float()


def start_at_prior(head: nn.Linear, prior_logits: torch.Tensor) -> None:
    """A new head's bias starts at the label prior: otherwise its first hundreds of steps only
    learn the base rates (with 50 classes BCE sits near log 2 at zero logits), not the audio."""
    with torch.no_grad():
        head.bias.copy_(prior_logits.to(head.bias.device))


def phase_names(args, branches: list[str]) -> list[str]:
    names = []
    if "neuralogram" in branches and not args.mobilenet_weights:
        names.append("neuralogram")
    names += [f"branch:{b}" for b in branches]
    names.append("fusion")
    if args.finetune_epochs > 0:
        names.append("finetune")
    stage = args.stage
    if stage == "all":
        return names
    return [n for n in names if n == stage or (stage == "branches" and n.startswith("branch:"))]


def phase_module(name: str, model: DiverseEmbedder, n_classes: int) -> tuple[nn.Module, list[nn.Parameter]]:
    """The module a phase trains, and its trainable parameters. Everything else is frozen."""
    model.requires_grad_(False)
    if name == "neuralogram":
        module = Tagger(model.branches["neuralogram"].front_end, model.branches["neuralogram"].front_end[1].out_features,
                        n_classes, pool_time=True)
    elif name.startswith("branch:"):
        branch = model.branches[name.split(":", 1)[1]]
        module = Tagger(branch, model.config.d_model, n_classes, pool_time=False)
    elif name == "finetune":
        module = FusedTagger(model)
    else:
        raise ValueError(name)
    module.requires_grad_(True)
    if name.startswith("branch:neuralogram"):
        branch.front_end.requires_grad_(False)  # the MobileNet stays as stage 1 left it
    return module, [p for p in module.parameters() if p.requires_grad]


def set_train_mode(module: nn.Module, name: str, model: DiverseEmbedder):
    module.train()
    if name == "branch:neuralogram":
        model.branches["neuralogram"].front_end.eval()  # frozen batch-norm statistics too


# ----- checkpoints -------------------------------------------------------------------------------

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


def save_checkpoint(output: Path, state: dict) -> None:
    path = output / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    torch.save(state, temp)
    os.replace(temp, path)


def load_checkpoint(output: Path) -> dict:
    # weights_only: plain tensors, numbers and containers; nothing that runs code on load.
    return torch.load(output / CHECKPOINT, map_location="cpu", weights_only=True)


# ----- the loop ----------------------------------------------------------------------------------

class SkipFirst(torch.utils.data.Sampler):
    """A sampler's order with its first `skip` indices left out: resuming mid-epoch neither repeats
    nor skips data."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self):
        return max(0, len(self.sampler) - self.skip)


class Trainer:
    def __init__(self, args, runtime: Runtime, model: DiverseEmbedder, data: dict, output: Path):
        self.args, self.rt, self.model, self.data, self.output = args, runtime, model, data, output
        self.n_classes = model.config.num_labels
        self.log_file = output / "train_log.jsonl"
        self.steps_done = 0  # across phases, for --stop-after-steps
        self.throughput: dict[str, float] = {}  # phase -> training chunks per second
        self.completed: list[str] = []  # phases done
        self.loss = resolve_loss(args.loss, data["train"])
        self.prior_logits = label_prior_logits(data["train"], self.loss)  # (n_classes,)

    def log(self, **record):
        record["time"] = round(time.time(), 3)
        if self.rt.main:
            with open(self.log_file, "a") as f:
                f.write(json.dumps(record) + "\n")
            LOG.info(" ".join(f"{k}={v}" for k, v in record.items() if k != "time"))

    def loader(self, dataset, sampler, batch_size):
        # Its own generator: creating a loader must not draw from the global RNG, or a run resumed
        # mid-epoch would see other dropout masks than the uninterrupted run.
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.args.num_workers,
            pin_memory=self.rt.device.type == "cuda", drop_last=False, generator=torch.Generator().manual_seed(0),
        )

    def train_phase(self, name: str, epochs: int, lr: float, resume: dict | None) -> None:
        args, rt = self.args, self.rt
        module, params = phase_module(name, self.model, self.n_classes)
        if isinstance(module, Tagger):
            start_at_prior(module.head, self.prior_logits)
        module.to(rt.device)
        if resume and "module" in resume:
            module.load_state_dict(resume["module"])
        trained = module
        if rt.world > 1:
            trained = nn.parallel.DistributedDataParallel(module, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        dataset = self.data["train"]
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=rt.world, rank=rt.rank, shuffle=True,
                                                      seed=args.seed)
        steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
        total = epochs * steps_per_epoch
        if args.max_steps_per_phase:
            total = min(total, args.max_steps_per_phase)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=args.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, args.warmup))
        dtype = autocast_dtype(args.precision, rt.device)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        step, best = 0, {"score": -1.0, "state": None, "epoch": -1}
        if resume:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            step, best = resume["step"], resume["best"]
            set_rng_state(resume["rng"])
        chunks_seen, started = 0, time.perf_counter()
        while step < total:
            epoch, batch_in_epoch = divmod(step, steps_per_epoch)
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            loader = self.loader(dataset, SkipFirst(sampler, batch_in_epoch * args.batch_size), args.batch_size)
            set_train_mode(module, name, self.model)
            for chunks, targets, _ in loader:
                chunks, targets = chunks.to(rt.device, non_blocking=True), targets.to(rt.device, non_blocking=True)
                if args.gain_augment_db:
                    gain_db = (torch.rand(len(chunks), 1, device=rt.device) * 2 - 1) * args.gain_augment_db
                    chunks = (chunks * 10 ** (gain_db / 20)).clamp(-1, 1)
                with torch.autocast(rt.device.type, dtype=dtype) if dtype else nullcontext():
                    loss = loss_function(self.loss, trained(chunks).float(), targets)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, args.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                self.steps_done += 1
                chunks_seen += len(chunks) * rt.world
                if step % args.log_every == 0 or step == total:
                    self.log(phase=name, step=step, of=total, epoch=epoch, loss=round(loss.item(), 5),
                             lr=float(f"{scheduler.get_last_lr()[0]:.3g}"))
                end_of_epoch = step % steps_per_epoch == 0 or step == total
                if end_of_epoch and args.select_on_val and "val" in self.data:
                    score = self.validate(module)
                    self.log(phase=name, epoch=epoch, val_macro_map=round(score, 5))
                    if score > best["score"]:
                        best = {"score": score, "epoch": epoch,
                                "state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}}
                    set_train_mode(module, name, self.model)
                stop = args.stop_after_steps and self.steps_done >= args.stop_after_steps
                if step % args.checkpoint_every == 0 or step == total or stop:
                    self.checkpoint(name, module, optimizer, scheduler, step, best)
                if stop:
                    self.log(phase=name, stopped_at_step=step)
                    raise SystemExit(0)
                if step >= total:
                    break
        elapsed = time.perf_counter() - started
        self.throughput[name] = round(chunks_seen / elapsed, 1) if elapsed > 0 else 0.0
        if best["state"] is not None:
            module.load_state_dict(best["state"])
            self.log(phase=name, selected_epoch=best["epoch"], val_macro_map=round(best["score"], 5))
        self.log(phase=name, done=True, chunks_per_second=self.throughput[name])

    def checkpoint(self, phase: str | None = None, module=None, optimizer=None, scheduler=None, step=0, best=None):
        """Save what --resume needs; `phase` None marks the gap between two phases."""
        if self.rt.main:
            state = {"phase": phase, "step": step, "model": self.model.state_dict(), "rng": rng_state(),
                     "completed": self.completed, "throughput": self.throughput, "steps_done": self.steps_done}
            if module is not None:
                state.update(module=module.state_dict(), optimizer=optimizer.state_dict(),
                             scheduler=scheduler.state_dict(), best=best)
            save_checkpoint(self.output, state)
        self.rt.barrier()

    @torch.no_grad()
    def validate(self, module: nn.Module) -> float:
        module.eval()
        return tagging_metrics(*clip_scores(module, self.data["val"], self.args, self.rt))["macro_map"]


def clip_scores(module: nn.Module, dataset: ChunkDataset, args, rt: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """Clip-level scores: the mean of each clip's chunk logits. Ranks score their own chunks; every
    rank gets everything. Returns (targets, scores), both (n_clips, n_classes)."""
    outputs = chunk_outputs(lambda chunks: module(chunks), dataset, args, rt)
    return clip_means(outputs, dataset)


@torch.no_grad()
def chunk_outputs(function, dataset: ChunkDataset, args, rt: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """function(chunks) -> (B, width) over every chunk of the dataset, in eval mode, gathered from
    all ranks. Returns (outputs (n_chunks, width), chunk numbers (n_chunks,))."""
    mine = np.arange(rt.rank, len(dataset), rt.world)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, mine), batch_size=args.batch_size,
                                         num_workers=args.num_workers, generator=torch.Generator().manual_seed(0))
    rows = []
    for chunks, _, _ in loader:
        rows.append(function(chunks.to(rt.device)).float().cpu().numpy())
    gathered = rt.gather((mine, np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)))
    order = np.concatenate([m for m, _ in gathered])
    values = np.concatenate([v for _, v in gathered if len(v)])
    return values[np.argsort(order)], np.sort(order)


def clip_means(outputs: tuple[np.ndarray, np.ndarray], dataset: ChunkDataset) -> tuple[np.ndarray, np.ndarray]:
    """Chunk outputs averaged per clip. Returns (targets, scores), both (n_clips, n_classes)."""
    values, _ = outputs
    clip_of_chunk = dataset.index[:, 0]
    n_clips = len(dataset.clips)
    sums = np.zeros((n_clips, values.shape[1]))
    np.add.at(sums, clip_of_chunk, values)
    means = sums / np.bincount(clip_of_chunk, minlength=n_clips)[:, None]
    targets = np.zeros((n_clips, dataset.n_classes))
    for i, clip in enumerate(dataset.clips):
        targets[i, clip.labels] = 1.0
    return targets, means


# ----- fusion and ablation heads on frozen embeddings -------------------------------------------

def subsets(branches: list[str]) -> dict[str, list[str]]:
    """fused, each branch alone, and each leave-one-out combination (names like "-pitch")."""
    found = {"fused": list(branches)}
    if len(branches) > 1:
        found.update({name: [name] for name in branches})
    if len(branches) > 2:
        found.update({f"-{name}": [b for b in branches if b != name] for name in branches})
    return found


def columns(config: DiverseEmbedConfig, names: list[str]) -> np.ndarray:
    d = config.d_model
    return np.concatenate([np.arange(config.branches.index(n) * d, (config.branches.index(n) + 1) * d) for n in names])


def embed_chunks(model: DiverseEmbedder, dataset: ChunkDataset, args, rt: Runtime) -> np.ndarray:
    model.eval()
    return chunk_outputs(lambda chunks: model(chunks).embeddings, dataset, args, rt)[0]  # (n_chunks, D)


def train_head(x: np.ndarray, y: np.ndarray, args, seed: int, score=None, prior_logits=None,
               loss: str = "bce") -> nn.Linear:
    """A linear head on frozen chunk embeddings x (n, d) with targets y (n, classes): AdamW with
    warm-up and cosine decay; with `score(head)`, the best epoch by that validation score."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(x.shape[1], y.shape[1])
    if prior_logits is not None:
        start_at_prior(head, prior_logits)
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    total = max(1, args.fusion_epochs * math.ceil(len(x) / args.batch_size))
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.head_lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, args.warmup))
    best_score, best_state = -1.0, None
    for _ in range(args.fusion_epochs):
        for batch in torch.randperm(len(x), generator=generator).split(args.batch_size):
            batch_loss = loss_function(loss, head(x[batch]), y[batch])
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            scheduler.step()
        if score is not None and args.select_on_val:
            value = score(head)
            if value > best_score:
                best_score, best_state = value, {k: v.clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    return head


def fusion(trainer: Trainer) -> dict[str, nn.Linear]:
    """Train the fused head (into the model) and the ablation heads on frozen branch embeddings."""
    args, rt, model = trainer.args, trainer.rt, trainer.model
    started = time.perf_counter()
    train_set = trainer.data["train"].without_augmentation()
    x = embed_chunks(model, train_set, args, rt)
    trainer.throughput["fusion (embedding the training set)"] = round(len(x) / (time.perf_counter() - started), 1)
    y = np.zeros((len(train_set), trainer.n_classes), np.float32)
    for row, (clip, _) in enumerate(train_set.index):
        y[row, train_set.clips[clip].labels] = 1.0
    val_x = embed_chunks(model, trainer.data["val"], args, rt) if "val" in trainer.data else None
    heads = {}
    for number, (name, names) in enumerate(subsets(model.config.branches).items()):
        cols = columns(model.config, names)

        def score(head, cols=cols):
            with torch.no_grad():
                logits = head(torch.from_numpy(val_x[:, cols]).float()).numpy()
            return tagging_metrics(*clip_means((logits, None), trainer.data["val"]))["macro_map"]

        heads[name] = train_head(x[:, cols], y, args, args.seed + number, score if val_x is not None else None,
                                 trainer.prior_logits, trainer.loss)
        trainer.log(phase="fusion", head=name, done=True)
    model.head.load_state_dict({k: v.to(model.head.weight.device) for k, v in heads.pop("fused").state_dict().items()})
    return heads


# ----- evaluation --------------------------------------------------------------------------------

def evaluate(model: DiverseEmbedder, heads: dict[str, nn.Linear], data: dict, args, rt: Runtime) -> dict:
    """Metrics of the fused model and of every ablation head, for the validation and test splits."""
    results = {}
    for split in ("val", "test"):
        if split not in data:
            continue
        dataset = data[split]
        embeddings = embed_chunks(model, dataset, args, rt)  # (n_chunks, D)
        if not rt.main:
            continue
        systems = {}
        with torch.no_grad():
            fused = model.head(torch.from_numpy(embeddings).to(rt.device)).float().cpu().numpy()
            systems["fused"] = tagging_metrics(*clip_means((fused, None), dataset))
            for name, head in heads.items():
                cols = columns(model.config, subsets(model.config.branches)[name])
                logits = head(torch.from_numpy(embeddings[:, cols])).numpy()
                systems[name] = tagging_metrics(*clip_means((logits, None), dataset))
        results[split] = {"clips": len(dataset.clips), "systems": systems}
    return results


def metrics_markdown(metrics: dict) -> str:
    lines = []
    for split, result in metrics["results"].items():
        lines += [f"### {split} ({result['clips']} clips)", "",
                  "| system | macro mAP | micro mAP | d' | lwlrap | accuracy |", "|---|---|---|---|---|---|"]
        for name, m in result["systems"].items():
            acc = "" if m["accuracy"] is None else f"{m['accuracy']:.3f}"
            label = {"fused": "fused (all branches)"}.get(name, f"without {name[1:]}" if name.startswith("-") else f"{name} alone")
            lines.append(f"| {label} | {m['macro_map']:.3f} | {m['micro_map']:.3f} | {m['d_prime']:.3f} | "
                         f"{m['lwlrap']:.3f} | {acc} |")
        lines.append("")
    lines += ["Training throughput (1-s chunks per second):", ""]
    lines += [f"- {phase}: {rate}" for phase, rate in metrics["throughput"].items()]
    return "\n".join(lines) + "\n"


# ----- putting it together -----------------------------------------------------------------------

def load_data(args, rt: Runtime, config: DiverseEmbedConfig | None = None, need_train: bool = True
              ) -> tuple[dict, list[str], list]:
    if args.dataset == "fsd50k":
        if not args.data_root:
            raise SystemExit("--dataset fsd50k needs --data-root")
        dataset = read_fsd50k(args.data_root)
    else:
        if not args.manifest:
            raise SystemExit("--dataset csv needs --manifest")
        dataset = read_manifest(args.manifest, args.audio_root, args.allow_outside_root)
    cache = AudioCache(args.cache_dir)
    splits = {"train": args.train_splits, "val": args.val_splits, "test": args.test_splits}
    wanted = {name: [s.strip() for s in value.split(",") if s.strip()] for name, value in splits.items()}
    clips = [c for c in dataset.clips if any(c.split in names for names in wanted.values())]
    if rt.main:
        usable, failures = cache.prepare(clips, args.num_workers, progress=not args.quiet)
    rt.barrier()
    if not rt.main:
        usable, failures = cache.prepare(clips, 1, progress=False)  # all cached by rank 0 now
    config = config or DiverseEmbedConfig()
    data = {}
    for name, names in wanted.items():
        chosen = [c for c in usable if c.split in names]
        training = name == "train"
        if chosen:
            data[name] = ChunkDataset(chosen, cache, len(dataset.vocabulary), config.chunk_samples,
                                      config.hop_samples, config.min_final_chunk_samples,
                                      crop_jitter=training and getattr(args, "crop_jitter", False),
                                      min_peak_db=getattr(args, "min_train_chunk_peak_db", None) if training else None,
                                      seed=getattr(args, "seed", 0))
    if need_train and "train" not in data:
        raise SystemExit(f"no training clips in splits {wanted['train']}")
    return data, dataset.vocabulary, failures


def train(args) -> dict:
    rt = Runtime()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    output = Path(args.output)
    if rt.main:
        output.mkdir(parents=True, exist_ok=True)
    rt.barrier()
    data, vocabulary, failures = load_data(args, rt)
    branches = [b.strip() for b in args.branches.split(",") if b.strip()]
    config = DiverseEmbedConfig(branches=branches, num_labels=len(vocabulary), id2label=dict(enumerate(vocabulary)))
    model = DiverseEmbedder(config)
    if args.mobilenet_weights:
        model.branches["neuralogram"].front_end[1].load_state_dict(safetensors.torch.load_file(args.mobilenet_weights))
    resume = None
    if args.resume and (output / CHECKPOINT).is_file():
        resume = load_checkpoint(output)
        model.load_state_dict(resume["model"])
    elif args.stage != "all" and (output / "model.safetensors").is_file():
        model = DiverseEmbedder.from_pretrained(output)  # a later stage on top of earlier ones
    model.to(rt.device)
    if rt.main:
        hparams = {k: v for k, v in vars(args).items() if not callable(v)}  # not the CLI's handler
        (output / "hparams.json").write_text(json.dumps(hparams, indent=2, default=str))
    trainer = Trainer(args, rt, model, data, output)
    trainer.completed = list(resume["completed"]) if resume else []
    trainer.throughput = dict(resume["throughput"]) if resume else {}
    trainer.steps_done = resume["steps_done"] if resume else 0
    trainer.log(event="start", train_chunks=len(data["train"]), failures=len(failures), world=rt.world,
                device=str(rt.device), resumed=bool(resume))
    started = time.perf_counter()
    heads: dict[str, nn.Linear] = {}
    epochs = {"neuralogram": args.neuralogram_epochs, "finetune": args.finetune_epochs}
    for name in phase_names(args, branches):
        if name in trainer.completed:
            continue
        phase_resume = resume if resume and resume["phase"] == name else None
        if name == "fusion":
            heads = fusion(trainer)
        else:
            lr = args.finetune_lr if name == "finetune" else args.lr
            trainer.train_phase(name, epochs.get(name, args.branch_epochs), lr, phase_resume)
        trainer.completed.append(name)
        if rt.main:
            model.save_pretrained(output)
            if heads:
                safetensors.torch.save_file({f"{n}.{k}": v.contiguous() for n, h in heads.items()
                                             for k, v in h.state_dict().items()}, str(output / ABLATION_HEADS))
        trainer.checkpoint()
    if not heads and (output / ABLATION_HEADS).is_file():
        heads = load_ablation_heads(output / ABLATION_HEADS, model.config)
    results = evaluate(model, heads, data, args, rt)
    metrics = {
        "results": results, "throughput": trainer.throughput, "wall_seconds": round(time.perf_counter() - started, 1),
        "failures": [{"path": p, "reason": r} for p, r in failures], "parameters": model.num_parameters(),
        "world_size": rt.world, "device": str(rt.device),
    }
    if rt.main:
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (output / "metrics.md").write_text(metrics_markdown(metrics))
        trainer.log(event="done", wall_seconds=metrics["wall_seconds"])
    return metrics


def load_ablation_heads(path: Path, config: DiverseEmbedConfig) -> dict[str, nn.Linear]:
    tensors = safetensors.torch.load_file(str(path))
    heads = {}
    for name, names in subsets(config.branches).items():
        if f"{name}.weight" in tensors:
            head = nn.Linear(len(names) * config.d_model, config.num_labels)
            head.load_state_dict({"weight": tensors[f"{name}.weight"], "bias": tensors[f"{name}.bias"]})
            heads[name] = head
    return heads


def run_evaluate(args) -> dict:
    """`diverse-embed evaluate RUN --dataset ...`: metrics of a trained output folder."""
    rt = Runtime()
    model = DiverseEmbedder.from_pretrained(args.run_dir).to(rt.device)
    data, _, failures = load_data(args, rt, model.config, need_train=False)
    heads = load_ablation_heads(Path(args.run_dir) / ABLATION_HEADS, model.config) if (Path(args.run_dir) / ABLATION_HEADS).is_file() else {}
    results = evaluate(model, heads, data, args, rt)
    metrics = {"results": results, "throughput": {}, "failures": [{"path": p, "reason": r} for p, r in failures]}
    if rt.main:
        print(metrics_markdown(metrics))  # the evaluate command's answer
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    LOG.setLevel(logging.WARNING if args.quiet else logging.INFO)
    train(args)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
