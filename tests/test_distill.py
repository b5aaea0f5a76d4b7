"""Distillation: the teacher's vector of every training chunk, cached once, and the term that
teaches the student the teacher's neighbours; end to end with a teacher of random weights."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import TINY, fake_wheel, sine, tiny_config
from diverse_embed import DiverseEmbedder
from diverse_embed.cli import main as cli_main
from diverse_embed.teacher import chunk_windows
from diverse_embed.training.distill import TeacherCache, neighbour_distillation, regression_distillation


def test_each_chunk_gets_the_teacher_window_centred_on_it():
    config = tiny_config()
    audio = np.zeros(3 * 16000, np.float32)
    audio[16000:32000] = sine(1000, 1.0)  # the middle second only
    windows = chunk_windows(audio, config)
    assert windows.shape == (3, 100, 96)
    loud = windows.amax(dim=2) > 0.1  # (chunks, frames): frames with sound
    # Chunk 1 (1-2 s) sits in the middle of its window; chunk 0's window holds the tone in its last
    # part, chunk 2's in its first part.
    assert loud[1, 40:60].all() and not loud[1, :5].any() and not loud[1, -5:].any()
    assert loud[0, -10:].all() and not loud[0, :40].any()
    assert loud[2, :10].all() and not loud[2, -40:].any()
    short = chunk_windows(np.full(4000, 0.03, np.float32), config)  # shorter than a chunk: one, padded with silence
    assert short.shape == (1, 100, 96) and float(short[0, :20].abs().max()) == 0.0


def test_the_table_gives_each_chunk_its_own_window_or_its_clips_mean(tmp_path):
    cache = TeacherCache.__new__(TeacherCache)  # only the per-clip files matter here
    cache.file_for = lambda clip: tmp_path / f"{clip}.npy"
    a, b = np.arange(3 * 512).reshape(3, 512), -np.arange(2 * 512).reshape(2, 512)  # (n_chunks, 512)
    np.save(tmp_path / "a.npy", a.astype(np.float16))
    np.save(tmp_path / "b.npy", b.astype(np.float16))
    dataset = SimpleNamespace(clips=["a", "b"], index=[(0, 2), (1, 1), (0, 0)])  # (clip, chunk), silent ones left out
    chunks = cache.table(dataset)
    assert chunks.shape == (3, 512) and chunks.dtype == np.float32
    np.testing.assert_array_equal(chunks, np.stack([a[2], b[1], a[0]]).astype(np.float16).astype(np.float32))
    clips = cache.table(dataset, clip_mean=True)
    means = [a.astype(np.float16).astype(np.float32).mean(axis=0), b.astype(np.float16).astype(np.float32).mean(axis=0)]
    np.testing.assert_allclose(clips, np.stack([means[0], means[1], means[0]]), rtol=1e-6)  # every chunk of a clip


def test_the_teacher_cache_is_kept_apart_for_another_last_chunk_rule(tmp_path):
    import dataclasses

    from diverse_embed.training.data import AudioCache

    wheel, _ = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")
    audio, config = AudioCache(tmp_path / "cache"), tiny_config()
    folders = {
        TeacherCache(audio, wheel, dataclasses.replace(config, **change)).folder
        for change in ({}, {"min_final_chunk_seconds": 0.5}, {"hop_seconds": 0.5})
    }
    assert len(folders) == 3  # a rule that keeps fewer chunks would otherwise read another rule's rows


def test_the_term_is_zero_when_the_student_ranks_like_the_teacher():
    teacher = torch.randn(16, 512)
    same_space = teacher @ torch.linalg.qr(torch.randn(512, 512))[0]  # a rotation keeps every cosine
    assert float(neighbour_distillation(same_space, teacher, 0.1)) == pytest.approx(0.0, abs=1e-4)
    student = torch.randn(16, 64, requires_grad=True)
    loss = neighbour_distillation(student, teacher, 0.1)
    assert float(loss.detach()) > 0.1
    loss.backward()
    assert student.grad.abs().sum() > 0
    # Descending it moves the student's neighbours toward the teacher's.
    optimiser = torch.optim.SGD([student], lr=1.0)
    for _ in range(50):
        optimiser.zero_grad()
        neighbour_distillation(student, teacher, 0.1).backward()
        optimiser.step()
    assert float(neighbour_distillation(student, teacher, 0.1).detach()) < float(loss.detach()) / 2


def test_the_regression_term_is_zero_when_the_map_predicts_the_teacher():
    teacher = torch.randn(16, 512)
    assert float(regression_distillation(3 * teacher, teacher)) == pytest.approx(0.0, abs=1e-5)  # cosine: any scale
    assert float(regression_distillation(-teacher, teacher)) == pytest.approx(2.0, abs=1e-5)
    embedding = torch.randn(16, 64)
    to_teacher = torch.nn.Linear(64, 512)
    first = float(regression_distillation(to_teacher(embedding), teacher).detach())
    optimiser = torch.optim.Adam(to_teacher.parameters(), lr=0.01)
    for _ in range(100):
        optimiser.zero_grad()
        regression_distillation(to_teacher(embedding), teacher).backward()
        optimiser.step()
    assert float(regression_distillation(to_teacher(embedding), teacher).detach()) < first / 2


@pytest.mark.slow
def test_distillation_end_to_end_with_a_cached_teacher(fsd50k, tmp_path):
    wheel, _ = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")
    cache = tmp_path / "cache"
    common = [
        "--dataset",
        "fsd50k",
        "--data-root",
        str(fsd50k),
        "--cache-dir",
        str(cache),
        "--branches",
        "timbre,waveform",
        "--d-model",
        "16",
        "--n-layers",
        "1",
        "--n-heads",
        "2",
        "--ff-dim",
        "32",
        *TINY,
    ]
    # Its own step fills the cache, and nothing else.
    assert (
        cli_main(["train", *common, "--output", str(tmp_path / "t"), "--stage", "teacher", "--teacher", str(wheel)])
        == 0
    )
    vectors = sorted(cache.glob("teacher-*/*/*.npy"))
    assert len(vectors) == 15 and not (tmp_path / "t" / "model.safetensors").exists()  # one per training clip
    assert all(np.load(v).shape == (3, 512) for v in vectors)  # 2.5-s clips: 3 chunks
    stamps = [v.stat().st_mtime_ns for v in vectors]
    # Training reads it back (computes nothing again) and adds the term to each phase's loss.
    assert (
        cli_main(
            [
                "train",
                *common,
                "--output",
                str(tmp_path / "d"),
                "--teacher",
                str(wheel),
                "--distill-weight",
                "5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert [v.stat().st_mtime_ns for v in vectors] == stamps
    assert cli_main(["train", *common, "--output", str(tmp_path / "plain"), "--seed", "3"]) == 0

    def losses(run):
        log = [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in log if r.get("phase") == "branch:timbre" and "loss" in r]

    assert losses("d") != losses("plain")  # the same run but for the term
    assert (
        cli_main(
            [
                "train",
                *common,
                "--output",
                str(tmp_path / "r"),
                "--teacher",
                str(wheel),
                "--distill-loss",
                "regression",
                "--distill-weight",
                "5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert losses("r") not in (losses("d"), losses("plain"))
    assert (
        cli_main(
            [
                "train",
                *common,
                "--output",
                str(tmp_path / "c"),
                "--teacher",
                str(wheel),
                "--distill-loss",
                "regression",
                "--distill-target",
                "clip",
                "--distill-weight",
                "5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert losses("c") not in (losses("r"), losses("plain"))  # the clip's mean is another target
    log = [json.loads(line) for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    distill = [r["distill"] for r in log if "distill" in r]
    assert distill and all(0 <= d <= 2 for d in distill)  # 1 - cosine, logged beside the loss
    assert not any("distill" in r for r in log if r.get("phase", "").startswith("fusion:"))  # heads have no term
    saved = DiverseEmbedder.from_pretrained(tmp_path / "r").state_dict()
    assert (
        saved.keys() == DiverseEmbedder.from_pretrained(tmp_path / "plain").state_dict().keys()
    )  # the map is not kept
    assert json.loads((tmp_path / "d" / "hparams.json").read_text())["teacher"] == str(wheel)


def test_distillation_refuses_what_it_cannot_teach(fsd50k, tmp_path):
    common = [
        "train",
        "--dataset",
        "fsd50k",
        "--data-root",
        str(fsd50k),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output",
        str(tmp_path / "x"),
        *TINY,
    ]
    assert cli_main([*common, "--stage", "teacher"]) == 2  # no --teacher
    assert cli_main([*common, "--teacher", str(tmp_path / "missing.whl")]) == 2
    wheel, _ = fake_wheel(tmp_path / "w.whl")
    assert cli_main([*common, "--teacher", str(wheel), "--mixup-alpha", "0.2"]) == 2


def fake_kind(width: int, window: int, seed: int):
    """A stand-in teacher: a fixed random projection of the window centred on each chunk."""
    from diverse_embed.audio import centred_windows
    from diverse_embed.training.distill import TeacherKind

    projection = np.random.default_rng(seed).standard_normal((window, width)).astype(np.float32)
    return TeacherKind(
        width, lambda path: projection, lambda p, audio, config: centred_windows(audio, config, 16000, window) @ p
    )


def test_three_teachers_distil_end_to_end_side_by_side(fsd50k, tmp_path, monkeypatch):
    from diverse_embed.training import distill

    monkeypatch.setitem(distill.TEACHERS, "speech_teacher", fake_kind(96, 1600, 1))
    monkeypatch.setitem(distill.TEACHERS, "bird_teacher", fake_kind(1024, 4800, 2))
    wheel, _ = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")
    speech, bird = tmp_path / "speech.whl", tmp_path / "bird.whl"
    speech.write_bytes(b"speech")
    bird.write_bytes(b"bird")
    cache = tmp_path / "cache"
    common = ["train", "--dataset", "fsd50k", "--data-root", str(fsd50k), "--cache-dir", str(cache)]
    common += [
        "--branches",
        "timbre,waveform",
        "--d-model",
        "16",
        "--n-layers",
        "1",
        "--n-heads",
        "2",
        "--ff-dim",
        "32",
    ]
    common += [*TINY, "--seed", "3", "--distill-loss", "regression", "--distill-weight", "5"]
    teachers = ["--teacher", str(wheel), "--speech-teacher", str(speech), "--bird-teacher", str(bird)]
    assert cli_main([*common, "--output", str(tmp_path / "all"), *teachers]) == 0
    folders = sorted(p.name.split("-v1-")[0] for p in cache.glob("teacher-*"))
    assert folders == ["teacher", "teacher-bird", "teacher-speech"]  # a cache per teacher; aisfx's keeps its name
    widths = {f.name.split("-v1-")[0]: np.load(next(f.glob("*/*.npy"))).shape[1] for f in cache.glob("teacher-*")}
    assert widths == {"teacher": 512, "teacher-speech": 96, "teacher-bird": 1024}
    assert cli_main([*common, "--output", str(tmp_path / "one"), "--teacher", str(wheel)]) == 0

    def distill_terms(run):
        log = [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        return [r["distill"] for r in log if "distill" in r]

    assert distill_terms("all") and distill_terms("all") != distill_terms("one")  # another target
    hparams = json.loads((tmp_path / "all" / "hparams.json").read_text())
    assert (hparams["speech_teacher"], hparams["bird_teacher"]) == (str(speech), str(bird))
    saved = DiverseEmbedder.from_pretrained(tmp_path / "all").state_dict().keys()
    assert saved == DiverseEmbedder.from_pretrained(tmp_path / "one").state_dict().keys()  # no map is kept


def test_several_teachers_weigh_the_same_in_the_target():
    from diverse_embed.training.distill import teacher_table

    rng = np.random.default_rng(0)
    one = rng.random((10, 4)) * 100
    assert teacher_table([one]) is one  # one teacher: its vectors as they are
    joined = teacher_table([one, rng.random((10, 7)) + 5])
    assert joined.shape == (10, 11)
    np.testing.assert_allclose(np.linalg.norm(joined[:, :4], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(joined[:, 4:], axis=1), 1.0, rtol=1e-6)
