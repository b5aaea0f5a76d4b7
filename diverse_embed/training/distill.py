"""Distillation from pretrained models: each teacher's vector of every training chunk, computed
once and cached beside the 16 kHz audio, and the loss that teaches the student what it knows:
each chunk's neighbours in the batch as the teacher ranks them (neighbour_distillation), or the
teacher's vector itself through a linear map of the student's embedding (regression_distillation).

No labels are needed: any audio teaches. Each teacher hears its own context centred on the chunk,
resampled from the cached 16 kHz audio (what the student hears too): aisfx (teacher.py) the 100
frames (2.3 s) at 44.1 kHz, speech_embedding (speech_teacher.py) 0.79 s at 16 kHz, BirdNET
(bird_teacher.py) 3 s at 48 kHz. With several, the target is their vectors, each centred and
L2-normalised, side by side (`teacher_table`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import bird_teacher, speech_teacher
from .. import teacher as aisfx
from ..config import DiverseEmbedConfig
from ..datasets import Clip
from ..files import atomic_write
from .data import AudioCache, ChunkDataset

LOG = logging.getLogger(__name__)

TEACHER_CACHE_VERSION = 1  # bump when the teachers' input changes


@dataclass(frozen=True)
class TeacherKind:
    """How to read one kind of teacher from its wheel and what it says of each chunk of a clip."""

    width: int
    load: Callable  # the wheel's path -> the loaded teacher
    chunk_vectors: Callable  # (teacher, 16-kHz audio (samples,), config) -> (n_chunks, width)


def aisfx_chunk_vectors(network, audio: np.ndarray, config: DiverseEmbedConfig, batch_size: int = 32) -> np.ndarray:
    windows = aisfx.chunk_windows(audio, config)  # (n_chunks, 100, 96)
    return torch.cat([network.embed(w) for w in windows.split(batch_size)]).numpy()  # (n_chunks, 512)


# The training option that names each kind's wheel -> the kind.
TEACHERS = {
    "teacher": TeacherKind(aisfx.WIDTH, aisfx.load_teacher, aisfx_chunk_vectors),
    "speech_teacher": TeacherKind(
        speech_teacher.WIDTH, speech_teacher.load_speech_teacher, speech_teacher.SpeechTeacher.chunk_vectors
    ),
    "bird_teacher": TeacherKind(
        bird_teacher.WIDTH, bird_teacher.load_bird_teacher, bird_teacher.BirdTeacher.chunk_vectors
    ),
}


class TeacherCache:
    """A teacher's vectors of every chunk of a clip, (n_chunks, width) float16 in one .npy per clip,
    named like the clip's audio cache file; the folder by the chunking (its last-chunk rule
    included), the teacher's kind and its file, so a change of any uses new files. Filling it is
    resumable: what is there is not computed again, and two processes can fill it together (given
    the clips in different orders)."""

    def __init__(
        self, audio_cache: AudioCache, teacher_path: str | Path, config: DiverseEmbedConfig, kind: str = "teacher"
    ):
        teacher_path = Path(teacher_path)
        tag = hashlib.sha1(f"{teacher_path.name}|{teacher_path.stat().st_size}".encode()).hexdigest()[:8]
        self.audio_cache, self.teacher_path, self.config, self.kind = audio_cache, teacher_path, config, TEACHERS[kind]
        chunking = f"{config.chunk_samples}-{config.hop_samples}-{config.min_final_chunk_samples}"
        named = "" if kind == "teacher" else f"{kind.removesuffix('_teacher')}-"  # aisfx keeps its caches' names
        self.folder = audio_cache.folder.parent / f"teacher-{named}v{TEACHER_CACHE_VERSION}-{tag}-{chunking}"

    def file_for(self, clip: Clip) -> Path:
        audio_file = self.audio_cache.file_for(clip.path)
        return self.folder / audio_file.parent.name / audio_file.name

    def prepare(self, clips: list[Clip], progress: bool = True) -> int:
        """Compute what is missing; returns how many clips were computed."""
        from tqdm.auto import tqdm

        todo = [clip for clip in clips if not self.file_for(clip).is_file()]
        if not todo:
            return 0
        teacher = self.kind.load(self.teacher_path)
        computed = 0
        with torch.inference_mode():
            for clip in tqdm(todo, desc="teacher vectors", unit="clip", disable=not progress):
                target = self.file_for(clip)
                if target.is_file():  # another process filling the same cache made it meanwhile
                    continue
                audio = self.audio_cache.load(clip.path).astype(np.float32) / 32767.0  # cached int16
                vectors = np.asarray(self.kind.chunk_vectors(teacher, audio, self.config))  # (n_chunks, width)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, lambda f, vectors=vectors: np.save(f, vectors.astype(np.float16)))
                computed += 1
        return computed

    def table(self, dataset: ChunkDataset, clip_mean: bool = False) -> np.ndarray:
        """(n_chunks, width) float32: the teacher's vector of each of the dataset's chunks, in its
        order; with clip_mean, the mean of the vectors of the chunk's clip instead (every chunk of it)."""
        per_clip = [np.load(self.file_for(clip)).astype(np.float32) for clip in dataset.clips]  # (n_chunks, width) each
        if clip_mean:
            per_clip = [vectors.mean(axis=0, keepdims=True) for vectors in per_clip]  # (1, width) each
        return (
            np.stack([per_clip[clip][0 if clip_mean else k] for clip, k in dataset.index])
            if len(dataset.index)
            else np.zeros((0, self.kind.width), np.float32)
        )


def teacher_table(tables: list[np.ndarray]) -> np.ndarray:
    """One teacher's table as it is; several side by side, each centred and its rows L2-normalised,
    so that each weighs the same in the student's target, whatever its width or scale."""
    return tables[0] if len(tables) == 1 else aisfx.centred_concatenation(tables)


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
