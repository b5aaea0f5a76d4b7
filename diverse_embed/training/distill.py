"""Distillation from the aisfx sound-effects CNN (teacher.py): the teacher's 512-d vector of every
training chunk, computed once and cached beside the 16 kHz audio, and the loss that teaches the
student what it knows: each chunk's neighbours in the batch as the teacher ranks them
(neighbour_distillation), or the teacher's vector itself through a linear map of the student's
embedding (regression_distillation).

No labels are needed: any audio teaches. The teacher sees the 100 frames (2.3 s) centred on the
chunk, at 44.1 kHz resampled from the cached 16 kHz audio (what the student hears too)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import teacher as aisfx
from ..config import DiverseEmbedConfig
from ..datasets import Clip
from ..files import atomic_write
from .data import AudioCache, ChunkDataset

LOG = logging.getLogger(__name__)

TEACHER_CACHE_VERSION = 1  # bump when the teacher's input changes


class TeacherCache:
    """The teacher's vectors of every chunk of a clip, (n_chunks, 512) float16 in one .npy per clip,
    named like the clip's audio cache file; the folder by the chunking (its last-chunk rule
    included) and the teacher file, so a change of either uses new files. Filling it is resumable:
    what is there is not computed again, and two processes can fill it together (given the clips
    in different orders)."""

    def __init__(self, audio_cache: AudioCache, teacher_path: str | Path, config: DiverseEmbedConfig):
        teacher_path = Path(teacher_path)
        tag = hashlib.sha1(f"{teacher_path.name}|{teacher_path.stat().st_size}".encode()).hexdigest()[:8]
        self.audio_cache, self.teacher_path, self.config = audio_cache, teacher_path, config
        chunking = f"{config.chunk_samples}-{config.hop_samples}-{config.min_final_chunk_samples}"
        self.folder = audio_cache.folder.parent / f"teacher-v{TEACHER_CACHE_VERSION}-{tag}-{chunking}"

    def file_for(self, clip: Clip) -> Path:
        audio_file = self.audio_cache.file_for(clip.path)
        return self.folder / audio_file.parent.name / audio_file.name

    def prepare(self, clips: list[Clip], batch_size: int = 32, progress: bool = True) -> int:
        """Compute what is missing; returns how many clips were computed."""
        from tqdm.auto import tqdm

        todo = [clip for clip in clips if not self.file_for(clip).is_file()]
        if not todo:
            return 0
        model = aisfx.load_teacher(self.teacher_path)
        computed = 0
        with torch.inference_mode():
            for clip in tqdm(todo, desc="teacher vectors", unit="clip", disable=not progress):
                target = self.file_for(clip)
                if target.is_file():  # another process filling the same cache made it meanwhile
                    continue
                audio = self.audio_cache.load(clip.path).astype(np.float32) / 32767.0  # cached int16
                windows = aisfx.chunk_windows(audio, self.config)  # (n_chunks, 100, 96)
                vectors = torch.cat([model.embed(w) for w in windows.split(batch_size)])  # (n_chunks, 512)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, lambda f, vectors=vectors: np.save(f, vectors.numpy().astype(np.float16)))
                computed += 1
        return computed

    def table(self, dataset: ChunkDataset, clip_mean: bool = False) -> np.ndarray:
        """(n_chunks, 512) float32: the teacher's vector of each of the dataset's chunks, in its order;
        with clip_mean, the mean of the vectors of the chunk's clip instead (every chunk of it)."""
        per_clip = [np.load(self.file_for(clip)).astype(np.float32) for clip in dataset.clips]  # (n_chunks, 512) each
        if clip_mean:
            per_clip = [vectors.mean(axis=0, keepdims=True) for vectors in per_clip]  # (1, 512) each
        return (
            np.stack([per_clip[clip][0 if clip_mean else k] for clip, k in dataset.index])
            if len(dataset.index)
            else np.zeros((0, aisfx.WIDTH), np.float32)
        )


def neighbour_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """student (batch, width), teacher (batch, 512) centred -> scalar: the KL divergence from each
    chunk's distribution over the batch's other chunks by the teacher's cosine similarity to the
    same by the student's. What retrieval uses, the neighbours' order, is what is taught."""
    s, t = F.normalize(student.float(), dim=1), F.normalize(teacher.float(), dim=1)
    itself = torch.eye(len(s), dtype=torch.bool, device=s.device)
    student_log_p = F.log_softmax((s @ s.T / temperature).masked_fill(itself, float("-inf")), dim=1)
    teacher_p = F.softmax((t @ t.T / temperature).masked_fill(itself, float("-inf")), dim=1)
    return (teacher_p * (teacher_p.clamp(min=1e-12).log() - student_log_p.masked_fill(itself, 0.0))).sum(dim=1).mean()


def regression_distillation(predicted: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """predicted (batch, 512), a linear map of the student's embedding, teacher (batch, 512) centred
    -> scalar: the mean of 1 - cosine. The embedding is taught to hold what the teacher's vector
    says, in any linear form."""
    return (1 - F.cosine_similarity(predicted.float(), teacher.float(), dim=1)).mean()
