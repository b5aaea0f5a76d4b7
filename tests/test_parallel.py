"""The plan of threads: what it decides, and that embedding by it gives what one thread gives."""

import threading

import numpy as np
import pytest
import torch

from conftest import noise, sine, write_wav
from diverse_embed.embed import AudioFiles, decode_ahead, forward_chunks
from diverse_embed.parallel import available_cores, plan, torch_threads


def test_cpu_plan_uses_every_core_without_oversubscribing():
    for cores in (1, 2, 4, 16):
        cpu = plan("cpu", cores)
        assert cpu.compute_threads == cores and cpu.train_threads == cores
        assert cpu.decode_threads >= 1
        assert cpu.loader_workers < cores  # training's loader never takes every core from the step
    assert plan("cpu", 2).loader_workers == 0
    gpu = plan("cuda:0", 16)
    assert gpu.compute_threads == 1 and 1 <= gpu.decode_threads <= 8 and gpu.loader_workers >= 1


def test_available_cores_follows_omp_num_threads_and_torchrun(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    machine = available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(machine * 2))  # more processes than cores: one each
    assert available_cores() == 1


def test_torch_threads_is_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [1]  # threads started inside the block run single-threaded operations too
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored on errors as well")
    assert torch.get_num_threads() == before


def test_sliced_across_threads_equals_one_pass(model, monkeypatch):
    chunks = torch.from_numpy(np.stack([noise(1.0, 0.1 * (i + 1)) for i in range(7)]))  # (7, 16000)
    together, logits = forward_chunks(model, chunks, batch_size=64)  # the plan: one slice per core
    monkeypatch.setattr("diverse_embed.embed.plan", lambda device: plan(device, cores=1))
    alone, alone_logits = forward_chunks(model, chunks, batch_size=64)  # one thread, one slice
    assert torch.allclose(together, alone, atol=1e-5) and torch.allclose(logits, alone_logits, atol=1e-5)
    monkeypatch.setattr("diverse_embed.embed.plan", lambda device: plan(device, cores=3))
    again, _ = forward_chunks(model, chunks, batch_size=2)  # three threads, four slices
    assert torch.allclose(again, alone, atol=1e-5)
    assert not model.training


def test_decoding_ahead_keeps_order_and_failures(tmp_path):
    paths = []
    for i in range(9):
        paths.append(write_wav(tmp_path / f"{i}.wav", sine(200 + 100 * i, 0.3 + 0.1 * i)))
    (tmp_path / "bad.wav").write_text("not audio")
    paths.insert(4, tmp_path / "bad.wav")
    files = AudioFiles(paths, 16000, max_seconds_in_memory=0.5)
    inline = list(decode_ahead(files, 0, ahead_seconds=1.0))
    for threads in (1, 3):
        ahead = list(decode_ahead(files, threads, ahead_seconds=1.0))
        assert [d.path for d in ahead] == [d.path for d in inline] == paths
        for a, b in zip(ahead, inline):
            assert type(a.error) is type(b.error) and (a.waveform is None) == (b.waveform is None)
            assert a.waveform is None or np.array_equal(a.waveform, b.waveform)
    kinds = ["error" if d.error else "stream" if d.waveform is None else "waveform" for d in inline]
    assert kinds[4] == "error" and type(inline[4].error).__name__ == "AudioLoadError"
    assert kinds.count("stream") == 6  # longer than 0.5 s: neither decoded nor failed, to be streamed
    stopped = decode_ahead(files, 2, ahead_seconds=100.0)
    next(stopped)
    stopped.close()  # a caller that stops early leaves no thread behind
    assert not [t for t in threading.enumerate() if t.name.startswith("decode")]
