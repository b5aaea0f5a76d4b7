"""Saving and loading: strict safetensors loading, the Hub cache and upload, fingerprints, resolve_model."""

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from conftest import noise, tiny_config
from diverse_embed import CheckpointError, DiverseEmbedder, resolve_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    config = tiny_config(num_labels=3, id2label={0: "dog", 1: "rain", 2: "siren"})
    original = DiverseEmbedder(config).eval()
    folder = tmp_path_factory.mktemp("checkpoint")
    original.save_pretrained(folder)
    return original, folder


def test_round_trip_gives_identical_outputs(saved):
    original, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = DiverseEmbedder.from_pretrained(folder)
    assert not loaded.training
    assert loaded.config == original.config
    assert loaded.config.id2label == {0: "dog", 1: "rain", 2: "siren"}  # integer keys again
    clip = noise(2.3)
    a, b = original.embed(clip, sample_rate=16000), loaded.embed(clip, sample_rate=16000)
    assert np.array_equal(a.chunk_embeddings, b.chunk_embeddings) and np.array_equal(a.logits, b.logits)


def test_a_bundled_model_saved_unchanged_keeps_its_card_licence_and_float16(tmp_path):
    from huggingface_hub import ModelCard

    from diverse_embed import DEFAULT_MODEL, bundled_models

    model = DiverseEmbedder.from_pretrained(DEFAULT_MODEL)
    model.save_pretrained(tmp_path / "copy")
    bundled = bundled_models()[DEFAULT_MODEL]
    card = ModelCard.load(tmp_path / "copy" / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and card.text == ModelCard.load(bundled / "README.md").text
    assert (tmp_path / "copy" / "model.safetensors").stat().st_size == (bundled / "model.safetensors").stat().st_size
    assert (tmp_path / "copy" / "model.safetensors").stat().st_mode == (
        tmp_path / "copy" / "config.json"
    ).stat().st_mode
    assert DiverseEmbedder.from_pretrained(tmp_path / "copy").fingerprint_0_1() == model.fingerprint_0_1()
    with torch.no_grad():
        model.head.bias += 1  # a new head: no longer the bundled model
    model.save_pretrained(tmp_path / "mine", float16=False)
    card = ModelCard.load(tmp_path / "mine" / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and f"Saved from `{DEFAULT_MODEL}`" in card.text  # inherited
    assert "esc50 (50)" in card.text and "# mine" in card.text
    with safetensors.safe_open(str(tmp_path / "mine" / "model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} >= {"F32"} and "F16" not in {
            str(f.get_slice(k).get_dtype()) for k in f.keys()
        }


def test_a_model_of_unknown_origin_does_not_claim_a_licence(saved):
    _, folder = saved
    card = (folder / "README.md").read_text()
    assert "license: other" in card and "apache" not in card.lower() and "More Information Needed" not in card
    assert "`dog`, `rain`, `siren`" in card


def test_checkpoint_holds_learned_tensors_only(saved):
    _, folder = saved
    keys = safetensors.torch.load_file(str(folder / "model.safetensors")).keys()
    assert not any("spectrogram" in k or "mfcc" in k or ".mel." in k for k in keys)  # recomputed from config
    assert any(k.endswith("running_mean") for k in keys)  # MobileNet batch-norm statistics are kept


def copy_checkpoint(folder, target, edit_tensors=None, edit_config=None):
    target.mkdir()
    tensors = safetensors.torch.load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    safetensors.torch.save_file(tensors, str(target / "model.safetensors"))
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_renamed_key_fails_and_names_it(saved, tmp_path):
    def rename(tensors):
        tensors["head.weight_renamed"] = tensors.pop("head.weight")

    folder = copy_checkpoint(saved[1], tmp_path / "tampered", edit_tensors=rename)
    with pytest.raises(CheckpointError, match=r"missing keys \[head.weight\].*unexpected keys \[head.weight_renamed\]"):
        DiverseEmbedder.from_pretrained(folder)
    with pytest.raises(CheckpointError):  # asking for a lenient load changes nothing
        DiverseEmbedder.from_pretrained(folder, strict=False)


def test_config_and_tensors_that_disagree_fail(saved, tmp_path):
    def more_labels(config):
        config["num_labels"], config["id2label"] = 4, None

    folder = copy_checkpoint(saved[1], tmp_path / "shape", edit_config=more_labels)
    with pytest.raises(CheckpointError, match=r"shape mismatch \[head.bias: file \(3,\) vs model \(4,\)"):
        DiverseEmbedder.from_pretrained(folder)


def test_unknown_config_field_fails(saved, tmp_path):
    folder = copy_checkpoint(saved[1], tmp_path / "future", edit_config=lambda c: c.update(rotary=True))
    with pytest.raises(CheckpointError, match="rotary"):
        DiverseEmbedder.from_pretrained(folder)


def test_float16_weights_load_as_float32(saved, tmp_path):
    def halve(tensors):
        for key, value in tensors.items():
            if value.is_floating_point():
                tensors[key] = value.half()

    folder = copy_checkpoint(saved[1], tmp_path / "half", edit_tensors=halve)
    loaded = DiverseEmbedder.from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    clip = noise(2.0)
    a, b = saved[0].embed(clip, sample_rate=16000), loaded.embed(clip, sample_rate=16000)
    assert float(a.embedding @ b.embedding) > 0.999


def test_missing_pieces_fail_clearly(saved, tmp_path):
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text((saved[1] / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        DiverseEmbedder.from_pretrained(tmp_path / "no_weights")
    (tmp_path / "no_config").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        DiverseEmbedder.from_pretrained(tmp_path / "no_config")
    with pytest.raises(CheckpointError, match="not a model folder|no such model folder"):
        DiverseEmbedder.from_pretrained(tmp_path / "does-not-exist", local_files_only=True)
    with pytest.raises(CheckpointError, match="not a file"):
        DiverseEmbedder.from_pretrained(saved[1] / "model.safetensors")
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        DiverseEmbedder.from_pretrained(tmp_path / "bad_json")


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(CheckpointError, match="org/not-cached"):
        DiverseEmbedder.from_pretrained("org/not-cached", local_files_only=True)


def test_hub_id_loads_from_a_hub_cache(saved, tmp_path):
    # The layout huggingface_hub's downloads leave: what from_pretrained("org/name") reads offline.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--diverse-test"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ["config.json", "model.safetensors"]:
        (snapshot / name).write_bytes((saved[1] / name).read_bytes())
    loaded = DiverseEmbedder.from_pretrained("org/diverse-test", cache_dir=tmp_path, local_files_only=True)
    loaded_by_commit = DiverseEmbedder.from_pretrained(
        "org/diverse-test", revision=commit, cache_dir=tmp_path, local_files_only=True
    )
    clip = noise(1.0)
    reference = saved[0].embed(clip, sample_rate=16000).embedding
    assert np.array_equal(loaded.embed(clip, sample_rate=16000).embedding, reference)
    assert np.array_equal(loaded_by_commit.embed(clip, sample_rate=16000).embedding, reference)


def test_push_to_hub_uploads_a_loadable_folder(saved, tmp_path, monkeypatch):
    import shutil
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    uploaded = tmp_path / "uploaded"

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, uploaded)
        return f"uploaded {repo_id}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert saved[0].push_to_hub("org/name") == "uploaded org/name"
    loaded = DiverseEmbedder.from_pretrained(uploaded)
    assert loaded.config == saved[0].config
    assert "diverse-embed" in (uploaded / "README.md").read_text()


def test_fingerprint_follows_weights_and_config(saved):
    original, folder = saved
    assert DiverseEmbedder.from_pretrained(folder).fingerprint() == original.fingerprint()
    torch.manual_seed(99)
    assert DiverseEmbedder(original.config).fingerprint() != original.fingerprint()


def test_fingerprint_is_of_what_the_vectors_depend_on_not_the_head(saved):
    """A head trained anew on frozen branches (train --init-from) gives the same vectors, so the
    same fingerprint: its indexes stay searchable. A changed branch weight or front end does not."""
    import dataclasses

    original, _ = saved
    relabelled = DiverseEmbedder(dataclasses.replace(original.config, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}))
    relabelled.branches.load_state_dict(original.branches.state_dict())
    assert relabelled.fingerprint() == original.fingerprint()
    assert relabelled.fingerprint_0_1() != original.fingerprint_0_1()  # 0.1's kind weighed the head too
    nudged = DiverseEmbedder(original.config)
    nudged.load_state_dict(original.state_dict())
    with torch.no_grad():
        nudged.branches["timbre"].blocks[0].attention.qkv.weight[0, 0] += 1e-3
    assert nudged.fingerprint() != original.fingerprint()
    reframed = DiverseEmbedder(dataclasses.replace(original.config, min_final_chunk_seconds=0.5))
    reframed.load_state_dict(original.state_dict())
    assert reframed.fingerprint() != original.fingerprint()


def test_resolve_model_names(saved, tmp_path):
    original, folder = saved
    model, name = resolve_model(folder)
    assert name == str(folder.resolve()) and model.fingerprint() == original.fingerprint()
    model, name = resolve_model(folder / "model.safetensors")  # a weights file, with config.json beside it
    assert name == str((folder / "model.safetensors").resolve()) and model.fingerprint() == original.fingerprint()
    assert resolve_model("untrained-seed0")[1] == "untrained-seed0"
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="no config.json"):  # no silent default config
        resolve_model(lonely / "model.safetensors")


def test_an_unknown_name_fails_at_once_with_one_line(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="diverse-embed-esc5") as error:
        resolve_model("diverse-embed-esc5")  # a typo: no folder, no bundled model, no network here
    assert time.perf_counter() - started < 15  # huggingface_hub alone retries for ~30 s
    assert "\n" not in str(error.value) and "diverse-embed-esc50" in str(error.value)  # names what there is


def test_a_corpus_head_taken_from_another_run_leaves_the_other_corpora_as_they_were(tmp_path):
    import runpy

    from conftest import REPO

    add = runpy.run_path(str(REPO / "scripts" / "add_corpus_head.py"), run_name="add_corpus_head")
    torch.manual_seed(5)
    base = DiverseEmbedder(tiny_config(num_labels=3, id2label={0: "esc50/dog", 1: "esc50/rain", 2: "nemo/joy"})).eval()
    run = DiverseEmbedder(
        tiny_config(
            num_labels=5,
            id2label={0: "esc50/dog", 1: "esc50/rain", 2: "general/music", 3: "general/speech", 4: "nemo/joy"},
        )
    ).eval()
    run.branches.load_state_dict(base.branches.state_dict())  # trained on the same frozen branches
    merged = add["with_corpus"](base, run, "general")
    clip = noise(2.0)
    assert merged.fingerprint() == base.fingerprint()

    def same(found, expected):  # a head of more rows may round its products differently (torch 2.1: 1e-7)
        return [t["label"] for t in found] == [t["label"] for t in expected] and [t["score"] for t in found] == (
            pytest.approx([t["score"] for t in expected], abs=1e-6)
        )

    assert same(merged.tag(clip, 16000, k=2, corpus="esc50"), base.tag(clip, 16000, k=2, corpus="esc50"))
    assert same(merged.tag(clip, 16000, k=1, corpus="nemo"), base.tag(clip, 16000, k=1, corpus="nemo"))
    assert same(merged.tag(clip, 16000, k=2, corpus="general"), run.tag(clip, 16000, k=2, corpus="general"))
    other = DiverseEmbedder(run.config)  # other branches: its head reads other vectors
    with pytest.raises(SystemExit, match="branches differ"):
        add["with_corpus"](base, other, "general")
