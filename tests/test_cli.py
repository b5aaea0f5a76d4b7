import numpy as np

from conftest import sine, write_wav
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
    assert str(saved["model"]) == "diverse-embed-esc50"  # the bundled default
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err and "skipped 1" in captured.out


def test_embed_reports_missing_inputs_and_models(tmp_path, capsys):
    assert main(["embed", str(tmp_path / "nothing.wav"), "-o", str(tmp_path / "e.npz"), "-q"]) == 1
    assert "no such file" in capsys.readouterr().err
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    code = main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--model", str(tmp_path / "nope")])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_untrained_model_is_announced(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", sine(440, 1.0))
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "e.npz"), "--num-workers", "0",
                 "--model", "untrained-seed0"]) == 0
    assert "UNTRAINED" in capsys.readouterr().err
    assert str(np.load(tmp_path / "e.npz")["model"]) == "untrained-seed0"


def test_shipped_samples_embed(tmp_path):
    from importlib.resources import files

    samples = files("diverse_embed") / "samples"
    assert main(["embed", str(samples), "-o", str(tmp_path / "s.npz"), "-q", "--num-workers", "0"]) == 0
    assert len(np.load(tmp_path / "s.npz")["paths"]) == 11
