import numpy as np
import pytest

from conftest import sine, write_wav
from diverse_embed import DEFAULT_MODEL
from diverse_embed.cli import main


def test_embed_writes_npz_and_skips_bad_files(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.5))
    write_wav(tmp_path / "b.flac", sine(660, 0.7))
    (tmp_path / "broken.wav").write_text("not audio")
    out = tmp_path / "out" / "emb.npz"
    assert main(["embed", str(tmp_path), "--output", str(out), "--quiet", "--num-workers", "0"]) == 0
    saved = np.load(out)
    assert saved["embeddings"].shape == (2, 256)
    assert [p.split("/")[-1] for p in saved["paths"]] == ["a.wav", "b.flac"]
    assert str(saved["model"]) == DEFAULT_MODEL  # the bundled default
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err and "skipped 1" in captured.out


def test_embed_refuses_an_output_it_cannot_write_as_named(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.csv"), "-q"]) == 2
    assert "must end in .npz" in capsys.readouterr().err and not list(tmp_path.glob("e.csv*"))


def test_embed_segments_into_npz_are_the_parquet_rows(tmp_path):
    import pyarrow.parquet as pq

    write_wav(tmp_path / "a.wav", sine(440, 2.5))
    write_wav(tmp_path / "b.wav", sine(660, 1.0))
    for suffix in ("npz", "parquet"):
        assert (
            main(
                [
                    "embed",
                    str(tmp_path / "a.wav"),
                    str(tmp_path / "b.wav"),
                    "-o",
                    str(tmp_path / f"e.{suffix}"),
                    "--segments",
                    "-q",
                    "--num-workers",
                    "0",
                ]
            )
            == 0
        )
    saved = np.load(tmp_path / "e.npz")
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    segments = [i for i, start in enumerate(table["start"]) if start is not None]
    assert saved["embeddings"].shape == (2, 256) and saved["segment_embeddings"].shape == (len(segments), 256) == (
        4,
        256,
    )
    assert [p.split("/")[-1] for p in saved["segment_paths"]] == ["a.wav"] * 3 + ["b.wav"]
    np.testing.assert_allclose(saved["segment_starts"], [table["start"][i] for i in segments])
    np.testing.assert_allclose(saved["segment_ends"], [0.0 + table["end"][i] for i in segments])
    np.testing.assert_allclose(saved["segment_embeddings"], [table["vector"][i] for i in segments], atol=1e-6)


def test_from_pretrained_with_no_name_is_the_bundled_default():
    from diverse_embed import DEFAULT_MODEL, DiverseEmbedder

    model = DiverseEmbedder.from_pretrained()
    assert model.name_or_path == DEFAULT_MODEL
    assert model.fingerprint() == DiverseEmbedder.from_pretrained(DEFAULT_MODEL).fingerprint()


def test_embed_reports_missing_inputs_and_models(tmp_path, capsys):
    assert main(["embed", str(tmp_path / "nothing.wav"), "-o", str(tmp_path / "e.npz"), "-q"]) == 2
    assert "no such file or folder: " in capsys.readouterr().err and not (tmp_path / "e.npz").exists()
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    code = main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--model", str(tmp_path / "nope")])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_untrained_model_is_announced(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert (
        main(
            [
                "embed",
                str(tmp_path / "a.wav"),
                "-o",
                str(tmp_path / "e.npz"),
                "--num-workers",
                "0",
                "--model",
                "untrained-seed0",
            ]
        )
        == 0
    )
    assert "UNTRAINED" in capsys.readouterr().err
    assert str(np.load(tmp_path / "e.npz")["model"]) == "untrained-seed0"


def test_shipped_samples_embed(tmp_path):
    from importlib.resources import files

    samples = files("diverse_embed") / "samples"
    assert main(["embed", str(samples), "-o", str(tmp_path / "s.npz"), "-q", "--num-workers", "0"]) == 0
    assert len(np.load(tmp_path / "s.npz")["paths"]) == 11


def test_help_loads_no_torch_no_faiss_and_no_training_code():
    import subprocess
    import sys

    code = (
        "import sys, diverse_embed.cli as c; c.build_parser(); "
        "print(sorted(m for m in sys.modules if m in ('torch', 'scipy', 'sklearn', 'faiss') "
        "or m.startswith('diverse_embed.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_train_help_loads_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom diverse_embed.cli import main\ntry:\n    main(['train', '--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "--fusion-epochs" in out.stdout and out.stderr.strip() == "False", out.stderr


def test_nothing_embedded_writes_nothing_and_fails(tmp_path, capsys):
    (tmp_path / "broken.wav").write_text("not audio")
    out = tmp_path / "e.npz"
    assert main(["embed", str(tmp_path / "broken.wav"), "-o", str(out), "-q", "--num-workers", "0"]) == 1
    assert not out.exists() and "none of the 1 file(s)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["embed", str(tmp_path / "empty"), "-o", str(out), "-q"]) == 2
    assert not out.exists() and "no audio files found" in capsys.readouterr().err


def test_an_index_of_nothing_fails(tmp_path, capsys):
    (tmp_path / "broken.wav").write_text("not audio")
    code = main(
        ["index", "build", str(tmp_path / "broken.wav"), "-o", str(tmp_path / "idx"), "-q", "--num-workers", "0"]
    )
    captured = capsys.readouterr()
    assert code == 1 and "holds no files" in captured.err and "broken.wav" in captured.out
    assert main(["index", "build", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "idx2"), "-q"]) == 2
    assert not (tmp_path / "idx2").exists()


@pytest.mark.parametrize("k", ["0", "-3"])
def test_k_must_be_at_least_one(tmp_path, k, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["search", str(tmp_path), str(tmp_path / "q.wav"), "-k", k])
    assert exit_code.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_a_mistyped_model_is_one_line(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--model", "diverse-embed-esc5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: diverse-embed-esc5") and "Retry" not in err


def test_skip_notes_go_above_the_progress_bar(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    (tmp_path / "b.wav").write_text("not audio")
    assert main(["embed", str(tmp_path), "-o", str(tmp_path / "e.npz"), "--num-workers", "0"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("skipped ") and "b.wav" in line for line in lines)  # a line of its own
