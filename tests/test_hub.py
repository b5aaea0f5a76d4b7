"""hub/publish.py: what --dry-run checks, and what a real push sends (the Hub API mocked)."""

import shutil
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "hub"))
import publish

CARD = """---
license: cc-by-nc-4.0
tags: [audio, audio-embedding]
datasets: [esc50]
metrics: [accuracy]
---
# A model
"""


@pytest.fixture
def folder(tmp_path):
    from diverse_embed.resolve import untrained_model

    model = untrained_model()
    model.config.num_labels, model.config.id2label = 200, {i: f"class {i}" for i in range(200)}
    model.save_pretrained(tmp_path / "hub")
    (tmp_path / "hub" / "README.md").write_text(CARD)
    return tmp_path / "hub"


@pytest.mark.slow
def test_dry_run_of_the_committed_hub_folder():
    out = subprocess.run(
        [sys.executable, str(REPO / "hub" / "publish.py"), "--repo-id", "someone/diverse-embed-esc50", "--dry-run"],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "weights load strictly" in out.stdout and "nothing uploaded" in out.stdout


def test_dry_run_refuses_what_would_publish_badly(folder, capsys):
    assert publish.main(["--repo-id", "a/b", "--dry-run", "--folder", str(folder)]) == 0
    assert publish.main(["--repo-id", "no spaces/allowed", "--dry-run", "--folder", str(folder)]) == 1
    assert "not a valid repository id" in capsys.readouterr().err
    (folder / "README.md").write_text("---\nlicense: mit\n---\nno tags\n")
    assert publish.main(["--repo-id", "a/b", "--dry-run", "--folder", str(folder)]) == 1
    assert "lacks tags, datasets, metrics" in capsys.readouterr().err
    (folder / "README.md").write_text(CARD)
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    assert publish.main(["--repo-id", "a/b", "--dry-run", "--folder", str(folder)]) == 1
    assert "should not be published: pytorch_model.bin" in capsys.readouterr().err
    (folder / "pytorch_model.bin").unlink()
    shutil.copyfile(REPO / "diverse_embed" / "samples" / "tone_440hz.wav", folder / "model.safetensors")
    assert publish.main(["--repo-id", "a/b", "--dry-run", "--folder", str(folder)]) == 1
    assert "model.safetensors" in capsys.readouterr().err


def test_push_sends_the_three_files_resolved(folder, monkeypatch, capsys):
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
            calls["repo"] = (repo_id, private, exist_ok, repo_type)

        def create_commit(self, repo_id, operations, commit_message, repo_type=None):
            calls["files"] = {op.path_in_repo: op.path_or_fileobj for op in operations}
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert publish.main(["--repo-id", "me/model", "--private", "--folder", str(folder), "--token", "t"]) == 0
    assert calls["repo"] == ("me/model", True, True, "model") and calls["token"] == "t"
    assert set(calls["files"]) == {"README.md", "config.json", "model.safetensors"}
    assert "published me/model (private)" in capsys.readouterr().out
