"""Training end to end on a tiny FSD-50K-layout fixture made here, and on a few ESC-50 clips."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch

from conftest import REPO, sine, write_wav
from diverse_embed import DiverseEmbedder
from diverse_embed.data import read_fsd50k, read_manifest
from diverse_embed.metrics import lwlrap, macro_map
from diverse_embed.train import main as train_main

VOCABULARY = [("0", "Bark", "/m/05tny_"), ("1", "Keyboard_(musical)", "/m/05148p4"), ("2", "Rain", "/m/06mb1")]


@pytest.fixture(scope="module")
def fsd50k(tmp_path_factory):
    """FSD-50K's layout and CSV formats (quoted comma-separated labels), 44.1 kHz WAV, one bad file."""
    root = tmp_path_factory.mktemp("FSD50K")
    truth, dev, evaluation = root / "FSD50K.ground_truth", root / "FSD50K.dev_audio", root / "FSD50K.eval_audio"
    for folder in (truth, dev, evaluation):
        folder.mkdir()
    with open(truth / "vocabulary.csv", "w", newline="") as f:
        csv.writer(f).writerows(VOCABULARY)
    rng = np.random.default_rng(0)

    def sound(labels):
        audio = np.zeros(int(44100 * 2.5), np.float32)
        if "Bark" in labels:
            audio += sine(300, 2.5, rate=44100, amplitude=0.3)
        if "Keyboard_(musical)" in labels:
            audio += sine(1000, 2.5, rate=44100, amplitude=0.2)
        if "Rain" in labels:
            audio += 0.1 * rng.standard_normal(len(audio)).astype(np.float32)
        return audio

    label_sets = [["Bark"], ["Keyboard_(musical)"], ["Rain"], ["Bark", "Rain"], ["Keyboard_(musical)", "Rain"]]
    rows = []
    for i in range(20):
        labels = label_sets[i % len(label_sets)]
        write_wav(dev / f"{1000 + i}.wav", sound(labels), rate=44100)
        mids = [m for _, name, m in VOCABULARY if name in labels]
        rows.append([str(1000 + i), ",".join(labels), ",".join(mids), "train" if i < 15 else "val"])
    (dev / "1019.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a clip that cannot be decoded
    with open(truth / "dev.csv", "w", newline="") as f:
        writer = csv.writer(f)  # quotes the fields that hold commas, as the real file does
        writer.writerow(["fname", "labels", "mids", "split"])
        writer.writerows(rows)
    with open(truth / "eval.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fname", "labels", "mids"])
        for i in range(10):
            labels = label_sets[i % len(label_sets)]
            write_wav(evaluation / f"{2000 + i}.wav", sound(labels), rate=44100)
            writer.writerow([str(2000 + i), ",".join(labels), ",".join(m for _, n, m in VOCABULARY if n in labels)])
    return root


TINY = ["--neuralogram-epochs", "1", "--branch-epochs", "1", "--fusion-epochs", "2", "--batch-size", "8",
        "--num-workers", "0", "--quiet"]


def test_reads_the_official_layout(fsd50k):
    dataset = read_fsd50k(fsd50k)
    assert dataset.vocabulary == ["Bark", "Keyboard_(musical)", "Rain"]
    assert '"Bark,Rain","/m/05tny_,/m/06mb1"' in (fsd50k / "FSD50K.ground_truth" / "dev.csv").read_text()
    assert [len([c for c in dataset.clips if c.split == s]) for s in ("train", "val", "eval")] == [15, 5, 10]
    assert dataset.clips[3].labels == [0, 2] and dataset.clips[1].labels == [1]


def test_every_stage_end_to_end(fsd50k, tmp_path, capsys):
    out = tmp_path / "run"
    train_main(["--dataset", "fsd50k", "--data-root", str(fsd50k), "--output", str(out),
                "--cache-dir", str(tmp_path / "cache"), "--finetune-epochs", "1", *TINY])
    model = DiverseEmbedder.from_pretrained(out)
    assert model.config.id2label == {0: "Bark", 1: "Keyboard_(musical)", 2: "Rain"}
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["results"]["test"]["systems"]
    assert set(systems) == {"fused", "pitch", "timbre", "waveform", "neuralogram",
                            "-pitch", "-timbre", "-waveform", "-neuralogram"}
    assert all(0 <= m["macro_map"] <= 1 for m in systems.values())
    assert metrics["results"]["test"]["clips"] == 10
    assert [f["path"].endswith("1019.wav") for f in metrics["failures"]] == [True]  # reported, skipped
    assert set(metrics["throughput"]) >= {"neuralogram", "branch:pitch", "branch:neuralogram", "finetune"}
    assert "| fused (all branches) |" in (out / "metrics.md").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "done"
    assert json.loads((out / "hparams.json").read_text())["branch_epochs"] == 1
    # The evaluate command gives the same test figures from the saved folder.
    from diverse_embed.cli import main as cli_main

    assert cli_main(["evaluate", str(out), "--dataset", "fsd50k", "--data-root", str(fsd50k),
                     "--cache-dir", str(tmp_path / "cache"), "--num-workers", "0", "--quiet"]) == 0
    assert f"| fused (all branches) | {systems['fused']['macro_map']:.3f}" in capsys.readouterr().out
    # The cache is reused: a second run decodes nothing (the files it wrote stay as they were).
    cached = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 29
    stamps = [p.stat().st_mtime_ns for p in cached]
    train_main(["--dataset", "fsd50k", "--data-root", str(fsd50k), "--output", str(tmp_path / "again"),
                "--cache-dir", str(tmp_path / "cache"), "--stage", "fusion", *TINY])
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_resume_gives_the_same_weights(fsd50k, tmp_path):
    common = ["--dataset", "fsd50k", "--data-root", str(fsd50k), "--cache-dir", str(tmp_path / "cache"),
              "--branches", "timbre,waveform", "--checkpoint-every", "2", *TINY, "--branch-epochs", "2"]
    train_main([*common, "--output", str(tmp_path / "straight")])
    with pytest.raises(SystemExit):
        # 6 steps an epoch, 12 a phase: this stops mid-epoch in the waveform phase, after timbre's.
        train_main([*common, "--output", str(tmp_path / "broken"), "--stop-after-steps", "15"])
    assert not (tmp_path / "broken" / "metrics.json").exists()
    train_main([*common, "--output", str(tmp_path / "broken"), "--resume"])
    a = safetensors.torch.load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "broken" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), [k for k in a if not (a[k] == b[k]).all()][:5]


def test_two_process_gloo_job_writes_a_loadable_model(fsd50k, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "diverse_embed.train",
         "--dataset", "fsd50k", "--data-root", str(fsd50k), "--output", str(tmp_path / "ddp"),
         "--cache-dir", str(tmp_path / "cache"), "--branches", "timbre,pitch", "--max-steps-per-phase", "2", *TINY],
        capture_output=True, text=True, cwd=REPO, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    model = DiverseEmbedder.from_pretrained(tmp_path / "ddp")
    assert model.config.branches == ["timbre", "pitch"]
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2


def test_manifest_rules(tmp_path):
    (tmp_path / "clips").mkdir()
    manifest = tmp_path / "labels.csv"
    manifest.write_text('path,labels,split\na.wav,"dog;bark",train\nsub/b.wav,rain,test\n')
    dataset = read_manifest(manifest, tmp_path / "clips")
    assert dataset.vocabulary == ["bark", "dog", "rain"] and dataset.clips[0].labels == [1, 0]
    manifest.write_text("path,labels\n../outside.wav,dog\n")
    with pytest.raises(ValueError, match="outside the audio root"):
        read_manifest(manifest, tmp_path / "clips")
    assert read_manifest(manifest, tmp_path / "clips", allow_outside_root=True).clips[0].split == "train"


def test_metrics_match_their_definitions():
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7], [0.1, 0.3]])
    assert macro_map(targets, scores) == pytest.approx(1.0)
    # lwlrap by hand: each (clip, label) pair's precision at its rank, averaged over pairs.
    assert lwlrap(targets, np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.7], [0, 0]])) == pytest.approx((0.5 + 1 + 1 + 1) / 4)


@pytest.mark.integration
def test_manifest_training_on_esc50(esc50, tmp_path):
    with open(esc50 / "meta" / "esc50.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("dog", "rain", "church_bells")]
    picked = [r for r in rows if r["fold"] in "1234"][:24] + [r for r in rows if r["fold"] == "5"][:6]
    manifest = tmp_path / "esc.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels", "split"])
        writer.writerows([r["filename"], r["category"], r["fold"]] for r in picked)
    train_main(["--dataset", "csv", "--manifest", str(manifest), "--audio-root", str(esc50 / "audio"),
                "--train-splits", "1,2,3", "--val-splits", "4", "--test-splits", "5", "--output", str(tmp_path / "esc"),
                "--cache-dir", str(tmp_path / "cache"), "--max-steps-per-phase", "3", *TINY,
                "--crop-jitter", "--min-train-chunk-peak-db", "-50", "--gain-augment-db", "6"])
    metrics = json.loads((tmp_path / "esc" / "metrics.json").read_text())
    hparams = json.loads((tmp_path / "esc" / "hparams.json").read_text())
    assert hparams["crop_jitter"] and hparams["loss"] == "auto"
    assert metrics["results"]["test"]["systems"]["fused"]["accuracy"] is not None  # single-label: accuracy too


def test_heads_start_at_the_label_prior():
    from types import SimpleNamespace

    import torch

    from diverse_embed.data import Clip
    from diverse_embed.train import label_prior_logits, start_at_prior

    clips = [Clip("a", [0], "train"), Clip("b", [0, 1], "train")]
    dataset = SimpleNamespace(n_classes=3, clips=clips, index=np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    head = torch.nn.Linear(4, 3)
    start_at_prior(head, label_prior_logits(dataset))
    # class 0 is on every chunk (clipped to 1 - 1e-4), class 1 on half of them, class 2 on none.
    np.testing.assert_allclose(torch.sigmoid(head.bias).detach().numpy(), [1 - 1e-4, 0.5, 1e-4], rtol=1e-4)


def test_softmax_for_single_label_data_and_its_prior():
    from types import SimpleNamespace

    import torch

    from diverse_embed.data import Clip
    from diverse_embed.train import label_prior_logits, resolve_loss

    single = SimpleNamespace(n_classes=3, clips=[Clip("a", [0], "train"), Clip("b", [1], "train")],
                             index=np.array([[0, 0], [0, 1], [0, 2], [1, 0]]))
    multi = SimpleNamespace(n_classes=3, clips=[Clip("a", [0], "train"), Clip("b", [0, 1], "train")], index=single.index)
    assert resolve_loss("auto", single) == "softmax" and resolve_loss("auto", multi) == "bce"
    with pytest.raises(SystemExit, match="one label per training clip"):
        resolve_loss("softmax", multi)
    prior = torch.softmax(label_prior_logits(single, "softmax"), dim=0).numpy()
    np.testing.assert_allclose(prior, [0.75, 0.25, 1e-4], atol=2e-4)


def test_crop_jitter_and_silent_chunk_filter():
    from types import SimpleNamespace

    from diverse_embed.data import ChunkDataset, Clip

    rate = 1000
    loud = np.arange(1, 3 * rate + 1, dtype=np.int16)  # a ramp: each sample says where it came from
    quiet = np.concatenate([np.full(rate, 3000, np.int16), np.zeros(2 * rate, np.int16)])  # 1 s of sound, 2 s silence
    audio = {"loud": loud, "quiet": quiet}
    cache = SimpleNamespace(load=lambda path: audio[path])
    clips = [Clip("loud", [0], "train"), Clip("quiet", [1], "train")]

    kept = ChunkDataset(clips, cache, 2, chunk_samples=rate, hop_samples=rate, min_final_samples=100, min_peak_db=-40)
    assert kept.index.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]  # quiet's silent seconds are left out
    every = ChunkDataset(clips, cache, 2, chunk_samples=rate, hop_samples=rate, min_final_samples=100)
    assert len(every) == 6

    jittered = ChunkDataset(clips, cache, 2, chunk_samples=rate, hop_samples=rate, min_final_samples=100,
                            crop_jitter=True, seed=1)
    starts = {}
    for epoch in range(4):
        jittered.set_epoch(epoch)
        chunk = jittered[1][0].numpy() * 32767  # loud's second chunk
        start = int(round(chunk[0])) - 1
        assert abs(start - rate) <= rate // 2 and 0 <= start <= 2 * rate  # moved at most half a hop, inside the clip
        np.testing.assert_allclose(chunk, np.arange(start + 1, start + rate + 1), atol=0.01)
        starts[epoch] = start
        assert int(round(jittered[1][0][0].item() * 32767)) - 1 == start  # same (epoch, item), same crop
    assert len(set(starts.values())) > 1
    fixed = jittered.without_augmentation()
    assert int(round(fixed[1][0][0].item() * 32767)) == rate + 1 and jittered.crop_jitter
