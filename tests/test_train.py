"""Training end to end on a tiny FSD-50K-layout fixture made here, and on a few ESC-50 clips."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch
import torch

from conftest import REPO, TINY
from diverse_embed import DiverseEmbedConfig, DiverseEmbedder
from diverse_embed.cli import main as cli_main


def train_main(argv: list[str]) -> int:
    return cli_main(["train", *argv])


@pytest.mark.slow
def test_every_stage_end_to_end(fsd50k, tmp_path, capsys):
    out = tmp_path / "run"
    train_main(
        [
            "--dataset",
            "fsd50k",
            "--data-root",
            str(fsd50k),
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--finetune-epochs",
            "1",
            "--ablation-heads",
            *TINY,
        ]
    )
    ending = capsys.readouterr().out.splitlines()  # a few lines a person reads: scores, where, how to use it
    assert ending[0].startswith("trained in ") and ending[0].endswith(str(out))
    assert any(line.startswith("test (10 clips): macro mAP ") for line in ending)
    assert f"  diverse-embed tag FILES --model {out}" in ending and len(ending) <= 10
    model = DiverseEmbedder.from_pretrained(out)
    assert model.config.id2label == {0: "Bark", 1: "Keyboard_(musical)", 2: "Rain"}
    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["results"]["test"]["systems"]
    assert set(systems) == {
        "fused",
        "pitch",
        "timbre",
        "waveform",
        "neuralogram",
        "-pitch",
        "-timbre",
        "-waveform",
        "-neuralogram",
    }
    assert all(0 <= m["macro_map"] <= 1 for m in systems.values())
    assert metrics["results"]["test"]["clips"] == 10
    assert [f["path"].endswith("1019.wav") for f in metrics["failures"]] == [True]  # reported, skipped
    assert set(metrics["throughput"]) >= {"neuralogram", "branch:pitch", "branch:neuralogram", "finetune"}
    assert "| fused (all branches) |" in (out / "metrics.md").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "done"
    finished = [r["phase"] for r in log if r.get("done")]  # phases and heads, in the order they ended
    after_finetune = finished[finished.index("finetune") :]
    assert (
        "fusion:pitch" in after_finetune and "fusion:fused" not in after_finetune
    )  # ablation heads match the fine-tuned branches
    assert json.loads((out / "hparams.json").read_text())["branch_epochs"] == 1
    # The evaluate command gives the same test figures from the saved folder.
    assert (
        cli_main(
            [
                "evaluate",
                str(out),
                "--dataset",
                "fsd50k",
                "--data-root",
                str(fsd50k),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--num-workers",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    assert f"| fused (all branches) | {systems['fused']['macro_map']:.3f}" in capsys.readouterr().out
    # The cache is reused: a second run decodes nothing (the files it wrote stay as they were).
    cached = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 29
    stamps = [p.stat().st_mtime_ns for p in cached]
    train_main(
        [
            "--dataset",
            "fsd50k",
            "--data-root",
            str(fsd50k),
            "--output",
            str(tmp_path / "again"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--stage",
            "fusion",
            *TINY,
        ]
    )
    assert [p.stat().st_mtime_ns for p in cached] == stamps


@pytest.mark.slow
def test_resume_gives_the_same_weights(fsd50k, tmp_path):
    common = [
        "--dataset",
        "fsd50k",
        "--data-root",
        str(fsd50k),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--branches",
        "timbre,waveform",
        "--checkpoint-every",
        "2",
        *TINY,
        "--branch-epochs",
        "2",
    ]
    train_main([*common, "--output", str(tmp_path / "straight")])
    # 6 steps an epoch, 12 a phase: this stops mid-epoch in the waveform phase, after timbre's.
    assert train_main([*common, "--output", str(tmp_path / "broken"), "--stop-after-steps", "15"]) == 0
    assert not (tmp_path / "broken" / "metrics.json").exists()
    train_main([*common, "--output", str(tmp_path / "broken"), "--resume"])
    a = safetensors.torch.load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "broken" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), [k for k in a if not (a[k] == b[k]).all()][:5]


@pytest.mark.slow
def test_two_process_gloo_job_writes_a_loadable_model(fsd50k, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "diverse_embed.cli",
            "train",
            "--dataset",
            "fsd50k",
            "--data-root",
            str(fsd50k),
            "--output",
            str(tmp_path / "ddp"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--branches",
            "timbre,pitch",
            "--max-steps-per-phase",
            "2",
            *TINY,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    model = DiverseEmbedder.from_pretrained(tmp_path / "ddp")
    assert model.config.branches == ["timbre", "pitch"]
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2


def test_the_model_shape_is_set_from_the_command_line(fsd50k, tmp_path):
    out = tmp_path / "small"
    train_main(
        [
            "--dataset",
            "fsd50k",
            "--data-root",
            str(fsd50k),
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
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
            "--hop-seconds",
            "0.5",
            "--max-steps-per-phase",
            "2",
            *TINY,
        ]
    )
    config = DiverseEmbedder.from_pretrained(out).config
    assert (config.d_model, config.n_layers, config.n_heads, config.ff_dim, config.hop_seconds) == (16, 1, 2, 32, 0.5)
    assert config.branches == ["timbre", "waveform"] and config.num_labels == 3  # the labels come from the data
    hparams = json.loads((out / "hparams.json").read_text())
    assert hparams["shape"]["d_model"] == 16 and hparams["batch_size"] == 8


def test_init_from_keeps_the_pretrained_branches_and_learns_a_new_head(fsd50k, tmp_path):
    from conftest import tiny_config

    torch.manual_seed(1)
    base = DiverseEmbedder(tiny_config(branches=["timbre", "waveform"]))
    base.save_pretrained(tmp_path / "base")
    common = [
        "--dataset",
        "fsd50k",
        "--data-root",
        str(fsd50k),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--init-from",
        str(tmp_path / "base"),
        *TINY,
    ]
    train_main([*common, "--output", str(tmp_path / "head")])
    model = DiverseEmbedder.from_pretrained(tmp_path / "head")
    assert model.config.id2label == {0: "Bark", 1: "Keyboard_(musical)", 2: "Rain"} and model.config.d_model == 16
    before, after = base.state_dict(), model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if not k.startswith("head."))  # branches kept, frozen
    assert model.head.weight.shape == (3, 32)
    card = (tmp_path / "head" / "README.md").read_text()  # says where it came from and its labels
    assert f"Fine-tuned from `{tmp_path / 'base'}`" in card and "`Bark`, `Keyboard_(musical)`, `Rain`" in card
    assert "More Information Needed" not in card
    log = [json.loads(line) for line in (tmp_path / "head" / "train_log.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in log if r.get("done")} == {"fusion:fused"}  # ablation heads only when asked for
    assert not (tmp_path / "head" / "ablation_heads.safetensors").exists()
    assert set(json.loads((tmp_path / "head" / "metrics.json").read_text())["results"]["test"]["systems"]) == {"fused"}
    train_main([*common, "--output", str(tmp_path / "tuned"), "--finetune-epochs", "1"])
    tuned = DiverseEmbedder.from_pretrained(tmp_path / "tuned").state_dict()
    assert not all(torch.equal(before[k], tuned[k]) for k in tuned if k.startswith("branches."))  # trained too


def test_retrain_trains_the_named_stages_of_a_pretrained_model_again(fsd50k, tmp_path, capsys):
    from conftest import tiny_config

    torch.manual_seed(1)
    base = DiverseEmbedder(tiny_config(branches=["timbre", "waveform", "neuralogram"]))
    base.save_pretrained(tmp_path / "base")
    common = [
        "--dataset",
        "fsd50k",
        "--data-root",
        str(fsd50k),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--init-from",
        str(tmp_path / "base"),
        *TINY,
    ]
    train_main([*common, "--output", str(tmp_path / "again"), "--retrain", "neuralogram,branch:neuralogram"])
    before = base.state_dict()
    after = DiverseEmbedder.from_pretrained(tmp_path / "again").state_dict()
    moved = {k.split(".")[1] for k in after if k.startswith("branches.") and not torch.equal(before[k], after[k])}
    assert moved == {"neuralogram"}  # the named stages trained, the other branches kept bit for bit
    log = [json.loads(line) for line in (tmp_path / "again" / "train_log.jsonl").read_text().splitlines()]
    done = [r["phase"] for r in log if r.get("done")]
    assert done[:2] == ["neuralogram", "branch:neuralogram"] and "branch:timbre" not in done
    capsys.readouterr()
    assert cli_main(["train", *common, "--output", str(tmp_path / "x"), "--retrain", "branch:pitch"]) == 2
    assert "branch:pitch: not a stage of this model" in capsys.readouterr().err
    plain = [a for a in common if a not in ("--init-from", str(tmp_path / "base"))]
    assert cli_main(["train", *plain, "--output", str(tmp_path / "y"), "--retrain", "branch:timbre"]) == 2
    assert "--retrain needs --init-from" in capsys.readouterr().err


def test_training_options_are_checked_and_documented(capsys):
    with pytest.raises(SystemExit) as code:
        train_main(["--dataset", "csv", "--output", "x", "--branches", "timbre,pich"])
    assert code.value.code == 2 and "branches must be distinct names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "--d-model D_MODEL" in text and "(default 64)" in text and "--no-select-on-val" in text
    assert "model shape" in text or "the model's shape" in text


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
    train_main(
        [
            "--dataset",
            "csv",
            "--manifest",
            str(manifest),
            "--audio-root",
            str(esc50 / "audio"),
            "--train-splits",
            "1,2,3",
            "--val-splits",
            "4",
            "--test-splits",
            "5",
            "--output",
            str(tmp_path / "esc"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--max-steps-per-phase",
            "3",
            *TINY,
            "--crop-jitter",
            "--min-train-chunk-peak-db",
            "-50",
            "--gain-augment-db",
            "6",
            "--mixup-alpha",
            "0.4",
        ]
    )
    metrics = json.loads((tmp_path / "esc" / "metrics.json").read_text())
    hparams = json.loads((tmp_path / "esc" / "hparams.json").read_text())
    assert hparams["crop_jitter"] and hparams["loss"] == "auto" and hparams["mixup_alpha"] == 0.4
    assert metrics["results"]["test"]["systems"]["fused"]["accuracy"] is not None  # single-label: accuracy too


def test_heads_start_at_the_label_prior():
    from types import SimpleNamespace

    import torch

    from diverse_embed.datasets import Clip
    from diverse_embed.training.data import ChunkDataset
    from diverse_embed.training.losses import label_prior_logits, new_head

    clips = [Clip("a", [0], "train"), Clip("b", [0, 1], "train")]
    cache = SimpleNamespace(load=lambda path: np.zeros(2000, np.int16))
    dataset = ChunkDataset(clips, cache, 3, DiverseEmbedConfig(sample_rate=1000))
    head = new_head(4, label_prior_logits(dataset), seed=0)
    # class 0 is on every chunk (clipped to 1 - 1e-4), class 1 on half of them, class 2 on none.
    np.testing.assert_allclose(torch.sigmoid(head.bias).detach().numpy(), [1 - 1e-4, 0.5, 1e-4], rtol=1e-4)


def test_softmax_for_single_label_data_and_its_prior():
    from types import SimpleNamespace

    import torch

    from diverse_embed.datasets import Clip
    from diverse_embed.errors import DataError
    from diverse_embed.training.data import ChunkDataset
    from diverse_embed.training.losses import label_prior_logits, resolve_loss

    lengths = {"a": 3000, "b": 1000}
    cache = SimpleNamespace(load=lambda path: np.zeros(lengths[path], np.int16))
    single = ChunkDataset(
        [Clip("a", [0], "train"), Clip("b", [1], "train")], cache, 3, DiverseEmbedConfig(sample_rate=1000)
    )
    multi = ChunkDataset(
        [Clip("a", [0], "train"), Clip("b", [0, 1], "train")], cache, 3, DiverseEmbedConfig(sample_rate=1000)
    )
    assert resolve_loss("auto", single) == "softmax" and resolve_loss("auto", multi) == "bce"
    with pytest.raises(DataError, match="one label per training clip"):
        resolve_loss("softmax", multi)
    prior = torch.softmax(label_prior_logits(single, "softmax"), dim=0).numpy()
    np.testing.assert_allclose(prior, [0.75, 0.25, 1e-4], atol=2e-4)


def test_each_corpus_has_its_own_softmax():
    import torch

    from diverse_embed.training.losses import loss_function

    corpus_of_label = torch.tensor([0, 0, 1, 1, 1])
    targets = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 1.0, 0]])
    logits = torch.zeros(2, 5)
    # A chunk's loss is a softmax over its own corpus's labels: log 2 for the first, log 3 for the second.
    expected = (np.log(2) + np.log(3)) / 2
    assert abs(loss_function("softmax", logits, targets, corpus_of_label).item() - expected) < 1e-6
    louder = logits.clone()
    louder[0, 2:] = 50.0  # another corpus's labels do not compete with the first chunk's
    louder[1, :2] = 50.0
    assert abs(loss_function("softmax", louder, targets, corpus_of_label).item() - expected) < 1e-6
    assert loss_function("softmax", louder, targets).item() > 20  # one softmax over all labels: they do


def test_softmax_loss_takes_mixed_targets():
    import torch
    import torch.nn.functional as F

    from diverse_embed.training.losses import loss_function

    corpus_of_label = torch.tensor([0, 0, 0, 1, 1])
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0, 9.0]])
    first, second = torch.eye(5)[[0]], torch.eye(5)[[2]]
    # One-hot: the cross-entropy over the chunk's own corpus (labels 0-2).
    assert torch.isclose(
        loss_function("softmax", logits, first, corpus_of_label), F.cross_entropy(logits[:, :3], torch.tensor([0]))
    )
    # Mixed 0.3/0.7: the same mix of the two labels' losses.
    mixed = loss_function("softmax", logits, 0.3 * first + 0.7 * second, corpus_of_label)
    expected = 0.3 * loss_function("softmax", logits, first, corpus_of_label) + 0.7 * loss_function(
        "softmax", logits, second, corpus_of_label
    )
    assert torch.isclose(mixed, expected)


def test_mixup_pairs_chunks_within_their_corpus():
    import torch

    from diverse_embed.training.losses import mixup

    n = 12
    corpus_of_label = torch.tensor([0] * 5 + [1] * 7)  # label i belongs to chunk i; two corpora
    chunks = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4)  # chunk i is the constant i
    targets = torch.eye(n)
    torch.manual_seed(0)
    mixed, weights = mixup(chunks, targets, 0.4, corpus_of_label)
    assert mixed.shape == chunks.shape and weights.shape == targets.shape
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(n))
    # Each chunk is the weighted mix its targets say: sum over labels of weight x that chunk's value.
    torch.testing.assert_close(mixed[:, 0], weights @ torch.arange(n, dtype=torch.float32))
    for row in range(n):  # and only chunks of its own corpus are in it
        assert set(corpus_of_label[weights[row] > 0].tolist()) == {int(corpus_of_label[row])}
    assert (weights.max(dim=1).values < 1).any()  # something was mixed


def test_supervised_contrastive_pulls_a_label_together():
    import torch

    from diverse_embed.training.losses import supervised_contrastive

    targets = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    grouped = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])  # same label, same direction
    mixed = grouped[[0, 2, 1, 3]]
    assert supervised_contrastive(grouped, targets, 0.1) < supervised_contrastive(mixed, targets, 0.1)
    alone = torch.tensor([[1.0, 0], [0, 1.0]])
    assert supervised_contrastive(torch.randn(2, 4, requires_grad=True), alone, 0.1).item() == 0.0  # no positives


def test_multi_corpus_training_with_balanced_epochs(fsd50k, tmp_path):
    with open(fsd50k / "FSD50K.ground_truth" / "dev.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    manifest = tmp_path / "mixed.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels", "split", "corpus"])
        for number, row in enumerate(rows):
            label = row[1]
            if label in ("Bark", "Rain", "Keyboard_(musical)"):  # single-label clips only
                writer.writerow(
                    [
                        f"FSD50K.dev_audio/{row[0]}.wav",
                        label,
                        "train" if number % 4 else "test",
                        "dogs" if label == "Bark" else "other",
                    ]
                )
    out = tmp_path / "mixed"
    assert (
        train_main(
            [
                "--dataset",
                "csv",
                "--manifest",
                str(manifest),
                "--audio-root",
                str(fsd50k),
                "--output",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--branches",
                "timbre,pitch",
                *TINY,
                "--chunks-per-epoch",
                "16",
                "--corpus-weights",
                "dogs=1,other=3",
                "--contrastive-weight",
                "0.5",
                "--noise-augment-snr-db",
                "10",
            ]
        )
        == 0
    )
    model = DiverseEmbedder.from_pretrained(out)
    assert sorted(model.config.id2label.values()) == ["dogs/Bark", "other/Keyboard_(musical)", "other/Rain"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["of"] for r in log if r.get("phase") == "branch:timbre" and "of" in r][-1] == 2  # 16 chunks of 8
    test = json.loads((out / "metrics.json").read_text())["results"]["test"]
    assert set(test["corpora"]) <= {"dogs", "other"} and test["corpora"]  # each corpus on its own labels too
    assert set(next(iter(test["corpora"].values()))) == set(test["systems"])
    assert ", other alone (its clips, its labels)" in (out / "metrics.md").read_text()
    assert (
        train_main(
            [
                "--dataset",
                "csv",
                "--manifest",
                str(manifest),
                "--audio-root",
                str(fsd50k),
                "--output",
                str(tmp_path / "bad"),
                "--cache-dir",
                str(tmp_path / "cache"),
                *TINY,
                "--chunks-per-epoch",
                "16",
                "--corpus-weights",
                "cats=1",
            ]
        )
        == 2
    )


@pytest.mark.slow
def test_a_training_script_needs_no_main_guard(fsd50k, tmp_path):
    """Run as a file, as the README's training block is: decoding into the cache must not start
    processes that import the script again (multiprocessing's "bootstrapping phase" error)."""
    script = tmp_path / "train_it.py"
    script.write_text(
        "from diverse_embed.training.config import TrainConfig\n"
        "from diverse_embed.training.train import train\n"
        f"metrics = train(TrainConfig(dataset='fsd50k', data_root={str(fsd50k)!r}, cache_dir={str(tmp_path / 'cache')!r},\n"
        f"                            output={str(tmp_path / 'run')!r}, neuralogram_epochs=1, branch_epochs=1,\n"
        "                            fusion_epochs=1, batch_size=8, max_steps_per_phase=1, num_workers=2, progress=False))\n"
        "print('macro mAP', metrics['results']['test']['systems']['fused']['macro_map'])\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "macro mAP" in out.stdout and "bootstrapping" not in out.stderr
