"""The reproductions of the second attack (issue: "Never delete what is not ours, bounded memory for
any input, one line for every mistake"): each exits with a one-line message and the right code,
keeps the good files of a batch, and holds memory to a bound whatever the input asks for."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import REPO, sine, write_wav
from diverse_embed.cli import main
from diverse_embed.search.index import AudioIndex

UNTRAINED = ["--model", "untrained-seed0", "-q", "--num-workers", "0"]


def lying_rate(path: Path, rate: int) -> Path:
    """A WAV whose header declares `rate` (bytes 24-27) and a byte rate to match (28-31)."""
    write_wav(path, sine(440, 1.0))
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = min(2 * rate, 2**32 - 1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [4_000_037, 2**31 - 1])
def test_a_file_of_an_absurd_rate_is_skipped_and_the_batch_keeps_the_good_ones(tmp_path, capsys, rate):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_wav(src / f"good{i}.wav", sine(300 + 100 * i, 1.5))
    lying_rate(src / "odd.wav", rate)
    assert main(["embed", str(src), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 0  # skipped, said, the rest kept
    assert f"odd.wav: sample rate {rate:,} Hz is above 768,000 Hz" in capsys.readouterr().err
    assert len(np.load(tmp_path / "e.npz")["paths"]) == 3
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    index = AudioIndex(tmp_path / "idx")
    assert len(list(index.files())) == 3 and list(index.skipped()) == [str(src / "odd.wav")]
    assert main(["index", "sync", str(tmp_path / "idx"), str(src), "-q", "--num-workers", "0"]) in (0, 1)


def test_embed_of_an_absurd_rate_from_python_is_refused_before_allocating():
    from diverse_embed import AudioLoadError
    from diverse_embed.resolve import untrained_model

    with pytest.raises(AudioLoadError, match="above 768,000 Hz"):
        untrained_model().embed(np.zeros(16000, np.float32), 10**12)


def test_a_config_whose_head_or_inputs_are_huge_is_refused_and_a_heavy_one_gets_a_small_budget():
    from diverse_embed.config import DiverseEmbedConfig
    from diverse_embed.embed import chunk_budget
    from diverse_embed.model import DiverseEmbedder

    base = DiverseEmbedConfig().to_dict()
    with pytest.raises(ValueError, match="1,650,392,928 weights"):  # once a 6.5-GB allocation
        DiverseEmbedConfig.from_dict(
            {**base, "d_model": 4096, "n_layers": 1, "n_heads": 1, "head_dim": 1, "ff_dim": 1, "num_labels": 100_000}
        )
    heavy = DiverseEmbedConfig.from_dict(
        {
            **base,
            "sample_rate": 384_000,  # once 6.3 GB
            "waveform": {**base["waveform"], "patch_ms": 1000},
        }
    )
    assert chunk_budget(DiverseEmbedder(heavy)) <= 16 < chunk_budget(DiverseEmbedder(DiverseEmbedConfig()))


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.complex64])
def test_weights_of_the_wrong_kind_of_numbers_are_refused(tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    from diverse_embed.errors import CheckpointError
    from diverse_embed.model import DiverseEmbedder
    from diverse_embed.resolve import untrained_model

    untrained_model().save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    try:
        save_file({key: value.to(dtype) for key, value in load_file(weights).items()}, weights)
    except KeyError:  # safetensors before 0.7 cannot write complex numbers at all
        pytest.skip(f"this safetensors cannot write {dtype}")
    with pytest.raises(CheckpointError, match="wrong kind of numbers"):
        DiverseEmbedder.from_pretrained(tmp_path / "model")


def test_a_tree_deeper_than_python_recursion_is_walked_and_the_file_at_the_top_kept(tmp_path, capsys):
    from diverse_embed.files import scan_audio_files

    top = tmp_path / "top"
    top.mkdir()
    write_wav(top / "first.wav", sine(440, 1.2))
    folder = str(top)
    for _ in range(1100):  # os.walk recursed once per level: RecursionError
        folder = os.path.join(folder, "d")
        os.mkdir(folder)
    with open(os.path.join(folder, "deep.wav"), "wb") as f:  # a name longer than libsndfile takes
        sf.write(f, sine(660, 1.2), 16000, format="WAV", subtype="PCM_16")
    try:
        files, unreadable = scan_audio_files([top])
        assert [p.name for p in files] == ["deep.wav", "first.wav"] and not unreadable
        assert main(["embed", str(top), "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 0
        assert len(np.load(tmp_path / "e.npz")["paths"]) == 2
    finally:  # from the bottom up: shutil.rmtree, as pytest cleans, recurses too
        os.remove(os.path.join(folder, "deep.wav"))
        while folder != str(top):
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def test_a_path_longer_than_libsndfile_allows_is_read(tmp_path):
    folder = str(tmp_path)
    while len(os.fsencode(folder)) < 1100:  # libsndfile's name buffer is 1,024 bytes; Linux allows 4,096
        folder = os.path.join(folder, "f" * 200)
        os.mkdir(folder)
    path = os.path.join(folder, "long.wav")
    with open(path, "wb") as f:
        sf.write(f, sine(440, 1.5), 16000, format="WAV", subtype="PCM_16")
    assert main(["embed", path, "-o", str(tmp_path / "e.npz"), *UNTRAINED]) == 0
    assert main(["index", "build", path, "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    assert list(AudioIndex(tmp_path / "idx").files()) == [path]


def test_hear_refuses_non_finite_audio_alike_and_answers_zero_sounds():
    from diverse_embed import hear
    from diverse_embed.resolve import untrained_model

    model = hear.HearModel(untrained_model())
    audio = torch.zeros((1, 16000))
    audio[0, 100] = float("nan")
    for function in (hear.get_timestamp_embeddings, hear.get_scene_embeddings):
        with pytest.raises(ValueError, match="1 NaN or infinite samples"):
            function(audio, model)
    embeddings, times = hear.get_timestamp_embeddings(torch.zeros((0, 16000)), model)
    assert embeddings.shape[0] == 0 and times.shape[0] == 0
    assert hear.get_scene_embeddings(torch.zeros((0, 16000)), model).shape == (0, model.scene_embedding_size)


def test_a_huge_batch_size_is_held_to_the_working_set(monkeypatch, tmp_path):
    from diverse_embed import embed, parallel
    from diverse_embed.resolve import untrained_model

    model = untrained_model()
    monkeypatch.setattr(parallel, "WORKING_SET_BYTES", 16 << 20)  # 8 chunks of the default model
    budget = embed.chunk_budget(model)
    sizes = []
    forward = embed._forward
    monkeypatch.setattr(
        embed, "_forward", lambda m, chunks, **kw: sizes.append(len(chunks)) or forward(m, chunks, **kw)
    )
    path = write_wav(tmp_path / "long.wav", sine(440, 40.0))
    big = model.embed_file(path, batch_size=100_000).chunk_embeddings
    assert 1 <= max(sizes) <= budget < 40
    sizes.clear()
    from_files = model.embed_files([path], batch_size=100_000, num_workers=0, progress=False)[0]
    assert max(sizes) <= budget and from_files.shape == (256,)
    np.testing.assert_allclose(big, model.embed_file(path, batch_size=4).chunk_embeddings, atol=1e-5)


@pytest.mark.parametrize(
    "device, message", [("foo", "not a device"), ("meta", "runs on cpu or cuda only"), ("cuda:99", "cuda")]
)
def test_a_device_mistake_is_one_line_and_exit_2(tmp_path, capsys, device, message):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    if device.startswith("cuda") and torch.cuda.is_available():
        message = "GPU(s)"
    for command in (
        ["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz")],
        ["index", "build", str(tmp_path / "a.wav"), "-o", str(tmp_path / "idx")],
    ):
        assert main([*command, *UNTRAINED, "--device", device]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc'"),
        ({"WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT not set"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5 with WORLD_SIZE=2"),
    ],
)
def test_a_wrong_torchrun_environment_is_one_line(tmp_path, capsys, monkeypatch, environment, message):
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert main(["index", "build", str(tmp_path / "a.wav"), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def small_index(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_wav(src / f"{i}.wav", sine(300 + 100 * i, 1.5))
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    return src, tmp_path / "idx"


def test_query_lists_of_foreign_bytes_or_endless_are_read_or_refused(tmp_path, capsys):
    src, idx = small_index(tmp_path)
    foreign = os.path.join(os.fsencode(src), b"\xff\xfe.wav")
    os.rename(os.fsencode(src / "0.wav"), foreign)
    (tmp_path / "list.txt").write_bytes(foreign + b"\n# a comment\n" + os.fsencode(src / "1.wav") + b"\n")
    capsys.readouterr()
    assert main(["search", str(idx), "--queries", str(tmp_path / "list.txt"), "--json", *UNTRAINED[:2]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # one JSON line a query
    assert main(["search", str(idx), "--queries", "/dev/zero", *UNTRAINED[:2]]) == 2
    assert "longer than 16 MB" in capsys.readouterr().err


def test_small_mistakes_on_the_command_line_are_one_line(tmp_path, capsys):
    src, idx = small_index(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit, match="2"):
        main(["duplicates", str(idx), "--threshold", "nan"])
    assert "must be a cosine similarity from -1 to 1, got nan" in capsys.readouterr().err
    clip = src / "clip.npz"  # audio under any name is read when named
    (src / "0.wav").rename(clip)
    assert main(["embed", str(clip), "-o", str(clip), *UNTRAINED]) == 2
    assert "is also an input" in capsys.readouterr().err and sf.info(str(clip)).frames == 24000
    assert main(["embed", str(clip), "-o", str(tmp_path / "e.npz"), "--model", "", "-q"]) == 2
    assert "the model name is empty" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["embed", str(clip), "-o", str(tmp_path / "afile" / "e.npz"), *UNTRAINED]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'afile' / 'e.npz'}: a folder on its path is a file\n"
    assert main(["index", "add", str(idx), "", *UNTRAINED]) == 2  # "" once added the whole current folder
    assert "an empty name among the inputs" in capsys.readouterr().err


def test_embed_batch_of_nothing_is_nothing():
    from diverse_embed.resolve import untrained_model

    assert untrained_model().embed_batch([], 16000) == []


def test_duplicates_csv_keeps_each_names_own_bytes(tmp_path, capsysbinary):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "a.wav", sine(440, 2.0))
    name = os.path.join(os.fsencode(src), b"\xff copy.wav")
    with open(name, "wb") as f:
        f.write((src / "a.wav").read_bytes())
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    capsysbinary.readouterr()
    assert main(["duplicates", str(tmp_path / "idx"), "--csv"]) == 0
    assert name in capsysbinary.readouterr().out


def test_sync_drops_a_link_whose_target_was_deleted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    target = write_wav(tmp_path / "elsewhere.wav", sine(440, 1.5))
    write_wav(src / "a.wav", sine(660, 1.5))
    (src / "link.wav").symlink_to(target)
    assert main(["index", "build", str(src), "-o", str(tmp_path / "idx"), *UNTRAINED]) == 0
    assert sorted(AudioIndex(tmp_path / "idx").files()) == [str(src / "a.wav"), str(src / "link.wav")]
    (src / "link.wav").unlink()
    assert main(["index", "sync", str(tmp_path / "idx"), str(src), "-q", "--num-workers", "0"]) == 0
    assert list(AudioIndex(tmp_path / "idx").files()) == [str(src / "a.wav")]


@pytest.mark.slow
def test_output_piped_into_a_reader_that_left_ends_quietly(tmp_path):
    src, idx = small_index(tmp_path)
    cli = f"{sys.executable} -m diverse_embed.cli"
    for command in (f"index info {idx}", f"search {idx} {src / '0.wav'} --model untrained-seed0"):
        # `true` exits at once, so the command's first write meets a closed pipe
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{cli} {command} | true"], cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 1 and done.stderr == "", done.stderr


def test_embed_files_takes_a_folder_a_path_or_a_list_as_the_command_line_does(tmp_path):
    from diverse_embed.embed import audio_paths
    from diverse_embed.resolve import untrained_model

    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "b.wav", sine(440, 1.2))
    write_wav(tmp_path / "sub" / "a.wav", sine(660, 1.2))
    model = untrained_model()
    options = dict(num_workers=0, progress=False)
    listed = model.embed_files([tmp_path / "b.wav", tmp_path / "sub" / "a.wav"], **options)
    for folder in (str(tmp_path), tmp_path, [tmp_path]):  # once "/: is a folder" and "not iterable"
        np.testing.assert_allclose(model.embed_files(folder, **options), listed, atol=1e-6)
    assert audio_paths(str(tmp_path / "b.wav")) == [str(tmp_path / "b.wav")]
    assert [p for p, _ in model.iter_embed_files(tmp_path, **options)] == [
        tmp_path / "b.wav",
        tmp_path / "sub" / "a.wav",
    ]


def test_a_missing_query_is_skipped_and_words_are_told_there_are_no_text_queries(tmp_path, capsys):
    src, idx = small_index(tmp_path)
    capsys.readouterr()
    assert main(["search", str(idx), "a dog barking", *UNTRAINED[:2]]) == 2
    assert "queries are audio files: this model has no text queries" in capsys.readouterr().err
    assert main(["search", str(idx), str(tmp_path / "gone.wav"), str(src / "1.wav"), "--json", *UNTRAINED[:2]]) == 1
    captured = capsys.readouterr()
    assert "skipped query" in captured.err and "gone.wav: no such file or folder" in captured.err
    assert [json.loads(line)["results"] != [] for line in captured.out.splitlines()] == [False, True]


def test_the_retrieval_benchmark_says_its_extra_is_missing_before_it_runs(monkeypatch, capsys):
    import importlib.util

    from benchmarks import retrieval

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a)
    )
    with pytest.raises(SystemExit, match="2"):
        retrieval.main(["--esc50", "/nowhere"])
    assert "pip install 'diverse-embed[benchmarks]'" in capsys.readouterr().err


def test_search_takes_the_embedding_options_the_readme_promises(tmp_path, capsys):
    src, idx = small_index(tmp_path)
    capsys.readouterr()
    assert (
        main(["search", str(idx), str(src / "1.wav"), "-q", "--batch-size", "8", "--num-workers", "0", *UNTRAINED[:2]])
        == 0
    )  # once "unrecognized arguments"
    assert str(src / "1.wav") in capsys.readouterr().out


def test_saved_weights_are_readable_like_the_other_files(tmp_path):
    from diverse_embed.resolve import untrained_model

    untrained_model().save_pretrained(tmp_path / "model")
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes  # once 0600 beside 0644
